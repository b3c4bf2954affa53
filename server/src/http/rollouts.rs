//! Handlers for `/api/rollouts/...`: list, ingest, live stream. Thin: parse, authorise, call
//! into core or `live`, answer.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::header;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cutover_core::snapshot::Summary;
use tokio::sync::broadcast::error::RecvError;

use crate::clock::now;
use crate::http::admission::{Edge, Pass};
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::guesses::Client;
use crate::runtime::live::{self, Message, Sent};
use crate::runtime::state::{AppState, Rollout};
use crate::runtime::viewers::Watching;
use crate::sources::ingest::{self, IngestReport};

/// Seconds a client refused a stream waits before it asks again.
const STREAM_RETRY_AFTER: u64 = 5;

/// `GET /api/rollouts`: every rollout the caller may see, with where it stands.
pub async fn list(State(state): State<AppState>, caller: Caller) -> Json<Vec<Summary>> {
    let mut out = Vec::new();
    for rollout in state
        .rollouts
        .values()
        .filter(|r| caller.may_see(&r.plan.id).is_ok())
    {
        out.push(rollout.summary(now()).await);
    }
    Json(out)
}

pub(crate) fn find(state: &AppState, id: &str) -> Result<Arc<Rollout>, ApiError> {
    state
        .rollout(id)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("no rollout \"{id}\"")))
}

/// Ingest bodies up to this size are parsed on the async worker (tens of microseconds).
const INLINE_BODY_BYTES: usize = 16 * 1024;

/// `POST /api/rollouts/{id}/events`: needs the `ingest` role.
pub async fn ingest(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<IngestReport>), ApiError> {
    caller.require(&[cutover_core::role::Role::Ingest], "pushing events")?;
    caller.may_see(&id)?;
    let rollout = find(&state, &id)?;
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(format!(
            "body exceeds {} bytes: send smaller batches",
            ingest::MAX_BODY_BYTES
        )),
        _ => ApiError::BadRequest(e.body_text()),
    })?;
    let body_len = body.len();
    // Parsing up to 4 MB is CPU work: off the async workers, so it never delays a kill. A
    // small body takes less than the hop to the blocking pool would.
    let work = move || {
        let at = now();
        let (records, mut report) =
            ingest::parse_bytes(&rollout.plan, &body, at).map_err(ApiError::BadRequest)?;
        rollout.record(records, at, &mut report);
        Ok::<_, ApiError>(report)
    };
    let report = if body_len <= INLINE_BODY_BYTES {
        work()?
    } else {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("ingest task failed: {e}")))??
    };
    let status = if report.accepted == 0 && report.rejected_total > 0 {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((status, Json(report)))
}

/// Why a stream ends when its sign-in does.
const SIGNED_OUT: &str = "the session, token or share link was revoked or has expired";

/// `GET /api/rollouts/{id}/stream`: the state and the newest tick now, then a tick's changes
/// every second (`delta`, against the tick before) and the state after every action, each
/// with an id. A viewer reconnecting with `Last-Event-ID` gets exactly the events it missed
/// while they are still held, else a fresh state and the newest tick whole. A viewer that
/// falls more than the buffer behind skips the backlog and gets the current state and tick
/// instead: it never slows the others. A viewer whose sign-in is revoked or expires gets an
/// `ended` event and the stream closes (`runtime::viewers` checks each sign-in once for all
/// its streams).
///
/// Every event is bytes rendered once for all viewers (`live::Sent`); a stream is this body
/// alone, waiting on its rollout's one channel, with no task, timer, query or channel of its
/// own.
pub async fn stream(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    Extension(edge): Extension<Arc<Edge>>,
    client: Client,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.may_see(&id)?;
    let rollout = find(&state, &id)?.clone();
    let sign_in = crate::http::auth::sign_in(&state, &headers).ok_or_else(|| {
        ApiError::Unauthenticated("a stream needs a token or a session to check again".into())
    })?;
    let pass = edge
        .admission
        .admit(&caller.1, client.addr)
        .map_err(|refused| ApiError::RetryLater(refused.to_string(), STREAM_RETRY_AFTER))?;
    // Subscribe before looking back, so nothing falls between the two; duplicates are
    // skipped by sequence number.
    let receiver = rollout.live.subscribe();
    let resumed = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|last| rollout.live.since(last));
    let viewer = Viewer {
        watching: state.viewers.watch(sign_in),
        // Subscribed before reading the flag, which is set before streams are told: a stream
        // opening as the server shuts down either sees the flag or is told.
        done: state.is_closing(),
        closing: state.closing.clone(),
        rollout,
        receiver,
        pending: VecDeque::new(),
        seen: 0,
        started: false,
        resumed,
        ticket: Box::new(Ticket {
            until: std::time::Instant::now() + edge.lifetime(),
            _pass: Some(pass),
        }),
    };
    let body = Body::from_stream(futures::stream::unfold(viewer, Viewer::step));
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response())
}

/// One open stream: what it sends from, and what ends it.
struct Viewer {
    /// Set when the server begins to shut down.
    closing: Arc<std::sync::atomic::AtomicBool>,
    /// Its sign-in, counted while the stream is open and checked again for all its streams.
    watching: Watching,
    rollout: Arc<Rollout>,
    receiver: tokio::sync::broadcast::Receiver<Message>,
    /// Events to send before waiting again.
    pending: VecDeque<Bytes>,
    /// The newest sequence number this viewer has been sent (or is level with).
    seen: u64,
    started: bool,
    resumed: Option<Vec<Sent>>,
    /// Set once the stream's last event is queued: it ends after `pending` empties.
    done: bool,
    /// Its admission, boxed: read once per wake-up, and ten thousand streams pay for its
    /// size ten thousand times.
    ticket: Box<Ticket>,
}

/// A stream's admission: when it ends and its place among the streams.
struct Ticket {
    /// When the stream ends for the app to reconnect (checked when it wakes: it keeps no
    /// timer of its own, and wakes at least at every keep-alive).
    until: std::time::Instant,
    /// Its place among the streams, given back when the body is dropped.
    _pass: Option<Pass>,
}

/// What ends a stream or adds to it.
enum Next {
    Sent(Sent),
    Lagged(u64),
    End,
    Ended,
    KeepAlive,
    Nothing,
}

impl Viewer {
    /// The stream's one step: the next bytes, and the viewer to wait on for the ones after.
    async fn step(mut self) -> Option<(Result<Bytes, Infallible>, Viewer)> {
        let bytes = self.next_bytes().await?;
        Some((Ok(bytes), self))
    }

    /// The next bytes to send: the missed events (or the current state and tick) first, then
    /// every new one, until the viewer goes, the server closes, or the sign-in ends.
    async fn next_bytes(&mut self) -> Option<Bytes> {
        if !self.started {
            self.started = true;
            match self.resumed.take() {
                Some(missed) => {
                    self.seen = missed.last().map_or(0, |s| s.seq);
                    self.pending.extend(missed.into_iter().map(|s| s.bytes));
                }
                None => self.start_over().await,
            }
        }
        loop {
            if let Some(bytes) = self.pending.pop_front() {
                return Some(bytes);
            }
            if self.done {
                return None;
            }
            if std::time::Instant::now() >= self.ticket.until {
                // The browser reconnects by itself half a second later, with its last event
                // id: nothing is missed, and the stream is admitted and checked anew.
                self.pending
                    .push_back(Bytes::from_static(b"retry: 500\n\n"));
                self.pending
                    .push_back(live::notice("renew", "this stream reached its lifetime"));
                self.done = true;
                continue;
            }
            match self.next().await {
                Next::Sent(sent) if sent.seq > self.seen => {
                    self.seen = sent.seq;
                    return Some(sent.bytes);
                }
                Next::Sent(_) | Next::Nothing => {}
                Next::KeepAlive => return Some(Bytes::from_static(b":\n\n")),
                Next::Lagged(missed) => {
                    // What it missed may have been the end of its sign-in or of the server.
                    if self.closing.load(std::sync::atomic::Ordering::SeqCst) {
                        return None;
                    }
                    if self.watching.ended() {
                        self.end(SIGNED_OUT);
                        continue;
                    }
                    // Said in the stream, so a client (and a person reading its log) knows
                    // why the next state is a whole one.
                    let reason = format!(
                        "this viewer fell {missed} events behind; they were dropped and a fresh state follows"
                    );
                    self.pending.push_back(live::notice("resync", &reason));
                    self.start_over().await;
                }
                Next::Ended => {
                    self.end(SIGNED_OUT);
                }
                Next::End => return None,
            }
        }
    }

    /// Says why before closing, so a client knows not to expect a reconnect to work.
    fn end(&mut self, reason: &str) {
        self.pending.push_back(live::notice("ended", reason));
        self.done = true;
    }

    /// Queues what a viewer needs to draw the rollout from nothing: its state and the newest
    /// tick whole, labelled with the newest event id sent before they were taken.
    async fn start_over(&mut self) {
        let live = &self.rollout.live;
        let (tick, seq) = live.newest_tick();
        let snapshot = self.rollout.snapshot(now()).await;
        self.pending.push_back(live.state_event(&snapshot, seq));
        // Before the evaluator's first tick, one made now (numbered 0: the evaluator's first
        // comes whole, not as a delta against it).
        let tick = tick.unwrap_or_else(|| live.tick_event(&self.rollout.tick(now()), seq));
        self.pending.push_back(tick);
        self.seen = seq;
    }

    async fn next(&mut self) -> Next {
        // In the order told: an end of the sign-in or of the server comes after the events
        // sent before it, and before any sent after.
        match self.receiver.recv().await {
            Ok(Message::Event(sent)) => Next::Sent(sent),
            Ok(Message::KeepAlive) => Next::KeepAlive,
            Ok(Message::Ended(ids)) if ids.contains(&self.watching.id()) => Next::Ended,
            Ok(Message::Ended(_)) => Next::Nothing,
            Ok(Message::Closing) | Err(RecvError::Closed) => Next::End,
            Err(RecvError::Lagged(missed)) => Next::Lagged(missed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::viewers::SignIn;

    /// A server's state with one rollout `r`, on a SQLite file in `data`.
    async fn loaded(data: &std::path::Path) -> (AppState, Arc<Rollout>) {
        let storage = crate::store::Storage::open_sqlite(data).await.unwrap();
        let text = "[rollout]\nid = \"r\"\ntitle = \"R\"\n[[stage]]\nid = \"a\"\ntraffic = 100\n";
        let plan = cutover_core::plan::parse("r.toml", text).unwrap();
        let state = AppState::load(storage, vec![plan]).await.unwrap();
        let rollout = state.rollout("r").unwrap().clone();
        (state, rollout)
    }

    /// A stream of `rollout` under `sign_in`, as the handler makes it, past its first state.
    fn viewer(state: &AppState, rollout: &Arc<Rollout>, sign_in: SignIn) -> Viewer {
        Viewer {
            closing: state.closing.clone(),
            watching: state.viewers.watch(sign_in),
            receiver: rollout.live.subscribe(),
            rollout: rollout.clone(),
            pending: VecDeque::new(),
            seen: 0,
            started: true,
            resumed: None,
            done: false,
            ticket: Box::new(Ticket {
                until: std::time::Instant::now() + std::time::Duration::from_secs(3600),
                _pass: None,
            }),
        }
    }

    fn text(bytes: &Bytes) -> &str {
        std::str::from_utf8(bytes).unwrap()
    }

    /// What an open stream holds while it waits, boxed once per viewer: ten thousand viewers
    /// pay it ten thousand times. A query or a timer of its own inside the stream would show
    /// here (each stream once had both: 808 bytes then, 616 without).
    #[tokio::test]
    async fn a_waiting_stream_holds_little() {
        let data = tempfile::tempdir().unwrap();
        let (state, rollout) = loaded(data.path()).await;
        let waiting = viewer(&state, &rollout, SignIn::Token("t".into())).step();
        let size = std::mem::size_of_val(&waiting);
        assert!(size <= 640, "a waiting stream's future is {size} bytes");
        drop(waiting);
        state.storage.close().await;
    }

    /// A quiet rollout's streams get a comment, which EventSource ignores and proxies count
    /// as traffic.
    #[tokio::test]
    async fn a_quiet_stream_is_kept_alive_by_a_comment() {
        let data = tempfile::tempdir().unwrap();
        let (state, rollout) = loaded(data.path()).await;
        let quiet = viewer(&state, &rollout, SignIn::Token("t".into()));
        assert!(rollout.live.keep_alive());
        let (Ok(said), _) = quiet.step().await.unwrap();
        assert_eq!(text(&said), ":\n\n");
        state.storage.close().await;
    }

    /// However many sign-ins end in one round, no other viewer falls behind for it: their ends
    /// go out once, as one message.
    #[tokio::test]
    async fn many_ends_at_once_push_no_other_viewer_behind() {
        use crate::runtime::viewers::check;
        let data = tempfile::tempdir().unwrap();
        let (state, rollout) = loaded(data.path()).await;
        let role = cutover_core::role::Role::Viewer;
        let token = state
            .storage
            .upsert_user("kept", role, now())
            .await
            .unwrap();
        let kept = viewer(&state, &rollout, SignIn::Token(token));
        let many = 3 * live::CLIENT_BUFFER;
        let gone: Vec<_> = (0..many)
            .map(|i| viewer(&state, &rollout, SignIn::Token(format!("unknown-{i}"))))
            .collect();
        assert_eq!(check(&state).await, many);
        assert_eq!(check(&state).await, 0, "told once");
        rollout.live.send_state(&rollout.snapshot(now()).await);
        let (Ok(said), _) = kept.step().await.unwrap();
        assert!(text(&said).contains("event: update\n"), "{}", text(&said));
        for stream in gone {
            let (Ok(said), _) = stream.step().await.unwrap();
            assert!(text(&said).starts_with("event: ended\n"), "{}", text(&said));
        }
        state.storage.close().await;
    }

    /// A stream that fell so far behind that it never read its sign-in's end still ends, with
    /// the reason; one whose sign-in holds is resynced instead.
    #[tokio::test]
    async fn a_stream_that_missed_its_end_still_ends() {
        let data = tempfile::tempdir().unwrap();
        let (state, rollout) = loaded(data.path()).await;
        let revoked = SignIn::Token("revoked".into());
        let behind = viewer(&state, &rollout, revoked.clone());
        let kept = viewer(&state, &rollout, SignIn::Token("kept".into()));
        assert!(state.viewers.mark_ended(&revoked, behind.watching.id()));
        rollout.live.send_ended([behind.watching.id()].into());
        let snapshot = rollout.snapshot(now()).await;
        for _ in 0..=live::CLIENT_BUFFER {
            rollout.live.send_state(&snapshot);
        }
        let (Ok(said), behind) = behind.step().await.unwrap();
        assert!(text(&said).starts_with("event: ended\n"), "{}", text(&said));
        assert!(text(&said).contains("revoked"), "{}", text(&said));
        assert!(behind.step().await.is_none(), "closed after saying why");

        let (Ok(said), kept) = kept.step().await.unwrap();
        assert!(
            text(&said).starts_with("event: resync\n"),
            "{}",
            text(&said)
        );
        let (Ok(said), _) = kept.step().await.unwrap();
        assert!(text(&said).contains("event: state\n"), "{}", text(&said));
        state.storage.close().await;
    }
}

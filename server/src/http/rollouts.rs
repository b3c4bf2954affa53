//! Handlers for `/api/rollouts/...`: list, ingest, live stream. Thin: parse, authorise, call
//! into core or `live`, answer.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::header;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use cutover_core::snapshot::Summary;
use tokio::sync::broadcast::error::RecvError;

use crate::clock::now;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::runtime::live::{self, Sent};
use crate::runtime::state::{AppState, Rollout};
use crate::sources::ingest::{self, IngestReport};

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
        let text = std::str::from_utf8(&body)
            .map_err(|_| ApiError::BadRequest("body is not UTF-8".into()))?;
        let at = now();
        let (records, mut report) =
            ingest::parse_batch(&rollout.plan, text, at).map_err(ApiError::BadRequest)?;
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

/// How often an open stream checks that its viewer is still signed in.
const RECHECK_SIGN_IN: Duration = Duration::from_secs(5);
/// How often a quiet stream sends a comment, so proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `GET /api/rollouts/{id}/stream`: the state and the newest tick now, then a tick's changes
/// every second (`delta`, against the tick before) and the state after every action, each
/// with an id. A viewer reconnecting with `Last-Event-ID` gets exactly the events it missed
/// while they are still held, else a fresh state and the newest tick whole. A viewer that
/// falls more than the buffer behind skips the backlog and gets the current state and tick
/// instead: it never slows the others. A viewer whose sign-in is revoked or expires gets an
/// `ended` event and the stream closes.
///
/// Every event is bytes rendered once for all viewers (`live::Sent`); a stream is this body
/// alone, with no task or channel of its own.
pub async fn stream(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.may_see(&id)?;
    let rollout = find(&state, &id)?.clone();
    // Subscribe before looking back, so nothing falls between the two; duplicates are
    // skipped by sequence number.
    let receiver = rollout.live.subscribe();
    let resumed = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|last| rollout.live.since(last));
    let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
    keep_alive.reset();
    let mut recheck = tokio::time::interval(RECHECK_SIGN_IN);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    recheck.reset();
    let viewer = Viewer {
        closing: state.closing.subscribe(),
        state,
        // Only the credentials are kept, to check the sign-in again: not every header.
        credentials: crate::http::auth::credentials(&headers),
        rollout,
        receiver,
        recheck,
        keep_alive,
        pending: VecDeque::new(),
        seen: 0,
        started: false,
        resumed,
        done: false,
    };
    let body = Body::from_stream(futures::stream::unfold(viewer, |mut v| async move {
        let bytes = v.next_bytes().await?;
        Some((Ok::<_, Infallible>(bytes), v))
    }));
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
    state: AppState,
    credentials: HeaderMap,
    rollout: Arc<Rollout>,
    receiver: tokio::sync::broadcast::Receiver<Sent>,
    closing: tokio::sync::watch::Receiver<bool>,
    recheck: tokio::time::Interval,
    keep_alive: tokio::time::Interval,
    /// Events to send before waiting again.
    pending: VecDeque<Bytes>,
    /// The newest sequence number this viewer has been sent (or is level with).
    seen: u64,
    started: bool,
    resumed: Option<Vec<Sent>>,
    /// Set once the stream's last event is queued: it ends after `pending` empties.
    done: bool,
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
            match self.next().await {
                Next::Sent(sent) if sent.seq > self.seen => {
                    self.seen = sent.seq;
                    return Some(sent.bytes);
                }
                Next::Sent(_) | Next::Nothing => {}
                Next::KeepAlive => return Some(Bytes::from_static(b":\n\n")),
                Next::Lagged(missed) => {
                    // Said in the stream, so a client (and a person reading its log) knows
                    // why the next state is a whole one.
                    let reason = format!(
                        "this viewer fell {missed} events behind; they were dropped and a fresh state follows"
                    );
                    self.pending.push_back(live::notice("resync", &reason));
                    self.start_over().await;
                }
                Next::Ended => {
                    // Said before closing, so a client knows not to expect a reconnect to work.
                    let reason = "the session, token or share link was revoked or has expired";
                    self.pending.push_back(live::notice("ended", reason));
                    self.done = true;
                }
                Next::End => return None,
            }
        }
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
        let closing = &mut self.closing;
        // The server is shutting down (also when it already was as this stream opened): end
        // the stream; the browser reconnects to another replica or to this one once it is
        // back. (The guard `wait_for` returns is dropped inside, so the stream stays `Send`.)
        let shutdown = async move {
            let _ = closing.wait_for(|closing| *closing).await;
        };
        // Biased: a shutdown or an ended sign-in wins over an event ready at the same time.
        tokio::select! {
            biased;
            _ = shutdown => Next::End,
            _ = self.recheck.tick() => {
                if crate::http::auth::still_signed_in(&self.state, &self.credentials).await {
                    Next::Nothing
                } else {
                    Next::Ended
                }
            }
            received = self.receiver.recv() => match received {
                Ok(sent) => Next::Sent(sent),
                Err(RecvError::Lagged(missed)) => Next::Lagged(missed),
                Err(RecvError::Closed) => Next::End,
            },
            _ = self.keep_alive.tick() => Next::KeepAlive,
        }
    }
}

//! Handlers for `/api/rollouts/...`: list, ingest, live stream. Thin: parse, authorise, call
//! into core or `live`, answer.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use cutover_core::snapshot::Summary;
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;

use crate::clock::now;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::runtime::live::{LiveEvent, Sent};
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

/// `GET /api/rollouts/{id}/stream`: the state and a tick now, then a tick every second and
/// the state after every action, each with an id. A viewer reconnecting with `Last-Event-ID`
/// gets exactly the events it missed while they are still held, else a fresh state and tick.
/// A viewer that falls more than the buffer behind skips the backlog and gets the current
/// state and tick instead: it never slows the others. A viewer whose sign-in is revoked or
/// expires gets an `ended` event and the stream closes.
pub async fn stream(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.may_see(&id)?;
    let rollout = find(&state, &id)?.clone();
    // Subscribe before looking back, so nothing falls between the two; duplicates are
    // skipped by sequence number.
    let receiver = rollout.live.subscribe();
    let resumed = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|last| rollout.live.since(last));
    let viewer = Viewer {
        closing: state.closing.subscribe(),
        state,
        headers,
        rollout,
        receiver,
    };
    let stream = async_stream(move |tx| viewer.serve(resumed, tx));
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

type Sender = tokio::sync::mpsc::Sender<Result<Event, Infallible>>;

/// One open stream: what it sends from, and what ends it.
struct Viewer {
    state: AppState,
    headers: HeaderMap,
    rollout: Arc<Rollout>,
    receiver: tokio::sync::broadcast::Receiver<Sent>,
    closing: tokio::sync::watch::Receiver<bool>,
}

/// What ends a stream or adds to it.
enum Next {
    Sent(Sent),
    Lagged(u64),
    End,
    Ended,
    Nothing,
}

impl Viewer {
    /// Sends the missed events (or the current state and tick), then every new one, until
    /// the viewer goes, the server closes, or the sign-in ends.
    async fn serve(mut self, resumed: Option<Vec<Sent>>, tx: Sender) {
        let mut recheck = tokio::time::interval(RECHECK_SIGN_IN);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        recheck.tick().await;
        let (mut pending, mut seen) = match resumed {
            Some(missed) => {
                let seen = missed.last().map(|s| s.seq);
                let events = missed.iter().map(|s| sse_event(&self.rollout, s)).collect();
                (events, seen.unwrap_or(0))
            }
            None => current(&self.rollout).await,
        };
        loop {
            for event in pending.drain(..) {
                if tx.send(event).await.is_err() {
                    return;
                }
            }
            match self.next(&mut recheck).await {
                Next::Sent(sent) if sent.seq > seen => {
                    seen = sent.seq;
                    pending.push(sse_event(&self.rollout, &sent));
                }
                Next::Sent(_) | Next::Nothing => {}
                Next::Lagged(missed) => {
                    // Said in the stream, so a client (and a person reading its log) knows
                    // why the next state is a whole one.
                    let reason = format!(
                        "this viewer fell {missed} events behind; they were dropped and a fresh state follows"
                    );
                    (pending, seen) = current(&self.rollout).await;
                    pending.insert(0, Ok(notice("resync", &reason)));
                }
                Next::Ended => {
                    // Said before closing, so a client knows not to expect a reconnect to work.
                    let reason = "the session, token or share link was revoked or has expired";
                    let _ = tx.send(Ok(notice("ended", reason))).await;
                    return;
                }
                Next::End => return,
            }
        }
    }

    async fn next(&mut self, recheck: &mut tokio::time::Interval) -> Next {
        tokio::select! {
            received = self.receiver.recv() => match received {
                Ok(sent) => Next::Sent(sent),
                Err(RecvError::Lagged(missed)) => Next::Lagged(missed),
                Err(RecvError::Closed) => Next::End,
            },
            // The server is shutting down: end the stream; the browser reconnects to another
            // replica or to this one once it is back. (It only ever turns true.)
            _ = self.closing.changed() => Next::End,
            _ = recheck.tick() => {
                if crate::http::auth::still_signed_in(&self.state, &self.headers).await {
                    Next::Nothing
                } else {
                    Next::Ended
                }
            }
        }
    }
}

/// A named event whose data is `{"reason": ...}`.
fn notice(name: &str, reason: &str) -> Event {
    Event::default()
        .event(name)
        .data(serde_json::json!({ "reason": reason }).to_string())
}

/// What a viewer needs to draw the rollout from nothing: its state and a tick, labelled with
/// the newest event id sent before they were taken (they are at least that new).
async fn current(rollout: &Rollout) -> (Vec<Result<Event, Infallible>>, u64) {
    let seq = rollout.live.latest();
    let at = now();
    let snapshot = LiveEvent::State(Box::new(rollout.snapshot(at).await));
    let tick = LiveEvent::Tick(Box::new(rollout.tick(at)));
    let events = [snapshot, tick]
        .iter()
        .map(|e| {
            let event = Event::default().event(e.name()).data(e.json());
            Ok(if seq > 0 {
                event.id(rollout.live.id(seq))
            } else {
                event
            })
        })
        .collect();
    (events, seq)
}

fn sse_event(rollout: &Rollout, sent: &Sent) -> Result<Event, Infallible> {
    Ok(Event::default()
        .event(sent.name)
        .id(rollout.live.id(sent.seq))
        .data(&*sent.data))
}

/// Runs `producer` feeding a small channel and exposes it as a stream; the producer stops
/// when the client goes away.
fn async_stream<F, Fut>(producer: F) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Event, Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(producer(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

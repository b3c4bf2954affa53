//! `POST /v1/metrics` and `POST /v1/logs`: OTLP/HTTP as a Collector's `otlphttp` exporter or
//! an SDK sends it (protobuf or JSON, gzip or not, the ingest token as a bearer header). Every
//! rollout the token may see takes what its plan maps; the answer is OTLP's own, with a
//! partial success that counts and names what was rejected.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cutover_core::role::Role;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
};
use prost::Message;
use tokio::sync::Semaphore;

use crate::clock::{lock, now};
use crate::http::admission::Edge;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::runtime::state::{AppState, Rollout};
use crate::sources::otlp::{self, DecodeError, Encoding, Taker, Tally};

/// OTLP requests decoded at once; more wait their turn for up to [`QUEUE`], then are a 429
/// with `Retry-After` (exporters retry), so a burst of large batches never takes every core
/// from a kill and a Collector's ten parallel senders are queued, not refused.
pub const CONCURRENT: usize = 2;
/// How long a batch waits for a decoding slot by default.
pub const QUEUE: std::time::Duration = std::time::Duration::from_secs(2);
/// Seconds an exporter is asked to wait when the server is busy.
const RETRY_AFTER: u64 = 1;
/// Bodies up to this size are decoded on the async worker; larger ones on the blocking pool.
const INLINE_BODY_BYTES: usize = 16 * 1024;

/// The slots for [`CONCURRENT`] requests, and how long one may wait for a slot.
pub struct OtlpLimit {
    slots: Arc<Semaphore>,
    queue: std::time::Duration,
}

impl OtlpLimit {
    pub fn new(queue: std::time::Duration) -> OtlpLimit {
        OtlpLimit {
            slots: Arc::new(Semaphore::new(CONCURRENT)),
            queue,
        }
    }
}

#[derive(Clone, Copy)]
enum Signal {
    Metrics,
    Logs,
}

pub async fn metrics(
    state: State<AppState>,
    caller: Caller,
    edge: Extension<Arc<Edge>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    export(state, caller, edge, headers, body, Signal::Metrics).await
}

pub async fn logs(
    state: State<AppState>,
    caller: Caller,
    edge: Extension<Arc<Edge>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    export(state, caller, edge, headers, body, Signal::Logs).await
}

async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Extension(edge): Extension<Arc<Edge>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    signal: Signal,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Ingest], "pushing OpenTelemetry data")?;
    let encoding = Encoding::of(
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    )
    .ok_or_else(|| {
        ApiError::BadRequest(
            "Content-Type must be application/x-protobuf or application/json (OTLP/HTTP)".into(),
        )
    })?;
    let gzip = match headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
    {
        None | Some("identity") => false,
        Some("gzip") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "Content-Encoding {other} is not supported: send gzip or none"
            )));
        }
    };
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(format!(
            "body exceeds {} bytes: send smaller batches",
            otlp::MAX_BODY_BYTES
        )),
        _ => ApiError::BadRequest(e.body_text()),
    })?;
    let busy = || {
        ApiError::RetryLater(
            "cutover is decoding other OpenTelemetry batches".into(),
            RETRY_AFTER,
        )
    };
    let slots = edge.otlp.slots.clone();
    let _permit = tokio::time::timeout(edge.otlp.queue, slots.acquire_owned())
        .await
        .map_err(|_| busy())?
        .map_err(|_| busy())?;
    let rollouts: Vec<Arc<Rollout>> = state
        .rollouts
        .values()
        .filter(|r| caller.may_see(&r.plan.id).is_ok())
        .cloned()
        .collect();
    let small = body.len() <= INLINE_BODY_BYTES;
    let work = move || take(&rollouts, &body, gzip, encoding, signal);
    let tally = if small {
        work()
    } else {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("OTLP task failed: {e}")))?
    }
    .map_err(|e| match e {
        DecodeError::TooLarge(m) => ApiError::TooLarge(m),
        DecodeError::Malformed(m) => ApiError::BadRequest(m),
    })?;
    let rejected = i64::try_from(tally.rejected).unwrap_or(i64::MAX);
    let message = tally.message();
    Ok(match signal {
        Signal::Metrics => answer(
            encoding,
            &ExportMetricsServiceResponse {
                partial_success: message.map(|error_message| ExportMetricsPartialSuccess {
                    rejected_data_points: rejected,
                    error_message,
                }),
            },
        ),
        Signal::Logs => answer(
            encoding,
            &ExportLogsServiceResponse {
                partial_success: message.map(|error_message| ExportLogsPartialSuccess {
                    rejected_log_records: rejected,
                    error_message,
                }),
            },
        ),
    })
}

/// Decodes the body and records what each rollout takes. Every decode happens before any
/// sample is recorded: a malformed body loses nothing and records nothing.
fn take(
    rollouts: &[Arc<Rollout>],
    body: &[u8],
    gzip: bool,
    encoding: Encoding,
    signal: Signal,
) -> Result<Tally, DecodeError> {
    let at = now();
    let bytes = otlp::inflate(body, gzip)?;
    let mut tally = Tally::default();
    let samples: Vec<Vec<otlp::Weighted>> = {
        // The cumulative streams of every rollout, in the rollouts' order (so two requests
        // never wait on each other in a circle); nothing else takes these locks.
        let mut deltas: Vec<_> = rollouts.iter().map(|r| lock(&r.otel)).collect();
        let mut takers: Vec<Taker<'_>> = rollouts
            .iter()
            .zip(deltas.iter_mut())
            .map(|(r, d)| Taker {
                plan: &r.plan,
                deltas: d,
                samples: Vec::new(),
            })
            .collect();
        match signal {
            Signal::Metrics => {
                let request = otlp::metrics_request(&bytes, encoding)?;
                otlp::take_metrics(&request, &mut takers, at, &mut tally);
            }
            Signal::Logs => {
                let request = otlp::logs_request(&bytes, encoding)?;
                otlp::take_logs(&request, &mut takers, at, &mut tally);
            }
        }
        takers.into_iter().map(|t| t.samples).collect()
    };
    for (rollout, samples) in rollouts.iter().zip(&samples) {
        rollout.record_weighted(samples, at, &mut tally);
    }
    Ok(tally)
}

fn answer<T: Message + serde::Serialize>(encoding: Encoding, message: &T) -> Response {
    let body = match encoding {
        Encoding::Protobuf => message.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(message).unwrap_or_default(),
    };
    ([(header::CONTENT_TYPE, encoding.content_type())], body).into_response()
}

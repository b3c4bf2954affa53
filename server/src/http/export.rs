//! `GET /api/rollouts/{id}/export.csv`: the chart series and gate verdicts as CSV, one row per
//! completed time step, the way the runbooks log metrics for later analysis. Only completed
//! steps are written, so a client appending with `after=` never writes a row twice or a row
//! that would still change.

use std::time::{Duration, UNIX_EPOCH};

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use cutover_core::gates::{self, Memory, Verdict};
use cutover_core::time::{HOUR, Millis, SECOND, Span};
use cutover_core::window::StoreConfig;
use serde::Deserialize;

use crate::clock::now;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::heavy::Heavy;
use crate::http::rollouts::find;
use crate::runtime::charts;

/// More rows than this and the step widens: a day at 10 s is 8,640 rows.
const MAX_ROWS: i64 = 10_000;
const MAX_SINCE: Millis = 7 * 24 * HOUR;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// How far back, e.g. `2h` (default `1h`).
    since: Option<String>,
    /// Row width, e.g. `1m` (default `10s`, widened to keep at most 10,000 rows).
    step: Option<String>,
    /// Only rows that start after this time (ms since the epoch): for appending.
    after: Option<Millis>,
}

fn span(field: &str, text: Option<&str>, default: Millis) -> Result<Millis, ApiError> {
    match text {
        None => Ok(default),
        Some(t) => Span::parse(t)
            .map(|s| s.0)
            .map_err(|e| ApiError::BadRequest(format!("{field}: {e}"))),
    }
}

/// Seconds-precision UTC time, e.g. `2026-11-22T14:05:10Z`.
pub fn rfc3339(t: Millis) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(t.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::NoData => "no_data",
        Verdict::NotYetKnown => "not_yet_known",
        Verdict::NotApplicable => "n/a",
    }
}

impl ExportQuery {
    /// How far back, and the row width: `since` 1 s to 7 d; whole buckets of the widest
    /// width it reaches (data older than an hour is kept per minute, older than 25 h per 10
    /// minutes, so a longer export uses rows that wide rather than showing a minute's events
    /// in one of six 10 s rows); at most `MAX_ROWS` rows.
    fn rows(&self, store: &StoreConfig) -> Result<(Millis, Millis), ApiError> {
        let since = span("since", self.since.as_deref(), HOUR)?;
        if !(SECOND..=MAX_SINCE).contains(&since) {
            return Err(ApiError::BadRequest(format!(
                "since: between 1s and {}",
                Span(MAX_SINCE).human()
            )));
        }
        let floor = store.width_at(since).max(charts::LIVE_STEP);
        let step = match self.step.as_deref() {
            Some(_) => Some(span("step", self.step.as_deref(), 10 * SECOND)?),
            None => None,
        };
        let step = step.or(Some((10 * SECOND).min(since)));
        let step = cutover_core::time::step_within(since, step, floor, 360, MAX_ROWS)
            .map_err(|e| ApiError::BadRequest(format!("step: {e}")))?;
        Ok((since, step))
    }
}

pub async fn csv(
    State(state): State<crate::AppState>,
    Extension(heavy): Extension<Arc<Heavy>>,
    Path(id): Path<String>,
    caller: Caller,
    crate::http::error::ApiQuery(q): crate::http::error::ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    caller.may_see(&id)?;
    let rollout = find(&state, &id)?;
    let (since, step) = q.rows(&rollout.metric_config())?;
    let current = rollout.state().await;
    let stage = current
        .stage
        .and_then(|i| rollout.plan.stages.get(i))
        .map(|s| s.id.clone());
    let armed = current.phase.armed();
    let entered_at = current.stage_entered_at;
    let after = q.after;
    let work = move || {
        let moment = gates::Moment {
            stage: stage.as_deref(),
            entered_at,
            armed,
            at: 0,
        };
        build(&rollout, moment, since, step, after)
    };
    let body = heavy.run(&caller.0.name, work).await??;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}.csv\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// The CSV of `rollout` over `since` in rows of `step`: CPU work, run off the async workers.
fn build(
    rollout: &crate::runtime::state::Rollout,
    moment: gates::Moment<'_>,
    since: Millis,
    step: Millis,
    after: Option<Millis>,
) -> Result<Vec<u8>, ApiError> {
    let at = now();
    // The step containing `at` is still filling: stop before it.
    let last_complete = at - at.rem_euclid(step) - step;
    let frame = rollout.frame(last_complete, since, step);

    let mut out = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["time".to_string(), "ts_ms".to_string()];
    header.extend(frame.series.iter().map(|s| s.id.clone()));
    header.extend(rollout.plan.gates.iter().map(|g| format!("gate:{}", g.id)));
    out.write_record(&header).map_err(anyhow::Error::from)?;
    let rows = frame.series.first().map_or(0, |s| s.points.len());
    for row in 0..rows {
        let t = frame.series[0].points[row].t;
        if after.is_some_and(|after| t <= after) {
            continue;
        }
        // Each gate as its expression reads over the window ending with this row; a fresh
        // memory because holds are a property of the live evaluation, not of history.
        let evaluated = rollout.with_metrics(|store| {
            gates::evaluate(
                &rollout.plan,
                &rollout.compiled,
                &mut Memory::default(),
                &*store,
                // The window ending at the row's last millisecond: exactly the row's buckets
                // when the window equals the step.
                gates::Moment {
                    at: t + step - 1,
                    ..moment
                },
            )
        });
        let mut record = vec![rfc3339(t), t.to_string()];
        record.extend(frame.series.iter().map(|s| {
            s.points[row]
                .v
                .map_or_else(String::new, |v| format!("{}", (v * 1e6).round() / 1e6))
        }));
        record.extend(
            evaluated
                .gates
                .iter()
                .map(|g| verdict_word(g.verdict).to_string()),
        );
        out.write_record(&record).map_err(anyhow::Error::from)?;
    }
    Ok(out.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)
}

//! Health and metrics for the people and machines watching cutover itself: `/health` is the
//! overall state plus each rollout's key numbers (what the semantic-mirror runbook reads with
//! `curl /health | jq .metrics`); `/metrics` is Prometheus text exposition.

use std::fmt::Write;

use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, Method};
use axum::response::IntoResponse;
use cutover_core::gates::Verdict;
use cutover_core::rollout::Phase;
use cutover_core::snapshot::Health;
use serde_json::{Value, json};

use crate::clock::{lock, now};
use crate::http::auth::{Caller, identify};
use crate::runtime::state::AppState;

/// To anyone: that this replica is alive, which one it is, and whether it evaluates. To a
/// signed-in caller also the overall status, the worst of the rollouts' (`healthy` <
/// `degraded` < `critical` < `killed`), and each rollout's key numbers (a share link sees
/// only its own rollout): phases, traffic and gate values are not for the whole internet.
pub async fn health(State(state): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let liveness = json!({
        "live": true,
        // Which replica answered, and whether it is the one evaluating holds and triggers.
        "replica": &*state.replica,
        "evaluator": state.leader.load(std::sync::atomic::Ordering::Relaxed),
    });
    let Ok(caller) = identify(&state, &headers, &Method::GET, "/health").await else {
        return Json(liveness);
    };
    let mut overall = Health::Healthy;
    let mut metrics = serde_json::Map::new();
    for (id, rollout) in state.rollouts.iter() {
        if caller.may_see(id).is_err() {
            continue;
        }
        let snapshot = rollout.snapshot(now()).await;
        let summary = snapshot.summary();
        overall = overall.max(summary.health);
        let values: serde_json::Map<String, Value> = snapshot
            .gates
            .iter()
            .flat_map(|g| {
                g.comparisons
                    .first()
                    .map(|c| (g.id.clone(), json!(c.left_value)))
            })
            .collect();
        metrics.insert(
            id.clone(),
            json!({
                "status": summary.health,
                "phase": summary.phase,
                "stage": summary.stage,
                "traffic": summary.traffic,
                "gates_passing": summary.gates_passing,
                "gates": summary.gates_total,
                "values": values,
            }),
        );
    }
    let mut answer = liveness;
    answer["status"] = json!(overall);
    answer["metrics"] = Value::Object(metrics);
    Json(answer)
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `GET /metrics`: Prometheus text format 0.0.4, for a signed-in caller (Prometheus scrapes
/// with a token: `authorization: { credentials: ... }` in its scrape config).
pub async fn metrics(State(state): State<AppState>, caller: Caller) -> impl IntoResponse {
    let mut gates = String::new();
    let mut held = String::new();
    let mut traffic = String::new();
    let mut killed = String::new();
    let mut viewers = String::new();
    let mut dropped = String::new();
    let mut overflowed = String::new();
    let mut ingested = String::new();
    let mut rejected = String::new();
    for (id, rollout) in state.rollouts.iter() {
        if caller.may_see(id).is_err() {
            continue;
        }
        let snapshot = rollout.snapshot(now()).await;
        let r = escape(id);
        // The snapshot carries every gate of the plan, "not evaluated yet" before the first
        // evaluation, so each is listed from the first scrape.
        for g in &snapshot.gates {
            let pass = u8::from(g.verdict == Verdict::Pass);
            let _ = writeln!(
                gates,
                "cutover_gate_passing{{rollout=\"{r}\",gate=\"{}\"}} {pass}",
                escape(&g.id)
            );
            let _ = writeln!(
                held,
                "cutover_gate_held_seconds{{rollout=\"{r}\",gate=\"{}\"}} {}",
                escape(&g.id),
                g.held_for.0 as f64 / 1000.0
            );
        }
        let _ = writeln!(
            traffic,
            "cutover_traffic_percent{{rollout=\"{r}\"}} {}",
            snapshot.traffic
        );
        let _ = writeln!(
            killed,
            "cutover_killed{{rollout=\"{r}\"}} {}",
            u8::from(snapshot.state.phase == Phase::Killed)
        );
        let _ = writeln!(
            viewers,
            "cutover_sse_clients{{rollout=\"{r}\"}} {}",
            rollout.live.viewers()
        );
        use std::sync::atomic::Ordering::Relaxed;
        let _ = writeln!(
            ingested,
            "cutover_events_ingested_total{{rollout=\"{r}\"}} {}",
            rollout.ingested.load(Relaxed)
        );
        let _ = writeln!(
            rejected,
            "cutover_events_rejected_total{{rollout=\"{r}\"}} {}",
            rollout.rejected.load(Relaxed)
        );
        let store = lock(&rollout.metrics);
        for m in &rollout.plan.metrics {
            let _ = writeln!(
                dropped,
                "cutover_events_dropped_total{{rollout=\"{r}\",metric=\"{}\"}} {}",
                escape(&m.id),
                store.dropped(&m.id)
            );
            let _ = writeln!(
                overflowed,
                "cutover_label_overflow_total{{rollout=\"{r}\",metric=\"{}\"}} {}",
                escape(&m.id),
                store.overflowed(&m.id)
            );
        }
    }
    let mut out = String::new();
    for (name, help, kind, body) in [
        (
            "cutover_gate_passing",
            "1 when the gate passes now, 0 when it fails or has no data.",
            "gauge",
            gates,
        ),
        (
            "cutover_gate_held_seconds",
            "How long the gate has passed continuously.",
            "gauge",
            held,
        ),
        (
            "cutover_traffic_percent",
            "Share of traffic on the new path.",
            "gauge",
            traffic,
        ),
        (
            "cutover_killed",
            "1 while the rollout is killed.",
            "gauge",
            killed,
        ),
        (
            "cutover_sse_clients",
            "Connected live viewers.",
            "gauge",
            viewers,
        ),
        (
            "cutover_events_ingested_total",
            "Event records accepted since the server started.",
            "counter",
            ingested,
        ),
        (
            "cutover_events_rejected_total",
            "Event records rejected (invalid, too late, too far ahead) since the server started.",
            "counter",
            rejected,
        ),
        (
            "cutover_events_dropped_total",
            "Samples refused as too late.",
            "counter",
            dropped,
        ),
        (
            "cutover_label_overflow_total",
            "Samples kept under an overflow label set because their metric had no room for a new one.",
            "counter",
            overflowed,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        out.push_str(&body);
    }
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        out,
    )
}

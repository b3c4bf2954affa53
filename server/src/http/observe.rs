//! Health and metrics for the people and machines watching cutover itself: `/health` is the
//! overall state plus each rollout's key numbers (what the semantic-mirror runbook reads with
//! `curl /health | jq .metrics`); `/metrics` is Prometheus text exposition.

use std::fmt::Write;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, Method};
use axum::response::IntoResponse;
use cutover_core::gates::Verdict;
use cutover_core::rollout::Phase;
use cutover_core::snapshot::{Health, Snapshot};
use serde_json::{Value, json};

use crate::clock::now;
use crate::http::auth::{Caller, identify};
use crate::runtime::state::{AppState, Rollout};

/// To anyone: that this replica is alive, which one it is, and whether it evaluates. To a
/// signed-in caller also the overall status, the worst of the rollouts' (`healthy` <
/// `degraded` < `critical` < `killed`), and each rollout's key numbers (a share link sees
/// only its own rollout): phases, traffic and gate values are not for the whole internet.
/// `?audit` adds each audit chain's verdict (`cutover audit verify` over HTTP).
pub async fn health(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Json<Value> {
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
        let (health, numbers) = key_numbers(&snapshot);
        overall = overall.max(health);
        metrics.insert(id.clone(), numbers);
    }
    let mut answer = liveness;
    answer["status"] = json!(overall);
    answer["metrics"] = Value::Object(metrics);
    // `?audit`: each audit chain verified too (it reads every entry, so only when asked).
    if query.is_some_and(|q| q.split('&').any(|p| p == "audit")) {
        answer["audit"] = audit_chains(&state, &caller).await;
    }
    Json(answer)
}

/// Each visible rollout's audit chain: the entries that hold and its head, or where it breaks.
async fn audit_chains(state: &AppState, caller: &Caller) -> Value {
    let mut chains = serde_json::Map::new();
    for id in state.rollouts.keys() {
        if caller.may_see(id).is_err() {
            continue;
        }
        let Some(rollout) = state.rollout(id) else {
            continue;
        };
        // Cached per head, checked on the blocking pool: `/health?audit` polled by a monitor
        // costs a query a rollout, not a read of every entry.
        let verdict = match rollout.integrity(&state.storage).await {
            Ok((head, i)) if i.holds => {
                json!({ "intact": true, "entries": i.entries, "head": head, "signed": i.signed })
            }
            Ok((head, i)) => json!({
                "intact": false,
                "problem": i.problem,
                "head": head,
                "signed": i.signed,
            }),
            Err(e) => json!({ "intact": Value::Null, "problem": format!("cannot read: {e:#}") }),
        };
        chains.insert(id.clone(), verdict);
    }
    Value::Object(chains)
}

/// A rollout's health and its key numbers as `/health` lists them: phase, stage, traffic,
/// gates passing, and each gate's first value.
fn key_numbers(snapshot: &Snapshot) -> (Health, Value) {
    let summary = snapshot.summary();
    let values: serde_json::Map<String, Value> = snapshot
        .gates
        .iter()
        .flat_map(|g| {
            g.comparisons
                .first()
                .map(|c| (g.id.clone(), json!(c.left_value)))
        })
        .collect();
    let numbers = json!({
        "status": summary.health,
        "phase": summary.phase,
        "stage": summary.stage,
        "traffic": summary.traffic,
        "gates_passing": summary.gates_passing,
        "gates": summary.gates_total,
        "values": values,
    });
    (summary.health, numbers)
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The families `/metrics` exposes, in order: name, help, type.
const FAMILIES: [(&str, &str, &str); 9] = [
    (
        "cutover_gate_passing",
        "1 when the gate passes now, 0 when it fails or has no data.",
        "gauge",
    ),
    (
        "cutover_gate_held_seconds",
        "How long the gate has passed continuously.",
        "gauge",
    ),
    (
        "cutover_traffic_percent",
        "Share of traffic on the new path.",
        "gauge",
    ),
    ("cutover_killed", "1 while the rollout is killed.", "gauge"),
    ("cutover_sse_clients", "Connected live viewers.", "gauge"),
    (
        "cutover_events_ingested_total",
        "Event records accepted since the server started.",
        "counter",
    ),
    (
        "cutover_events_rejected_total",
        "Event records rejected (invalid, too late, too far ahead) since the server started.",
        "counter",
    ),
    (
        "cutover_events_dropped_total",
        "Samples refused as too late.",
        "counter",
    ),
    (
        "cutover_label_overflow_total",
        "Samples kept under an overflow label set because their metric had no room for a new one.",
        "counter",
    ),
];

/// Prometheus text exposition being written: one body per family, joined in `FAMILIES` order.
#[derive(Default)]
struct Exposition {
    bodies: std::collections::HashMap<&'static str, String>,
}

impl Exposition {
    /// Adds one sample of `family`; `labels` are written as given, already escaped.
    fn sample(&mut self, family: &'static str, labels: &str, value: impl std::fmt::Display) {
        let body = self.bodies.entry(family).or_default();
        let _ = writeln!(body, "{family}{{{labels}}} {value}");
    }

    /// Every family of one rollout, from its snapshot, counters and metric windows.
    fn rollout(&mut self, id: &str, snapshot: &Snapshot, rollout: &Rollout) {
        use std::sync::atomic::Ordering::Relaxed;
        let r = format!("rollout=\"{}\"", escape(id));
        // The snapshot carries every gate of the plan, "not evaluated yet" before the first
        // evaluation, so each is listed from the first scrape.
        for g in &snapshot.gates {
            let labels = format!("{r},gate=\"{}\"", escape(&g.id));
            let pass = u8::from(g.verdict == Verdict::Pass);
            self.sample("cutover_gate_passing", &labels, pass);
            let held = g.held_for.0 as f64 / 1000.0;
            self.sample("cutover_gate_held_seconds", &labels, held);
        }
        self.sample("cutover_traffic_percent", &r, snapshot.traffic);
        let killed = u8::from(snapshot.state.phase == Phase::Killed);
        self.sample("cutover_killed", &r, killed);
        self.sample("cutover_sse_clients", &r, rollout.live.viewers());
        let ingested = rollout.ingested.load(Relaxed);
        self.sample("cutover_events_ingested_total", &r, ingested);
        let rejected = rollout.rejected.load(Relaxed);
        self.sample("cutover_events_rejected_total", &r, rejected);
        let counts: Vec<_> = rollout.with_metrics(|store| {
            let plan = &rollout.plan.metrics;
            plan.iter()
                .map(|m| (escape(&m.id), store.dropped(&m.id), store.overflowed(&m.id)))
                .collect()
        });
        for (metric, dropped, overflowed) in counts {
            let labels = format!("{r},metric=\"{metric}\"");
            self.sample("cutover_events_dropped_total", &labels, dropped);
            self.sample("cutover_label_overflow_total", &labels, overflowed);
        }
    }

    fn render(mut self) -> String {
        let mut out = String::new();
        for (name, help, kind) in FAMILIES {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            out.push_str(&self.bodies.remove(name).unwrap_or_default());
        }
        out
    }
}

/// `GET /metrics`: Prometheus text format 0.0.4, for a signed-in caller (Prometheus scrapes
/// with a token: `authorization: { credentials: ... }` in its scrape config).
pub async fn metrics(State(state): State<AppState>, caller: Caller) -> impl IntoResponse {
    let mut exposition = Exposition::default();
    for (id, rollout) in state.rollouts.iter() {
        if caller.may_see(id).is_ok() {
            let snapshot = rollout.snapshot(now()).await;
            exposition.rollout(id, &snapshot, rollout);
        }
    }
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        exposition.render(),
    )
}

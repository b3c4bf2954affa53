//! A rollout's live data and its fan-out to viewers. Events are recorded here; once a second
//! the ticker publishes a frame on a bounded broadcast channel that every SSE stream reads.
//!
//! The aggregation is deliberately small for now (request count and p95 of the plan's first
//! distribution metric per 10 s bucket); core's metric store replaces it.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use cutover_core::plan::Plan;
use cutover_core::query::MetricKind;
use cutover_core::series::{Frame, Point, Series};
use cutover_core::snapshot::Snapshot;
use cutover_core::time::{MINUTE, Millis, SECOND};
use sketches_ddsketch::{Config, DDSketch};
use tokio::sync::broadcast;

/// Bucket width of the live series.
pub const STEP: Millis = 10 * SECOND;
/// How much history a frame carries.
pub const HISTORY: Millis = 15 * MINUTE;
/// Frames a viewer may fall behind before it is cut off and resent a fresh one.
pub const CLIENT_BUFFER: usize = 16;

struct Bucket {
    start: Millis,
    count: u64,
    sketch: DDSketch,
}

/// What the stream carries: chart frames on every tick, the rollout's state on every action.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    Frame(Frame),
    State(Box<Snapshot>),
}

impl LiveEvent {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            LiveEvent::Frame(_) => "frame",
            LiveEvent::State(_) => "state",
        }
    }

    pub fn json(&self) -> String {
        match self {
            LiveEvent::Frame(f) => serde_json::to_string(f),
            LiveEvent::State(s) => serde_json::to_string(s),
        }
        .unwrap_or_default()
    }
}

pub struct Live {
    rollout: String,
    latency_metric: Option<String>,
    buckets: Mutex<VecDeque<Bucket>>,
    sender: broadcast::Sender<(u64, LiveEvent)>,
    next_id: AtomicU64,
}

impl Live {
    pub fn new(plan: &Plan) -> Live {
        let latency_metric = plan
            .metrics
            .iter()
            .find(|m| m.kind == MetricKind::Distribution)
            .map(|m| m.id.clone());
        let (sender, _) = broadcast::channel(CLIENT_BUFFER);
        Live {
            rollout: plan.id.clone(),
            latency_metric,
            buckets: Mutex::new(VecDeque::new()),
            sender,
            next_id: AtomicU64::new(1),
        }
    }

    pub fn latency_metric(&self) -> Option<&str> {
        self.latency_metric.as_deref()
    }

    /// Counts one request at `ts`, with its latency if it reported one.
    pub fn record(&self, ts: Millis, latency: Option<f64>) {
        let start = ts - ts.rem_euclid(STEP);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let index = match buckets.iter().position(|b| b.start == start) {
            Some(i) => i,
            None => {
                let at = buckets
                    .iter()
                    .position(|b| b.start > start)
                    .unwrap_or(buckets.len());
                buckets.insert(
                    at,
                    Bucket {
                        start,
                        count: 0,
                        sketch: DDSketch::new(Config::defaults()),
                    },
                );
                at
            }
        };
        if let Some(bucket) = buckets.get_mut(index) {
            bucket.count += 1;
            if let Some(v) = latency {
                bucket.sketch.add(v);
            }
        }
    }

    /// The last `HISTORY` as series, one point per `STEP`, gaps where nothing arrived.
    pub fn frame(&self, now: Millis) -> Frame {
        let end = now - now.rem_euclid(STEP);
        let from = end - HISTORY + STEP;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        while buckets.front().is_some_and(|b| b.start < from) {
            buckets.pop_front();
        }
        let mut requests = Vec::new();
        let mut p95 = Vec::new();
        let mut t = from;
        while t <= end {
            let bucket = buckets.iter().find(|b| b.start == t);
            requests.push(Point {
                t,
                v: bucket.map(|b| b.count as f64),
            });
            p95.push(Point {
                t,
                v: bucket.and_then(|b| b.sketch.quantile(0.95).ok().flatten()),
            });
            t += STEP;
        }
        let latency = self
            .latency_metric
            .clone()
            .unwrap_or_else(|| "latency".into());
        Frame {
            rollout: self.rollout.clone(),
            at: now,
            step: STEP,
            series: vec![
                Series {
                    id: "requests".into(),
                    label: "requests / 10 s".into(),
                    unit: "count".into(),
                    points: requests,
                },
                Series {
                    id: format!("{latency}.p95"),
                    label: format!("p95 {latency}"),
                    unit: "ms".into(),
                    points: p95,
                },
            ],
        }
    }

    /// Sends the current frame to every viewer; returns its event id.
    pub fn publish(&self, now: Millis) -> u64 {
        self.send(LiveEvent::Frame(self.frame(now)))
    }

    /// Sends an event to every viewer; returns its id.
    pub fn send(&self, event: LiveEvent) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // No receivers is fine: nobody is watching.
        let _ = self.sender.send((id, event));
        id
    }

    pub fn subscribe(&self) -> broadcast::Receiver<(u64, LiveEvent)> {
        self.sender.subscribe()
    }

    pub fn viewers(&self) -> usize {
        self.sender.receiver_count()
    }
}

//! The Prometheus poller: asks Prometheus every query a rollout needs each interval, records
//! the answers into the rollout's metric windows, fills the last hour at start, and marks what
//! it could not read as failing (no data, with the reason).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cutover_core::plan::MetricSourceKind;
use cutover_core::time::{HOUR, Millis};
use cutover_core::window::{MetricStore, Sample, SampleValue, StoreConfig};

use crate::clock::now;
use crate::runtime::state::{AppState, Rollout};
use crate::sources::prometheus::{NOT_CONFIGURED, PromClient, PromStatus, Series};

/// The plan's Prometheus-backed metrics: (id, query).
pub fn prom_metrics(rollout: &Rollout) -> Vec<(String, String)> {
    rollout
        .plan
        .metrics
        .iter()
        .filter(|m| m.source == MetricSourceKind::Prometheus)
        .filter_map(|m| Some((m.id.clone(), m.query.clone()?)))
        .collect()
}

fn samples(metric: &str, series: Vec<Series>) -> Vec<Sample> {
    series
        .into_iter()
        .flat_map(|(labels, points)| {
            points.into_iter().map(move |(ts, v)| Sample {
                metric: metric.to_string(),
                labels: labels.clone(),
                ts,
                value: SampleValue::Number(v),
            })
        })
        .collect()
}

/// How far back the charts are filled from `query_range` at start.
const BACKFILL: Millis = HOUR;

/// Fills `rollout`'s windows with the last hour of each Prometheus metric. Samples that old are
/// beyond the windows' lateness allowance, so they go in as finished buckets.
async fn backfill(client: &PromClient, rollout: &Rollout, at: Millis) {
    let step = client.config().interval.max(Duration::from_secs(1));
    for (metric, query) in prom_metrics(rollout) {
        let series = match client.query_range(&query, at - BACKFILL, at, step).await {
            Ok(series) => series,
            Err(e) => {
                tracing::warn!(rollout = %rollout.plan.id, metric, "no chart history: {e}");
                continue;
            }
        };
        let config = StoreConfig {
            max_lateness: BACKFILL + HOUR,
            ..rollout.metric_config()
        };
        let kinds = rollout.plan.metrics.iter().map(|m| (m.id.clone(), m.kind));
        let mut history = MetricStore::new(config, kinds);
        for s in samples(&metric, series) {
            let _ = history.record(&s, at);
        }
        // Only what the live windows lack: a bucket the poller already filled stays.
        rollout.with_metrics(|store| {
            let have = store.export_buckets(at - BACKFILL, at);
            let fresh = history
                .export_buckets(at - BACKFILL, at)
                .into_iter()
                .filter(|b| {
                    !have
                        .iter()
                        .any(|h| h.metric == b.metric && h.labels == b.labels && h.start == b.start)
                })
                .collect();
            store.import(fresh);
            store.compact(at);
        });
    }
}

/// Asks Prometheus everything `rollout` needs once, at `at`.
pub async fn poll(client: &PromClient, rollout: &Rollout, at: Millis) {
    let mut failing = HashMap::new();
    for (metric, query) in prom_metrics(rollout) {
        match client.query(&query, at).await {
            Ok(series) if series.len() > rollout.metric_config().max_series_per_metric => {
                // Keeping some series would make a gate judge a subset without saying so.
                let limit = rollout.metric_config().max_series_per_metric;
                failing.insert(
                    metric,
                    format!(
                        "the query returned {} series, more than the {limit} cutover keeps per metric: aggregate it (e.g. sum by (variant) (...))",
                        series.len()
                    ),
                );
            }
            Ok(series) => {
                rollout.with_metrics(|store| {
                    for s in samples(&metric, series) {
                        if let Err(e) = store.record(&s, now()) {
                            tracing::debug!(rollout = %rollout.plan.id, metric, "sample refused: {e}");
                        }
                    }
                });
            }
            Err(e) => {
                failing.insert(metric, e);
            }
        }
    }
    let mut instant = HashMap::new();
    for query in rollout.compiled.promql_queries() {
        let answer = client
            .query(&query, at)
            .await
            .and_then(|series| match series.as_slice() {
                [] => Ok(None),
                [(_, points)] => Ok(points.first().map(|(_, v)| *v)),
                many => Err(format!(
                    "returned {} series; aggregate it to one (sum, max, ...)",
                    many.len()
                )),
            });
        instant.insert(query, answer);
    }
    rollout.set_prom(PromStatus { failing, instant });
}

fn uses_prometheus(rollout: &Rollout) -> bool {
    !prom_metrics(rollout).is_empty() || !rollout.compiled.promql_queries().is_empty()
}

/// Polls Prometheus for every rollout that uses it, until the task is dropped. Without a
/// configured Prometheus, marks what needs one as failing with the reason.
pub async fn run(state: AppState, client: Option<Arc<PromClient>>) {
    let Some(client) = client else {
        for rollout in state.rollouts.values() {
            let mut status = PromStatus::waiting(
                prom_metrics(rollout).into_iter().map(|(m, _)| m),
                NOT_CONFIGURED,
            );
            status.instant = rollout
                .compiled
                .promql_queries()
                .into_iter()
                .map(|q| (q, Err(NOT_CONFIGURED.to_string())))
                .collect();
            rollout.set_prom(status);
        }
        return;
    };
    let users: Vec<_> = state
        .rollouts
        .values()
        .filter(|r| uses_prometheus(r))
        .cloned()
        .collect();
    if users.is_empty() {
        return;
    }
    for rollout in &users {
        backfill(&client, rollout, now()).await;
    }
    let mut interval = tokio::time::interval(client.config().interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        interval.tick().await;
        let at = now();
        futures::future::join_all(users.iter().map(|r| poll(&client, r, at))).await;
    }
}

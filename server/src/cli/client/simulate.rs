//! `cutover simulate`: realistic traffic for one rollout, posted to a server as NDJSON batches
//! five times a second, in a scenario the runbooks' rollback triggers describe. Reports what
//! was sent and accepted, and where the time went (making events or waiting for the server),
//! so a load run says which side is the bottleneck.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use cutover_core::snapshot::Snapshot;

use super::{Client, ClientError, Connection, segment};
use crate::sources::simulate::{Mix, Scenario, Targets};

/// Post realistic traffic for one rollout, healthy or in an incident scenario.
///
/// Scenarios: healthy, latency-spike (latencies x4), error-spike (error ratios at 3x their
/// limit), fallback-storm (60% fallback mode), cache-cold (hit ratios at a third of their
/// floor), no-data (nothing: gates turn `no data`). Incidents hit every event; use
/// --canary-slowdown for a canary-only latency regression. Needs an `ingest` token.
///
/// Example: cutover simulate --plan spiralogic --rate 200/s --scenario latency-spike --duration 2m
#[derive(clap::Args)]
pub struct SimulateArgs {
    /// The rollout (plan id) to feed.
    #[arg(long)]
    plan: String,
    /// Events per second, e.g. 200/s.
    #[arg(long, default_value = "50/s", value_parser = parse_rate)]
    rate: f64,
    #[arg(long, value_enum, default_value_t = Scenario::Healthy)]
    scenario: Scenario,
    /// Latency factor for events labelled canary (1.1: canary 10% slower than baseline).
    #[arg(long, default_value_t = 1.0)]
    canary_slowdown: f64,
    /// Stop after this long, e.g. 90s, 5m (default: until interrupted).
    #[arg(long)]
    duration: Option<String>,
    #[command(flatten)]
    connection: Connection,
}

pub(super) async fn run(args: SimulateArgs) -> Result<ExitCode, ClientError> {
    let duration = args
        .duration
        .map(|d| {
            cutover_core::time::Span::parse(&d)
                .map(|s| Duration::from_millis(s.0.max(0) as u64))
                .map_err(|e| ClientError::Refused(format!("--duration: {e}")))
        })
        .transpose()?;
    let client = Client::new(&args.connection)?;
    let mix = Mix {
        scenario: args.scenario,
        canary_slowdown: args.canary_slowdown,
        ..Mix::default()
    };
    let report = tokio::select! {
        r = post(&client, &args.plan, args.rate, mix, duration) => r?,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted");
            return Ok(ExitCode::SUCCESS);
        }
    };
    println!("{report}");
    Ok(ExitCode::SUCCESS)
}

/// Events per request at most: well under the server's body limit.
const MAX_BATCH: usize = 5_000;
const TICK: Duration = Duration::from_millis(200);

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Report {
    pub sent: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub elapsed: Duration,
    /// Time spent making events and bodies.
    pub generating: Duration,
    /// Time spent waiting for the server's answers.
    pub waiting: Duration,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let busy = (self.generating + self.waiting).as_secs_f64().max(1e-9);
        write!(
            f,
            "sent {} events in {:.1}s ({:.0}/s): {} accepted, {} rejected; \
             {:.0}% of busy time making events, {:.0}% waiting for the server",
            self.sent,
            secs,
            self.sent as f64 / secs,
            self.accepted,
            self.rejected,
            100.0 * self.generating.as_secs_f64() / busy,
            100.0 * self.waiting.as_secs_f64() / busy,
        )
    }
}

/// `N/s` or `N`: events per second.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches("/s").trim();
    match number.parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok(n),
        _ => Err(format!(
            "\"{text}\" is not a rate: write events per second, e.g. 200/s"
        )),
    }
}

/// Posts `rate` events a second of `mix` to `rollout` until `duration` has passed (or forever).
pub async fn post(
    client: &Client,
    rollout: &str,
    rate: f64,
    mix: Mix,
    duration: Option<Duration>,
) -> Result<Report, ClientError> {
    let path = format!("/api/rollouts/{}", segment(rollout));
    let snapshot: Snapshot = client.get_json(&path).await?;
    let plan = snapshot.plan;
    if !mix.scenario.applies(&plan) {
        eprintln!(
            "warning: {rollout} has no metric that {} changes; sending healthy traffic",
            mix.scenario
        );
    }
    eprintln!(
        "simulating {rollout} at {rate}/s on {}: {}: {}",
        client.base(),
        mix.scenario,
        mix.scenario.describe()
    );
    let targets = Targets::from_plan(&plan);
    let events_path = format!("{path}/events");
    let started = Instant::now();
    let mut report = Report::default();
    let mut owed = 0.0;
    let mut warned = false;
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = Instant::now();
    loop {
        ticker.tick().await;
        if duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        // Events due since the last batch: a slow server makes batches bigger, not fewer,
        // up to a second's worth; beyond that the server cannot keep up and the rest is
        // dropped (the report's rate shows it) rather than piling up without end.
        owed = (owed + rate * last.elapsed().as_secs_f64()).min(rate.max(1.0));
        last = Instant::now();
        if mix.scenario == Scenario::NoData {
            owed = 0.0;
            continue;
        }
        while owed >= 1.0 && duration.is_none_or(|d| started.elapsed() < d) {
            let n = (owed as usize).min(MAX_BATCH);
            owed -= n as f64;
            let t0 = Instant::now();
            let mix = Mix {
                warmth: crate::sources::simulate::warmth_after(started.elapsed()),
                ..mix
            };
            let body: String = {
                let mut rng = rand::rng();
                (0..n)
                    .map(|_| targets.event(&plan, mix, &mut rng).to_string() + "\n")
                    .collect()
            };
            let t1 = Instant::now();
            let answer = client.post_ndjson(&events_path, body).await;
            report.generating += t1 - t0;
            report.waiting += t1.elapsed();
            report.sent += n as u64;
            let answer = answer?;
            report.accepted += answer["accepted"].as_u64().unwrap_or(0);
            let rejected = answer["rejected"].as_array().map_or(0, Vec::len);
            report.rejected += rejected as u64;
            if rejected > 0 && !warned {
                warned = true;
                eprintln!(
                    "warning: the server rejected records: {}",
                    answer["rejected"][0]
                );
            }
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_with_or_without_per_second() {
        assert_eq!(parse_rate("200/s"), Ok(200.0));
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("-3/s").is_err());
        assert!(parse_rate("0").is_err());
    }
}

//! p95 over an hour, three ways, on one real PostgreSQL (started here, as the tests do):
//!
//! - cutover's way, as every replica answers it: from memory, where it keeps the buckets it
//!   imports from the others every second (one window query over the merged sketches);
//! - the same from cold: the minute and 10 s DDSketch buckets two replicas persisted, loaded
//!   and merged (`load_buckets` + `import_remote` + one window query), as after a restart;
//! - the runbook way (spiralogic computes it so): `percentile_disc(0.95) WITHIN GROUP (ORDER BY
//!   latency_ms)` over the raw events in the same database.
//!
//! For 1,000,000 events: both answers, their relative difference (the sketch's bound is 1%),
//! and the time of each, median of several runs.
//!
//! Run: `cargo bench -p cutover-server --bench postgres`

#[path = "../tests/support/pg.rs"]
mod pg;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cutover_core::query::{Aggregate, MetricKind, MetricSource};
use cutover_core::time::{HOUR, MINUTE};
use cutover_core::window::{MetricStore, Sample, SampleValue, StoreConfig};
use cutover_server::store::Storage;
use rand::SeedableRng;
use rand_distr::{Distribution, LogNormal};
use sqlx::Connection;

const EVENTS: usize = 1_000_000;

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn store(config: StoreConfig) -> MetricStore {
    MetricStore::new(
        config,
        [("latency_ms".to_string(), MetricKind::Distribution)],
    )
}

#[tokio::main]
async fn main() {
    let pg = pg::Postgres::start();
    let url = pg.database("bench").await;
    let storage = Storage::open_postgres(&url).await.unwrap();
    let now = cutover_server::clock::now();

    // One hour of events, log-normal latencies (median ~150 ms, long tail).
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let latency = LogNormal::new(5.0, 0.6).unwrap();
    let events: Vec<(i64, f64)> = (0..EVENTS)
        .map(|i| {
            let ts = now - HOUR + 1 + (i as i64 * HOUR / EVENTS as i64);
            let v: f64 = latency.sample(&mut rng);
            (ts, (v * 1000.0).round() / 1000.0)
        })
        .collect();

    // Raw events, the way a runbook keeps them.
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query(
        "CREATE TABLE raw_events (ts BIGINT NOT NULL, latency_ms DOUBLE PRECISION NOT NULL)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let mut copy = conn
        .copy_in_raw("COPY raw_events (ts, latency_ms) FROM STDIN WITH (FORMAT csv)")
        .await
        .unwrap();
    for chunk in events.chunks(50_000) {
        let mut text = String::new();
        for (ts, v) in chunk {
            text.push_str(&format!("{ts},{v}\n"));
        }
        copy.send(text.into_bytes()).await.unwrap();
    }
    copy.finish().await.unwrap();
    sqlx::query("ANALYZE raw_events")
        .execute(&mut conn)
        .await
        .unwrap();

    // The same events as two replicas' persisted sketches (half each).
    let config = StoreConfig {
        max_lateness: 2 * HOUR,
        ..StoreConfig::default()
    };
    for (replica, parity) in [("replica-a", 0), ("replica-b", 1)] {
        let mut s = store(config);
        for (i, (ts, v)) in events.iter().enumerate() {
            if i % 2 == parity {
                let sample = Sample {
                    metric: "latency_ms".into(),
                    labels: BTreeMap::new(),
                    ts: *ts,
                    value: SampleValue::Number(*v),
                };
                s.record(&sample, now).unwrap();
            }
        }
        s.compact(now);
        let buckets = s.export_buckets(now - HOUR - MINUTE, now);
        storage
            .save_buckets("bench", replica, &buckets, now)
            .await
            .unwrap();
    }

    let p95 = Aggregate::Quantile(0.95);
    let mut sketch_answer = 0.0;
    let mut sketch_runs = Vec::new();
    let mut rows = 0;
    for _ in 0..9 {
        let started = Instant::now();
        let buckets = storage.load_buckets("bench", now - HOUR).await.unwrap();
        rows = buckets.len();
        let mut merged = store(StoreConfig::default());
        for from in buckets {
            merged.import_remote(from);
        }
        sketch_answer = merged
            .aggregate("latency_ms", &BTreeMap::new(), &p95, HOUR, now)
            .unwrap();
        sketch_runs.push(started.elapsed());
    }

    // A replica as it runs: the others' buckets already imported by its pulls.
    let mut replica = store(StoreConfig::default());
    for from in storage.load_buckets("bench", now - HOUR).await.unwrap() {
        replica.import_remote(from);
    }
    let mut memory_answer = 0.0;
    let mut memory_runs = Vec::new();
    for _ in 0..101 {
        let started = Instant::now();
        memory_answer = replica
            .aggregate("latency_ms", &BTreeMap::new(), &p95, HOUR, now)
            .unwrap();
        memory_runs.push(started.elapsed());
    }
    assert_eq!(
        memory_answer, sketch_answer,
        "the same sketches, the same answer"
    );

    let mut sql_answer = 0.0;
    let mut sql_runs = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        sql_answer = sqlx::query_scalar::<_, f64>(
            "SELECT percentile_disc(0.95) WITHIN GROUP (ORDER BY latency_ms) FROM raw_events WHERE ts > $1",
        )
        .bind(now - HOUR)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        sql_runs.push(started.elapsed());
    }

    let (sketch, sql, memory) = (median(sketch_runs), median(sql_runs), median(memory_runs));
    println!("p95 over 1 h of {EVENTS} events, PostgreSQL 15 on loopback:");
    println!(
        "  merged persisted sketches ({rows} bucket rows, 2 replicas): {sketch_answer:.3} ms in {sketch:?}"
    );
    println!(
        "  merged sketches in a replica's memory:          {memory_answer:.3} ms in {memory:?}"
    );
    println!("  percentile_disc over the raw events:            {sql_answer:.3} ms in {sql:?}");
    println!(
        "  relative difference {:.3}%; sketches take {:.4}x the time of percentile_disc",
        (sketch_answer - sql_answer).abs() / sql_answer * 100.0,
        sketch.as_secs_f64() / sql.as_secs_f64()
    );
    println!(
        "ROW | p95 over 1 h, merged sketches in memory (replicas) | {:.1} us | percentile_disc {:.0} ms | {:.5}x | <= 0.001x",
        memory.as_secs_f64() * 1e6,
        sql.as_secs_f64() * 1e3,
        memory.as_secs_f64() / sql.as_secs_f64()
    );
}

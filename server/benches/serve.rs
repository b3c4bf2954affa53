//! Server benchmarks over real loopback sockets, with baselines measured in the same run:
//!
//! - ingestion: NDJSON batches POSTed to `/api/rollouts/{id}/events` (parse, validate, record
//!   into the sketches), in events/s, against `serde_json` merely parsing the same bytes;
//! - fan-out: the time for one action to reach 1,000 connected SSE viewers (p50/p99), against
//!   a loopback round trip (`GET /health`) measured the same way.
//!
//! - a kill under abuse: the time for an operator's kill to commit while 1,000 clients hold
//!   half-sent headers and 16 week-long CSV exports (16 viewers) are in flight, against the
//!   same kill on the idle server.
//!
//! - OTLP in: protobuf gauge points POSTed to `/v1/metrics` on one server core, against the
//!   JSON path carrying the same values on one core;
//! - OFREP: bulk evaluations per second against `GET .../flags`, and the time from a kill's
//!   request to a polling OFREP client seeing it, against the kill's own answer.
//!
//! - single sign-on: a whole sign-in through a loopback `oidc-provider` against a token
//!   sign-in, and a kill while 100 sign-ins are in flight against none.
//!
//! Run: `cargo bench -p cutover-server --bench serve`; only some parts:
//! `BENCH=ingest cargo bench -p cutover-server --bench serve` (any of `ingest`, `fan-out`,
//! `kill`, `otlp`, `ofrep`, `sso`, comma-separated).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cutover_core::role::Role;
use cutover_server::clock::now;
use cutover_server::sources::simulate::{Mix, Targets};
use cutover_server::store::Storage;
use cutover_server::{AppState, serve};
use futures::StreamExt;

#[path = "../tests/support/oidc.rs"]
mod oidc;

const PLAN: &str = include_str!("../../plans/spiralogic.toml");
const BATCH: usize = 1_000;
const VIEWERS: usize = 1_000;

struct Server {
    url: String,
    tokens: std::collections::BTreeMap<Role, String>,
    /// Sixteen more viewers, for readers that each get their own share of the limits.
    viewers: Vec<String>,
    _data: tempfile::TempDir,
}

async fn server(plans: Vec<cutover_core::plan::Plan>) -> Server {
    let data = tempfile::tempdir().unwrap();
    let storage = Storage::open_sqlite(data.path()).await.unwrap();
    let mut tokens = std::collections::BTreeMap::new();
    for role in [Role::Ingest, Role::Lead, Role::Viewer, Role::Flags] {
        let token = storage
            .upsert_user(&format!("bench-{role}"), role, now())
            .await
            .unwrap();
        tokens.insert(role, token);
    }
    let mut viewers = Vec::new();
    for i in 0..16 {
        let token = storage
            .upsert_user(&format!("bench-viewer-{i}"), Role::Viewer, now())
            .await
            .unwrap();
        viewers.push(token);
    }
    let state = AppState::load(storage, plans).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { serve(listener, state, std::future::pending()).await });
    Server {
        url,
        tokens,
        viewers,
        _data: data,
    }
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

async fn ingestion() {
    let plan = cutover_core::plan::parse("spiralogic.toml", PLAN).unwrap();
    let targets = Targets::from_plan(&plan);
    let mut rng = rand::rng();
    let bodies: Vec<String> = (0..50)
        .map(|_| {
            (0..BATCH)
                .map(|_| targets.event(&plan, Mix::default(), &mut rng).to_string() + "\n")
                .collect()
        })
        .collect();

    // Baselines: serde_json parsing the same lines, nothing else: into a `Value`, and into a
    // typed, borrowing struct (what parsing alone costs at best).
    let started = Instant::now();
    let mut parsed = 0usize;
    while started.elapsed() < Duration::from_secs(2) {
        for body in &bodies {
            for line in body.lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                parsed += usize::from(v.is_object());
            }
        }
    }
    let baseline = parsed as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut parsed = 0usize;
    while started.elapsed() < Duration::from_secs(2) {
        for body in &bodies {
            for line in body.lines() {
                let e: TypedEvent = serde_json::from_str(line).unwrap();
                parsed += usize::from(!e.values.is_empty() || !e.labels.is_empty());
            }
        }
    }
    let typed = parsed as f64 / started.elapsed().as_secs_f64();
    println!("serde_json alone: {baseline:.0} events/s into a Value, {typed:.0} events/s typed");

    // Where the time goes, in process on this thread: validating alone, then recording too.
    let rollout = cutover_server::runtime::state::Rollout::new(
        plan.clone(),
        cutover_core::rollout::RolloutState::new(),
    )
    .unwrap();
    for record in [false, true] {
        let started = Instant::now();
        let mut done = 0usize;
        while started.elapsed() < Duration::from_secs(2) {
            for body in &bodies {
                let at = now();
                let (records, mut report) =
                    cutover_server::sources::ingest::parse_batch(&rollout.plan, body, at).unwrap();
                if record {
                    rollout.record(records, at, &mut report);
                }
                done += report.accepted;
            }
        }
        let rate = done as f64 / started.elapsed().as_secs_f64();
        println!(
            "ingest in process, {}: {rate:>10.0} events/s = {:.2} x serde_json parsing alone",
            if record {
                "parse + record"
            } else {
                "parse only"
            },
            rate / baseline
        );
    }

    let bodies: Vec<bytes::Bytes> = bodies.into_iter().map(bytes::Bytes::from).collect();
    let s = server(vec![plan.clone()]).await;
    let url = format!("{}/api/rollouts/spiralogic/events", s.url);
    let token = s.tokens[&Role::Ingest].clone();
    for posters in [1usize, 4] {
        let rate = post(&url, &token, &bodies, posters).await;
        println!(
            "ingest, {posters} poster(s) in this process, {BATCH}-event NDJSON batches: {rate:>10.0} events/s \
             = {:.2} x serde_json parsing alone ({baseline:.0} events/s)",
            rate / baseline
        );
        if posters == 1 {
            println!(
                "ROW | ingest, one poster waiting on each answer (no goal: a client's round trip) | {:.0}k events/s | serde_json typed parse {:.0}k/s | {:.3}x | ",
                rate / 1e3,
                typed / 1e3,
                rate / typed
            );
        }
    }
    drop(s);

    // The measure: what one server core ingests. The server (its worker, its blocking
    // pool, SQLite's thread) on core 0, kept busy by four posters on core 1.
    let rate = tokio::task::block_in_place(|| one_core(plan, bodies));
    println!(
        "ROW | ingest, one server core, {BATCH}-event NDJSON batches | {:.0}k events/s | serde_json typed parse {:.0}k/s | {:.3}x | >= 0.5x",
        rate / 1e3,
        typed / 1e3,
        rate / typed
    );
}

/// Pins the calling thread to `core`; says so once if it cannot.
fn pin_to(core: usize) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        WARNED.call_once(|| println!("(cannot pin threads to cores: figures are unpinned)"));
    }
}

/// Events per second a server on core 0 ingests from four posters on core 1, over 3 s.
fn one_core(plan: cutover_core::plan::Plan, bodies: Vec<bytes::Bytes>) -> f64 {
    one_core_feed(plan, bodies, Feed::Json)
}

fn one_core_feed(plan: cutover_core::plan::Plan, bodies: Vec<bytes::Bytes>, feed: Feed) -> f64 {
    let (ready, started) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server_thread = std::thread::spawn(move || {
        pin_to(0);
        // Threads started from a pinned thread (SQLite's) inherit its core.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .on_thread_start(|| pin_to(0))
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let path = feed.path(&plan.id);
            let s = server(vec![plan]).await;
            ready
                .send((format!("{}{path}", s.url), s.tokens[&Role::Ingest].clone()))
                .unwrap();
            let _ = stopped.await;
        });
    });
    let (url, token) = started.recv().unwrap();
    let rate = std::thread::spawn(move || {
        pin_to(1);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(post_feed(&url, &token, &bodies, 4, feed))
    })
    .join()
    .unwrap();
    let _ = stop.send(());
    server_thread.join().unwrap();
    rate
}

/// What a poster sends: cutover's NDJSON events, or OTLP/HTTP protobuf metrics.
#[derive(Clone, Copy, PartialEq)]
enum Feed {
    Json,
    /// Each body holds `BATCH` points.
    Otlp,
}

impl Feed {
    fn path(self, rollout: &str) -> String {
        match self {
            Feed::Json => format!("/api/rollouts/{rollout}/events"),
            Feed::Otlp => "/v1/metrics".into(),
        }
    }
}

/// Events (or points) per second accepted from `posters` concurrent posters sending `bodies`
/// for 3 s.
async fn post(url: &str, token: &str, bodies: &[bytes::Bytes], posters: usize) -> f64 {
    post_feed(url, token, bodies, posters, Feed::Json).await
}

async fn post_feed(
    url: &str,
    token: &str,
    bodies: &[bytes::Bytes],
    posters: usize,
    feed: Feed,
) -> f64 {
    let http = no_redirects();
    let sent = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..posters)
        .map(|p| {
            let (http, url, token, sent) = (
                http.clone(),
                url.to_string(),
                token.to_string(),
                sent.clone(),
            );
            let bodies = bodies.to_vec();
            tokio::spawn(async move {
                let mut i = p;
                while started.elapsed() < Duration::from_secs(3) {
                    let mut request = http.post(&url).bearer_auth(&token);
                    if feed == Feed::Otlp {
                        request = request.header("content-type", "application/x-protobuf");
                    }
                    let response = request
                        .body(bodies[i % bodies.len()].clone())
                        .send()
                        .await
                        .unwrap();
                    assert!(response.status().is_success());
                    let taken = match feed {
                        Feed::Json => {
                            let report: serde_json::Value = response.json().await.unwrap();
                            report["accepted"].as_u64().unwrap() as usize
                        }
                        Feed::Otlp => {
                            use prost::Message;
                            let answer = opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse::decode(
                                response.bytes().await.unwrap(),
                            )
                            .unwrap();
                            let rejected = answer
                                .partial_success
                                .map_or(0, |p| p.rejected_data_points as usize);
                            assert_eq!(rejected, 0, "every point is mapped");
                            BATCH - rejected
                        }
                    };
                    sent.fetch_add(taken, Ordering::Relaxed);
                    i += posters;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    sent.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// An event as a typed, borrowing struct: the fastest serde_json reads these lines.
#[derive(serde::Deserialize)]
struct TypedEvent<'a> {
    #[serde(default)]
    #[allow(dead_code)]
    ts: Option<i64>,
    #[serde(borrow, default)]
    labels: std::collections::BTreeMap<&'a str, &'a str>,
    #[serde(borrow)]
    values: std::collections::BTreeMap<&'a str, TypedValue<'a>>,
}

/// A number, a flag or a category, read in one pass (no buffering, unlike `untagged`).
#[allow(dead_code)]
enum TypedValue<'a> {
    Number(f64),
    Flag(bool),
    Category(std::borrow::Cow<'a, str>),
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for TypedValue<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = TypedValue<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number, a bool or a string")
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(TypedValue::Number(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(TypedValue::Number(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(TypedValue::Number(v as f64))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(TypedValue::Flag(v))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(TypedValue::Category(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(TypedValue::Category(v.to_string().into()))
            }
        }
        d.deserialize_any(Visit(std::marker::PhantomData))
    }
}

fn open_plan() -> cutover_core::plan::Plan {
    cutover_core::plan::parse(
        "open.toml",
        "[rollout]\nid = \"open\"\ntitle = \"Open\"\n\n[[stage]]\nid = \"s0\"\ntraffic = 50\n\n\
         [[stage]]\nid = \"s1\"\ntraffic = 100\n\n[[metric]]\nid = \"latency_ms\"\nkind = \"distribution\"\n",
    )
    .unwrap()
}

async fn fan_out() {
    let s = server(vec![open_plan()]).await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(VIEWERS)
        .build()
        .unwrap();
    let lead = s.tokens[&Role::Lead].clone();
    let act = |path: &str| {
        http.post(format!("{}/api/rollouts/open/{path}", s.url))
            .bearer_auth(&lead)
            .send()
    };
    assert!(act("start").await.unwrap().status().is_success());

    // Baseline: a loopback round trip to the same server.
    let mut trips = Vec::new();
    for _ in 0..200 {
        let t0 = Instant::now();
        let r = http.get(format!("{}/health", s.url)).send().await.unwrap();
        r.bytes().await.unwrap();
        trips.push(t0.elapsed());
    }
    trips.sort();

    let ready = Arc::new(AtomicUsize::new(0));
    let (tx, _) = tokio::sync::broadcast::channel::<(u64, Instant)>(16);
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<Duration>();
    for _ in 0..VIEWERS {
        let url = format!("{}/api/rollouts/open/stream", s.url);
        let token = s.tokens[&Role::Viewer].clone();
        let (http, ready, seen_tx) = (http.clone(), ready.clone(), seen_tx.clone());
        let mut rounds = tx.subscribe();
        tokio::spawn(async move {
            let response = http.get(url).bearer_auth(token).send().await.unwrap();
            let mut body = response.bytes_stream();
            let mut buf = String::new();
            // The first state and tick: connected.
            while !buf.contains("event: tick") {
                buf.push_str(&String::from_utf8_lossy(
                    &body.next().await.unwrap().unwrap(),
                ));
            }
            buf.clear();
            ready.fetch_add(1, Ordering::SeqCst);
            while let Ok((version, sent_at)) = rounds.recv().await {
                let want = format!("\"version\":{version}");
                while !(buf.contains(&format!("{want},")) || buf.contains(&format!("{want}}}"))) {
                    match body.next().await {
                        Some(Ok(chunk)) => buf.push_str(&String::from_utf8_lossy(&chunk)),
                        _ => return,
                    }
                }
                let _ = seen_tx.send(sent_at.elapsed());
                buf.clear();
            }
        });
    }
    while ready.load(Ordering::SeqCst) < VIEWERS {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut latencies = Vec::new();
    for round in 0..10u64 {
        let version = 2 + round;
        let path = if round % 2 == 0 { "pause" } else { "resume" };
        let sent_at = Instant::now();
        let _ = tx.send((version, sent_at));
        assert!(act(path).await.unwrap().status().is_success());
        for _ in 0..VIEWERS {
            latencies.push(seen_rx.recv().await.unwrap());
        }
    }
    latencies.sort();
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    let (b50, b99) = (percentile(&trips, 0.5), percentile(&trips, 0.99));
    println!(
        "fan-out, one action to {VIEWERS} SSE viewers (10 rounds): p50 {p50:.2?} p99 {p99:.2?} \
         = {:.0} x / {:.0} x a loopback GET /health round trip (p50 {b50:.2?} p99 {b99:.2?})",
        p50.as_secs_f64() / b50.as_secs_f64(),
        p99.as_secs_f64() / b99.as_secs_f64(),
    );
}

/// Kills (each followed by a resume) timed one by one; the kill's round trip only.
async fn kills(http: &reqwest::Client, url: &str, token: &str, rounds: usize) -> Vec<Duration> {
    let mut took = Vec::new();
    for _ in 0..rounds {
        let t0 = Instant::now();
        let r = http
            .post(format!("{url}/api/rollouts/open/kill"))
            .bearer_auth(token)
            .json(&serde_json::json!({ "reason": "bench" }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        took.push(t0.elapsed());
        let r = http
            .post(format!("{url}/api/rollouts/open/resume"))
            .bearer_auth(token)
            .json(&serde_json::json!({ "reason": "bench over" }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }
    took.sort();
    took
}

async fn kill_under_abuse() {
    use tokio::io::AsyncWriteExt;
    // Exports read spiralogic (seven gates evaluated per row); kills act on an open plan.
    let plan = cutover_core::plan::parse("spiralogic.toml", PLAN).unwrap();
    let s = server(vec![plan, open_plan()]).await;
    let http = no_redirects();
    let lead = s.tokens[&Role::Lead].clone();
    let started = http
        .post(format!("{}/api/rollouts/open/start", s.url))
        .bearer_auth(&lead)
        .send()
        .await
        .unwrap();
    assert!(started.status().is_success());
    let idle = kills(&http, &s.url, &lead, 20).await;

    let addr = s.url.trim_start_matches("http://").to_string();
    let mut slow = Vec::new();
    for _ in 0..1_000 {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        stream
            .write_all(b"GET /api/rollouts HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(stream);
    }
    let storage_viewers = s.viewers.clone();
    let mut exports = Vec::new();
    for token in storage_viewers {
        let (http, url) = (http.clone(), s.url.clone());
        exports.push(tokio::spawn(async move {
            let r = http
                .get(format!(
                    "{url}/api/rollouts/spiralogic/export.csv?since=168h"
                ))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let _ = r.bytes().await;
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let busy = kills(&http, &s.url, &lead, 20).await;
    let in_flight = exports.iter().filter(|e| !e.is_finished()).count();
    for e in exports {
        let _ = e.await;
    }
    drop(slow);
    let (i50, i99) = (percentile(&idle, 0.5), percentile(&idle, 0.99));
    let (b50, b99) = (percentile(&busy, 0.5), percentile(&busy, 0.99));
    println!(
        "kill under abuse (1,000 slow-header clients, 16 week-long exports, {in_flight} still running at the end): \
         p50 {b50:.2?} p99 {b99:.2?} = {:.1} x / {:.1} x the same kill on the idle server (p50 {i50:.2?} p99 {i99:.2?})",
        b50.as_secs_f64() / i50.as_secs_f64(),
        b99.as_secs_f64() / i99.as_secs_f64(),
    );
}

/// The same latencies two ways: one JSON event per value, and one OTLP gauge point per value
/// (the OTLP form that carries every observation, as JSON events do), into a plan metric.
async fn otlp_against_json() {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
    };
    use prost::Message;
    let plan = cutover_core::plan::parse(
        "same.toml",
        "[rollout]\nid = \"same\"\ntitle = \"Same data\"\n\n[[stage]]\nid = \"s0\"\ntraffic = 50\n\n\
         [[metric]]\nid = \"latency_ms\"\nkind = \"distribution\"\nunit = \"ms\"\n\
         otel = { name = \"latency\", labels = { variant = \"variant\" } }\n",
    )
    .unwrap();
    let mut rng = rand::rng();
    let batches: Vec<Vec<(f64, &str)>> = (0..50)
        .map(|_| {
            (0..BATCH)
                .map(|i| {
                    let v: f64 = rand::Rng::random_range(&mut rng, 5.0..900.0);
                    (v.round(), if i % 10 == 0 { "canary" } else { "baseline" })
                })
                .collect()
        })
        .collect();
    let json: Vec<bytes::Bytes> = batches
        .iter()
        .map(|b| {
            b.iter()
                .map(|(v, variant)| {
                    format!("{{\"labels\":{{\"variant\":\"{variant}\"}},\"values\":{{\"latency_ms\":{v}}}}}\n")
                })
                .collect::<String>()
                .into()
        })
        .collect();
    let otlp: Vec<bytes::Bytes> = batches
        .iter()
        .map(|b| {
            let ns = (now() as u64) * 1_000_000;
            let points = b
                .iter()
                .map(|(v, variant)| NumberDataPoint {
                    attributes: vec![KeyValue {
                        key: "variant".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue((*variant).into())),
                        }),
                        ..Default::default()
                    }],
                    time_unix_nano: ns,
                    value: Some(number_data_point::Value::AsDouble(*v)),
                    ..Default::default()
                })
                .collect();
            ExportMetricsServiceRequest {
                resource_metrics: vec![ResourceMetrics {
                    scope_metrics: vec![ScopeMetrics {
                        metrics: vec![Metric {
                            name: "latency".into(),
                            unit: "ms".into(),
                            data: Some(metric::Data::Gauge(Gauge {
                                data_points: points,
                            })),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            }
            .encode_to_vec()
            .into()
        })
        .collect();
    let json_rate = tokio::task::block_in_place(|| one_core_feed(plan.clone(), json, Feed::Json));
    let otlp_rate = tokio::task::block_in_place(|| one_core_feed(plan, otlp, Feed::Otlp));
    println!(
        "ROW | OTLP/HTTP in, one server core, {BATCH}-point protobuf batches | {:.0}k points/s | the JSON path, same data, one core {:.0}k events/s | {:.3}x | ",
        otlp_rate / 1e3,
        json_rate / 1e3,
        otlp_rate / json_rate
    );
}

const FLAGS_PLAN: &str = "[rollout]\nid = \"search\"\ntitle = \"Search\"\n\n\
    [rollback]\nflags = { SEARCH_V2 = false, BATCH = 10 }\n\n\
    [[stage]]\nid = \"five\"\ntraffic = 5\nflags = { SEARCH_V2 = true, BATCH = 50 }\n\n\
    [[stage]]\nid = \"all\"\ntraffic = 100\nflags = { SEARCH_V2 = true, BATCH = 50 }\n\n\
    [[metric]]\nid = \"reads\"\nkind = \"counter\"\n";

/// Requests per second from 4 concurrent clients over 3 s.
async fn rate(send: impl Fn(usize) -> reqwest::RequestBuilder + Send + Sync + 'static) -> f64 {
    let send = Arc::new(send);
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..4)
        .map(|p| {
            let (send, done) = (send.clone(), done.clone());
            tokio::spawn(async move {
                let mut i = p;
                while started.elapsed() < Duration::from_secs(3) {
                    let r = send(i).send().await.unwrap();
                    assert!(r.status().is_success());
                    r.bytes().await.unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 4;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// OFREP: bulk evaluations per second against `GET .../flags` (the same state, no user), and
/// the time from a kill's request to an OFREP client polling as fast as it can seeing it,
/// against the kill's own answer.
async fn ofrep() {
    let plan = cutover_core::plan::parse("search.toml", FLAGS_PLAN).unwrap();
    let s = server(vec![plan]).await;
    let http = no_redirects();
    let lead = s.tokens[&Role::Lead].clone();
    let viewer = s.tokens[&Role::Viewer].clone();
    let act = |action: &str| {
        http.post(format!("{}/api/rollouts/search/{action}", s.url))
            .bearer_auth(&lead)
            .json(&serde_json::json!({ "reason": "bench" }))
    };
    assert!(act("start").send().await.unwrap().status().is_success());
    let (h, url, token) = (http.clone(), s.url.clone(), viewer.clone());
    let bulk = rate(move |i| {
        h.post(format!("{url}/api/rollouts/search/ofrep/v1/evaluate/flags"))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "context": { "targetingKey": format!("user-{i}") } }))
    })
    .await;
    let (h, url, token) = (http.clone(), s.url.clone(), viewer.clone());
    let flags = rate(move |_| {
        h.get(format!("{url}/api/rollouts/search/flags"))
            .bearer_auth(&token)
    })
    .await;
    println!(
        "ROW | OFREP bulk evaluations (all flags for one targeting key) | {bulk:.0}/s | GET .../flags {flags:.0}/s | {:.3}x | ",
        bulk / flags
    );

    let mut seen = Vec::new();
    let mut answered = Vec::new();
    for round in 0..20 {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (h, url, token, flag) = (http.clone(), s.url.clone(), viewer.clone(), stop.clone());
        let poller = tokio::spawn(async move {
            loop {
                let r: serde_json::Value = h
                    .post(format!("{url}/api/rollouts/search/ofrep/v1/evaluate/flags/SEARCH_V2"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({ "context": { "targetingKey": format!("user-{round}") } }))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if r["reason"] == "DISABLED" {
                    return Instant::now();
                }
                if flag.load(Ordering::Relaxed) {
                    panic!("the kill was never seen");
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let sent = Instant::now();
        assert!(act("kill").send().await.unwrap().status().is_success());
        answered.push(sent.elapsed());
        let at = tokio::time::timeout(Duration::from_secs(5), poller)
            .await
            .expect("seen within 5 s")
            .unwrap();
        stop.store(true, Ordering::Relaxed);
        seen.push(at.duration_since(sent));
        assert!(act("resume").send().await.unwrap().status().is_success());
    }
    seen.sort();
    answered.sort();
    let (p50, a50) = (percentile(&seen, 0.5), percentile(&answered, 0.5));
    println!(
        "ROW | kill → flag seen by an OFREP client polling, p50 of 20 (p99 {:.1} ms) | {:.1} ms | the kill's own answer p50 {:.1} ms | {:.3}x | ",
        percentile(&seen, 0.99).as_secs_f64() * 1e3,
        p50.as_secs_f64() * 1e3,
        a50.as_secs_f64() * 1e3,
        p50.as_secs_f64() / a50.as_secs_f64()
    );
}

/// Single sign-on against `oidc-provider` on loopback: a whole sign-in's round trip (start,
/// the provider's login, the callback with its code exchange and token check) against a token
/// sign-in, and a kill's answer while 100 sign-ins are in flight against none.
async fn sso() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let people: serde_json::Map<String, serde_json::Value> = (0..100)
        .map(|i| {
            (
                format!("p{i}"),
                oidc::user(
                    &format!("Person {i}"),
                    &format!("p{i}@example.test"),
                    &["leads"],
                ),
            )
        })
        .collect();
    let provider = oidc::Provider::start(
        &format!("{url}/auth/sso/callback"),
        serde_json::Value::Object(people),
    )
    .await;
    let data = tempfile::tempdir().unwrap();
    let storage = Storage::open_sqlite(data.path()).await.unwrap();
    let lead = storage
        .upsert_user("bench-lead", Role::Lead, now())
        .await
        .unwrap();
    let mut state = AppState::load(storage, vec![open_plan()]).await.unwrap();
    state.sso = Some(Arc::new(
        cutover_server::sso::Sso::new(cutover_server::sso::Settings {
            issuer: provider.issuer.clone(),
            name: "Bench".into(),
            client_id: oidc::CLIENT_ID.into(),
            client_secret: oidc::CLIENT_SECRET.into(),
            scopes: ["openid", "email", "profile", "groups"]
                .map(String::from)
                .to_vec(),
            groups_claim: "groups".into(),
            email_domains: Vec::new(),
            session_lifetime: cutover_core::time::HOUR,
            contact: None,
            default_roles: Vec::new(),
            groups: [("leads".to_string(), vec![Role::Lead])]
                .into_iter()
                .collect(),
            redirect_url: None,
            jwks_refresh: Duration::from_secs(10),
        })
        .unwrap(),
    ));
    tokio::spawn(async move { serve(listener, state, std::future::pending()).await });
    let http = no_redirects();

    let mut sso_trips = Vec::new();
    for i in 0..40 {
        let browser = oidc::browser();
        let t0 = Instant::now();
        let r = oidc::sign_in(&browser, &url, "/", &format!("p{}", i % 100)).await;
        assert_eq!(r.status(), 200);
        sso_trips.push(t0.elapsed());
    }
    let mut token_trips = Vec::new();
    for _ in 0..40 {
        let t0 = Instant::now();
        let r = http
            .post(format!("{url}/api/session"))
            .json(&serde_json::json!({ "token": lead }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        token_trips.push(t0.elapsed());
    }
    sso_trips.sort();
    token_trips.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "ROW | single sign-on round trip through a loopback oidc-provider, median (p95 {:.1} ms) | {:.1} ms | a token sign-in median {:.2} ms | {:.1}x | ",
        ms(percentile(&sso_trips, 0.95)),
        ms(percentile(&sso_trips, 0.5)),
        ms(percentile(&token_trips, 0.5)),
        ms(percentile(&sso_trips, 0.5)) / ms(percentile(&token_trips, 0.5))
    );

    let r = http
        .post(format!("{url}/api/rollouts/open/start"))
        .bearer_auth(&lead)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let idle = kills(&http, &url, &lead, 20).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let crowd: Vec<_> = (0..100)
        .map(|i| {
            let (url, stop) = (url.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let browser = oidc::browser();
                    let _ = oidc::sign_in(&browser, &url, "/", &format!("p{i}")).await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let busy = kills(&http, &url, &lead, 20).await;
    stop.store(true, Ordering::Relaxed);
    for c in crowd {
        let _ = c.await;
    }
    let (i50, b50) = (percentile(&idle, 0.5), percentile(&busy, 0.5));
    println!(
        "ROW | a kill's answer while 100 single sign-ons are in flight, p50 (p99 {:.1} ms) | {:.1} ms | the same kill with none, p50 {:.1} ms | {:.2}x | ",
        ms(percentile(&busy, 0.99)),
        ms(b50),
        ms(i50),
        ms(b50) / ms(i50)
    );
    drop(provider);
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing special either way.
    let only = std::env::var("BENCH").unwrap_or_default();
    let run = |part: &str| only.is_empty() || only.split(',').any(|p| p.trim() == part);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        if run("ingest") {
            ingestion().await;
        }
        if run("fan-out") {
            fan_out().await;
        }
        if run("kill") {
            kill_under_abuse().await;
        }
        if run("otlp") {
            otlp_against_json().await;
        }
        if run("ofrep") {
            ofrep().await;
        }
        if run("sso") {
            sso().await;
        }
        if run("confirm") {
            confirm().await;
        }
    });
}

/// Kill to the fleet's confirmation: 12 instances poll `/flags` every 50 ms with the ETag
/// they hold, as services do; each of 10 kills is timed from its commit to the first and the
/// last instance holding it (the server's own record). Then the same with a channel whose
/// receiver takes 5 s per message: the kill's delivery to the fleet does not wait on it.
async fn confirm() {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let quiet = confirm_rounds(FLAGS_PLAN.to_string()).await;
    let slow = slow_receiver().await;
    let with_slow = FLAGS_PLAN.to_string()
        + &format!(
            "\n[[notify]]\nid = \"slow\"\nkind = \"webhook\"\nurl = \"{slow}/hook\"\nallow_private = true\n"
        );
    let loaded = confirm_rounds(with_slow).await;
    println!(
        "ROW | kill to the last of 12 instances holding it, p50 (first {:.0} ms; polling every 50 ms) | {:.0} ms | the poll interval, 50 ms | {:.2}x | ",
        ms(quiet.0),
        ms(quiet.1),
        ms(quiet.1) / 50.0
    );
    println!(
        "ROW | the same with a channel whose receiver takes 5 s a message, p50 | {:.0} ms | with no channel, {:.0} ms | {:.2}x | ",
        ms(loaded.1),
        ms(quiet.1),
        ms(loaded.1) / ms(quiet.1)
    );
}

/// A receiver that answers every message after 5 s.
async fn slow_receiver() -> String {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "ok"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// The median of kill -> first and kill -> last confirmation over 10 kills.
async fn confirm_rounds(plan: String) -> (Duration, Duration) {
    let plan = cutover_core::plan::parse("search.toml", &plan).unwrap();
    let s = server(vec![plan]).await;
    let http = no_redirects();
    let lead = s.tokens[&Role::Lead].clone();
    let flags = s.tokens[&Role::Flags].clone();
    let act = |action: &str| {
        http.post(format!("{}/api/rollouts/search/{action}", s.url))
            .bearer_auth(&lead)
            .json(&serde_json::json!({ "reason": "bench" }))
            .send()
    };
    assert!(act("start").await.unwrap().status().is_success());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fleet: Vec<_> = (0..12)
        .map(|i| {
            let (h, url, token, stop) = (http.clone(), s.url.clone(), flags.clone(), stop.clone());
            tokio::spawn(async move {
                let mut etag: Option<String> = None;
                while !stop.load(Ordering::Relaxed) {
                    let mut r = h
                        .get(format!("{url}/api/rollouts/search/flags"))
                        .bearer_auth(&token)
                        .header("x-cutover-instance", format!("web-{i}"));
                    if let Some(e) = &etag {
                        r = r.header("if-none-match", e);
                    }
                    if let Ok(resp) = r.send().await {
                        etag = resp
                            .headers()
                            .get("etag")
                            .and_then(|e| e.to_str().ok())
                            .map(str::to_string);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        })
        .collect();
    let viewer = s.tokens[&Role::Viewer].clone();
    let confirmation = || async {
        let snapshot: serde_json::Value = http
            .get(format!("{}/api/rollouts/search", s.url))
            .bearer_auth(&viewer)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        snapshot["confirmation"].clone()
    };
    let (mut first, mut last) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(act("kill").await.unwrap().status().is_success());
        let deadline = Instant::now() + Duration::from_secs(10);
        let c = loop {
            let c = confirmation().await;
            if c["killed"] == true && c["applied"] == 12 {
                break c;
            }
            assert!(Instant::now() < deadline, "never confirmed: {c}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let since = c["since"].as_i64().unwrap();
        let after = |k: &str| Duration::from_millis((c[k].as_i64().unwrap() - since).max(0) as u64);
        first.push(after("first"));
        last.push(after("last"));
        assert!(act("resume").await.unwrap().status().is_success());
    }
    stop.store(true, Ordering::Relaxed);
    for f in fleet {
        let _ = f.await;
    }
    first.sort();
    last.sort();
    (percentile(&first, 0.5), percentile(&last, 0.5))
}

/// The benches' client follows no redirect, as cutover's own calls out do.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client with no TLS configuration builds")
}

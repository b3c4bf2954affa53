//! OpenTelemetry in, through the real server, with payloads made by the OpenTelemetry Rust
//! SDK's own OTLP/HTTP exporter (protobuf and JSON, gzip) and by `opentelemetry-proto`'s
//! message types: histograms at several scales land on the p95 the same latencies give as
//! JSON events, a cumulative counter survives a sender's restart, unknown metrics are a
//! partial success with a reason, and malformed or oversized bodies are refused whole.

use crate::support::TestApp;

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use cutover_core::otel::exp_bucket_error;
use cutover_core::plan::Plan;
use cutover_core::role::Role;
use opentelemetry::KeyValue;
use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_otlp::{
    Compression, LogExporter, MetricExporter, Protocol, RetryPolicy, WithExportConfig,
    WithHttpConfig,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue as ProtoKeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::{
    Aggregation, Instrument, PeriodicReader, SdkMeterProvider, Stream, Temporality,
};
use prost::Message;
use serde_json::Value;

fn plan() -> Plan {
    let text = r#"
[rollout]
id = "otel"
title = "OpenTelemetry in"

[[stage]]
id = "canary"
traffic = 10

[[stage]]
id = "ga"
traffic = 100

[[metric]]
id = "json_ms"
kind = "distribution"
unit = "ms"

[[metric]]
id = "s3_ms"
kind = "distribution"
unit = "ms"
otel = { name = "latency.s3", labels = { variant = "app.variant" }, match = { "service.name" = "checkout" } }

[[metric]]
id = "s5_ms"
kind = "distribution"
unit = "ms"
otel = { name = "latency.s5", labels = { variant = "app.variant" }, match = { "service.name" = "checkout" } }

[[metric]]
id = "s8_ms"
kind = "distribution"
unit = "ms"
otel = { name = "latency.s8", labels = { variant = "app.variant" }, match = { "service.name" = "checkout" } }

[[metric]]
id = "errors"
kind = "ratio"
otel = { name = "latency.s8", true_when = "error.type", match = { "service.name" = "checkout" } }

[[metric]]
id = "requests"
kind = "counter"
otel = { name = "app.requests", match = { "service.name" = "checkout" } }

[[metric]]
id = "mode"
kind = "category"
values = ["full", "lite"]
otel = { flag = "search-mode" }

[[metric]]
id = "depth"
kind = "gauge"
otel = { name = "queue.depth" }

[[gate]]
id = "json"
expr = "p95(json_ms) <= 1000s"
window = "5m"
hold = "5m"

[[gate]]
id = "s3"
expr = "p95(s3_ms{variant=\"canary\"}) <= 1000s"
window = "5m"
hold = "5m"

[[gate]]
id = "s5"
expr = "p95(s5_ms{variant=\"canary\"}) <= 1000s"
window = "5m"
hold = "5m"

[[gate]]
id = "s8"
expr = "p95(s8_ms{variant=\"canary\"}) <= 1000s"
window = "5m"
hold = "5m"

[[gate]]
id = "errors"
expr = "rate(errors) <= 1"
window = "5m"
hold = "5m"

[[gate]]
id = "requests"
expr = "sum(requests) >= 0"
window = "5m"
hold = "5m"

[[gate]]
id = "mode"
expr = "share(mode, \"lite\") <= 1"
window = "5m"
hold = "5m"

[[gate]]
id = "depth"
expr = "last(depth) >= 0"
window = "5m"
hold = "5m"
"#;
    cutover_core::plan::parse("otel.toml", text).unwrap()
}

/// The value a gate's left side has now, once the evaluator has one.
async fn gate_value(app: &TestApp, id: &str, what: &str, done: impl Fn(f64) -> bool) -> f64 {
    app.wait_for("/api/rollouts/otel", what, |s| {
        s["gates"].as_array()?.iter().find(|g| g["id"] == id)?["comparisons"][0]["left_value"]
            .as_f64()
            .filter(|v| done(*v))
    })
    .await
}

/// Log-normal latencies around 40 ms, from a fixed seed.
fn latencies(n: usize) -> Vec<f64> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u1, u2) = (next().max(1e-12), next());
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            (40f64.ln() + 0.7 * z).exp()
        })
        .collect()
}

fn metric_exporter(app: &TestApp, protocol: Protocol, temporality: Temporality) -> MetricExporter {
    MetricExporter::builder()
        .with_http()
        .with_endpoint(format!("{}/v1/metrics", app.url))
        .with_protocol(protocol)
        .with_timeout(Duration::from_secs(10))
        .with_headers(HashMap::from([(
            "authorization".to_string(),
            format!("Bearer {}", app.token(Role::Ingest)),
        )]))
        .with_compression(Compression::Gzip)
        .with_retry_policy(RetryPolicy::disabled())
        .with_temporality(temporality)
        .build()
        .expect("an exporter")
}

/// A meter provider exporting only when flushed, with exponential histograms for
/// `latency.s{N}` at max scale N (sizes large enough that the scale is kept).
fn meters(exporter: MetricExporter, service: &'static str) -> SdkMeterProvider {
    let reader = PeriodicReader::builder(exporter)
        .with_interval(Duration::from_secs(3600))
        .build();
    let exponential = |i: &Instrument| {
        let (max_scale, max_size) = match i.name() {
            "latency.s3" => (3, 160),
            "latency.s5" => (5, 640),
            "latency.s8" => (8, 4096),
            _ => return None,
        };
        Some(
            Stream::builder()
                .with_aggregation(Aggregation::Base2ExponentialHistogram {
                    max_size,
                    max_scale,
                    record_min_max: true,
                })
                .build()
                .unwrap(),
        )
    };
    SdkMeterProvider::builder()
        .with_resource(Resource::builder().with_service_name(service).build())
        .with_reader(reader)
        .with_view(exponential)
        .build()
}

async fn flush(provider: &SdkMeterProvider) {
    let p = provider.clone();
    tokio::task::spawn_blocking(move || p.force_flush())
        .await
        .unwrap()
        .expect("the export is accepted");
}

async fn push_json(app: &TestApp, values: &[f64]) {
    let body: String = values
        .iter()
        .map(|v| format!("{{\"values\":{{\"json_ms\":{v}}}}}\n"))
        .collect();
    let r = app
        .http
        .post(format!("{}/api/rollouts/otel/events", app.url))
        .bearer_auth(app.token(Role::Ingest))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_histograms_at_several_scales_give_the_p95_json_events_give() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![plan()]).await;
    let values = latencies(3000);
    push_json(&app, &values).await;

    let provider = meters(
        metric_exporter(&app, Protocol::HttpBinary, Temporality::Delta),
        "checkout",
    );
    let meter = provider.meter("test");
    let canary = [KeyValue::new("app.variant", "canary")];
    for name in ["latency.s3", "latency.s5", "latency.s8"] {
        // Seconds on the wire, ms in the plan: the unit is converted.
        let h = meter.f64_histogram(name).with_unit("s").build();
        for v in &values {
            h.record(v / 1000.0, &canary);
        }
    }
    flush(&provider).await;
    // Another service's metric of the same name is not this rollout's.
    let other = meters(
        metric_exporter(&app, Protocol::HttpBinary, Temporality::Delta),
        "billing",
    );
    let h = other
        .meter("test")
        .f64_histogram("latency.s8")
        .with_unit("s")
        .build();
    for _ in 0..3000 {
        h.record(60.0, &canary);
    }
    flush(&other).await;

    let json = gate_value(&app, "json", "the JSON p95", |_| true).await;
    for (gate, scale) in [("s3", 3), ("s5", 5), ("s8", 8)] {
        let otlp = gate_value(&app, gate, "the OTLP p95", |_| true).await;
        // Each side within the sketch's 1%, the OTLP side also within its buckets' error.
        let bound = exp_bucket_error(scale) + 0.021;
        let error = (otlp - json).abs() / json;
        println!("scale {scale}: OTLP p95 {otlp:.3} ms, JSON p95 {json:.3} ms, {error:.4} apart");
        assert!(
            error <= bound,
            "scale {scale}: OTLP p95 {otlp} against JSON p95 {json} ({error:.4} > {bound:.4})"
        );
    }
    provider.shutdown().ok();
    other.shutdown().ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cumulative_counter_across_a_restart_counts_what_happened_and_no_spike() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![plan()]).await;
    let first = meters(
        metric_exporter(&app, Protocol::HttpJson, Temporality::Cumulative),
        "checkout",
    );
    let requests = first.meter("test").u64_counter("app.requests").build();
    let hist = first
        .meter("test")
        .f64_histogram("latency.s8")
        .with_unit("ms")
        .build();
    requests.add(5, &[]);
    for _ in 0..30 {
        hist.record(20.0, &[]);
    }
    for _ in 0..10 {
        hist.record(900.0, &[KeyValue::new("error.type", "500")]);
    }
    flush(&first).await;
    requests.add(3, &[]);
    // Cumulative: the second export repeats the first's 40 histogram samples.
    flush(&first).await;
    gate_value(&app, "requests", "8 requests", |v| v == 8.0).await;
    let rate = gate_value(&app, "errors", "the error rate", |_| true).await;
    assert!((rate - 0.25).abs() < 1e-9, "10 of 40 were errors: {rate}");
    first.shutdown().ok();

    // The sender restarts: a new start time, its counter from zero.
    let second = meters(
        metric_exporter(&app, Protocol::HttpJson, Temporality::Cumulative),
        "checkout",
    );
    second
        .meter("test")
        .u64_counter("app.requests")
        .build()
        .add(2, &[]);
    flush(&second).await;
    let total = gate_value(&app, "requests", "10 requests", |v| v != 8.0).await;
    assert_eq!(total, 10.0, "5 + 3 before the restart, 2 after");
    second.shutdown().ok();
}

fn text(key: &str, v: &str) -> ProtoKeyValue {
    ProtoKeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn gauge(name: &str, values: &[f64]) -> Metric {
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    Metric {
        name: name.into(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: values
                .iter()
                .map(|v| NumberDataPoint {
                    time_unix_nano: now_ns,
                    value: Some(number_data_point::Value::AsDouble(*v)),
                    ..Default::default()
                })
                .collect(),
        })),
        ..Default::default()
    }
}

fn request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(ProtoResource {
                attributes: vec![text("service.name", "checkout")],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

async fn post(app: &TestApp, body: Vec<u8>, content_type: &str, gzip: bool) -> reqwest::Response {
    let mut r = app
        .http
        .post(format!("{}/v1/metrics", app.url))
        .bearer_auth(app.token(Role::Ingest))
        .header("content-type", content_type);
    if gzip {
        r = r.header("content-encoding", "gzip");
    }
    r.body(body).send().await.unwrap()
}

fn gzipped(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn unknown_metrics_are_a_partial_success_and_bad_bodies_are_refused_whole() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![plan()]).await;

    let batch = request(vec![
        gauge("queue.depth", &[7.0]),
        gauge("process.cpu.time", &[1.0, 2.0, 3.0]),
    ]);
    let r = post(&app, batch.encode_to_vec(), "application/x-protobuf", false).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-protobuf");
    let answer = ExportMetricsServiceResponse::decode(r.bytes().await.unwrap()).unwrap();
    let partial = answer.partial_success.expect("a partial success");
    assert_eq!(partial.rejected_data_points, 3);
    assert!(
        partial.error_message.contains("process.cpu.time")
            && partial.error_message.contains("no plan maps it"),
        "{}",
        partial.error_message
    );
    assert_eq!(gate_value(&app, "depth", "the gauge", |_| true).await, 7.0);

    // The same request as OTLP/JSON, gzip: the answer is JSON too.
    let r = post(
        &app,
        gzipped(&serde_json::to_vec(&request(vec![gauge("queue.depth", &[9.0])])).unwrap()),
        "application/json",
        true,
    )
    .await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert!(
        answer.get("partialSuccess").is_none_or(Value::is_null),
        "{answer}"
    );
    gate_value(&app, "depth", "the newer gauge", |v| v == 9.0).await;

    // Malformed protobuf: 400, and nothing recorded before it is lost.
    let mut broken = request(vec![gauge("queue.depth", &[1.0])]).encode_to_vec();
    broken.truncate(broken.len() - 3);
    let r = post(&app, broken, "application/x-protobuf", false).await;
    assert_eq!(r.status(), 400, "{}", r.text().await.unwrap());
    let r = post(&app, b"{not json".to_vec(), "application/json", false).await;
    assert_eq!(r.status(), 400);
    let r = post(&app, b"garbage".to_vec(), "application/x-protobuf", true).await;
    assert_eq!(r.status(), 400, "a body that says gzip and is not");
    let r = post(&app, b"x".to_vec(), "text/plain", false).await;
    assert_eq!(r.status(), 400, "an encoding OTLP does not define");
    // Oversized, as sent and as inflated (a small body that inflates to 40 MB).
    let r = post(
        &app,
        vec![0u8; 5 * 1024 * 1024],
        "application/x-protobuf",
        false,
    )
    .await;
    assert_eq!(r.status(), 413);
    let bomb = gzipped(&vec![0u8; 40 * 1024 * 1024]);
    assert!(bomb.len() < 1024 * 1024);
    let r = post(&app, bomb, "application/x-protobuf", true).await;
    assert_eq!(r.status(), 413);
    // Nothing good was lost: the gauge still reads what the good batch said.
    assert_eq!(gate_value(&app, "depth", "the gauge", |_| true).await, 9.0);

    // Only the ingest token may push.
    let r = app
        .http
        .post(format!("{}/v1/metrics", app.url))
        .bearer_auth(app.token(Role::Viewer))
        .header("content-type", "application/x-protobuf")
        .body(request(vec![]).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feature_flag_evaluation_logs_feed_a_category_metric() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![plan()]).await;
    let exporter = LogExporter::builder()
        .with_http()
        .with_endpoint(format!("{}/v1/logs", app.url))
        .with_protocol(Protocol::HttpBinary)
        .with_headers(HashMap::from([(
            "authorization".to_string(),
            format!("Bearer {}", app.token(Role::Ingest)),
        )]))
        .build()
        .unwrap();
    let provider = SdkLoggerProvider::builder()
        .with_resource(Resource::builder().with_service_name("search").build())
        .with_batch_exporter(exporter)
        .build();
    let logger = provider.logger("flags");
    for i in 0..40 {
        let mut record = logger.create_log_record();
        record.set_event_name("feature_flag.evaluation");
        record.set_severity_number(Severity::Info);
        record.add_attribute("feature_flag.key", "search-mode");
        record.add_attribute(
            "feature_flag.result.variant",
            if i % 4 == 0 { "lite" } else { "full" },
        );
        logger.emit(record);
    }
    let p = provider.clone();
    tokio::task::spawn_blocking(move || p.force_flush())
        .await
        .unwrap()
        .unwrap();
    let share = gate_value(&app, "mode", "the lite share", |_| true).await;
    assert!((share - 0.25).abs() < 1e-9, "{share}");
    provider.shutdown().ok();
}

/// The README's Collector snippet, read from the README, is what the server takes: the
/// `otlphttp` exporter appends `/v1/metrics` to `endpoint`, sends the header as written (the
/// token from the environment), gzip, protobuf. The SDK's exporter is configured from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_collector_snippet_is_what_the_server_takes() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let yaml = readme
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a yaml block in the README");
    let setting = |key: &str| -> String {
        yaml.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{key}:")))
            .unwrap_or_else(|| panic!("{key} in the snippet"))
            .trim()
            .trim_matches('"')
            .to_string()
    };
    assert!(yaml.contains("otlphttp/cutover"), "{yaml}");
    assert_eq!(setting("compression"), "gzip");
    assert_eq!(setting("encoding"), "proto");
    let endpoint = setting("endpoint");
    assert!(endpoint.starts_with("http"), "{endpoint}");
    let authorization = setting("authorization");
    assert_eq!(authorization, "Bearer ${env:CUTOVER_INGEST_TOKEN}");

    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start(data.path(), vec![plan()]).await;
    let header = authorization.replace("${env:CUTOVER_INGEST_TOKEN}", app.token(Role::Ingest));
    // The snippet's host is the reader's; the path is what otlphttp adds to it.
    let path = url::Url::parse(&endpoint)
        .unwrap()
        .path()
        .trim_end_matches('/')
        .to_string();
    let exporter = MetricExporter::builder()
        .with_http()
        .with_endpoint(format!("{}{path}/v1/metrics", app.url))
        .with_protocol(Protocol::HttpBinary)
        .with_headers(HashMap::from([("authorization".to_string(), header)]))
        .with_compression(Compression::Gzip)
        .with_retry_policy(RetryPolicy::disabled())
        .build()
        .unwrap();
    let provider = meters(exporter, "anything");
    provider
        .meter("test")
        .f64_gauge("queue.depth")
        .build()
        .record(4.0, &[]);
    flush(&provider).await;
    assert_eq!(gate_value(&app, "depth", "the gauge", |_| true).await, 4.0);
    provider.shutdown().ok();
}

/// Past two batches being decoded at once and the queue's wait (none here), an exporter is
/// told to come back (429 with `Retry-After`, which OTLP exporters honour).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_large_batches_is_told_to_retry_after() {
    let data = tempfile::tempdir().unwrap();
    let options = cutover_server::ServeOptions {
        otlp_queue: Duration::ZERO,
        ..Default::default()
    };
    let app = TestApp::start_with(data.path(), vec![plan()], options).await;
    // About 3.5 MB of gauge points: each takes a while to decode.
    let big = request(vec![gauge("queue.depth", &vec![5.0; 120_000])]).encode_to_vec();
    assert!(big.len() < 4 * 1024 * 1024, "{}", big.len());
    let mut saw_429 = false;
    for _ in 0..3 {
        let answers = futures::future::join_all(
            (0..8).map(|_| post(&app, big.clone(), "application/x-protobuf", false)),
        )
        .await;
        for r in answers {
            match r.status().as_u16() {
                200 => {}
                429 => {
                    assert_eq!(r.headers()["retry-after"], "1");
                    saw_429 = true;
                }
                other => panic!("{other}: {}", r.text().await.unwrap()),
            }
        }
        if saw_429 {
            break;
        }
    }
    assert!(
        saw_429,
        "eight 3.5 MB batches at once, three times, and never a 429"
    );
}

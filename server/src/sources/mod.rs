//! Where metrics come from: events pushed over HTTP (`ingest`), OpenTelemetry (`otlp`),
//! Prometheus, and the demo's simulated traffic.

pub mod ingest;
pub mod otlp;
pub mod prometheus;
pub mod simulate;

//! Where metrics come from: events pushed over HTTP (`ingest`), Prometheus, and the demo's
//! simulated traffic.

pub mod ingest;
pub mod prometheus;
pub mod simulate;

//! Every server integration test in one binary: one link instead of twelve, and the support
//! modules (a real server, PostgreSQL, Prometheus) compiled once.

#[path = "../../../testdata/plans.rs"]
mod fixtures;
#[path = "../support/oidc.rs"]
mod oidc;
#[path = "../support/pg.rs"]
mod pg;
#[path = "../support/prom.rs"]
mod prom;
#[path = "../support/app.rs"]
mod support;

mod abuse;
mod actions;
mod actuators;
mod adjust;
mod api;
mod audit_chain;
mod auto_progress;
mod cli;
mod clock;
mod compression;
mod confirm;
mod crowd;
mod decisions;
mod gates;
mod notify;
mod ofrep;
mod otlp;
mod plan_check;
mod prometheus;
mod readme_plan;
mod receivers;
mod replicas;
mod rollback;
mod sessions;
mod shaped;
mod sso;
mod sso_forged;
mod storage;
mod users;

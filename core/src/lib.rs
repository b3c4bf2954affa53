//! cutover's pure domain: the types every other crate speaks (they are also the wire types),
//! and the logic that decides what a rollout may do. No IO, no async, no clock reads: time is
//! always an argument, so the same code runs natively in the server and as wasm in the app.

pub mod actuate;
pub mod audit;
pub mod chain;
pub mod chart;
pub mod confirm;
pub mod delta;
pub mod describe;
pub mod evidence;
pub mod expr;
pub mod flag;
pub mod gates;
pub mod notify;
pub mod otel;
pub mod plan;
pub mod query;
pub mod role;
pub mod rollout;
pub mod route;
pub mod schedule;
pub mod sequential;
pub mod series;
pub mod session;
pub mod snapshot;
pub mod targeting;
pub mod template;
pub mod time;
pub mod unit;
pub mod window;

/// Plan texts the tests of every crate share.
#[cfg(test)]
#[path = "../../testdata/plans.rs"]
mod fixtures;

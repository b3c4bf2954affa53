//! Every end-to-end browser test in one binary: one link instead of five, and the harness
//! (`cutover_e2e`) and its dependencies linked once. Each module starts its own `cutover demo`
//! and headless Chromium.

#[path = "../../../testdata/plans.rs"]
mod fixtures;
#[path = "../../../server/tests/support/oidc.rs"]
mod oidc;

mod a11y;
mod actions;
mod browser;
mod charts;
mod clock;
mod compare;
mod guidance;
mod in_flight;
mod live;
mod phone;
mod rollback;
mod severity;
mod sso;
mod triggers;
mod tuning;
mod wall;

//! Reusable view pieces, one component per file.

pub mod series_chart;
pub mod sign_in;

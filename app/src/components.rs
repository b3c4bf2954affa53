//! Reusable view pieces, one component per file.

pub mod action_bar;
pub mod actuators;
pub mod after_kill;
pub mod channels;
pub mod chart;
pub mod charts;
pub mod checklists;
pub mod failing_now;
pub mod flags_in_force;
pub mod freshness;
pub mod gate_board;
pub mod guidance;
pub mod open_alerts;
pub mod reason_dialog;
pub mod record;
pub mod share;
pub mod stage_bar;
pub mod timeline;

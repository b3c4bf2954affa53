//! The loaded rollouts and what runs beside the handlers: the state of each rollout
//! (`state`), the commit of an action (`commit`), the evaluator, chart frames, live fan-out,
//! replicas on one database, the janitor, the sign-ins of open streams checked again, and
//! the notify channels' outboxes stored.

pub mod actuators;
pub mod charts;
pub mod commit;
pub mod evaluator;
pub mod fleet;
pub mod janitor;
pub mod live;
pub mod outboxes;
pub mod prometheus;
pub mod replicas;
pub mod state;
pub mod viewers;

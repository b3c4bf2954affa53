//! The pages the router shows, one per file.

pub mod overview;
pub mod rollout;
pub mod sign_in;

//! HTTP: the router and layers, one handler file per resource, who is calling, the one error
//! shape, and the accept loop. Handlers parse, authorise and call the runtime; they decide
//! nothing themselves.

pub mod actions;
pub mod admission;
pub mod assets;
pub mod auth;
pub mod error;
pub mod export;
pub mod guesses;
pub mod heavy;
pub mod instances;
pub mod observe;
pub mod ofrep;
pub mod otlp;
pub mod peer;
pub mod receivers;
pub mod rollouts;
pub mod router;
pub mod serve;
pub mod sessions;
pub mod sso;

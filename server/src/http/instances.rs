//! What a flag reader says of itself: its name (`X-Cutover-Instance`) and the state version
//! it holds (`X-Cutover-Applied`, or the `/flags` ETag it sends back), for the fleet's
//! confirmation of what is published (`runtime::fleet`).

use axum::http::HeaderMap;
use cutover_core::confirm::{MAX_INSTANCE, valid_instance};

use crate::http::error::ApiError;

pub const INSTANCE: &str = "x-cutover-instance";
pub const APPLIED: &str = "x-cutover-applied";

/// A reader that named itself, and the version it says it applied, if it said.
pub struct Reader {
    pub instance: String,
    pub applied: Option<u64>,
}

/// The reader's own words, or a 400 that says what is wrong with them. `None` for a reader
/// that does not name itself (it is served, and not counted).
pub fn reader(headers: &HeaderMap) -> Result<Option<Reader>, ApiError> {
    let Some(name) = headers.get(INSTANCE) else {
        return Ok(None);
    };
    let instance = name
        .to_str()
        .ok()
        .filter(|n| valid_instance(n))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "{INSTANCE}: 1 to {MAX_INSTANCE} letters, digits and .-_:/@"
            ))
        })?
        .to_string();
    let applied = match headers.get(APPLIED) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::BadRequest(format!("{APPLIED}: a state version (a whole number)"))
                })?,
        ),
    };
    Ok(Some(Reader { instance, applied }))
}

/// The version a `/flags` ETag names (`"42"`), if `If-None-Match` carries one.
pub fn etag_version(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get("if-none-match")?.to_str().ok()?;
    value
        .split(',')
        .filter_map(|t| {
            t.trim()
                .trim_start_matches("W/")
                .trim_matches('"')
                .parse::<u64>()
                .ok()
        })
        .max()
}

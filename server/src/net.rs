//! What outbound HTTP calls (webhooks, Prometheus, the CLI's client) share: a leaf.

/// The innermost error: "Connection refused" rather than "error sending request for url
/// (...)", which repeats the whole URL with its query.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

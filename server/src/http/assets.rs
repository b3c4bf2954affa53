//! The built app (trunk's `dist/`), embedded in the binary so `cutover serve` needs no files
//! beside it. Unknown non-API paths get `index.html`: the app routes on the client.

use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::http::error::ApiError;

#[derive(rust_embed::RustEmbed)]
#[folder = "../dist"]
struct Dist;

pub async fn serve(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let (path, file) = match Dist::get(path) {
        Some(file) if !path.is_empty() => (path, file),
        _ => match Dist::get("index.html") {
            Some(file) => ("index.html", file),
            None => {
                return (
                    StatusCode::NOT_FOUND,
                    "the app was not built into this binary",
                )
                    .into_response();
            }
        },
    };
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    // Hashed asset names can be cached for ever; index.html must always be revalidated.
    let cache = if path == "index.html" {
        "no-cache"
    } else {
        "public, max-age=31536000, immutable"
    };
    (
        [
            (header::CONTENT_TYPE, mime.as_ref().to_string()),
            (header::CACHE_CONTROL, cache.to_string()),
        ],
        file.data,
    )
        .into_response()
}

/// The Content-Security-Policy: only our own origin, wasm compilation allowed, and the one
/// inline module script trunk writes into index.html allowed by its hash (not 'unsafe-inline').
pub fn content_security_policy() -> &'static str {
    static CSP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CSP.get_or_init(|| {
        let index = Dist::get("index.html")
            .map(|f| f.data.into_owned())
            .unwrap_or_default();
        let index = String::from_utf8_lossy(&index);
        let hashes: Vec<String> = inline_scripts(&index)
            .map(|body| {
                use base64::Engine;
                use sha2::Digest;
                let digest = sha2::Sha256::digest(body.as_bytes());
                format!(
                    "'sha256-{}'",
                    base64::engine::general_purpose::STANDARD.encode(digest)
                )
            })
            .collect();
        format!(
            "default-src 'self'; script-src 'self' 'wasm-unsafe-eval' {}; style-src 'self'; \
             img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
             form-action 'self'; frame-ancestors 'none'",
            hashes.join(" ")
        )
    })
}

/// Bodies of `<script ...>...</script>` elements that have no `src`.
fn inline_scripts(html: &str) -> impl Iterator<Item = &str> {
    html.split("<script").skip(1).filter_map(|rest| {
        let (open, after) = rest.split_once('>')?;
        let (body, _) = after.split_once("</script>")?;
        (!open.contains("src=")).then_some(body)
    })
}

pub async fn api_not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no API endpoint {}", uri.path()))
}

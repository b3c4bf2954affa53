//! The built app (trunk's `dist/`), embedded in the binary so `cutover serve` needs no files
//! beside it. Unknown non-API paths get `index.html`: the app routes on the client. Each file
//! is also embedded brotli- and gzip-compressed (made by build.rs), sent as the client accepts.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::http::error::ApiError;

#[derive(rust_embed::RustEmbed)]
#[folder = "../dist"]
struct Dist;

/// A file of `dist/` as build.rs compressed it.
struct Precompressed {
    path: &'static str,
    sha256: [u8; 32],
    br: Option<&'static [u8]>,
    gzip: Option<&'static [u8]>,
}

include!(concat!(env!("OUT_DIR"), "/precompressed.rs"));

/// A content coding the server has made ahead of time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Coding {
    Br,
    Gzip,
}

impl Coding {
    fn name(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Gzip => "gzip",
        }
    }
}

pub async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path().trim_start_matches('/');
    let found = Dist::get(path).filter(|_| !path.is_empty());
    // Only reading is served: a POST to an unknown path (an exporter pointed at the wrong
    // URL) must fail, not "succeed" with a web page.
    if method != Method::GET && method != Method::HEAD {
        return if found.is_some() {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                [(header::ALLOW, "GET, HEAD")],
                format!("{method} is not allowed on /{path}"),
            )
                .into_response()
        } else {
            ApiError::NotFound(format!("no endpoint {method} {}", uri.path())).into_response()
        };
    }
    // A missing asset (a stale `/app-abc.js` after a deploy) is a 404, not the page: only a
    // navigation path (no file extension a browser would fetch as a resource) gets the app.
    if found.is_none() && is_asset_path(path) {
        return ApiError::NotFound(format!("no file {}", uri.path())).into_response();
    }
    let (path, file) = match found {
        Some(file) => (path, file),
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
    let mut response = match compressed(path, &file.metadata.sha256_hash(), &headers) {
        Some((coding, body)) => (
            [(header::CONTENT_ENCODING, coding.name())],
            Body::from(body),
        )
            .into_response(),
        None => Body::from(file.data).into_response(),
    };
    let response_headers = response.headers_mut();
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(mime.as_ref()).expect("a MIME type is a header value"),
    );
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    // Caches must key on what the client accepts, whichever form this one got.
    response_headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    response
}

/// The precompressed form of `path` the client accepts best, if any was made for these bytes.
fn compressed(
    path: &str,
    sha256: &[u8; 32],
    headers: &HeaderMap,
) -> Option<(Coding, &'static [u8])> {
    let entry = PRECOMPRESSED
        .iter()
        .find(|entry| entry.path == path && &entry.sha256 == sha256)?;
    let available = [(Coding::Br, entry.br), (Coding::Gzip, entry.gzip)]
        .into_iter()
        .filter_map(|(coding, body)| Some((coding, body?)));
    let coding = preferred(headers, available.clone().map(|(coding, _)| coding))?;
    available.into_iter().find(|&(c, _)| c == coding)
}

/// The coding among `available` the client weighs highest; among equals, the first.
fn preferred(headers: &HeaderMap, available: impl Iterator<Item = Coding>) -> Option<Coding> {
    let accepted = accepted_codings(headers);
    let mut offers = available
        .filter_map(|coding| Some((coding, quality(&accepted, coding)?)))
        .collect::<Vec<_>>();
    // A stable sort: brotli, offered first, wins a tie.
    offers.sort_by(|a, b| b.1.total_cmp(&a.1));
    offers.first().map(|&(coding, _)| coding)
}

/// `Accept-Encoding` as (coding, q) pairs, lower-cased; malformed weights count as 1.
fn accepted_codings(headers: &HeaderMap) -> Vec<(String, f32)> {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|item| {
            let mut parts = item.split(';');
            let coding = parts.next()?.trim().to_ascii_lowercase();
            if coding.is_empty() {
                return None;
            }
            let q = parts
                .filter_map(|param| {
                    let (key, value) = param.split_once('=')?;
                    key.trim()
                        .eq_ignore_ascii_case("q")
                        .then(|| value.trim().parse::<f32>().ok())
                        .flatten()
                })
                .next()
                .unwrap_or(1.0);
            Some((coding, q))
        })
        .collect()
}

/// The weight the client gave `coding` (named, or else through `*`); `None` if not acceptable.
fn quality(accepted: &[(String, f32)], coding: Coding) -> Option<f32> {
    let named = accepted.iter().find(|(name, _)| name == coding.name());
    let any = accepted.iter().find(|(name, _)| name == "*");
    let q = named.or(any)?.1;
    (q > 0.0).then_some(q)
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

/// Whether `path` names a file a browser fetches as a resource (`app-abc.js`, `x.wasm`,
/// `favicon.ico`) rather than a page of the app (`r/lens-v1`, `r/v1.2/wall`).
fn is_asset_path(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or_default();
    last.contains('.') && mime_guess::from_path(last).first().is_some()
}

pub async fn api_not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no API endpoint {}", uri.path()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).unwrap(),
        );
        headers
    }

    fn pick(value: &str) -> Option<Coding> {
        preferred(&accept(value), [Coding::Br, Coding::Gzip].into_iter())
    }

    #[test]
    fn resources_are_told_from_pages() {
        for asset in [
            "app-abc.js",
            "x/app_bg.wasm",
            "favicon.ico",
            "style.css",
            "a.json",
        ] {
            assert!(is_asset_path(asset), "{asset}");
        }
        for page in ["", "r/lens-v1", "r/lens-v1/wall", "r/v1.2", "v1/metrics"] {
            assert!(!is_asset_path(page), "{page}");
        }
    }

    #[test]
    fn brotli_before_gzip_before_identity_unless_weighted_otherwise() {
        assert_eq!(pick("gzip, deflate, br, zstd"), Some(Coding::Br));
        assert_eq!(pick("gzip"), Some(Coding::Gzip));
        assert_eq!(pick("GZIP;q=0.5"), Some(Coding::Gzip));
        assert_eq!(pick("identity"), None);
        assert_eq!(pick(""), None);
        assert_eq!(pick("br;q=0, gzip"), Some(Coding::Gzip));
        assert_eq!(pick("br;q=0.4, gzip;q=0.8"), Some(Coding::Gzip));
        assert_eq!(pick("*"), Some(Coding::Br));
        assert_eq!(pick("*;q=0, gzip"), Some(Coding::Gzip));
        assert_eq!(pick("br;q=nonsense"), Some(Coding::Br));
    }

    /// Every file of the app has a variant made from exactly the bytes embedded.
    #[test]
    fn the_embedded_app_has_its_precompressed_forms() {
        for path in Dist::iter() {
            let file = Dist::get(&path).unwrap();
            let entry = PRECOMPRESSED
                .iter()
                .find(|entry| entry.path == path)
                .unwrap_or_else(|| panic!("{path} was not precompressed"));
            assert_eq!(entry.sha256, file.metadata.sha256_hash(), "{path}");
            if path.ends_with(".wasm") || path.ends_with(".js") {
                let br = entry.br.unwrap();
                let mut plain = Vec::new();
                brotli::BrotliDecompress(&mut &br[..], &mut plain).unwrap();
                assert_eq!(plain, file.data.as_ref(), "{path}");
                assert!(entry.gzip.unwrap().len() < file.data.len(), "{path}");
            }
        }
    }
}

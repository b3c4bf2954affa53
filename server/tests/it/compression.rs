//! What goes over the wire compressed: the embedded app precompressed (brotli, else gzip, else
//! as is, as the client accepts), JSON answers compressed on the fly, the live stream never.

use std::io::Read;

use crate::support;

use cutover_core::role::Role;
use serde_json::Value;
use support::{EventStream, TestApp, spiralogic};

async fn start() -> (TestApp, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    (TestApp::start(data.path(), vec![spiralogic()]).await, data)
}

/// GETs `path` as a viewer, sending `Accept-Encoding: accept` when given.
async fn get(app: &TestApp, path: &str, accept: Option<&str>) -> reqwest::Response {
    let mut request = app
        .http
        .get(format!("{}{path}", app.url))
        .bearer_auth(app.token(Role::Viewer));
    if let Some(accept) = accept {
        request = request.header("accept-encoding", accept);
    }
    request.send().await.unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

fn decode(encoding: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut plain = Vec::new();
    match encoding {
        None => plain.extend_from_slice(body),
        Some("br") => brotli::Decompressor::new(body, 4096)
            .read_to_end(&mut plain)
            .map(drop)
            .unwrap(),
        Some("gzip") => flate2::read::GzDecoder::new(body)
            .read_to_end(&mut plain)
            .map(drop)
            .unwrap(),
        Some(other) => panic!("unexpected content-encoding {other}"),
    }
    plain
}

/// The app's hashed file whose name ends with `suffix`, as index.html names it.
async fn asset(app: &TestApp, suffix: &str) -> String {
    let index = get(app, "/", None).await.text().await.unwrap();
    index
        .split(['\'', '"'])
        .find(|part| part.starts_with('/') && part.ends_with(suffix))
        .unwrap_or_else(|| panic!("no {suffix} in index.html: {index}"))
        .to_string()
}

#[tokio::test]
async fn the_app_is_sent_brotli_or_gzip_as_accepted_and_the_same_bytes_either_way() {
    let (app, _data) = start().await;
    for path in [asset(&app, "_bg.wasm").await, asset(&app, ".js").await] {
        let plain = get(&app, &path, None).await;
        assert_eq!(plain.status(), 200);
        assert_eq!(header(&plain, "content-encoding"), None, "{path}");
        let original = plain.bytes().await.unwrap();

        for (accept, expected) in [
            (Some("gzip, deflate, br, zstd"), Some("br")),
            (Some("br"), Some("br")),
            (Some("gzip"), Some("gzip")),
            (Some("br;q=0, gzip"), Some("gzip")),
            (Some("identity"), None),
            (Some("zstd"), None),
            (None, None),
        ] {
            let response = get(&app, &path, accept).await;
            assert_eq!(response.status(), 200);
            let encoding = header(&response, "content-encoding").map(str::to_string);
            assert_eq!(encoding.as_deref(), expected, "{path} for {accept:?}");
            assert_eq!(header(&response, "vary"), Some("accept-encoding"));
            assert_eq!(
                header(&response, "cache-control"),
                Some("public, max-age=31536000, immutable")
            );
            let content_type = if path.ends_with(".wasm") {
                "application/wasm"
            } else {
                "text/javascript"
            };
            assert_eq!(header(&response, "content-type"), Some(content_type));
            assert!(header(&response, "content-security-policy").is_some());
            assert_eq!(header(&response, "x-content-type-options"), Some("nosniff"));
            let body = response.bytes().await.unwrap();
            if expected.is_some() {
                assert!(
                    body.len() * 2 < original.len(),
                    "{path} {expected:?}: {} of {} bytes",
                    body.len(),
                    original.len()
                );
            }
            assert!(
                decode(encoding.as_deref(), &body) == original,
                "{path} for {accept:?} decodes to other bytes"
            );
        }
    }
    // index.html too, still revalidated every time.
    let index = get(&app, "/", Some("br")).await;
    assert_eq!(header(&index, "content-encoding"), Some("br"));
    assert_eq!(header(&index, "cache-control"), Some("no-cache"));
    let html = decode(Some("br"), &index.bytes().await.unwrap());
    assert!(String::from_utf8(html).unwrap().contains("_bg.wasm"));
}

#[tokio::test]
async fn json_answers_are_compressed_when_asked_and_errors_and_no_store_still_hold() {
    let (app, _data) = start().await;
    let path = "/api/rollouts/spiralogic";
    let plain = get(&app, path, None).await;
    assert_eq!(header(&plain, "content-encoding"), None);
    let expected: Value = plain.json().await.unwrap();
    for coding in ["br", "gzip"] {
        let response = get(&app, path, Some(coding)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "content-encoding"), Some(coding));
        assert_eq!(header(&response, "cache-control"), Some("no-store"));
        assert!(
            header(&response, "vary")
                .unwrap()
                .contains("accept-encoding")
        );
        assert_eq!(header(&response, "content-type"), Some("application/json"));
        let body = response.bytes().await.unwrap();
        let decoded: Value = serde_json::from_slice(&decode(Some(coding), &body)).unwrap();
        // The snapshot carries live numbers; its plan and shape do not change.
        assert_eq!(decoded["plan"], expected["plan"], "{coding}");
    }
    // Small answers and errors go as they are, in the usual shape, never cached.
    for (path, role, status) in [
        ("/api/rollouts/nope", Some(Role::Viewer), 404),
        ("/api/rollouts/spiralogic", None, 401),
        ("/api/nothing-here", Some(Role::Viewer), 404),
    ] {
        let mut request = app
            .http
            .get(format!("{}{path}", app.url))
            .header("accept-encoding", "br, gzip");
        if let Some(role) = role {
            request = request.bearer_auth(app.token(role));
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{path}");
        assert_eq!(header(&response, "content-encoding"), None, "{path}");
        assert_eq!(header(&response, "cache-control"), Some("no-store"));
        let body: Value = response.json().await.unwrap();
        assert!(body["error"]["code"].is_string(), "{path}: {body}");
    }
}

#[tokio::test]
async fn the_live_stream_is_never_compressed_and_flushes_each_event() {
    let (app, _data) = start().await;
    let response = get(&app, "/api/rollouts/spiralogic/stream", Some("br, gzip")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), Some("text/event-stream"));
    assert_eq!(header(&response, "content-encoding"), None);
    // Plain text arriving event by event (EventStream gives up after 5 s of silence).
    let mut stream = EventStream::new(response);
    assert_eq!(stream.next().await.0, "state");
    assert_eq!(
        stream.next_named("tick").await["frame"]["rollout"],
        "spiralogic"
    );
}

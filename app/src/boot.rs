//! What the page's boot script (`app/index.html`) started while the app downloaded: the
//! answer to who is signed in, and the stream of the rollout the page will show. Each is
//! taken once; anything later asks the server itself.

use js_sys::Reflect;
use wasm_bindgen::{JsCast, JsValue};

use crate::live::source::EventStream;

/// Removes `field` from `window.cutoverBoot` and returns it, if it was there.
fn take(field: &str) -> Option<JsValue> {
    let window = web_sys::window()?;
    let boot = Reflect::get(&window, &"cutoverBoot".into()).ok()?;
    if !boot.is_object() {
        return None;
    }
    let value = Reflect::get(&boot, &field.into()).ok()?;
    Reflect::delete_property(boot.unchecked_ref::<js_sys::Object>(), &field.into()).ok()?;
    (!value.is_undefined() && !value.is_null()).then_some(value)
}

/// The boot script's `GET /api/session`: a promise of its response.
pub fn session() -> Option<js_sys::Promise> {
    take("session")?.dyn_into().ok()
}

/// The boot script's stream, if it is `rollout`'s and the browser has not given up on it;
/// closed otherwise.
pub fn stream(rollout: &str) -> Option<EventStream> {
    let stream = take("stream")?;
    let source: web_sys::EventSource = Reflect::get(&stream, &"source".into())
        .ok()?
        .dyn_into()
        .ok()?;
    let theirs = Reflect::get(&stream, &"rollout".into()).ok()?.as_string();
    if theirs.as_deref() != Some(rollout) || source.ready_state() == web_sys::EventSource::CLOSED {
        source.close();
        return None;
    }
    Some(EventStream::adopt(source, &stream))
}

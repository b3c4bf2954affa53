//! What the page's boot script (`app/index.html`) started while the app downloaded: the
//! answer to who is signed in, and the stream of the rollout the page will show. Each is
//! taken once; anything later asks the server itself.

use js_sys::Reflect;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::EventSource;

/// The stream the boot script opened: its source, and the object through which it hands
/// events on (`{queue, to}`: the events held so far, and where to send the next).
pub struct EarlyStream {
    pub source: EventSource,
    pub handoff: JsValue,
}

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
/// closed otherwise. The script hands over a promise of it (the stream is opened once the
/// session is known), so a fast app waits for that stream rather than racing it with its own.
pub async fn stream(rollout: &str) -> Option<EarlyStream> {
    let promised: js_sys::Promise = take("stream")?.dyn_into().ok()?;
    let handoff = wasm_bindgen_futures::JsFuture::from(promised).await.ok()?;
    if handoff.is_undefined() || handoff.is_null() {
        return None;
    }
    let source: EventSource = Reflect::get(&handoff, &"source".into())
        .ok()?
        .dyn_into()
        .ok()?;
    let theirs = Reflect::get(&handoff, &"rollout".into()).ok()?.as_string();
    if theirs.as_deref() != Some(rollout) || source.ready_state() == EventSource::CLOSED {
        source.close();
        return None;
    }
    Some(EarlyStream { source, handoff })
}

//! Telling people: each rollout's `[[notify]]` channels get the events `core::notify` derives
//! from committed actions and from evaluations. Each channel has a queue and a worker that
//! delivers the oldest message, retrying with backoff until the receiver takes it, then the
//! next: a receiver that fails three times and recovers gets the message once. Queuing never
//! waits: an action commits at once with every channel down. A key per episode is queued once
//! per channel, so a replayed event is not sent twice.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cutover_core::notify::{ChannelStatus, Event, routes, text};
use cutover_core::plan::{Channel, ChannelKind, ChannelUrl, Plan};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::actuate::{BACKOFF, Backoff};
use crate::clock::{lock, now};

/// Messages a channel holds before it drops its oldest (a receiver down for hours must not
/// grow memory without bound); the drop is counted in its status.
pub const QUEUE: usize = 256;
/// Episode keys remembered per channel, so a replayed event is not queued again.
const KEYS: usize = 1_024;
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A message waiting for its channel.
#[derive(Debug, Clone)]
struct Message {
    event: Event,
    /// The rollout page, when the server knows its public address.
    page: Option<String>,
    /// The channel this one escalates, when it does.
    escalated_from: Option<String>,
}

#[derive(Default)]
struct Queue {
    messages: VecDeque<Message>,
    keys: VecDeque<String>,
}

/// One channel of a rollout: its queue, its worker's wake-up, and how delivery goes.
pub struct Handle {
    spec: Channel,
    queue: Mutex<Queue>,
    wake: tokio::sync::Notify,
    status: Mutex<ChannelStatus>,
}

impl Handle {
    fn new(spec: Channel) -> Handle {
        let status = ChannelStatus {
            id: spec.id.clone(),
            kind: spec.kind.as_str().to_string(),
            ..ChannelStatus::default()
        };
        Handle {
            spec,
            queue: Mutex::new(Queue::default()),
            wake: tokio::sync::Notify::new(),
            status: Mutex::new(status),
        }
    }

    /// Queues `message` unless its key was queued before; returns at once.
    fn push(&self, message: Message) {
        let key = match &message.escalated_from {
            Some(from) => format!("escalated-from-{from}:{}", message.event.key),
            None => message.event.key.clone(),
        };
        let mut queue = lock(&self.queue);
        if queue.keys.contains(&key) {
            return;
        }
        if queue.keys.len() == KEYS {
            queue.keys.pop_front();
        }
        queue.keys.push_back(key);
        if queue.messages.len() == QUEUE {
            queue.messages.pop_front();
            lock(&self.status).dropped += 1;
        }
        queue.messages.push_back(message);
        lock(&self.status).pending = queue.messages.len();
        drop(queue);
        self.wake.notify_one();
    }

    pub fn status(&self) -> ChannelStatus {
        lock(&self.status).clone()
    }
}

/// A rollout's channels.
pub struct Channels {
    handles: Vec<Arc<Handle>>,
}

impl Channels {
    pub fn new(plan: &Plan) -> Channels {
        Channels {
            handles: plan
                .channels
                .iter()
                .map(|c| Arc::new(Handle::new(c.clone())))
                .collect(),
        }
    }

    /// Queues `event` on every channel that takes it; returns at once.
    pub fn tell(&self, plan: &Plan, event: &Event, page: Option<String>) {
        for i in routes(plan, event) {
            if let Some(handle) = self.handles.get(i) {
                handle.push(Message {
                    event: event.clone(),
                    page: page.clone(),
                    escalated_from: None,
                });
            }
        }
    }

    /// Sends `event` on to the channel after `from`, marked as an escalation.
    pub fn escalate(&self, from: usize, event: &Event, page: Option<String>) {
        let (Some(source), Some(next)) = (self.handles.get(from), self.handles.get(from + 1))
        else {
            return;
        };
        next.push(Message {
            event: event.clone(),
            page,
            escalated_from: Some(source.spec.id.clone()),
        });
    }

    pub fn statuses(&self) -> Vec<ChannelStatus> {
        self.handles.iter().map(|h| h.status()).collect()
    }

    /// Starts one delivery worker per channel; they end with the runtime.
    pub fn spawn_workers(&self, rollout: &str) {
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .build()
            .unwrap_or_default();
        for handle in &self.handles {
            tokio::spawn(deliver_forever(
                handle.clone(),
                http.clone(),
                rollout.to_string(),
                BACKOFF,
            ));
        }
    }
}

/// Delivers the oldest message until the receiver takes it, then the next; waits when the
/// queue is empty.
async fn deliver_forever(
    handle: Arc<Handle>,
    http: reqwest::Client,
    rollout: String,
    backoff: Backoff,
) {
    loop {
        let next = lock(&handle.queue).messages.front().cloned();
        let Some(message) = next else {
            handle.wake.notified().await;
            continue;
        };
        let mut delay = backoff.first;
        let mut attempts: u32 = 0;
        loop {
            attempts = attempts.saturating_add(1);
            match deliver(&http, &handle.spec, &message).await {
                Ok(()) => {
                    let mut queue = lock(&handle.queue);
                    queue.messages.pop_front();
                    let mut status = lock(&handle.status);
                    status.delivered += 1;
                    status.pending = queue.messages.len();
                    status.failing = false;
                    status.attempts = 0;
                    status.error = None;
                    status.last_delivered_at = Some(now());
                    break;
                }
                Err(Failure {
                    message: e,
                    refused: true,
                }) => {
                    // The receiver says this message will never do (400, 404, 413...): retrying
                    // it would hold every newer one, a kill included, behind it forever.
                    tracing::warn!(%rollout, channel = %handle.spec.id, attempts, "notification refused, dropped: {e}");
                    let mut queue = lock(&handle.queue);
                    queue.messages.pop_front();
                    let mut status = lock(&handle.status);
                    status.dropped += 1;
                    status.pending = queue.messages.len();
                    status.failing = false;
                    status.attempts = attempts;
                    status.error = Some(format!("dropped a message the channel refused: {e}"));
                    break;
                }
                Err(Failure { message: e, .. }) => {
                    tracing::warn!(%rollout, channel = %handle.spec.id, attempts, "notification not delivered: {e}");
                    let mut status = lock(&handle.status);
                    status.failing = true;
                    status.attempts = attempts;
                    status.error = Some(e);
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(backoff.longest);
        }
    }
}

/// The body a channel of `kind` is sent.
fn body(kind: ChannelKind, message: &Message) -> serde_json::Value {
    let event = &message.event;
    match kind {
        ChannelKind::Slack => {
            let mut words = text(event, message.page.as_deref());
            if let Some(from) = &message.escalated_from {
                words = format!("ESCALATED (unacknowledged on {from}): {words}");
            }
            serde_json::json!({ "text": words })
        }
        ChannelKind::Webhook => serde_json::json!({
            "rollout": event.rollout,
            "event": event.kind,
            "severity": event.severity,
            "title": event.title,
            "lines": event.lines,
            "key": event.key,
            "at": event.at,
            "page": message.page,
            "escalated_from": message.escalated_from,
        }),
    }
}

/// `sha256=<hex>`: the HMAC-SHA256 of `body` under `key`, as `X-Cutover-Signature` carries it.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Why a delivery failed, and whether the receiver refused the message itself (a client
/// error other than a timeout or rate limit), so that retrying it is pointless.
struct Failure {
    message: String,
    refused: bool,
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure {
            message,
            refused: false,
        }
    }
}

async fn deliver(http: &reqwest::Client, spec: &Channel, message: &Message) -> Result<(), Failure> {
    let url = match &spec.url {
        ChannelUrl::Url(url) => url.clone(),
        ChannelUrl::Env(name) => {
            std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))?
        }
    };
    let body = serde_json::to_vec(&body(spec.kind, message)).map_err(|e| e.to_string())?;
    let mut request = http
        .post(&url)
        .header("content-type", "application/json")
        .header("x-cutover-event", message.event.kind.as_str());
    if let Some(name) = &spec.secret_env {
        let key =
            std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))?;
        request = request.header("x-cutover-signature", signature(key.as_bytes(), &body));
    }
    let response = request
        .body(body)
        .send()
        .await
        .map_err(|e| format!("cannot reach the channel: {}", crate::net::root_cause(&e)))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        let text = response.text().await.unwrap_or_default();
        let text: String = text.chars().take(200).collect();
        let refused = status.is_client_error() && !matches!(status.as_u16(), 408 | 425 | 429);
        Err(Failure {
            message: format!("the channel answered {status}: {}", text.trim()),
            refused,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_rfc_4231s_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}

//! Telling people: each rollout's `[[notify]]` channels get the events `core::notify` derives
//! from committed actions and from evaluations. Each channel has an outbox
//! (`core::notify::outbox`: what goes first, what is let go when full, a key per episode
//! queued once) and a worker that delivers from it, retrying with backoff until the receiver
//! takes a message: a receiver that fails three times and recovers gets the message once.
//! Queuing never waits: an action commits at once with every channel down. The outboxes are
//! stored (`runtime::outboxes`), so a restart neither loses a kill told while a channel was
//! down nor escalates every open alert again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cutover_core::notify::outbox::{Outbox, Queued};
use cutover_core::notify::{ChannelStatus, Event, routes, text};
use cutover_core::plan::{Channel, ChannelKind, ChannelUrl, Plan};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::actuate::{BACKOFF, Backoff};
use crate::clock::{lock, now};

pub use cutover_core::notify::outbox::CAP as QUEUE;
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// One channel of a rollout: its outbox, its worker's wake-up, and how delivery goes.
pub struct Handle {
    spec: Channel,
    outbox: Mutex<Outbox>,
    /// The outbox changed since it was last stored.
    dirty: AtomicBool,
    wake: tokio::sync::Notify,
    status: Mutex<ChannelStatus>,
    /// The receiver's answer to the last failed call (operators only, never in a snapshot).
    answer: Mutex<Option<String>>,
    http: reqwest::Client,
    /// When the newest periodic status update was queued (a restart may queue one slot
    /// again; the outbox's keys send it once).
    status_sent: Mutex<Option<cutover_core::time::Millis>>,
}

impl Handle {
    fn new(spec: Channel) -> Handle {
        let status = ChannelStatus {
            id: spec.id.clone(),
            kind: spec.kind.as_str().to_string(),
            ..ChannelStatus::default()
        };
        let http = crate::net::receiver_client(CALL_TIMEOUT, spec.allow_private);
        Handle {
            spec,
            outbox: Mutex::new(Outbox::default()),
            dirty: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            status: Mutex::new(status),
            answer: Mutex::new(None),
            http,
            status_sent: Mutex::new(None),
        }
    }

    /// Changes the outbox and the status's counts with it; wakes the worker.
    fn change<T>(&self, f: impl FnOnce(&mut Outbox) -> T) -> T {
        let mut outbox = lock(&self.outbox);
        let out = f(&mut outbox);
        let mut status = lock(&self.status);
        status.pending = outbox.len();
        status.dropped = outbox.dropped;
        drop(status);
        drop(outbox);
        self.dirty.store(true, Ordering::SeqCst);
        out
    }

    /// Queues a message unless its key was queued before; returns at once.
    fn push(&self, event: Event, page: Option<String>, escalated_from: Option<String>) {
        self.change(|o| o.push(event, page, escalated_from));
        self.wake.notify_one();
    }

    pub fn status(&self) -> ChannelStatus {
        lock(&self.status).clone()
    }

    /// The receiver's answer to the last failed call, for operators and leads.
    pub fn answer(&self) -> Option<String> {
        lock(&self.answer).clone()
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
                handle.push(event.clone(), page.clone(), None);
            }
        }
    }

    /// Queues a status update on each channel that asks for them and whose next one is due
    /// at `at` (`cutover_core::notify::status_due`).
    pub fn status_updates(
        &self,
        plan: &Plan,
        state: &cutover_core::rollout::RolloutState,
        evaluated: &cutover_core::gates::Evaluated,
        at: cutover_core::time::Millis,
        page: Option<String>,
    ) {
        for handle in &self.handles {
            let Some(updates) = &handle.spec.status else {
                continue;
            };
            let mut sent = lock(&handle.status_sent);
            if let Some(slot) = cutover_core::notify::status_due(updates, state, *sent, at) {
                let mut event = cutover_core::notify::status_event(plan, state, evaluated, at);
                event.key = format!("status:{slot}");
                handle.push(event, page.clone(), None);
                *sent = Some(at);
            }
        }
    }

    /// Sends `event` on to the channel after `from`, marked as an escalation.
    pub fn escalate(&self, from: usize, event: &Event, page: Option<String>) {
        let (Some(source), Some(next)) = (self.handles.get(from), self.handles.get(from + 1))
        else {
            return;
        };
        next.push(event.clone(), page, Some(source.spec.id.clone()));
    }

    pub fn statuses(&self) -> Vec<ChannelStatus> {
        self.handles.iter().map(|h| h.status()).collect()
    }

    /// Each channel's id and the receiver's answer to its last failed call.
    pub fn answers(&self) -> Vec<(String, Option<String>)> {
        self.handles
            .iter()
            .map(|h| (h.spec.id.clone(), h.answer()))
            .collect()
    }

    /// The outboxes changed since this was last asked, by channel id, to store.
    pub fn take_changed(&self) -> Vec<(String, Outbox)> {
        self.handles
            .iter()
            .filter(|h| h.dirty.swap(false, Ordering::SeqCst))
            .map(|h| (h.spec.id.clone(), lock(&h.outbox).clone()))
            .collect()
    }

    /// Marks channel `id`'s outbox as changed again (storing it failed).
    pub fn mark_changed(&self, id: &str) {
        if let Some(h) = self.handles.iter().find(|h| h.spec.id == id) {
            h.dirty.store(true, Ordering::SeqCst);
        }
    }

    /// Takes in a stored outbox (this channel's before a restart, or a stopped replica's);
    /// an outbox of a channel the plan no longer has is let go.
    pub fn adopt(&self, id: &str, stored: Outbox) -> bool {
        let Some(handle) = self.handles.iter().find(|h| h.spec.id == id) else {
            return false;
        };
        handle.change(|o| o.adopt(stored));
        handle.wake.notify_one();
        true
    }

    /// Adopts stored outboxes as (channel id, JSON), as `Storage::adopt_outboxes` gives them.
    pub fn adopt_stored(&self, rollout: &str, stored: Vec<(String, String)>) {
        for (channel, body) in stored {
            match serde_json::from_str::<Outbox>(&body) {
                Ok(outbox) => {
                    let n = outbox.len();
                    if self.adopt(&channel, outbox) {
                        tracing::info!(%rollout, %channel, messages = n, "stored outbox adopted");
                    }
                }
                Err(e) => {
                    tracing::warn!(%rollout, %channel, "a stored outbox cannot be read: {e}")
                }
            }
        }
    }

    /// Starts one delivery worker per channel; they end with the runtime.
    pub fn spawn_workers(&self, rollout: &str) {
        for handle in &self.handles {
            tokio::spawn(deliver_forever(
                handle.clone(),
                rollout.to_string(),
                BACKOFF,
            ));
        }
    }
}

/// Delivers the message that matters most until the receiver takes it, then the next; waits
/// when the outbox is empty. A message that keeps failing yields to the others after its
/// budget (`outbox::BUDGET`), so the backoff grows only while nothing gets through.
async fn deliver_forever(handle: Arc<Handle>, rollout: String, backoff: Backoff) {
    let mut delay = backoff.first;
    loop {
        // Marks it in flight only: nothing to store.
        let next = lock(&handle.outbox).begin();
        let Some(message) = next else {
            handle.wake.notified().await;
            continue;
        };
        match deliver(&handle.http, &handle.spec, &message).await {
            Ok(()) => {
                *lock(&handle.answer) = None;
                handle.change(|o| o.delivered(message.id));
                let mut status = lock(&handle.status);
                status.delivered += 1;
                status.failing = false;
                status.attempts = 0;
                status.error = None;
                status.last_delivered_at = Some(now());
                delay = backoff.first;
            }
            Err(Failure {
                message: e,
                refused: true,
                answer,
            }) => {
                // The receiver says this message will never do (400, 404, 413...): retrying
                // it would hold every newer one, a kill included, behind it forever.
                tracing::warn!(%rollout, channel = %handle.spec.id, "notification refused, dropped: {e}");
                *lock(&handle.answer) = answer;
                handle.change(|o| o.refused(message.id));
                let mut status = lock(&handle.status);
                status.failing = false;
                status.attempts = message.attempts.saturating_add(1);
                status.error = Some(format!("dropped a message the channel refused: {e}"));
                delay = backoff.first;
            }
            Err(Failure {
                message: e, answer, ..
            }) => {
                let attempts = message.attempts.saturating_add(1);
                tracing::warn!(%rollout, channel = %handle.spec.id, attempts, "notification not delivered: {e}");
                *lock(&handle.answer) = answer;
                handle.change(|o| o.failed(message.id));
                {
                    let mut status = lock(&handle.status);
                    status.failing = true;
                    status.attempts = attempts;
                    status.error = Some(e);
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(backoff.longest);
            }
        }
    }
}

/// The body a channel of `kind` is sent.
fn body(kind: ChannelKind, message: &Queued) -> serde_json::Value {
    let event = &message.event;
    match kind {
        ChannelKind::Slack => {
            let mut words = text(event, message.page.as_deref());
            if let Some(from) = &message.escalated_from {
                words = format!("ESCALATED (unacknowledged on {from}): {words}");
            }
            serde_json::json!({ "text": words })
        }
        ChannelKind::Webhook | ChannelKind::PagerDuty | ChannelKind::Email => serde_json::json!({
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

/// An Events API v2 event: a trigger with what happened, or an acknowledge or resolve of the
/// episode's incident (`cutover_core::notify::page`), its dedup key `cutover/<rollout>/<episode>`.
fn pagerduty(routing_key: &str, message: &Queued) -> serde_json::Value {
    use cutover_core::notify::{PageAction, page};
    let event = &message.event;
    let (action, episode) = page(event);
    let dedup_key = format!("cutover/{}/{episode}", event.rollout);
    let action_name = match action {
        PageAction::Trigger => "trigger",
        PageAction::Acknowledge => "acknowledge",
        PageAction::Resolve => "resolve",
    };
    if action != PageAction::Trigger {
        return serde_json::json!({
            "routing_key": routing_key,
            "event_action": action_name,
            "dedup_key": dedup_key,
        });
    }
    let severity = match event.severity {
        cutover_core::plan::Severity::Critical => "critical",
        cutover_core::plan::Severity::Warning => "warning",
        cutover_core::plan::Severity::Info => "info",
    };
    let mut summary = match &message.escalated_from {
        Some(from) => format!("ESCALATED (unacknowledged on {from}): {}", event.title),
        None => event.title.clone(),
    };
    // The API takes at most 1,024 characters of summary.
    if summary.len() > 1024 {
        let mut cut = 1021;
        while !summary.is_char_boundary(cut) {
            cut -= 1;
        }
        summary.truncate(cut);
        summary.push_str("...");
    }
    let timestamp = humantime::format_rfc3339_millis(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(event.at.max(0) as u64),
    )
    .to_string();
    let mut body = serde_json::json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {
            "summary": summary,
            "source": format!("cutover/{}", event.rollout),
            "severity": severity,
            "timestamp": timestamp,
            "component": event.rollout,
            "group": "cutover",
            "class": event.kind.as_str(),
            "custom_details": { "lines": event.lines, "key": event.key },
        },
    });
    if let Some(page) = &message.page {
        body["links"] = serde_json::json!([{ "href": page, "text": "the rollout in cutover" }]);
    }
    body
}

/// How long an SMTP exchange may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `message` as a plain-text email through the channel's SMTP server (`lettre`).
async fn mail(
    email: &cutover_core::plan::Email,
    allow_private: bool,
    message: &Queued,
) -> Result<(), Failure> {
    use lettre::message::{Mailbox, header::ContentType};
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
    // The server's address is checked as any receiver's is (its name resolved here).
    crate::net::refuse_target(
        &format!("http://{}:{}/", email.host, email.port),
        allow_private,
    )?;
    if !allow_private {
        let addrs = tokio::net::lookup_host((email.host.as_str(), email.port))
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", email.host))?;
        for addr in addrs {
            crate::net::refuse_target(&format!("http://{addr}/"), false)?;
        }
    }
    let mailbox = |a: &str| -> Result<Mailbox, Failure> {
        a.parse::<Mailbox>().map_err(|e| Failure {
            message: format!("address {a}: {e}"),
            refused: true,
            answer: None,
        })
    };
    let event = &message.event;
    let mut subject = event.title.clone();
    if let Some(from) = &message.escalated_from {
        subject = format!("ESCALATED (unacknowledged on {from}): {subject}");
    }
    let mut builder = lettre::Message::builder()
        .from(mailbox(&email.from)?)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN);
    for to in &email.to {
        builder = builder.to(mailbox(to)?);
    }
    let mut body = event.lines.join("\n");
    if let Some(page) = &message.page {
        body.push_str(&format!("\n\n{page}\n"));
    }
    body.push_str(&format!(
        "\n-- cutover, rollout {}, event {}\n",
        event.rollout, event.key
    ));
    let mail = builder.body(body).map_err(|e| e.to_string())?;
    let mut transport = match (email.tls, &email.ca_file) {
        (cutover_core::plan::SmtpTls::Starttls | cutover_core::plan::SmtpTls::Tls, Some(ca)) => {
            use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
            let pem = std::fs::read(ca).map_err(|e| format!("cannot read ca_file {ca}: {e}"))?;
            let certificate =
                Certificate::from_pem(&pem).map_err(|e| format!("ca_file {ca}: {e}"))?;
            let parameters = TlsParameters::builder(email.host.clone())
                .add_root_certificate(certificate)
                .build_rustls()
                .map_err(|e| e.to_string())?;
            let tls = if email.tls == cutover_core::plan::SmtpTls::Tls {
                Tls::Wrapper(parameters)
            } else {
                Tls::Required(parameters)
            };
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&email.host).tls(tls)
        }
        (cutover_core::plan::SmtpTls::Starttls, None) => {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&email.host)
                .map_err(|e| e.to_string())?
        }
        (cutover_core::plan::SmtpTls::Tls, None) => {
            AsyncSmtpTransport::<Tokio1Executor>::relay(&email.host).map_err(|e| e.to_string())?
        }
        (cutover_core::plan::SmtpTls::None, _) => {
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&email.host)
        }
    }
    .port(email.port)
    .timeout(Some(SMTP_TIMEOUT));
    if let (Some(user), Some(password)) = (&email.user_env, &email.password_env) {
        let read = |name: &str| {
            std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))
        };
        transport = transport.credentials(Credentials::new(read(user)?, read(password)?));
    }
    match transport.build().send(mail).await {
        Ok(_) => Ok(()),
        // A permanent refusal (5xx) of this message is no reason to retry it forever.
        Err(e) => Err(Failure {
            refused: e.is_permanent(),
            answer: Some(e.to_string()),
            message: format!("the mail server: {e}"),
        }),
    }
}

/// `sha256=<hex>`: the HMAC-SHA256 under `key` of `<timestamp>.<body>`, as
/// `X-Cutover-Signature` carries it with the Unix seconds in `X-Cutover-Timestamp`. Signing the
/// time too lets a receiver refuse a replay of an old message (Stripe's and Slack's scheme).
pub fn signature(key: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Why a delivery failed, and whether the receiver refused the message itself (a client
/// error other than a timeout or rate limit), so that retrying it is pointless.
struct Failure {
    message: String,
    refused: bool,
    /// The receiver's own words (operators only).
    answer: Option<String>,
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure {
            message,
            refused: false,
            answer: None,
        }
    }
}

async fn deliver(http: &reqwest::Client, spec: &Channel, message: &Queued) -> Result<(), Failure> {
    if let Some(email) = &spec.email {
        return mail(email, spec.allow_private, message).await;
    }
    let url = match &spec.url {
        ChannelUrl::Url(url) => url.clone(),
        ChannelUrl::Env(name) => {
            std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))?
        }
    };
    crate::net::refuse_target(&url, spec.allow_private)?;
    let body = match (spec.kind, &spec.routing_key, &spec.routing_key_env) {
        (ChannelKind::PagerDuty, Some(key), _) => pagerduty(key, message),
        (ChannelKind::PagerDuty, None, Some(name)) => {
            let key = std::env::var(name)
                .map_err(|_| format!("environment variable {name} is not set"))?;
            pagerduty(&key, message)
        }
        (kind, _, _) => body(kind, message),
    };
    let body = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
    let mut request = http
        .post(&url)
        .header("content-type", "application/json")
        .header("x-cutover-event", message.event.kind.as_str());
    if let Some(name) = &spec.secret_env {
        let key =
            std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))?;
        let timestamp = now() / 1000;
        request = request.header("x-cutover-timestamp", timestamp).header(
            "x-cutover-signature",
            signature(key.as_bytes(), timestamp, &body),
        );
    }
    let response = request
        .body(body)
        .send()
        .await
        .map_err(|e| format!("cannot reach the channel: {}", crate::net::root_cause(&e)))?;
    let answer = crate::net::Answer::read(response).await;
    match answer.failure("the channel") {
        None => Ok(()),
        Some(message) => {
            let status = answer.status;
            // A redirect is no refusal of the message: the receiver may be fixed.
            let refused = status.is_client_error() && !matches!(status.as_u16(), 408 | 425 | 429);
            Err(Failure {
                message,
                refused,
                answer: Some(answer.text).filter(|t| !t.is_empty()),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_rfc_4231s_hmac_sha256_over_time_and_body() {
        // RFC 4231, test case 2: "what do ya want for nothing?" split as "<time>.<body>".
        assert_eq!(
            signature(b"Jefe", 0, b"what do ya want for nothing?"),
            signature(b"Jefe", 0, b"what do ya want for nothing?")
        );
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_ne!(
            signature(b"Jefe", 1, b"x"),
            signature(b"Jefe", 2, b"x"),
            "the time is signed"
        );
    }

    use cutover_core::notify::EventKind;
    use cutover_core::plan::Severity;
    use std::sync::atomic::AtomicUsize;

    fn event(kind: EventKind, key: &str) -> Event {
        Event {
            kind,
            severity: Severity::Warning,
            rollout: "r".into(),
            title: format!("{key} happened"),
            lines: vec![],
            key: key.into(),
            at: 0,
        }
    }

    /// A receiver that answers 503 to any message whose body contains `refuse` while `down`
    /// is set (or always, for `poison`), 200 otherwise, and keeps the titles it took.
    struct Fake {
        url: String,
        took: Arc<Mutex<Vec<String>>>,
        down: Arc<AtomicBool>,
        calls: Arc<AtomicUsize>,
    }

    async fn fake(poison: &'static str) -> Fake {
        let took: Arc<Mutex<Vec<String>>> = Arc::default();
        let down = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicUsize::new(0));
        let (t, d, c) = (took.clone(), down.clone(), calls.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: axum::body::Bytes| {
                let (t, d, c) = (t.clone(), d.clone(), c.clone());
                async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let title = body["title"].as_str().unwrap().to_string();
                    if d.load(Ordering::SeqCst) || (!poison.is_empty() && title.contains(poison)) {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    lock(&t).push(title);
                    axum::http::StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Fake {
            url,
            took,
            down,
            calls,
        }
    }

    fn channel(url: &str) -> Arc<Handle> {
        Arc::new(Handle::new(Channel {
            id: "room".into(),
            kind: ChannelKind::Webhook,
            url: ChannelUrl::Url(url.into()),
            secret_env: None,
            routing_key_env: None,
            routing_key: None,
            email: None,
            status: None,
            events: vec![],
            min_severity: Severity::Info,
            escalate_after: None,
            allow_private: true,
        }))
    }

    const FAST: Backoff = Backoff {
        first: Duration::from_millis(5),
        longest: Duration::from_millis(20),
    };

    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(tokio::time::Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A receiver down for good while 300 events pile up, then a kill: the outbox keeps its
    /// bound, lets go of gate messages (counted), keeps the kill, and when the receiver comes
    /// back the kill is the first thing it gets.
    #[tokio::test]
    async fn a_kill_behind_300_events_at_a_dead_receiver_is_kept_and_goes_first() {
        let receiver = fake("").await;
        receiver.down.store(true, Ordering::SeqCst);
        let handle = channel(&receiver.url);
        for i in 0..300 {
            handle.push(
                event(EventKind::GateFailing, &format!("gate {i}")),
                None,
                None,
            );
        }
        handle.push(event(EventKind::Kill, "the kill"), None, None);
        let worker = tokio::spawn(deliver_forever(handle.clone(), "r".into(), FAST));
        until("a few failed attempts", || {
            receiver.calls.load(Ordering::SeqCst) >= 3
        })
        .await;
        let status = handle.status();
        assert_eq!(status.pending, QUEUE);
        assert_eq!(status.dropped, 301 - QUEUE as u64);
        assert!(status.failing);
        receiver.down.store(false, Ordering::SeqCst);
        until("all delivered", || lock(&receiver.took).len() == QUEUE).await;
        assert_eq!(lock(&receiver.took)[0], "the kill happened");
        worker.abort();
    }

    /// One message the receiver chokes on (503 for it alone, for ever) cannot hold the kill
    /// queued behind it: after its budget it yields, and is tried again after.
    #[tokio::test]
    async fn a_poisoned_message_cannot_hold_a_kill_behind_it() {
        let receiver = fake("poison").await;
        let handle = channel(&receiver.url);
        handle.push(event(EventKind::Kill, "poison"), None, None);
        handle.push(event(EventKind::Kill, "the kill"), None, None);
        let worker = tokio::spawn(deliver_forever(handle.clone(), "r".into(), FAST));
        until("the kill delivered", || {
            lock(&receiver.took).contains(&"the kill happened".to_string())
        })
        .await;
        assert_eq!(handle.status().pending, 1, "the poisoned one is still held");
        worker.abort();
    }
}

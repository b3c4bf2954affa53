//! The demo's own receiver: every `[[notify]]` channel of the demo's plans delivers here
//! instead of to Slack, PagerDuty or a mail server it cannot reach, so the channel statuses
//! on the page show real deliveries and anyone can read what was said: `GET /` on it lists
//! the newest messages, each with its rollout, channel and body.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use cutover_core::plan::{ChannelKind, ChannelUrl, Plan};
use serde_json::{Value, json};

use crate::clock::{lock, now};

/// Messages kept (the oldest go first).
const KEPT: usize = 200;
/// The largest message taken: cutover's own are far smaller.
const BODY_LIMIT: usize = 64 * 1024;

#[derive(Clone, Default)]
struct Inbox(Arc<Mutex<VecDeque<Value>>>);

async fn take(
    State(inbox): State<Inbox>,
    Path((rollout, channel)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> (StatusCode, Json<Value>) {
    let body = serde_json::from_slice::<Value>(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    let mut kept = lock(&inbox.0);
    if kept.len() >= KEPT {
        kept.pop_front();
    }
    kept.push_back(json!({ "at": now(), "rollout": rollout, "channel": channel, "body": body }));
    // PagerDuty's Events API answers 202 with a status; the others take any 2xx.
    (StatusCode::ACCEPTED, Json(json!({ "status": "success" })))
}

async fn list(State(inbox): State<Inbox>) -> Json<Value> {
    let kept = lock(&inbox.0);
    Json(Value::Array(kept.iter().rev().cloned().collect()))
}

/// Starts the receiver on a loopback port of its own; returns its address.
pub async fn start() -> anyhow::Result<SocketAddr> {
    let inbox = Inbox::default();
    let app = axum::Router::new()
        .route("/", axum::routing::get(list))
        .route("/{rollout}/{channel}", axum::routing::post(take))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(inbox);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("the demo's receiver stopped: {e}");
        }
    });
    Ok(addr)
}

/// Points every channel of `plans` at the receiver at `addr`: Slack and webhook channels by
/// URL, PagerDuty ones with a routing key of the demo's own, and mail as a webhook (the demo
/// has no mail server). Returns how many channels were pointed.
pub fn point(plans: &mut [Plan], addr: SocketAddr) -> usize {
    let mut pointed = 0;
    for plan in plans.iter_mut() {
        for channel in &mut plan.channels {
            channel.url = ChannelUrl::Url(format!(
                "http://{addr}/{}/{}",
                cutover_core::route::segment(&plan.id),
                cutover_core::route::segment(&channel.id)
            ));
            channel.allow_private = true;
            channel.secret_env = None;
            match channel.kind {
                ChannelKind::PagerDuty => channel.routing_key = Some("demo-routing-key".into()),
                ChannelKind::Email => {
                    channel.kind = ChannelKind::Webhook;
                    channel.email = None;
                }
                ChannelKind::Slack | ChannelKind::Webhook => {}
            }
            pointed += 1;
        }
    }
    pointed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example plans' channels all land on the receiver, mail included, and it keeps
    /// what they said.
    #[tokio::test]
    async fn every_channel_of_the_examples_delivers_to_the_receiver() {
        let addr = start().await.unwrap();
        let mut plans = super::super::example_plans().unwrap();
        let declared: usize = plans.iter().map(|p| p.channels.len()).sum();
        assert!(
            declared >= 8,
            "the example plans declare their runbooks' channels"
        );
        assert_eq!(point(&mut plans, addr), declared);
        for plan in &plans {
            for c in &plan.channels {
                let ChannelUrl::Url(url) = &c.url else {
                    panic!("{} still reads its URL from the environment", c.id);
                };
                assert!(url.starts_with(&format!("http://{addr}/")), "{url}");
                assert!(c.email.is_none());
            }
        }
        let http = crate::net::trusted_client(std::time::Duration::from_secs(5)).unwrap();
        let sent = http
            .post(format!("http://{addr}/spiralogic/oncall"))
            .json(&json!({"event_action": "trigger"}))
            .send()
            .await
            .unwrap();
        assert_eq!(sent.status(), 202);
        let got: Value = http
            .get(format!("http://{addr}/"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(got[0]["channel"], "oncall");
        assert_eq!(got[0]["body"]["event_action"], "trigger");
    }
}

//! Viewers can never crowd out a kill: live streams are capped per sign-in, per share link
//! and per client address, and in all below the connection capacity, so a crowd holding a
//! stakeholder link (from many addresses, or from one behind the company's proxy) is refused
//! more streams with a 429 and `Retry-After` while an operator's kill is answered at once.

use crate::support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use cutover_core::role::Role;
use reqwest::header::{COOKIE, SET_COOKIE};
use serde_json::json;
use support::{TestApp, open_plan};

/// A refusal's words, read to 64 KB at most (the server's own `net::read_bounded`): a test
/// reads no answer whole either.
async fn words(response: reqwest::Response) -> String {
    let bytes = cutover_server::net::read_bounded(response, 64 * 1024)
        .await
        .unwrap();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// 256 connections: 64 kept for requests that are not streams, 192 streams, 96 per share
/// link, 24 per address, 64 connections per peer.
fn options(trusted: &[&str]) -> cutover_server::ServeOptions {
    cutover_server::ServeOptions {
        max_connections: Some(256),
        trusted_proxies: cutover_server::http::peer::TrustedProxies::parse(
            &trusted.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        )
        .unwrap(),
        ..Default::default()
    }
}

/// A client whose connections come from loopback address `source`.
fn client_from(source: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(source))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A stakeholder link's session cookie.
async fn share_cookie(app: &TestApp) -> String {
    let (status, share) = app
        .post(Some(Role::Lead), "/api/rollouts/crowd/shares", json!({}))
        .await;
    assert_eq!(status, 201, "{share}");
    let opened = client_from(Ipv4Addr::LOCALHOST)
        .get(format!("{}{}", app.url, share["path"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), 303);
    let header = opened.headers()[SET_COOKIE].to_str().unwrap();
    header.split(';').next().unwrap().to_string()
}

/// Opens streams with `cookie` from `sources` (each with `forwarded_for` when given), until
/// one is refused; returns the open ones and the refusal.
async fn open_until_refused(
    app: &TestApp,
    cookie: &str,
    sources: &[(Ipv4Addr, Option<String>)],
    most: usize,
) -> (Vec<reqwest::Response>, reqwest::Response) {
    let mut open = Vec::new();
    for i in 0..most {
        let (source, forwarded) = &sources[i % sources.len()];
        let mut request = client_from(*source)
            .get(format!("{}/api/rollouts/crowd/stream", app.url))
            .header(COOKIE, cookie);
        if let Some(f) = forwarded {
            request = request.header("x-forwarded-for", f);
        }
        let response = request.send().await.unwrap();
        if response.status() != 200 {
            return (open, response);
        }
        open.push(response);
    }
    panic!("{most} streams opened and none refused");
}

/// How long an operator's kill (then a resume, to kill again) takes, `n` times from `source`.
async fn kill_latencies(app: &TestApp, source: Ipv4Addr, n: usize) -> Vec<Duration> {
    let http = client_from(source);
    let mut took = Vec::new();
    for i in 0..n {
        let started = Instant::now();
        let killed = http
            .post(format!("{}/api/rollouts/crowd/kill", app.url))
            .bearer_auth(app.token(Role::Operator))
            .json(&json!({"reason": format!("drill {i}")}))
            .send()
            .await
            .unwrap();
        took.push(started.elapsed());
        assert_eq!(killed.status(), 200, "{}", words(killed).await);
        let resumed = http
            .post(format!("{}/api/rollouts/crowd/resume", app.url))
            .bearer_auth(app.token(Role::Lead))
            .json(&json!({"reason": "drill over"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resumed.status(), 200, "{}", words(resumed).await);
    }
    took.sort();
    took
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn started(app: &TestApp) {
    let (status, body) = app
        .post(Some(Role::Operator), "/api/rollouts/crowd/start", json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_on_a_share_link_from_many_addresses_cannot_keep_a_kill_out() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start_with(data.path(), vec![open_plan("crowd", 2)], options(&[])).await;
    started(&app).await;
    let idle = kill_latencies(&app, Ipv4Addr::new(127, 0, 9, 1), 10).await;

    // One link from many addresses: refused at the link's share of the streams.
    let sources: Vec<_> = (0..16)
        .map(|i| (Ipv4Addr::new(127, 0, 1, i + 1), None))
        .collect();
    let link = share_cookie(&app).await;
    let (mut held, refused) = open_until_refused(&app, &link, &sources, 500).await;
    assert_eq!(held.len(), 96);
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "5");
    let text = words(refused).await;
    assert!(text.contains("share link already has 96"), "{text}");

    // A second link takes the rest of the streams: the server's whole share is held.
    let second = share_cookie(&app).await;
    let more: Vec<_> = (0..16)
        .map(|i| (Ipv4Addr::new(127, 0, 2, i + 1), None))
        .collect();
    let (rest, refused) = open_until_refused(&app, &second, &more, 500).await;
    held.extend(rest);
    assert_eq!(held.len(), 192);
    let text = words(refused).await;
    assert!(text.contains("most live streams (192)"), "{text}");

    // With every stream taken, a kill from anywhere is answered at once.
    let crowded = kill_latencies(&app, Ipv4Addr::new(127, 0, 9, 1), 20).await;
    let (p50, p99) = (percentile(&crowded, 0.5), percentile(&crowded, 0.99));
    println!(
        "kill with 192 streams held (the cap): p50 {p50:?}, p99 {p99:?}; idle p50 {:?}, p99 {:?}",
        percentile(&idle, 0.5),
        percentile(&idle, 0.99)
    );
    assert!(p99 < Duration::from_secs(1), "{crowded:?}");
    // Ends give places back.
    held.truncate(100);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = client_from(Ipv4Addr::new(127, 0, 3, 1))
        .get(format!("{}/api/rollouts/crowd/stream", app.url))
        .bearer_auth(app.token(Role::Viewer))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    drop(held);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_one_proxy_a_crowd_is_counted_per_client_and_the_kill_gets_in() {
    let data = tempfile::tempdir().unwrap();
    // Everyone comes through the proxy at 127.0.0.1.
    let app = TestApp::start_with(
        data.path(),
        vec![open_plan("crowd", 2)],
        options(&["127.0.0.1"]),
    )
    .await;
    started(&app).await;
    let proxy = Ipv4Addr::LOCALHOST;
    // One stakeholder's browser behind the proxy: its address's share, then refused.
    let link = share_cookie(&app).await;
    let one = vec![(proxy, Some("203.0.113.7".to_string()))];
    let (held, refused) = open_until_refused(&app, &link, &one, 100).await;
    assert_eq!(held.len(), 24, "per client address, as the proxy names it");
    assert_eq!(refused.status(), 429);
    assert!(words(refused).await.contains("this address"));
    // Others behind the same proxy still get streams of their own (the proxy itself is no
    // one address), up to the link's share.
    let many: Vec<_> = (0..8)
        .map(|i| (proxy, Some(format!("198.51.100.{i}"))))
        .collect();
    let (more, _) = open_until_refused(&app, &link, &many, 200).await;
    assert_eq!(held.len() + more.len(), 96);
    // A client cannot name itself another address to get more: a forwarding header from an
    // untrusted peer is ignored, so 127.0.5.1 counts as itself.
    let spoofing: Vec<_> = (0..30)
        .map(|i| (Ipv4Addr::new(127, 0, 5, 1), Some(format!("192.0.2.{i}"))))
        .collect();
    let viewer = {
        let (status, share) = app
            .post(Some(Role::Lead), "/api/rollouts/crowd/shares", json!({}))
            .await;
        assert_eq!(status, 201);
        let opened = client_from(proxy)
            .get(format!("{}{}", app.url, share["path"].as_str().unwrap()))
            .send()
            .await
            .unwrap();
        let header = opened.headers()[SET_COOKIE].to_str().unwrap();
        header.split(';').next().unwrap().to_string()
    };
    let (spoofed, refused) = open_until_refused(&app, &viewer, &spoofing, 100).await;
    assert_eq!(spoofed.len(), 24);
    assert!(words(refused).await.contains("this address"));

    // Through the same proxy, the operator's kill is answered at once.
    let took = kill_latencies(&app, proxy, 10).await;
    assert!(percentile(&took, 0.99) < Duration::from_secs(1), "{took:?}");
    drop((held, more, spoofed));
    app.stop().await;
}

/// A token or session holds at most its own share of streams.
#[tokio::test]
async fn a_sign_in_holds_at_most_its_share_of_streams() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start_with(data.path(), vec![open_plan("crowd", 2)], options(&[])).await;
    let mut held = Vec::new();
    for i in 0..17 {
        let response = client_from(Ipv4Addr::new(127, 0, 6, i + 1))
            .get(format!("{}/api/rollouts/crowd/stream", app.url))
            .bearer_auth(app.token(Role::Viewer))
            .send()
            .await
            .unwrap();
        if i < 16 {
            assert_eq!(response.status(), 200, "stream {i}");
            held.push(response);
        } else {
            assert_eq!(response.status(), 429);
            let text = words(response).await;
            assert!(text.contains("this sign-in already has 16"), "{text}");
        }
    }
    drop(held);
    app.stop().await;
}

/// A stream ends at its lifetime, saying so and asking the browser to come back in half a
/// second; coming back with its last event id, it misses nothing.
#[tokio::test]
async fn a_stream_ends_at_its_lifetime_and_resumes_where_it_was() {
    let data = tempfile::tempdir().unwrap();
    let options = cutover_server::ServeOptions {
        stream_lifetime: Duration::from_secs(2),
        ..Default::default()
    };
    let app = TestApp::start_with(data.path(), vec![open_plan("crowd", 2)], options).await;
    let opened = Instant::now();
    let response = app
        .get_as(Some(Role::Viewer), "/api/rollouts/crowd/stream")
        .await;
    assert_eq!(response.status(), 200);
    let mut stream = support::EventStream::new(response);
    let mut last_id = None;
    loop {
        let (name, data) = stream.next_raw().await;
        if name == "renew" {
            assert!(data["reason"].as_str().unwrap().contains("lifetime"));
            break;
        }
        last_id = stream.last_id.clone().or(last_id);
        assert!(
            opened.elapsed() < Duration::from_secs(10),
            "no renew in 10 s"
        );
    }
    let lived = opened.elapsed();
    assert!(lived >= Duration::from_millis(1_800), "{lived:?}");
    assert!(stream.ended().await, "the stream goes on after its renew");
    // An action while it was away, then the reconnect the browser makes.
    let (status, _) = app
        .post(Some(Role::Operator), "/api/rollouts/crowd/start", json!({}))
        .await;
    assert_eq!(status, 200);
    let back = app
        .http
        .get(format!("{}/api/rollouts/crowd/stream", app.url))
        .bearer_auth(app.token(Role::Viewer))
        .header("last-event-id", last_id.expect("events carry ids"))
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), 200);
    let mut back = support::EventStream::new(back);
    // What it missed comes first (ticks, the start's update), never a whole state.
    loop {
        let (name, data) = back.next_raw().await;
        assert_ne!(name, "state", "started whole instead of resumed");
        if name == "update" {
            assert_eq!(data["state"]["phase"], "running", "{data}");
            break;
        }
    }
    app.stop().await;
}

/// Guessing is slowed per address: past 20 wrong tokens, share links or sign-ins in a
/// minute, the next wrong ones are answered 429 with `Retry-After`; a right token from the
/// same address still acts (an operator behind a guesser's office address gets the kill in).
#[tokio::test]
async fn guesses_are_slowed_per_address_and_never_keep_a_right_token_out() {
    let data = tempfile::tempdir().unwrap();
    let app = TestApp::start_with(data.path(), vec![open_plan("crowd", 2)], options(&[])).await;
    let guesser = client_from(Ipv4Addr::new(127, 0, 7, 1));
    let mut statuses = Vec::new();
    for i in 0..8 {
        let bearer = guesser
            .get(format!("{}/api/rollouts", app.url))
            .bearer_auth(format!("cut_{i:048}"))
            .send()
            .await
            .unwrap();
        statuses.push(bearer.status().as_u16());
        let link = guesser
            .get(format!("{}/s/{i:048}", app.url))
            .send()
            .await
            .unwrap();
        statuses.push(link.status().as_u16());
        let sign_in = guesser
            .post(format!("{}/api/session", app.url))
            .json(&json!({"token": format!("cut_{i:048}")}))
            .send()
            .await
            .unwrap();
        statuses.push(sign_in.status().as_u16());
    }
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(refused, 24 - 20, "{statuses:?}");
    assert!(
        statuses[..20].iter().all(|s| *s == 401 || *s == 404),
        "{statuses:?}"
    );
    let slowed = guesser
        .get(format!("{}/api/rollouts", app.url))
        .bearer_auth("cut_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(slowed.status(), 429);
    let wait: u64 = slowed.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // The right token from the same address acts.
    let kill = guesser
        .post(format!("{}/api/rollouts/crowd/kill", app.url))
        .bearer_auth(app.token(Role::Operator))
        .json(&json!({"reason": "guesses do not stop this"}))
        .send()
        .await
        .unwrap();
    assert_ne!(kill.status(), 429);
    assert_ne!(kill.status(), 401);
    // Another address is not slowed.
    let other = client_from(Ipv4Addr::new(127, 0, 7, 2))
        .get(format!("{}/api/rollouts", app.url))
        .bearer_auth("cut_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 401);
    app.stop().await;
}

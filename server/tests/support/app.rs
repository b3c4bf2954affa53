//! A real server on a loopback port over a real SQLite file, with one token per role.
//! Restartable on the same data dir to test durability.

// Each test binary includes this file and uses a different subset of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use cutover_core::plan::Plan;
use cutover_core::role::Role;
use cutover_server::AppState;
use cutover_server::clock::now;
use cutover_server::store::Storage;
use serde_json::Value;

/// A user per role (created, or re-keyed on a restart), with their tokens.
async fn users(storage: &Storage) -> BTreeMap<Role, String> {
    let mut tokens = BTreeMap::new();
    for role in Role::ALL {
        let token = storage
            .upsert_user(&format!("test-{role}"), role, now())
            .await
            .unwrap();
        tokens.insert(role, token);
    }
    tokens
}

pub struct TestApp {
    pub url: String,
    pub http: reqwest::Client,
    pub tokens: BTreeMap<Role, String>,
    shutdown: Option<tokio::sync::oneshot::Sender<bool>>,
    done: Option<tokio::task::JoinHandle<()>>,
}

impl TestApp {
    /// Starts a server for `plans` on `data`; users are created (or re-keyed) per role.
    pub async fn start(data: &Path, plans: Vec<Plan>) -> TestApp {
        let storage = Storage::open_sqlite(data).await.unwrap();
        TestApp::start_on(storage, plans, None).await
    }

    /// Starts a server for `plans` on `data` with the edge's `options` (trusted proxies,
    /// stream limits, connection capacity).
    pub async fn start_with(
        data: &Path,
        plans: Vec<Plan>,
        options: cutover_server::ServeOptions,
    ) -> TestApp {
        let storage = Storage::open_sqlite(data).await.unwrap();
        let tokens = users(&storage).await;
        let state = AppState::load(storage, plans).await.unwrap();
        TestApp::serve_with(state, None, tokens, options).await
    }

    /// Starts a server reached at `public_url` (https:// turns on secure cookies and HSTS).
    pub async fn start_public(data: &Path, plans: Vec<Plan>, public_url: &str) -> TestApp {
        let storage = Storage::open_sqlite(data).await.unwrap();
        let tokens = users(&storage).await;
        let mut state = AppState::load(storage, plans).await.unwrap();
        state.public_url = Some(public_url.into());
        TestApp::serve_state(state, None, tokens).await
    }

    /// Starts a server for `plans` on `storage` (SQLite or PostgreSQL), asking `prometheus`
    /// when given.
    pub async fn start_on(
        storage: Storage,
        plans: Vec<Plan>,
        prometheus: Option<cutover_server::sources::prometheus::PromConfig>,
    ) -> TestApp {
        let tokens = users(&storage).await;
        TestApp::launch(storage, plans, prometheus, tokens).await
    }

    /// Another replica on the same database as `other` (PostgreSQL), with the same users.
    pub async fn replica_of(other: &TestApp, storage: Storage, plans: Vec<Plan>) -> TestApp {
        TestApp::launch(storage, plans, None, other.tokens.clone()).await
    }

    async fn launch(
        storage: Storage,
        plans: Vec<Plan>,
        prometheus: Option<cutover_server::sources::prometheus::PromConfig>,
        tokens: BTreeMap<Role, String>,
    ) -> TestApp {
        let state = AppState::load(storage, plans).await.unwrap();
        TestApp::serve_state(state, prometheus, tokens).await
    }

    async fn serve_state(
        state: AppState,
        prometheus: Option<cutover_server::sources::prometheus::PromConfig>,
        tokens: BTreeMap<Role, String>,
    ) -> TestApp {
        TestApp::serve_with(state, prometheus, tokens, Default::default()).await
    }

    /// Starts a server whose single sign-on `sso` makes, given the server's URL (so a
    /// provider can be started with the callback it must send people to); `sso` may return
    /// something more, such as the provider.
    pub async fn start_with_sso<F, Fut, T>(data: &Path, plans: Vec<Plan>, sso: F) -> (TestApp, T)
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = (cutover_server::sso::Settings, T)>,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (settings, extra) = sso(url).await;
        let storage = Storage::open_sqlite(data).await.unwrap();
        let tokens = users(&storage).await;
        let mut state = AppState::load(storage, plans).await.unwrap();
        state.sso = Some(std::sync::Arc::new(
            cutover_server::sso::Sso::new(settings).unwrap(),
        ));
        let app = TestApp::serve_on(listener, state, None, tokens, Default::default()).await;
        (app, extra)
    }

    async fn serve_with(
        state: AppState,
        prometheus: Option<cutover_server::sources::prometheus::PromConfig>,
        tokens: BTreeMap<Role, String>,
        options: cutover_server::ServeOptions,
    ) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        TestApp::serve_on(listener, state, prometheus, tokens, options).await
    }

    async fn serve_on(
        listener: tokio::net::TcpListener,
        state: AppState,
        prometheus: Option<cutover_server::sources::prometheus::PromConfig>,
        tokens: BTreeMap<Role, String>,
        options: cutover_server::ServeOptions,
    ) -> TestApp {
        let url = format!("http://{}", listener.local_addr().unwrap());
        // true: a crash (the evaluator lease is left to run out); false: a clean stop.
        let (tx, rx) = tokio::sync::oneshot::channel::<bool>();
        let client = prometheus.map(|c| {
            std::sync::Arc::new(cutover_server::sources::prometheus::PromClient::new(c).unwrap())
        });
        let background = cutover_server::spawn_background(&state, client);
        let done = tokio::spawn(async move {
            let (crashed_tx, crashed_rx) = tokio::sync::oneshot::channel::<bool>();
            let _ = cutover_server::serve_with(listener, state.clone(), options, async move {
                let crashed = rx.await.unwrap_or(false);
                let _ = crashed_tx.send(crashed);
            })
            .await;
            for task in background {
                task.abort();
            }
            if !crashed_rx.await.unwrap_or(false) {
                let _ = state
                    .storage
                    .release_lease("evaluator", &state.replica)
                    .await;
            }
        });
        TestApp {
            url,
            http: reqwest::Client::new(),
            tokens,
            shutdown: Some(tx),
            done: Some(done),
        }
    }

    /// Stops as a crash would: the evaluator lease is not handed over, it runs out.
    pub async fn crash(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
        if let Some(done) = self.done.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), done).await;
        }
    }

    /// Stops the server and waits until it has let go of its connections.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(false);
        }
        if let Some(done) = self.done.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), done).await;
        }
    }

    pub fn token(&self, role: Role) -> &str {
        &self.tokens[&role]
    }

    /// POSTs JSON `body` to `path` as `role` (no credentials when None).
    pub async fn post(&self, role: Option<Role>, path: &str, body: Value) -> (u16, Value) {
        let mut request = self.http.post(format!("{}{path}", self.url)).json(&body);
        if let Some(role) = role {
            request = request.bearer_auth(self.token(role));
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// GETs `path` as a viewer and returns the JSON body.
    pub async fn get(&self, path: &str) -> Value {
        let response = self.get_as(Some(Role::Viewer), path).await;
        response.json().await.unwrap()
    }

    /// Polls `path` as a viewer (up to 15 s) until `check` picks something out of it; panics
    /// with `what` and the last body otherwise.
    pub async fn wait_for<T>(
        &self,
        path: &str,
        what: &str,
        check: impl Fn(&Value) -> Option<T>,
    ) -> T {
        self.wait_for_within(path, what, Duration::from_secs(15), check)
            .await
    }

    /// As `wait_for`, giving up after `within`: a guard against hanging, never the claim, so
    /// make it generous (CI machines are slow and loaded).
    pub async fn wait_for_within<T>(
        &self,
        path: &str,
        what: &str,
        within: Duration,
        check: impl Fn(&Value) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let body = self.get(path).await;
            if let Some(found) = check(&body) {
                return found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never {what}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn get_as(&self, role: Option<Role>, path: &str) -> reqwest::Response {
        let mut request = self.http.get(format!("{}{path}", self.url));
        if let Some(role) = role {
            request = request.bearer_auth(self.token(role));
        }
        request.send().await.unwrap()
    }
}

/// Waits (up to 30 s) until the server on the SQLite data dir `data` has saved metric buckets
/// of `rollout` at `since` or later (they are saved every few seconds, not at each event), so
/// that a stop or a crash after this keeps every event ingested before `since`. Reads the
/// database itself: nothing in the API says when buckets were last saved.
pub async fn wait_for_saved_buckets(data: &Path, rollout: &str, since: cutover_core::time::Millis) {
    let storage = Storage::open_sqlite(data).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    // No replica is called "none": every replica's buckets count.
    while storage
        .buckets_changed(rollout, "none", since)
        .await
        .unwrap()
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no metric buckets of {rollout} saved since {since}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A live stream being read: Server-Sent Events parsed one at a time. Like the app, it holds
/// the newest tick and applies each delta to it, so a test reads ticks whole.
pub struct EventStream {
    stream: Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
    /// The `id:` of the last event read, if it had one.
    pub last_id: Option<String>,
    /// The tick as applied so far.
    pub tick: Option<cutover_core::snapshot::Tick>,
    /// The state as updated so far.
    pub state: Option<cutover_core::snapshot::Snapshot>,
    /// Deltas applied to it.
    pub deltas: usize,
}

impl EventStream {
    pub fn new(response: reqwest::Response) -> EventStream {
        EventStream {
            stream: Box::pin(response.bytes_stream()),
            buf: String::new(),
            last_id: None,
            tick: None,
            state: None,
            deltas: 0,
        }
    }

    /// The next event's name and JSON data (comments and keep-alives skipped); a delta comes
    /// out as the `tick` it makes, an update as the `state` (each as itself while there is
    /// nothing to apply it to). Panics after 5 s of silence, and on a delta that does not
    /// apply.
    pub async fn next(&mut self) -> (String, Value) {
        let (name, data) = self.next_raw().await;
        match name.as_str() {
            "state" => self.state = Some(serde_json::from_value(data.clone()).unwrap()),
            "update" => {
                let Some(state) = self.state.as_mut() else {
                    return (name, data);
                };
                assert!(state.apply(serde_json::from_value(data).unwrap()));
                return ("state".into(), serde_json::to_value(&*state).unwrap());
            }
            "tick" => self.tick = Some(serde_json::from_value(data.clone()).unwrap()),
            "delta" => {
                let Some(tick) = self.tick.as_mut() else {
                    return (name, data);
                };
                let delta = serde_json::from_value(data).unwrap();
                cutover_core::delta::apply(tick, &delta).expect("a delta for the tick held");
                self.deltas += 1;
                return ("tick".into(), serde_json::to_value(&*tick).unwrap());
            }
            _ => {}
        }
        (name, data)
    }

    /// The next event's name and JSON data as sent.
    pub async fn next_raw(&mut self) -> (String, Value) {
        use futures::StreamExt;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let event: String = self.buf.drain(..end + 2).collect();
                let field = |name: &str| {
                    event
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(str::to_string)
                };
                if let Some(data) = field("data: ") {
                    self.last_id = field("id: ").or(self.last_id.take());
                    let name = field("event: ").unwrap_or_default();
                    return (name, serde_json::from_str(&data).unwrap());
                }
                continue;
            }
            let next = tokio::time::timeout(Duration::from_secs(5), self.stream.next()).await;
            let chunk = next.expect("no event for 5 s").unwrap().unwrap();
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Whether the server ends the stream (or the connection) within 15 s, events before the
    /// end being skipped.
    pub async fn ended(&mut self) -> bool {
        use futures::StreamExt;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// The data of the `ended` event a stream whose sign-in ended gets before it closes,
    /// events before it skipped; panics if none comes within `within`.
    pub async fn ended_event(&mut self, within: Duration) -> Value {
        let deadline = std::time::Instant::now() + within;
        loop {
            let (name, data) = self.next().await;
            if name == "ended" {
                return data;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the stream is still open after {within:?}"
            );
        }
    }

    /// The data of the next event called `name`, skipping others.
    pub async fn next_named(&mut self, name: &str) -> Value {
        loop {
            let (n, data) = self.next().await;
            if n == name {
                return data;
            }
        }
    }
}

impl TestApp {
    /// Opens the live stream of `rollout` as a viewer.
    pub async fn stream(&self, rollout: &str) -> EventStream {
        self.resume(rollout, None).await
    }

    /// Opens the live stream of `rollout` as a viewer, resuming after `last_event_id`.
    pub async fn resume(&self, rollout: &str, last_event_id: Option<&str>) -> EventStream {
        let mut request = self
            .http
            .get(format!("{}/api/rollouts/{rollout}/stream", self.url))
            .bearer_auth(self.token(Role::Viewer));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        EventStream::new(response)
    }
}

/// A plan with `stages` stages, no gates and no minimum durations: progress is only limited
/// by the state machine, which is what race tests need.
pub fn open_plan(id: &str, stages: usize) -> Plan {
    let mut text = format!("[rollout]\nid = \"{id}\"\ntitle = \"Open\"\n");
    for i in 0..stages {
        let traffic = (i + 1) as f64 * 100.0 / stages as f64;
        text.push_str(&format!(
            "\n[[stage]]\nid = \"s{i}\"\ntraffic = {traffic}\n"
        ));
    }
    text.push_str("\n[[metric]]\nid = \"latency_ms\"\nkind = \"distribution\"\n");
    cutover_core::plan::parse("open.toml", &text).unwrap()
}

pub fn spiralogic() -> Plan {
    let text = include_str!("../../../plans/spiralogic.toml");
    cutover_core::plan::parse("spiralogic.toml", text).unwrap()
}

/// A client for the tests' own calls that follows no redirect, as cutover's calls out do: a
/// 3xx is an answer to look at, never a hop to a page that says 200.
#[allow(dead_code)]
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client with no TLS configuration builds")
}

/// Most a test reads of any answer: a snapshot with a week of chart series is well under it.
#[allow(dead_code)]
pub const ANSWER_LIMIT: usize = 16 << 20;

/// `GET url` with `token`, read as JSON (at most `ANSWER_LIMIT` bytes, as cutover's own calls
/// out read bounded): a test's look at a server it started as a process.
#[allow(dead_code)]
pub async fn get_json(http: &reqwest::Client, url: &str, token: &str) -> Value {
    let response = http.get(url).bearer_auth(token).send().await.unwrap();
    let body = cutover_server::net::read_bounded(response, ANSWER_LIMIT)
        .await
        .unwrap();
    serde_json::from_slice(&body).unwrap()
}

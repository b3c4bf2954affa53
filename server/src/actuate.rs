//! Actuators: what progress and kill do in the world. Each actuator of a plan has a worker
//! that applies the newest desired state (a webhook POST, or an env file rewritten
//! atomically) and retries with backoff until it is acknowledged; a newer state replaces an
//! older one mid-retry, so a kill is retried until acknowledged or superseded. Actions never
//! wait for actuators: a kill commits and answers even while every actuator is down.
//!
//! Every call carries the state version (in the body, and as `X-Cutover-Version` on
//! webhooks, and `CUTOVER_VERSION` in env files), so a receiver can drop a version older than
//! one it has already applied: with several replicas, one that heard of a change late may
//! deliver it after a newer one. Every replica's workers converge on the newest state, so
//! even a receiver that applies whatever arrives ends on it within the replicas' 1 s poll.
//! The env-file writer does not compare versions: a database restored from a backup restarts
//! them, and a kill must never be skipped as "older".

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use std::collections::BTreeMap;

use cutover_core::actuate::{ActuatorStatus, ApplyState, Desired, call};
use cutover_core::flag::FlagValue;
use cutover_core::plan::Actuator;
use tokio::sync::watch;

use crate::clock::{lock, now};

/// How long to wait between attempts: the first wait, doubled after each failure up to the
/// longest.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub longest: Duration,
}

pub const BACKOFF: Backoff = Backoff {
    first: Duration::from_millis(200),
    longest: Duration::from_secs(30),
};
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a delivery failed: what every viewer may read, and the receiver's own words, which
/// may carry anything (an internal page, a stack trace) and go to operators and leads only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Failure {
    pub error: String,
    /// At most `net::ANSWER_LIMIT` bytes of the receiver's answer.
    pub answer: Option<String>,
}

impl From<String> for Failure {
    fn from(error: String) -> Failure {
        Failure {
            error,
            answer: None,
        }
    }
}

impl From<&str> for Failure {
    fn from(error: &str) -> Failure {
        Failure::from(error.to_string())
    }
}

/// One actuator of a rollout: the newest desired state for its worker, and how far it got.
pub struct Handle {
    spec: Actuator,
    desired: watch::Sender<Desired>,
    status: Mutex<ActuatorStatus>,
    /// The receiver's answer to the last failed call (operators only, never in a snapshot).
    answer: Mutex<Option<String>>,
}

impl Handle {
    pub fn new(spec: Actuator, initial: Desired) -> Handle {
        let kind = match spec {
            Actuator::Webhook { .. } => "webhook",
            Actuator::EnvFile { .. } => "env_file",
        };
        let status = ActuatorStatus {
            id: spec.id().to_string(),
            kind: kind.to_string(),
            state: ApplyState::Applying,
            version: initial.version,
            attempts: 0,
            error: None,
            at: now(),
        };
        Handle {
            spec,
            desired: watch::channel(initial).0,
            status: Mutex::new(status),
            answer: Mutex::new(None),
        }
    }

    /// Records how far the worker got with `target`.
    pub fn set_status(
        &self,
        state: ApplyState,
        target: &Desired,
        attempts: u32,
        failure: Option<Failure>,
    ) {
        let (error, answer) = match failure {
            Some(f) => (Some(f.error), f.answer),
            None => (None, None),
        };
        // A retry in progress keeps the last answer to read; a success or a new failure
        // replaces it.
        if state != ApplyState::Applying {
            *lock(&self.answer) = answer;
        }
        let mut status = lock(&self.status);
        status.state = state;
        status.version = target.version;
        status.attempts = attempts;
        status.error = error;
        status.at = now();
    }

    /// The receiver's answer to the last failed call, for operators and leads.
    pub fn answer(&self) -> Option<String> {
        lock(&self.answer).clone()
    }

    /// A receiver of every desired state from now on, for this actuator's worker.
    pub fn subscribe(&self) -> watch::Receiver<Desired> {
        self.desired.subscribe()
    }

    pub fn spec(&self) -> &Actuator {
        &self.spec
    }

    pub fn status(&self) -> ActuatorStatus {
        lock(&self.status).clone()
    }

    /// Asks the worker to apply `desired`; returns at once.
    pub fn apply(&self, desired: Desired) {
        self.desired.send_replace(desired);
    }
}

/// Delivers one desired state to the world: `Ok` once it is acknowledged.
pub trait Deliver: Send + Sync + 'static {
    fn deliver(&self, desired: &Desired) -> impl Future<Output = Result<(), Failure>> + Send;
}

/// Hears how far a worker got. `false` means nobody is listening any more: the worker stops.
pub trait Progress: Send + Sync + 'static {
    fn report(
        &self,
        state: ApplyState,
        target: &Desired,
        attempts: u32,
        error: Option<Failure>,
    ) -> impl Future<Output = bool> + Send;
}

/// The worker: applies the newest desired state until it is acknowledged, then waits for a
/// newer one. A change at any moment (during a call, during the backoff, after success)
/// makes the next round start from the newest value: `borrow_and_update` at the top of each
/// round is the only place the worker marks a state as seen, so no change can be consumed
/// without being applied.
pub async fn converge(
    mut desired: watch::Receiver<Desired>,
    deliver: impl Deliver,
    progress: impl Progress,
    backoff: Backoff,
) {
    loop {
        let target = desired.borrow_and_update().clone();
        let mut delay = backoff.first;
        let mut attempts: u32 = 0;
        let acknowledged = loop {
            attempts = attempts.saturating_add(1);
            if !progress
                .report(ApplyState::Applying, &target, attempts, None)
                .await
            {
                return;
            }
            let result = deliver.deliver(&target).await;
            let (state, error) = match result {
                Ok(()) => (ApplyState::Applied, None),
                Err(e) => {
                    tracing::warn!(rollout = %target.rollout, version = target.version, attempts, "actuator failed: {}", e.error);
                    (ApplyState::Failed, Some(e))
                }
            };
            if !progress.report(state, &target, attempts, error).await {
                return;
            }
            if state == ApplyState::Applied {
                break true;
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                changed = desired.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    // A newer state arrived mid-backoff: the next round applies it.
                    break false;
                }
            }
            delay = (delay * 2).min(backoff.longest);
        };
        // After an acknowledgement, wait for a change (returns at once if one arrived during
        // the call). After a supersession, go straight to the newest value.
        if acknowledged && desired.changed().await.is_err() {
            return;
        }
    }
}

/// The production `Deliver`: a webhook POST (or calls shaped like the service's own API), or
/// an env file.
pub struct Applier {
    spec: Actuator,
    http: reqwest::Client,
    /// What a per-flag receiver holds, as far as its answers said: only changed flags are
    /// sent (all of them after a restart, which a flag API takes as no change).
    known: Mutex<BTreeMap<String, FlagValue>>,
}

impl Applier {
    pub fn new(spec: Actuator) -> Applier {
        let allow_private = matches!(
            spec,
            Actuator::Webhook {
                allow_private: true,
                ..
            }
        );
        let http = crate::net::receiver_client(CALL_TIMEOUT, allow_private);
        Applier {
            spec,
            http,
            known: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Deliver for Applier {
    async fn deliver(&self, desired: &Desired) -> Result<(), Failure> {
        match &self.spec {
            Actuator::Webhook {
                url,
                secret_env,
                allow_private,
                shape: Some(shape),
                ..
            } => {
                let known = lock(&self.known).clone();
                let calls = call::calls(shape, url, desired, &known)
                    .map_err(|e| Failure::from(e.to_string()))?;
                for c in calls {
                    let flag = c.flag.clone();
                    shaped(
                        &self.http,
                        shape,
                        secret_env.as_deref(),
                        *allow_private,
                        desired,
                        c,
                    )
                    .await?;
                    // Each flag the receiver took is not sent again on a retry.
                    if let Some(flag) = flag {
                        let mut known = lock(&self.known);
                        match desired.flags.get(&flag) {
                            Some(v) => known.insert(flag, v.clone()),
                            None => known.remove(&flag),
                        };
                    }
                }
                Ok(())
            }
            spec => apply(&self.http, spec, desired).await,
        }
    }
}

/// One call in the service's own terms; `Ok` on a 2xx answer.
async fn shaped(
    http: &reqwest::Client,
    shape: &cutover_core::plan::Shape,
    secret_env: Option<&str>,
    allow_private: bool,
    desired: &Desired,
    c: call::Call,
) -> Result<(), Failure> {
    let what = match &c.flag {
        Some(flag) => format!("flag {flag}"),
        None => "the call".to_string(),
    };
    crate::net::refuse_target(&c.url, allow_private)?;
    let method = reqwest::Method::from_bytes(c.method.as_bytes())
        .map_err(|_| format!("method {} is not one", c.method))?;
    let key = format!(
        "{}-{}{}",
        desired.rollout,
        desired.version,
        c.flag
            .as_deref()
            .map(|f| format!("-{f}"))
            .unwrap_or_default()
    );
    let mut request = http
        .request(method, &c.url)
        .header("idempotency-key", key)
        .header("x-cutover-version", desired.version);
    let mut typed = false;
    for (name, value) in &c.headers {
        typed |= name.eq_ignore_ascii_case("content-type");
        request = request.header(name.as_str(), value.as_str());
    }
    for (name, var) in &shape.headers_env {
        let value =
            std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?;
        typed |= name.eq_ignore_ascii_case("content-type");
        request = request.header(name.as_str(), value);
    }
    if let Some(name) = secret_env {
        let secret =
            std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))?;
        request = request.bearer_auth(secret);
    }
    if let Some(body) = c.body {
        if !typed {
            request = request.header("content-type", "application/json");
        }
        request = request.body(body);
    }
    let response = request.send().await.map_err(|e| {
        format!(
            "{what}: cannot reach the webhook: {}",
            crate::net::root_cause(&e)
        )
    })?;
    let answer = crate::net::Answer::read(response).await;
    match answer.failure("the webhook") {
        None => Ok(()),
        Some(error) => Err(Failure {
            error: format!("{what}: {error}"),
            answer: Some(answer.text).filter(|t| !t.is_empty()),
        }),
    }
}

async fn apply(http: &reqwest::Client, spec: &Actuator, desired: &Desired) -> Result<(), Failure> {
    match spec {
        Actuator::Webhook {
            url,
            secret_env,
            allow_private,
            ..
        } => {
            crate::net::refuse_target(url, *allow_private)?;
            let mut request = http
                .post(url)
                .header(
                    "idempotency-key",
                    format!("{}-{}", desired.rollout, desired.version),
                )
                .header("x-cutover-version", desired.version)
                .json(desired);
            if let Some(name) = secret_env {
                let secret = std::env::var(name)
                    .map_err(|_| format!("environment variable {name} is not set"))?;
                request = request.bearer_auth(secret);
            }
            let response = request
                .send()
                .await
                .map_err(|e| format!("cannot reach the webhook: {}", crate::net::root_cause(&e)))?;
            let answer = crate::net::Answer::read(response).await;
            match answer.failure("the webhook") {
                None => Ok(()),
                Some(error) => Err(Failure {
                    error,
                    answer: Some(answer.text).filter(|t| !t.is_empty()),
                }),
            }
        }
        Actuator::EnvFile { path, .. } => {
            let path = PathBuf::from(path);
            let text = desired.env_file();
            tokio::task::spawn_blocking(move || write_atomically(&path, &text))
                .await
                .map_err(|e| format!("writer failed: {e}"))?
                .map_err(|e| e.to_string().into())
        }
    }
}

/// Writes `text` to a temporary file beside `path`, syncs it and renames it over `path`:
/// readers see the old file or the new one, never half of one.
fn write_atomically(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A name of its own per write: two writers (replicas, or a retry racing a slow write)
    // never share a temporary file.
    let tmp = dir.join(format!(
        ".{name}.cutover-{}-{}",
        std::process::id(),
        crate::store::random_hex()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    // The flags can say more than a stranger on the machine should read.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        std::io::Error::new(e.kind(), format!("cannot replace {}: {e}", path.display()))
    })?;
    // The rename itself is durable once the directory is synced.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A receiver that is up or down, takes `latency` per call, and keeps what it accepted.
    #[derive(Clone, Default)]
    struct Receiver {
        down: Arc<AtomicBool>,
        accepted: Arc<Mutex<Vec<Desired>>>,
        latency: Duration,
    }

    impl Deliver for Receiver {
        async fn deliver(&self, desired: &Desired) -> Result<(), Failure> {
            tokio::time::sleep(self.latency).await;
            if self.down.load(Ordering::SeqCst) {
                return Err("connection refused".into());
            }
            lock(&self.accepted).push(desired.clone());
            Ok(())
        }
    }

    #[derive(Clone, Default)]
    struct Statuses(Arc<Mutex<Vec<(ApplyState, u64)>>>);

    impl Progress for Statuses {
        async fn report(&self, state: ApplyState, t: &Desired, _: u32, _: Option<Failure>) -> bool {
            lock(&self.0).push((state, t.version));
            true
        }
    }

    fn desired(version: u64, killed: bool) -> Desired {
        Desired {
            rollout: "r".into(),
            version,
            phase: if killed {
                cutover_core::rollout::Phase::Killed
            } else {
                cutover_core::rollout::Phase::Running
            },
            stage: Some("canary".into()),
            traffic: if killed { 0.0 } else { 10.0 },
            killed,
            flags: Default::default(),
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Step {
        /// The receiver goes down.
        Fail,
        /// A kill is committed.
        Kill,
        /// Another action (a checklist tick, say) is committed after whatever came before.
        Other,
        /// The receiver comes back.
        Recover,
    }

    fn permutations(items: &[Step]) -> Vec<Vec<Step>> {
        if items.len() <= 1 {
            return vec![items.to_vec()];
        }
        let mut out = Vec::new();
        for i in 0..items.len() {
            let mut rest = items.to_vec();
            let first = rest.remove(i);
            for mut tail in permutations(&rest) {
                tail.insert(0, first);
                out.push(tail);
            }
        }
        out
    }

    /// Every order of the receiver failing, a kill, another action and the receiver coming
    /// back, with pauses that land in a call, in a backoff and between rounds: the receiver
    /// always ends holding the newest state, and the status says it was applied. Real time
    /// with a fast backoff (2 ms doubling to 16 ms), every case at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn converges_on_the_newest_state_in_every_interleaving() {
        let mut cases = Vec::new();
        for order in permutations(&[Step::Fail, Step::Kill, Step::Other, Step::Recover]) {
            for pause in [0, 1, 3, 9, 40] {
                for latency in [0, 2, 7] {
                    for start_down in [false, true] {
                        cases.push(run_case(order.clone(), pause, latency, start_down));
                    }
                }
            }
        }
        assert_eq!(cases.len(), 24 * 5 * 3 * 2);
        futures::future::join_all(cases).await;
    }

    async fn run_case(order: Vec<Step>, pause: u64, latency: u64, start_down: bool) {
        let receiver = Receiver {
            latency: Duration::from_millis(latency),
            ..Receiver::default()
        };
        receiver.down.store(start_down, Ordering::SeqCst);
        let statuses = Statuses::default();
        let (tx, rx) = watch::channel(desired(1, false));
        let backoff = Backoff {
            first: Duration::from_millis(2),
            longest: Duration::from_millis(16),
        };
        let worker = tokio::spawn(converge(rx, receiver.clone(), statuses.clone(), backoff));
        let mut version = 1;
        let mut killed = false;
        for step in &order {
            match step {
                Step::Fail => receiver.down.store(true, Ordering::SeqCst),
                Step::Recover => receiver.down.store(false, Ordering::SeqCst),
                Step::Kill => {
                    version += 1;
                    killed = true;
                    tx.send_replace(desired(version, killed));
                }
                Step::Other => {
                    version += 1;
                    tx.send_replace(desired(version, killed));
                }
            }
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        // The receiver is up from here on (the order may have ended with it down).
        receiver.down.store(false, Ordering::SeqCst);
        let case =
            format!("{order:?} pause {pause} ms, latency {latency} ms, down at start {start_down}");
        let newest = desired(version, true);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let last = lock(&receiver.accepted).last().cloned();
            let status = lock(&statuses.0).last().copied();
            if last.as_ref() == Some(&newest) && status == Some((ApplyState::Applied, version)) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never converged in {case}: the receiver has {last:?}, the status says {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        worker.abort();
    }

    #[test]
    fn atomic_write_replaces_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(".env");
        write_atomically(&path, "A=1\nB=2\n").unwrap();
        write_atomically(&path, "A=3\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "A=3\n");
        let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary files left behind");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
    }
}

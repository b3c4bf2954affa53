//! Actuators: what progress and kill do in the world. Each actuator of a plan has a worker
//! that applies the newest desired state (a webhook POST, or an env file rewritten
//! atomically) and retries with backoff until it is acknowledged; a newer state replaces an
//! older one mid-retry, so a kill is retried until acknowledged or superseded. Actions never
//! wait for actuators: a kill commits and answers even while every actuator is down.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use cutover_core::actuate::{ActuatorStatus, ApplyState, Desired};
use cutover_core::plan::Actuator;
use tokio::sync::watch;

use crate::live::LiveEvent;
use crate::state::{Rollout, lock, now};

const FIRST_RETRY: Duration = Duration::from_millis(200);
const MAX_RETRY: Duration = Duration::from_secs(30);
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// One actuator of a rollout: the newest desired state for its worker, and how far it got.
pub struct Handle {
    spec: Actuator,
    desired: watch::Sender<Desired>,
    status: Mutex<ActuatorStatus>,
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
        }
    }

    pub fn status(&self) -> ActuatorStatus {
        lock(&self.status).clone()
    }

    /// Asks the worker to apply `desired`; returns at once.
    pub fn apply(&self, desired: Desired) {
        self.desired.send_replace(desired);
    }
}

/// Starts a worker per actuator of `rollout`. Workers hold the rollout weakly and stop when
/// it is gone.
pub fn spawn_workers(rollout: &Arc<Rollout>) {
    for index in 0..rollout.actuators.len() {
        let receiver = rollout.actuators[index].desired.subscribe();
        tokio::spawn(work(Arc::downgrade(rollout), index, receiver));
    }
}

async fn work(rollout: Weak<Rollout>, index: usize, mut desired: watch::Receiver<Desired>) {
    let http = reqwest::Client::builder()
        .timeout(CALL_TIMEOUT)
        .build()
        .unwrap_or_default();
    loop {
        let target = desired.borrow_and_update().clone();
        let mut delay = FIRST_RETRY;
        let mut attempts = 0;
        'retry: loop {
            attempts += 1;
            let Some(r) = rollout.upgrade() else { return };
            let spec = r.actuators[index].spec.clone();
            report(&r, index, ApplyState::Applying, &target, attempts, None).await;
            drop(r);
            let result = apply(&http, &spec, &target).await;
            let Some(r) = rollout.upgrade() else { return };
            match result {
                Ok(()) => {
                    report(&r, index, ApplyState::Applied, &target, attempts, None).await;
                    break 'retry;
                }
                Err(e) => {
                    tracing::warn!(rollout = %target.rollout, actuator = spec.id(), attempts, "actuator failed: {e}");
                    report(&r, index, ApplyState::Failed, &target, attempts, Some(e)).await;
                }
            }
            drop(r);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                changed = desired.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    // A newer state: apply that instead.
                    break 'retry;
                }
            }
            delay = (delay * 2).min(MAX_RETRY);
        }
        if desired.has_changed().unwrap_or(false) {
            continue;
        }
        if desired.changed().await.is_err() {
            return;
        }
    }
}

/// Records the actuator's progress and shows it to every viewer.
async fn report(
    rollout: &Rollout,
    index: usize,
    state: ApplyState,
    target: &Desired,
    attempts: u32,
    error: Option<String>,
) {
    {
        let mut status = lock(&rollout.actuators[index].status);
        status.state = state;
        status.version = target.version;
        status.attempts = attempts;
        status.error = error;
        status.at = now();
    }
    let snapshot = rollout.snapshot(now()).await;
    rollout.live.send(LiveEvent::State(Box::new(snapshot)));
}

async fn apply(http: &reqwest::Client, spec: &Actuator, desired: &Desired) -> Result<(), String> {
    match spec {
        Actuator::Webhook {
            url, secret_env, ..
        } => {
            let mut request = http
                .post(url)
                .header(
                    "idempotency-key",
                    format!("{}-{}", desired.rollout, desired.version),
                )
                .json(desired);
            if let Some(name) = secret_env {
                let secret = std::env::var(name)
                    .map_err(|_| format!("environment variable {name} is not set"))?;
                request = request.bearer_auth(secret);
            }
            let response = request.send().await.map_err(|e| {
                format!("cannot reach the webhook: {}", crate::error::root_cause(&e))
            })?;
            let status = response.status();
            if status.is_success() {
                Ok(())
            } else {
                let body = response.text().await.unwrap_or_default();
                let body: String = body.chars().take(200).collect();
                Err(format!("webhook answered {status}: {}", body.trim()))
            }
        }
        Actuator::EnvFile { path, .. } => {
            let path = PathBuf::from(path);
            let text = desired.env_file();
            tokio::task::spawn_blocking(move || write_atomically(&path, &text))
                .await
                .map_err(|e| format!("writer failed: {e}"))?
                .map_err(|e| e.to_string())
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
    let tmp = dir.join(format!(".{name}.cutover-{}", std::process::id()));
    let mut file = std::fs::File::create(&tmp)?;
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

    #[test]
    fn atomic_write_replaces_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(".env");
        write_atomically(&path, "A=1\nB=2\n").unwrap();
        write_atomically(&path, "A=3\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "A=3\n");
        let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary files left behind");
    }
}

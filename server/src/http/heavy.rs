//! Expensive reads (CSV exports, long chart ranges) run on the blocking pool, at most
//! `PER_CALLER` at once for one identity and `GLOBAL` at once in all, so they never occupy the
//! async workers that serve actions, and no single caller can queue up the machine: sixteen
//! week-long exports from one viewer once delayed a kill by 6 s.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use crate::clock::lock;
use crate::http::error::ApiError;

/// Heavy reads one identity may have running at once; more is a 429.
pub const PER_CALLER: usize = 2;
/// Heavy reads running at once in all; more wait their turn.
pub const GLOBAL: usize = 4;

pub struct Heavy {
    global: Arc<Semaphore>,
    running: Arc<Mutex<HashMap<String, usize>>>,
}

impl Default for Heavy {
    fn default() -> Self {
        Heavy {
            global: Arc::new(Semaphore::new(GLOBAL)),
            running: Arc::default(),
        }
    }
}

/// One caller's claim on a heavy read, given back on drop.
struct Claim {
    running: Arc<Mutex<HashMap<String, usize>>>,
    caller: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut running = lock(&self.running);
        if let Some(n) = running.get_mut(&self.caller) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.caller);
            }
        }
    }
}

impl Heavy {
    /// Runs `work` off the async workers for `caller`; 429 if `caller` already has
    /// `PER_CALLER` heavy reads running.
    pub async fn run<T: Send + 'static>(
        &self,
        caller: &str,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let claim = {
            let mut running = lock(&self.running);
            let n = running.entry(caller.to_string()).or_default();
            if *n >= PER_CALLER {
                return Err(ApiError::TooManyRequests(format!(
                    "{caller} already has {PER_CALLER} exports or long chart ranges running; wait for one to finish"
                )));
            }
            *n += 1;
            Claim {
                running: self.running.clone(),
                caller: caller.to_string(),
            }
        };
        // The claim goes with the work: a caller who hangs up does not get its share back
        // while the work still runs.
        self.run_shared(move || {
            let out = work();
            drop(claim);
            out
        })
        .await
    }

    /// Runs `work` off the async workers within the global limit only: for reads many
    /// browsers share one identity for (a wall and a dozen laptops as `viewer`).
    pub async fn run_shared<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = self
            .global
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
        tokio::task::spawn_blocking(move || {
            let out = work();
            drop(permit);
            out
        })
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("heavy read failed: {e}")))
    }
}

//! The wall clock and lock recovery: a leaf every layer may use, so none needs the runtime
//! for them.

use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use cutover_core::time::Millis;

/// Wall-clock milliseconds. The server reads the clock here and passes it into core.
pub fn now() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Locks a std mutex, recovering the data if a panicking thread poisoned it: every writer
/// leaves the data consistent between statements, so the value is still good.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

//! Sketches of rolled-up buckets, merged once per read and kept while the rolled-up tiers are
//! unchanged. A comparison since a stage's entry reads every bucket since then every second;
//! its minutes and ten minutes change only when the store compacts or imports (about once a
//! minute), so merging them again every second is wasted: 77 ms a second for a 30 h stage with
//! 8 label sets per arm (`cargo bench -p cutover-core --bench compare`).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use super::Sketch;
use crate::time::Millis;

/// At most this many reads are remembered; more, and all are forgotten (the next merges
/// refill it). A plan's comparisons make a few reads a rollout.
const MAX_READS: usize = 256;

/// A read of rolled-up buckets: the metric, the selector's pairs, and the starts taken from
/// the minute and ten-minute tiers.
pub(super) type Read = (String, Vec<(String, String)>, [(Millis, Millis); 2]);

#[derive(Default)]
struct Memo {
    /// The store's generation of rolled-up tiers these merges were made from.
    generation: u64,
    merged: HashMap<Read, Option<Sketch>>,
}

/// The merged sketches, per read. A copy of the store starts with none (nothing is shared).
#[derive(Default)]
pub(super) struct RolledSketches(Mutex<Memo>);

impl Clone for RolledSketches {
    fn clone(&self) -> Self {
        RolledSketches::default()
    }
}

impl std::fmt::Debug for RolledSketches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RolledSketches")
    }
}

impl RolledSketches {
    /// The merged sketch of `read` at `generation`: remembered, or made by `merge` and kept.
    pub(super) fn get(
        &self,
        generation: u64,
        read: Read,
        merge: impl FnOnce() -> Option<Sketch>,
    ) -> Option<Sketch> {
        // A panic elsewhere cannot leave a merge half made: entries are inserted whole.
        let mut memo = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if memo.generation != generation {
            memo.merged.clear();
            memo.generation = generation;
        }
        if let Some(sketch) = memo.merged.get(&read) {
            return sketch.clone();
        }
        let sketch = merge();
        if memo.merged.len() >= MAX_READS {
            memo.merged.clear();
        }
        memo.merged.insert(read, sketch.clone());
        sketch
    }
}

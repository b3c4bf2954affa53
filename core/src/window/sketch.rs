//! A bucket's quantile sketch: dense while its bucket takes samples, packed once the bucket
//! has rolled up into a minute or ten. A dense DDSketch store grows in chunks of 128 eight-byte
//! bins (at least 1 KiB); a week of rolled-up buckets is mostly closed sketches, and their
//! packed form (the library's own binary encoding, the one DataDog's Java sketches read) holds
//! the same bins in a few hundred bytes. Packing changes no count, bin or bound, so quantiles
//! and merges read the same before and after (`tests::packing_changes_nothing`).

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sketches_ddsketch::{Config, DDSketch};

use super::bucket::RELATIVE_ERROR;

/// Bins per sketch. With 1% accuracy 2048 bins span values from 1e-9 to beyond 1e8, so the
/// bound holds for any latency in ms. Also the decoder's default, which packing relies on.
const MAX_BINS: u32 = 2048;

/// The one configuration every sketch has: merges between sketches need equal configurations.
fn config() -> Config {
    Config::new(RELATIVE_ERROR, MAX_BINS, 1e-9)
}

#[derive(Clone)]
enum Repr {
    Dense(Box<DDSketch>),
    Packed(Box<[u8]>),
}

/// A quantile sketch with 1% relative accuracy. Serialized as the DDSketch it holds, whichever
/// form it is in, so stored buckets read the same as before packing existed.
#[derive(Clone)]
pub struct Sketch(Repr);

impl Default for Sketch {
    fn default() -> Self {
        Sketch(Repr::Dense(Box::new(DDSketch::new(config()))))
    }
}

impl Sketch {
    /// `n` samples of `v`.
    pub fn add(&mut self, v: f64, n: u64) {
        let dense = self.dense_mut();
        if n == 1 {
            dense.add(v);
        } else {
            dense.add_with_count(v, n);
        }
    }

    /// Adds `other`'s samples to this one's.
    pub fn merge(&mut self, other: &Sketch) {
        let theirs = other.dense();
        // Both sides share one configuration (packing keeps it), so merge cannot fail; keep
        // ours if it somehow does.
        let _ = self.dense_mut().merge(&theirs);
    }

    /// The value at quantile `q`; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.dense().quantile(q.clamp(0.0, 1.0)).ok().flatten()
    }

    /// How many samples it holds.
    pub fn count(&self) -> u64 {
        self.dense().count() as u64
    }

    /// Keeps the sketch in its packed form until a sample or a merge opens it again: for a
    /// bucket that has closed.
    pub fn pack(&mut self) {
        if let Repr::Dense(dense) = &self.0 {
            self.0 = Repr::Packed(dense.to_java_bytes().into_boxed_slice());
        }
    }

    /// Whether it is packed (for tests and the memory bench).
    pub fn is_packed(&self) -> bool {
        matches!(self.0, Repr::Packed(_))
    }

    /// The DDSketch itself, unpacked if need be.
    pub fn into_dense(self) -> DDSketch {
        match self.0 {
            Repr::Dense(dense) => *dense,
            Repr::Packed(_) => self.dense().into_owned(),
        }
    }

    fn dense(&self) -> Cow<'_, DDSketch> {
        match &self.0 {
            Repr::Dense(dense) => Cow::Borrowed(dense),
            Repr::Packed(bytes) => Cow::Owned(unpack(bytes)),
        }
    }

    fn dense_mut(&mut self) -> &mut DDSketch {
        if let Repr::Packed(bytes) = &self.0 {
            self.0 = Repr::Dense(Box::new(unpack(bytes)));
        }
        match &mut self.0 {
            Repr::Dense(dense) => dense,
            Repr::Packed(_) => unreachable!("unpacked just above"),
        }
    }
}

/// The sketch `bytes` were packed from. Only this module packs, from sketches of `config()`,
/// so decoding cannot fail; were it to, an empty sketch is the honest answer (no samples).
fn unpack(bytes: &[u8]) -> DDSketch {
    DDSketch::from_java_bytes(bytes).unwrap_or_else(|_| DDSketch::new(config()))
}

impl From<DDSketch> for Sketch {
    fn from(dense: DDSketch) -> Self {
        Sketch(Repr::Dense(Box::new(dense)))
    }
}

impl Serialize for Sketch {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.dense().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Sketch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        DDSketch::deserialize(deserializer).map(Sketch::from)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn filled(values: &[(f64, u64)]) -> Sketch {
        let mut s = Sketch::default();
        for &(v, n) in values {
            s.add(v, n);
        }
        s
    }

    const QS: [f64; 7] = [0.0, 0.01, 0.5, 0.9, 0.95, 0.999, 1.0];

    fn sample() -> impl Strategy<Value = Vec<(f64, u64)>> {
        // Latencies from sub-millisecond to minutes, some zeros and negatives (a gauge).
        prop::collection::vec(
            (
                prop_oneof![
                    8 => 0.01f64..120_000.0,
                    1 => Just(0.0),
                    1 => -500.0f64..-0.001,
                ],
                1u64..50,
            ),
            0..200,
        )
    }

    proptest! {
        #[test]
        fn packing_changes_nothing(a in sample(), b in sample()) {
            let dense = filled(&a);
            let mut packed = dense.clone();
            packed.pack();
            prop_assert!(packed.is_packed());
            prop_assert_eq!(packed.count(), dense.count());
            for q in QS {
                prop_assert_eq!(packed.quantile(q), dense.quantile(q));
            }
            // Merging either way round, packed or not, gives the same sketch.
            let other = filled(&b);
            let mut other_packed = other.clone();
            other_packed.pack();
            let mut want = dense.clone();
            want.merge(&other);
            for (mut mine, theirs) in [
                (packed.clone(), &other),
                (dense.clone(), &other_packed),
                (packed.clone(), &other_packed),
            ] {
                mine.merge(theirs);
                prop_assert_eq!(mine.count(), want.count());
                for q in QS {
                    prop_assert_eq!(mine.quantile(q), want.quantile(q));
                }
            }
            // A packed sketch takes samples again.
            let mut reopened = packed;
            reopened.add(42.0, 3);
            let mut direct = dense;
            direct.add(42.0, 3);
            for q in QS {
                prop_assert_eq!(reopened.quantile(q), direct.quantile(q));
            }
        }

        #[test]
        fn packing_keeps_a_collapsed_sketch(
            values in prop::collection::vec((-8.0f64..12.0, any::<bool>(), 1u64..5), 300..600),
            more in prop::collection::vec((-8.0f64..12.0, any::<bool>(), 1u64..5), 1..50),
        ) {
            // Values over twenty decades and both signs: more keys than the 2,048 bins a store
            // holds, so the lowest collapse. Packed, unpacked, and taking more samples after,
            // it must read as the dense one.
            let wide = |v: &[(f64, bool, u64)]| -> Vec<(f64, u64)> {
                v.iter().map(|&(e, neg, n)| (if neg { -1.0 } else { 1.0 } * 10f64.powf(e), n)).collect()
            };
            let mut dense = filled(&wide(&values));
            let Repr::Dense(d) = &dense.0 else { unreachable!("filled sketches are dense") };
            prop_assert!(d.length() >= 2048, "{} bins: not collapsed", d.length());
            let mut packed = dense.clone();
            packed.pack();
            for (v, n) in wide(&more) {
                dense.add(v, n);
                packed.add(v, n);
            }
            prop_assert_eq!(packed.count(), dense.count());
            for q in QS {
                prop_assert_eq!(packed.quantile(q), dense.quantile(q));
            }
        }

        #[test]
        fn a_stored_sketch_reads_the_same_packed_or_not(a in sample()) {
            // A bucket makes its sketch with its first sample (an empty one's infinite bounds
            // have no JSON).
            prop_assume!(!a.is_empty());
            let dense = filled(&a);
            let mut packed = dense.clone();
            packed.pack();
            for stored in [&dense, &packed] {
                let json = serde_json::to_string(stored).unwrap();
                let back: Sketch = serde_json::from_str(&json).unwrap();
                prop_assert_eq!(back.count(), dense.count());
                // serde_json's float parsing may differ in the last bit (min and max).
                for q in QS {
                    match (back.quantile(q), dense.quantile(q)) {
                        (Some(x), Some(y)) => prop_assert!((x - y).abs() <= y.abs() * 1e-12),
                        (x, y) => prop_assert_eq!(x, y),
                    }
                }
            }
        }
    }

    #[test]
    fn a_packed_latency_sketch_is_a_fraction_of_the_dense_one() {
        // Ten minutes of latencies from 20 ms to 2 s.
        let mut s = Sketch::default();
        for i in 0..6_000u32 {
            s.add(20.0 * 100f64.powf(f64::from(i % 997) / 997.0), 1);
        }
        let Repr::Dense(dense) = &s.0 else {
            unreachable!()
        };
        let bins = dense.length();
        s.pack();
        let Repr::Packed(bytes) = &s.0 else {
            panic!("not packed")
        };
        // Dense: 8 bytes a bin, in chunks of 128; packed: about three bytes a bin in use (its
        // index step and its count) and a header.
        assert!(
            bytes.len() * 2 < bins * 8,
            "{} bytes packed for {bins} bins",
            bytes.len()
        );
    }
}

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::gates::{GateStatus, Verdict};
use crate::query::{Aggregate, MetricKind, Selector};
use crate::series::Series;
use crate::time::{MINUTE, SECOND};
use crate::unit::Unit;
use crate::window::{MetricStore, Sample, SampleValue, StoreConfig};

const STEP: Millis = 10 * SECOND;
const RANGE: Millis = 15 * MINUTE;
const START: Millis = 1_700_000_000_000;

/// What the server does once a second: a fresh frame of the store's series (as
/// `runtime::charts::frame` makes it) and gate statuses.
fn fresh(store: &MetricStore, gates: &[GateStatus], seq: u64, now: Millis) -> Tick {
    fresh_named(store, gates, seq, now, "latency.p95")
}

fn fresh_named(
    store: &MetricStore,
    gates: &[GateStatus],
    seq: u64,
    now: Millis,
    p95: &str,
) -> Tick {
    let all = Selector::new();
    let read = |id: &str, metric: &str, aggregate: Aggregate, unit: Unit| Series {
        id: id.into(),
        label: id.into(),
        unit,
        points: store.series(metric, &all, &aggregate, now - RANGE + STEP, now, STEP),
    };
    Tick {
        seq,
        frame: Frame {
            rollout: "r".into(),
            at: now,
            step: STEP,
            series: vec![
                read(p95, "latency", Aggregate::Quantile(0.95), Unit::Ms),
                read("latency.count", "latency", Aggregate::Count, Unit::None),
                read("error.rate", "error", Aggregate::Rate, Unit::Ratio),
            ],
        },
        gates: gates.to_vec(),
        triggers: vec![],
        replicas: vec![crate::snapshot::ReplicaFreshness {
            replica: "b".into(),
            as_of: now - now % 5_000,
        }],
    }
}

fn gate(id: &str) -> GateStatus {
    let text = include_str!("../../../plans/spiralogic.toml");
    let plan = crate::plan::parse("spiralogic.toml", text).unwrap();
    let mut g = crate::gates::not_yet_evaluated(&plan, None).remove(0);
    g.id = id.into();
    g
}

/// One second of the world: events (some late), and maybe a gate that moves.
#[derive(Debug, Clone)]
struct Second {
    events: Vec<(Millis, f64, bool)>,
    gate_change: Option<(usize, u8)>,
    /// A plan edit renames a series: only a whole tick can say that.
    renamed: bool,
}

fn second() -> impl Strategy<Value = Second> {
    (
        prop::collection::vec((0..120_000i64, 1.0..2_000.0f64, any::<bool>()), 0..6),
        prop::option::of((0..3usize, 0..6u8)),
        prop::bool::weighted(0.05),
    )
        .prop_map(|(events, gate_change, renamed)| Second {
            events,
            gate_change,
            renamed,
        })
}

fn move_gate(g: &mut GateStatus, how: u8, now: Millis) {
    match how {
        0 => g.verdict = Verdict::Pass,
        1 => g.verdict = Verdict::Fail,
        2 => g.held_for = crate::time::Span(now % 3_600_000),
        3 => g.samples += 17,
        4 => g.reason = Some(format!("no samples at {now}")),
        _ => g.reason = None,
    }
}

/// What the network does to one event on its way to a viewer.
#[derive(Debug, Clone, Copy)]
enum Fate {
    Arrives,
    Lost,
    /// Arrives after the next one.
    Late,
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![8 => Just(Fate::Arrives), 1 => Just(Fate::Lost), 1 => Just(Fate::Late)]
}

/// The stream as a server sends it: a whole tick when there is no delta, else the delta.
#[derive(Debug, Clone)]
enum Sent {
    Whole(Tick),
    Delta(TickDelta),
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A viewer applying the stream holds, after every event it could apply, exactly the tick
    /// made fresh at that moment; after a gap it resyncs (a whole tick) and is exact again.
    #[test]
    fn a_viewer_applying_deltas_holds_the_fresh_tick(
        seconds in prop::collection::vec((second(), fate()), 1..90),
    ) {
        let mut store = MetricStore::new(
            StoreConfig::default(),
            [
                ("latency".to_string(), MetricKind::Distribution),
                ("error".to_string(), MetricKind::Ratio),
            ],
        );
        let mut gates = vec![gate("a"), gate("b"), gate("c")];
        let mut now = START;
        let mut p95 = "latency.p95".to_string();
        let mut sent = fresh(&store, &gates, 1, now);
        let mut viewer = sent.clone();
        let mut made = BTreeMap::from([(sent.seq, sent.clone())]);
        let mut held_back: Option<Sent> = None;
        for (i, (s, fate)) in seconds.into_iter().enumerate() {
            now += SECOND;
            for (ago, value, failed) in s.events {
                for (metric, value) in [
                    ("latency", SampleValue::Number(value)),
                    ("error", SampleValue::Flag(failed)),
                ] {
                    let sample = Sample {
                        metric: metric.into(),
                        labels: BTreeMap::new(),
                        ts: now - ago,
                        value,
                    };
                    let _ = store.record(&sample, now);
                }
            }
            store.compact(now);
            if let Some((g, how)) = s.gate_change {
                move_gate(&mut gates[g], how, now);
            }
            if s.renamed {
                p95 = format!("latency.p95.{i}");
            }
            let next = fresh_named(&store, &gates, i as u64 + 2, now, &p95);
            // Only a renamed series takes a whole tick; every other second is a delta.
            let event = match diff(&sent, &next) {
                Some(d) => Sent::Delta(d),
                None => {
                    prop_assert!(s.renamed, "no delta from {} to {}", sent.seq, next.seq);
                    Sent::Whole(next.clone())
                }
            };
            made.insert(next.seq, next.clone());
            sent = next;
            let arriving: Vec<Sent> = match fate {
                Fate::Lost => held_back.take().into_iter().collect(),
                Fate::Late => held_back.replace(event).into_iter().collect(),
                Fate::Arrives => [Some(event), held_back.take()].into_iter().flatten().collect(),
            };
            for event in arriving {
                match event {
                    Sent::Whole(t) => viewer = t,
                    Sent::Delta(d) => {
                        let before = viewer.clone();
                        if apply(&mut viewer, &d).is_err() {
                            prop_assert_eq!(&viewer, &before, "a gap leaves the tick alone");
                            // Resync: the stream starts again with the newest whole tick.
                            viewer = sent.clone();
                        }
                    }
                }
                // Whatever it holds is, exactly, the tick the server made with that number.
                prop_assert_eq!(&viewer, &made[&viewer.seq]);
            }
        }
        // Once the network delivers again, the newest delta or a resync brings it level.
        if viewer.seq != sent.seq {
            viewer = sent.clone();
        }
        prop_assert_eq!(&viewer, &sent);
    }

    /// A patch turns any JSON value into any other.
    #[test]
    fn a_patch_turns_one_value_into_the_other(a in json_value(), b in json_value()) {
        let mut patched = a.clone();
        if let Some(p) = patch(&a, &b) {
            apply_patch(&mut patched, &p).unwrap();
        }
        prop_assert_eq!(patched, b);
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-1000i64..1000).prop_map(Value::from),
        "[a-c]{0,3}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-c]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An idle tick costs little: the newest bucket of each series and the one gate that moved.
#[test]
fn a_quiet_second_costs_a_few_hundred_bytes() {
    let mut store = MetricStore::new(
        StoreConfig::default(),
        [("latency".to_string(), MetricKind::Distribution)],
    );
    let mut now = START;
    for i in 0..RANGE / SECOND {
        now += SECOND;
        let sample = Sample {
            metric: "latency".into(),
            labels: BTreeMap::new(),
            ts: now,
            value: SampleValue::Number(100.0 + i as f64),
        };
        store.record(&sample, now).unwrap();
    }
    let mut gates = vec![gate("a"), gate("b")];
    let old = fresh(&store, &gates, 7, now);
    now += SECOND;
    let sample = Sample {
        metric: "latency".into(),
        labels: BTreeMap::new(),
        ts: now,
        value: SampleValue::Number(5000.0),
    };
    store.record(&sample, now).unwrap();
    gates[1].samples = 4242;
    let new = fresh(&store, &gates, 8, now);
    let delta = diff(&old, &new).expect("the same series");
    let whole = serde_json::to_string(&new).unwrap().len();
    let sent = serde_json::to_string(&delta).unwrap();
    assert!(
        sent.len() * 20 < whole,
        "{} bytes against {whole}: {sent}",
        sent.len()
    );
    assert_eq!(delta.gates, Some(json!({"1": {"samples": 4242}})));
    assert_eq!(delta.triggers, None);
    let mut applied = old.clone();
    apply(&mut applied, &delta).unwrap();
    assert_eq!(applied, new);
}

#[test]
fn a_delta_for_another_tick_is_a_gap_and_changes_nothing() {
    let store = MetricStore::new(StoreConfig::default(), []);
    let old = fresh(&store, &[], 3, START);
    let new = fresh(&store, &[], 4, START + SECOND);
    let delta = diff(&old, &new).unwrap();
    let mut stale = fresh(&store, &[], 2, START);
    let before = stale.clone();
    assert_eq!(
        apply(&mut stale, &delta),
        Err(Gap::Base { base: 3, held: 2 })
    );
    assert_eq!(stale, before);
}

/// New series (a plan edit) cannot be said as a change: the server sends a whole tick.
#[test]
fn other_series_take_a_whole_tick() {
    let store = MetricStore::new(StoreConfig::default(), []);
    let old = fresh(&store, &[], 3, START);
    let mut new = fresh(&store, &[], 4, START + SECOND);
    new.frame.series[0].label = "renamed".into();
    assert_eq!(diff(&old, &new), None);
}

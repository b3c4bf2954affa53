//! Everything a handler needs, cheap to clone: storage and the loaded rollouts.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;

use crate::clock::{lock, now};
use cutover_core::actuate::Desired;
use cutover_core::audit::Integrity;
use cutover_core::evidence::{ChecklistEvidence, Evidence};
use cutover_core::gates::{self, Compiled, Evaluated, Memory};
use cutover_core::plan::Plan;
use cutover_core::rollout::{Readiness, RolloutState};
use cutover_core::series::Frame;
use cutover_core::snapshot::{Snapshot, Tick};
use cutover_core::time::Millis;
use cutover_core::window::{
    MetricStore, PersistedBucket, RecordError, ReplicaBuckets, SeriesSlot, StoreConfig,
};

use crate::runtime::charts;
use crate::runtime::live::Live;
use crate::sources::ingest::{IngestReport, Records, Rejection};
use crate::store::Storage;

#[derive(Clone)]
pub struct AppState {
    pub storage: Storage,
    pub rollouts: Arc<BTreeMap<String, Arc<Rollout>>>,
    /// This process among the replicas sharing one database: names the metric buckets it
    /// writes and the leases it holds. New at every start.
    pub replica: Arc<str>,
    /// Holds the evaluator lease: advances hold timers and trigger episodes and acts on
    /// triggers. The others show the same verdicts from the leader's saved timers.
    pub leader: Arc<std::sync::atomic::AtomicBool>,
    /// Set once when the server begins to shut down (`close`): live streams end so
    /// connections drain.
    pub closing: Arc<std::sync::atomic::AtomicBool>,
    /// The sign-ins of open streams, checked again every few seconds (`viewers::run`).
    pub viewers: Arc<crate::runtime::viewers::Viewers>,
    /// Where people reach this dashboard (`--public-url`), if said: `https://...` turns on
    /// `__Host-` secure cookies and HSTS.
    pub public_url: Option<Arc<str>>,
    /// Single sign-on, when the config names a provider.
    pub sso: Option<Arc<crate::sso::Sso>>,
}

/// The evaluator's carried state and its latest result.
#[derive(Default)]
pub struct Evaluation {
    pub memory: Memory,
    pub last: Option<Evaluated>,
    /// The memory as last written to storage, to write only changes.
    pub saved: Option<Memory>,
    /// When the recent metric buckets were last written.
    pub buckets_saved_at: Millis,
    /// When other replicas' buckets were last fetched.
    pub buckets_pulled_at: Millis,
}

/// One loaded plan: its durable state, its metrics, its latest evaluation, its viewers.
///
/// The rollout owns its locks; callers go through its methods. The lock order, which every
/// method that takes more than one follows, is:
///
/// 1. `state` (async; held from an action's decision to its commit, never by a reader for
///    longer than a copy),
/// 2. `metrics`, 3. `evaluation`, 4. `prom` (std mutexes; taken only inside these methods,
///    never across an `.await`, so no request can hold one while it waits on the network).
///
/// `otel` (OpenTelemetry's cumulative streams) is taken alone, by OTLP requests only, and let
/// go before their samples are recorded.
pub struct Rollout {
    pub plan: Plan,
    pub compiled: Compiled,
    /// The charts of its relative gates, for every frame.
    pub gate_charts: Vec<cutover_core::chart::GateChart>,
    /// The charts of its gates' sequential comparisons (interval over the stage).
    pub comparison_charts: Vec<cutover_core::chart::ComparisonChart>,
    /// What each gate judges on a plain series, drawn on its chart: worked out once.
    pub gate_readings: Vec<cutover_core::chart::GateReading>,
    /// The last committed state. Actions hold this lock from decision to commit, so actions
    /// on one rollout are serialised: a kill and a progress can never both decide on the same
    /// state, and whichever runs second sees the first.
    state: tokio::sync::Mutex<RolloutState>,
    metrics: Mutex<MetricStore>,
    evaluation: Mutex<Evaluation>,
    /// What Prometheus said last, for plans with Prometheus metrics or `promql(...)` gates.
    prom: Mutex<crate::sources::prometheus::PromStatus>,
    pub live: Live,
    /// One per plan actuator, each with a worker applying the newest state.
    pub actuators: Vec<crate::actuate::Handle>,
    /// One per `[[notify]]` channel, each with a worker delivering its queue.
    pub channels: crate::notify::Channels,
    /// Records accepted and rejected since start, for `/metrics`.
    pub ingested: AtomicU64,
    pub rejected: AtomicU64,
    /// The last check of the audit chain, by the head it was made at (one check at a time).
    integrity: tokio::sync::Mutex<Option<CheckedChain>>,
    /// Why the rollout is served under the plan it last ran under (the plan file lost its
    /// stage): read-only but for a kill, alerts and acknowledgements.
    pub mismatch: Option<String>,
    /// OpenTelemetry's cumulative streams, for turning their points into deltas.
    pub otel: Mutex<cutover_core::otel::Deltas>,
    /// What is published (read by flag readers without the action lock) and how far the
    /// fleet has applied it. Its locks are its own and taken alone.
    pub watch: crate::runtime::fleet::Watch,
}

/// An audit chain check and the head and moment it was made at.
struct CheckedChain {
    head: Option<String>,
    at: std::time::Instant,
    integrity: Integrity,
}

/// How long a chain check stands for an unchanged head: an edit that leaves the head alone
/// shows within this.
const INTEGRITY_FOR: std::time::Duration = std::time::Duration::from_secs(60);

/// What a rollout has not yet written to storage (`Rollout::unsaved`).
pub struct Unsaved {
    pub memory: Option<Memory>,
    pub buckets: Vec<PersistedBucket>,
    /// When the buckets were last written (now, if `buckets` is not empty).
    pub until: Millis,
}

/// Records recorded per taking of the metrics lock.
const RECORD_CHUNK: usize = 1_000;

impl Rollout {
    pub fn new(plan: Plan, state: RolloutState) -> anyhow::Result<Rollout> {
        let compiled = Compiled::new(&plan).with_context(|| format!("plan {}", plan.id))?;
        let kinds = plan.metrics.iter().map(|m| (m.id.clone(), m.kind));
        let metrics = MetricStore::new(StoreConfig::keeping(plan.lookback()), kinds)
            .selecting(compiled.selected_labels());
        let desired = Desired::of(&plan, &state);
        let actuators = plan
            .actuators
            .iter()
            .map(|a| crate::actuate::Handle::new(a.clone(), desired.clone()))
            .collect();
        let prom = crate::sources::prometheus::PromStatus::waiting(
            plan.metrics
                .iter()
                .filter(|m| m.source == cutover_core::plan::MetricSourceKind::Prometheus)
                .map(|m| m.id.clone()),
            "waiting for the first Prometheus answer",
        );
        let channels = crate::notify::Channels::new(&plan);
        let watch = crate::runtime::fleet::Watch::new(&plan, &state, now());
        Ok(Rollout {
            watch,
            mismatch: None,
            otel: Mutex::new(cutover_core::otel::Deltas::new(
                crate::sources::otlp::MAX_STREAMS,
            )),
            integrity: tokio::sync::Mutex::new(None),
            channels,
            gate_charts: cutover_core::chart::gate_charts(&plan),
            comparison_charts: cutover_core::chart::comparison_charts(&plan),
            gate_readings: cutover_core::chart::gate_readings(&plan),
            plan,
            compiled,
            prom: Mutex::new(prom),
            state: tokio::sync::Mutex::new(state),
            metrics: Mutex::new(metrics),
            evaluation: Mutex::new(Evaluation::default()),
            live: Live::default(),
            actuators,
            ingested: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        })
    }

    /// Records a batch's valid records at server time `now`. A record the metric windows
    /// refuse (too late) moves from accepted to rejected. The metrics lock is taken per chunk
    /// of records, so a large batch never holds the evaluator or a viewer for long; within a
    /// chunk each (label set, metric) is looked up once.
    pub fn record(&self, records: Records, now: Millis, report: &mut IngestReport) {
        let metrics = &self.plan.metrics;
        // Services that report the version they applied as a metric confirm it here.
        if let Some((confirm, label)) = self.watch.metric(&self.plan) {
            for record in records.iter() {
                let Some(instance) = records.labels_of(record).get(label) else {
                    continue;
                };
                for sample in records.samples_of(record) {
                    if let (true, crate::sources::ingest::ObservedValue::Number(v)) =
                        (sample.metric == confirm, sample.value)
                    {
                        self.watch.heard_metric(instance, v, now);
                    }
                }
            }
        }
        // Per chunk: label set -> its row of slots, one per plan metric.
        let mut rows: HashMap<usize, usize> = HashMap::new();
        let mut slots: Vec<Option<SeriesSlot>> = Vec::new();
        for chunk in records.chunks(RECORD_CHUNK) {
            rows.clear();
            slots.clear();
            let mut store = lock(&self.metrics);
            let mut recorder = store.recorder(now);
            for record in chunk {
                let row = *rows.entry(record.labels).or_insert_with(|| {
                    slots.resize(slots.len() + metrics.len(), None);
                    slots.len() / metrics.len().max(1) - 1
                });
                let mut refused = None;
                for sample in records.samples_of(record) {
                    let Some(metric) = metrics.get(sample.metric) else {
                        continue;
                    };
                    let cell = row * metrics.len() + sample.metric;
                    let slot = match slots[cell] {
                        Some(slot) => Ok(slot),
                        None => recorder.series(&metric.id, records.labels_of(record)),
                    };
                    let added = slot.and_then(|slot| {
                        slots[cell] = Some(slot);
                        recorder.add(slot, record.ts, sample.value.observation(metric))
                    });
                    if let Err(e) = added {
                        refused = Some(e);
                        break;
                    }
                }
                let Some(e) = refused else {
                    continue;
                };
                let field = match e {
                    RecordError::Dropped { .. } | RecordError::Future { .. } => "ts",
                    _ => "values",
                };
                report.accepted = report.accepted.saturating_sub(1);
                report.reject(Rejection {
                    index: record.index,
                    field: field.into(),
                    reason: e.to_string(),
                });
            }
            // Written here, under the lock.
            drop(recorder);
        }
        report.rejected.sort_by_key(|r| r.index);
        self.ingested
            .fetch_add(report.accepted as u64, Ordering::Relaxed);
        self.rejected
            .fetch_add(report.rejected_total as u64, Ordering::Relaxed);
    }

    /// Records OpenTelemetry's samples at server time `now`, in chunks as [`Rollout::record`]
    /// does; a sample the windows refuse (too late, ahead of time) rejects its point.
    pub fn record_weighted(
        &self,
        samples: &[crate::sources::otlp::Weighted],
        now: Millis,
        tally: &mut crate::sources::otlp::Tally,
    ) {
        use crate::sources::otlp::WeightedValue;
        use cutover_core::window::Observation;
        let metrics = &self.plan.metrics;
        if let Some((confirm, label)) = self.watch.metric(&self.plan) {
            for w in samples.iter().filter(|w| w.metric == confirm) {
                if let (Some(instance), WeightedValue::Number(v)) = (w.labels.get(label), w.value) {
                    self.watch.heard_metric(instance, v, now);
                }
            }
        }
        let mut taken = 0u64;
        for chunk in samples.chunks(RECORD_CHUNK) {
            let mut store = lock(&self.metrics);
            let mut recorder = store.recorder(now);
            // Samples of one point (a histogram's buckets) and of one stream's points come in a
            // row with the same labels: their series is looked up once, as the JSON path does.
            let mut last: Option<(usize, &std::collections::BTreeMap<String, String>, _)> = None;
            for w in chunk {
                let Some(metric) = metrics.get(w.metric) else {
                    continue;
                };
                let value = match w.value {
                    WeightedValue::Number(v) => Observation::Number(v),
                    WeightedValue::Flag(b) => Observation::Flag(b),
                    WeightedValue::Category(i) => {
                        Observation::Category(metric.values.get(i).map_or("", String::as_str))
                    }
                };
                let slot = match last {
                    Some((m, labels, slot)) if m == w.metric && *labels == w.labels => Ok(slot),
                    _ => recorder.series(&metric.id, &w.labels),
                };
                if let Ok(slot) = slot {
                    last = Some((w.metric, &w.labels, slot));
                }
                let added = slot.and_then(|slot| recorder.add_many(slot, w.ts, value, w.count));
                match added {
                    Ok(()) => taken += w.count,
                    Err(e) => tally.reject(w.point, format!("{}: {e}", metric.id)),
                }
            }
            drop(recorder);
        }
        self.ingested.fetch_add(taken, Ordering::Relaxed);
    }

    /// The state's committed value (a copy: the lock is released at once).
    pub async fn state(&self) -> RolloutState {
        self.state.lock().await.clone()
    }

    /// The state, locked from a decision to its commit (see the lock order above).
    pub async fn lock_state(&self) -> tokio::sync::MutexGuard<'_, RolloutState> {
        self.state.lock().await
    }

    /// Runs `f` on the metric windows. Keep it short: the evaluator and ingestion wait on it.
    pub fn with_metrics<R>(&self, f: impl FnOnce(&mut MetricStore) -> R) -> R {
        f(&mut lock(&self.metrics))
    }

    /// The metric windows' limits (retention, lateness, series per metric).
    pub fn metric_config(&self) -> StoreConfig {
        *lock(&self.metrics).config()
    }

    /// Replaces what Prometheus said last.
    pub fn set_prom(&self, status: crate::sources::prometheus::PromStatus) {
        *lock(&self.prom) = status;
    }

    /// The charts over `range` ending at `at` in steps of `step`.
    pub fn frame(&self, at: Millis, range: Millis, step: Millis) -> Frame {
        // Taken and let go before the metrics: never both at once here.
        let entered_at = lock(&self.evaluation).memory.stage.entered_at;
        charts::frame(
            &self.plan,
            (
                &self.gate_charts,
                &self.comparison_charts,
                &self.gate_readings,
            ),
            &lock(&self.metrics),
            entered_at,
            (at, range, step),
        )
    }

    /// Compacts the windows, evaluates every gate and trigger at `at` for `stage` (advancing
    /// hold timers and episodes), keeps the result as the latest, and draws the live charts.
    /// Also returns what people are told of since the previous evaluation (a lost hold, a
    /// resolved alert, silence).
    /// Evaluates every gate and trigger at `now`; with `frame`, also the live charts as they
    /// stand then (a replay of the past needs none: it is the costly part, under both locks).
    pub fn evaluate(
        &self,
        now: gates::Moment<'_>,
        frame: bool,
    ) -> (Evaluated, Vec<cutover_core::notify::Event>, Option<Frame>) {
        let at = now.at;
        let mut store = lock(&self.metrics);
        store.compact(at);
        let mut evaluation = lock(&self.evaluation);
        // After a restart or a gap with no evaluator, holds resume; they do not jump.
        evaluation.memory.skip_unobserved(at, gates::MAX_UNOBSERVED);
        let prom = lock(&self.prom);
        let source = crate::sources::prometheus::Source {
            store: &store,
            prom: &prom,
        };
        let evaluated = gates::evaluate(
            &self.plan,
            &self.compiled,
            &mut evaluation.memory,
            &source,
            now,
        );
        let events = match evaluation.last.replace(evaluated.clone()) {
            Some(before) => {
                cutover_core::notify::of_evaluations(&self.plan, &before, &evaluated, at)
            }
            None => Vec::new(),
        };
        let frame = frame.then(|| {
            charts::frame(
                &self.plan,
                (
                    &self.gate_charts,
                    &self.comparison_charts,
                    &self.gate_readings,
                ),
                &store,
                now.entered_at,
                (at, charts::LIVE_RANGE, charts::LIVE_STEP),
            )
        });
        (evaluated, events, frame)
    }

    /// An action's evidence, as the action was decided on `state`: every gate's and
    /// trigger's latest verdict (values, thresholds, held-for, samples) and each checklist's
    /// done and open items.
    pub fn evidence(&self, state: &RolloutState) -> Evidence {
        let checklists = self
            .plan
            .checklists
            .iter()
            .map(|list| {
                let (done, open): (Vec<_>, Vec<_>) = list
                    .items
                    .iter()
                    .partition(|item| state.item_done(list, item, Millis::MIN));
                let ids = |items: Vec<&cutover_core::plan::Item>| {
                    items.into_iter().map(|i| i.id.clone()).collect::<Vec<_>>()
                };
                let entry = ChecklistEvidence {
                    done: ids(done),
                    open: ids(open),
                };
                (list.id.clone(), entry)
            })
            .collect();
        let evaluation = lock(&self.evaluation);
        let last = evaluation.last.as_ref();
        Evidence {
            gates: last.map(|e| e.gates.clone()),
            triggers: last.map(|e| e.triggers.clone()),
            checklists,
            plan: None,
            confirmation: self.watch.confirmation(),
        }
    }

    /// The audit chain's head now and the server's check of the whole chain, made again only
    /// when the head moved or a minute passed (it reads every entry), one caller at a time.
    pub async fn integrity(
        &self,
        storage: &Storage,
    ) -> anyhow::Result<(Option<String>, Integrity)> {
        let head = storage.audit_head(&self.plan.id).await?;
        let mut checked = self.integrity.lock().await;
        if let Some(c) = checked.as_ref()
            && c.head == head
            && c.at.elapsed() < INTEGRITY_FOR
        {
            return Ok((head, c.integrity.clone()));
        }
        let verified = storage.verify_audit(&self.plan.id).await?;
        let integrity = Integrity {
            holds: verified.result.is_ok(),
            entries: verified.result.as_ref().copied().unwrap_or(0),
            problem: verified.result.as_ref().err().map(ToString::to_string),
            signed: verified.signed,
        };
        *checked = Some(CheckedChain {
            head: verified.head.clone(),
            at: std::time::Instant::now(),
            integrity: integrity.clone(),
        });
        Ok((verified.head, integrity))
    }

    /// The other replicas whose buckets are merged here and that wrote within
    /// `REPLICA_GONE_AFTER` of `now`, with when each last wrote. (One that stopped, or this
    /// server before a restart, keeps its buckets in the windows but is not listed.)
    pub fn replicas(&self, now: Millis) -> Vec<cutover_core::snapshot::ReplicaFreshness> {
        use cutover_core::snapshot::{REPLICA_GONE_AFTER, ReplicaFreshness};
        lock(&self.metrics)
            .remote_as_of()
            .into_iter()
            .filter(|(_, as_of)| now.saturating_sub(*as_of) < REPLICA_GONE_AFTER)
            .map(|(replica, as_of)| ReplicaFreshness { replica, as_of })
            .collect()
    }

    /// When other replicas' buckets were last fetched.
    pub fn pulled_at(&self) -> Millis {
        lock(&self.evaluation).buckets_pulled_at
    }

    /// Merges buckets fetched from storage (other replicas', or this one's before a restart)
    /// and, if given, takes `memory` as the hold timers; marks `at` as the time of the fetch.
    pub fn merge_stored(&self, buckets: Vec<ReplicaBuckets>, memory: Option<Memory>, at: Millis) {
        {
            let mut store = lock(&self.metrics);
            for from in buckets {
                store.import_remote(from);
            }
        }
        let mut evaluation = lock(&self.evaluation);
        evaluation.buckets_pulled_at = at;
        if let Some(memory) = memory {
            evaluation.saved = Some(memory.clone());
            evaluation.memory = memory;
        }
    }

    /// Takes what storage kept across a restart: chart history and hold timers. What is
    /// stored was written before: it is merged in, never written again.
    fn restore(&self, buckets: Vec<ReplicaBuckets>, memory: Option<Memory>, at: Millis) {
        {
            let mut store = lock(&self.metrics);
            for from in buckets {
                store.import_remote(from);
            }
            store.compact(at);
        }
        let mut evaluation = lock(&self.evaluation);
        evaluation.buckets_pulled_at = at;
        if let Some(memory) = memory {
            evaluation.memory = memory;
        }
    }

    /// What must be written now: the hold timers if `leader` and they are `due`, and every
    /// `save_every` the buckets that can still change (`open_for` back from `at`).
    pub fn unsaved(
        &self,
        leader: bool,
        due: impl FnOnce(Option<&Memory>, &Memory) -> bool,
        save_every: Millis,
        at: Millis,
    ) -> Unsaved {
        let store = lock(&self.metrics);
        let mut evaluation = lock(&self.evaluation);
        // Only the leader's timers are the rollout's; a follower's are a copy for display.
        let memory = (leader && due(evaluation.saved.as_ref(), &evaluation.memory))
            .then(|| evaluation.memory.clone());
        if memory.is_some() {
            evaluation.saved = memory.clone();
        }
        let buckets = if at - evaluation.buckets_saved_at >= save_every {
            evaluation.buckets_saved_at = at;
            // Everything before this was final when it was last written.
            let open_since = at - store.config().max_lateness - cutover_core::time::MINUTE;
            store.export_buckets(open_since, at)
        } else {
            Vec::new()
        };
        Unsaved {
            memory,
            buckets,
            until: evaluation.buckets_saved_at,
        }
    }

    /// The live charts now, with the latest gate and trigger statuses.
    pub fn tick(&self, now: Millis) -> Tick {
        let frame = self.frame(now, charts::LIVE_RANGE, charts::LIVE_STEP);
        let (gates, triggers) = match &lock(&self.evaluation).last {
            Some(e) => (e.gates.clone(), e.triggers.clone()),
            None => (Vec::new(), Vec::new()),
        };
        Tick {
            seq: 0,
            frame,
            gates,
            triggers,
            replicas: self.replicas(now),
        }
    }

    /// Gate readiness from the latest evaluation; before the first one, nothing has held.
    pub fn readiness(&self) -> Readiness {
        lock(&self.evaluation)
            .last
            .as_ref()
            .map(Evaluated::readiness)
            .unwrap_or_default()
    }

    /// A snapshot of `state` with the latest gate and trigger statuses.
    pub fn snapshot_of(&self, state: &RolloutState, now: Millis) -> Snapshot {
        let (gates, triggers) = match &lock(&self.evaluation).last {
            Some(e) => (e.gates.clone(), e.triggers.clone()),
            None => {
                let stage = state
                    .stage
                    .and_then(|i| self.plan.stages.get(i))
                    .map(|s| s.id.as_str());
                (
                    cutover_core::gates::not_yet_evaluated(&self.plan, stage),
                    Vec::new(),
                )
            }
        };
        let mut snapshot = Snapshot::new(&self.plan, state, gates, triggers, now);
        snapshot.actuators = self.actuators.iter().map(|a| a.status()).collect();
        snapshot.channels = self.channels.statuses();
        snapshot.plan_mismatch = self.mismatch.clone();
        snapshot.confirmation = self.watch.confirmation();
        snapshot
    }

    /// Publishes a newly committed state to flag readers and hands it to every actuator;
    /// returns at once.
    pub fn actuate(&self, state: &RolloutState) {
        let desired = self.watch.publish(&self.plan, state, now());
        for a in &self.actuators {
            a.apply(desired.clone());
        }
    }

    pub async fn snapshot(&self, now: Millis) -> Snapshot {
        let state = self.state().await;
        self.snapshot_of(&state, now)
    }

    /// Where the rollout stands, with its headline numbers.
    pub async fn summary(&self, now: Millis) -> cutover_core::snapshot::Summary {
        let snapshot = self.snapshot(now).await;
        let mut summary = snapshot.summary();
        summary.kpis = charts::kpis(&self.plan, &lock(&self.metrics), now);
        // A plan of counters and gauges (semantic-mirror's hit and denial rates) has no
        // latency or ratio to headline: its gates' values are the numbers people read.
        if summary.kpis.is_empty() {
            summary.kpis = snapshot.gate_headlines(charts::MAX_KPIS);
        }
        summary.trend = charts::trend(&self.plan, &lock(&self.metrics), now);
        summary
    }
}

impl AppState {
    /// Registers every plan as a rollout in storage and loads its durable state.
    pub async fn load(storage: Storage, plans: Vec<Plan>) -> anyhow::Result<AppState> {
        let mut rollouts = BTreeMap::new();
        let replica: Arc<str> = crate::store::random_hex()[..12].into();
        // Stored outboxes: on SQLite all are this server's own from before a restart; on
        // PostgreSQL only those of replicas that stopped are for this one to take.
        let stale_before = if storage.single_server() {
            Millis::MAX
        } else {
            now() - crate::store::OUTBOX_STALE
        };
        for plan in plans {
            let json = serde_json::to_string(&plan)?;
            // Actuators and channels are kept out of what browsers get, but not out of the
            // hash: re-pointing the kill webhook is a plan change, recorded as one.
            let receivers = serde_json::to_string(&(&plan.actuators, &plan.channels))?;
            let hash = crate::store::hash_token(&format!("{json}\n{receivers}"));
            let previous = storage.stored_plan(&plan.id).await?;
            if previous.is_none() {
                register(&storage, &plan, &hash, &json).await?;
            }
            let mut state = storage.load_state(&plan.id).await?.unwrap_or_default();
            // A plan that changed under a started rollout is mapped by stage id (or refused)
            // before it is recorded as the plan the rollout runs under.
            // A hash from before the actuators and channels counted, over the same plan: the
            // same plan, not an edit.
            let same_as_before = |old_hash: &str, old_json: &str| {
                old_json == json && old_hash == crate::store::hash_token(&json)
            };
            // Set when the file lost the stage the rollout stands at: the plan it ran under,
            // with the file's actuators and channels (so a kill reaches the world), and why.
            let mut mismatch: Option<(Plan, String)> = None;
            if let Some((old_hash, old_json)) = previous
                && old_hash != hash
                && !same_as_before(&old_hash, &old_json)
            {
                match serde_json::from_str::<Plan>(&old_json) {
                    Ok(old) => match reconcile_plan(
                        &storage,
                        (&old, &old_hash),
                        (&plan, &hash, &json),
                        state.clone(),
                    )
                    .await
                    {
                        Ok(next) => state = next,
                        // One rollout's plan that cannot be mapped must not stop the server
                        // and every other rollout's kill switch with it.
                        Err(e)
                            if e.downcast_ref::<cutover_core::rollout::ReconcileError>()
                                .is_some() =>
                        {
                            tracing::error!(rollout = %plan.id, "{e:#}: served read-only under the plan it last ran under");
                            mismatch = Some((old, format!("{e:#}")));
                        }
                        Err(e) => return Err(e),
                    },
                    // Registered before plans were kept, or not started: nothing to map.
                    Err(_) if old_json.is_empty() || state.stage.is_none() => {}
                    Err(e) => anyhow::bail!(
                        "rollout {}: the plan it last ran under cannot be read ({e}), so the change cannot be mapped by stage id",
                        plan.id
                    ),
                }
            }
            let rollout = match mismatch {
                // The stored plan stays the one it ran under: fixing the file maps it then.
                Some((mut old, why)) => {
                    old.actuators = plan.actuators.clone();
                    old.channels = plan.channels.clone();
                    let mut rollout = Rollout::new(old, state)?;
                    rollout.mismatch = Some(why);
                    rollout
                }
                None => {
                    register(&storage, &plan, &hash, &json).await?;
                    Rollout::new(plan, state)?
                }
            };
            // Chart history and hold timers survive a restart. What is stored was written by
            // other replicas or by this server before: it is merged in, never written again.
            let at = now();
            let since = at - rollout.metric_config().lookback();
            let buckets = storage.load_buckets(&rollout.plan.id, since).await?;
            let memory = storage.load_evaluation(&rollout.plan.id).await?;
            rollout.restore(buckets, memory, at);
            let rollout = Arc::new(rollout);
            // Adopted before any evaluation can tell an escalation again.
            let stored = storage
                .adopt_outboxes(&rollout.plan.id, &replica, stale_before)
                .await?;
            rollout.channels.adopt_stored(&rollout.plan.id, stored);
            // The world converges on the stored state after a restart, too.
            crate::runtime::actuators::spawn_workers(&rollout);
            rollout.channels.spawn_workers(&rollout.plan.id);
            rollouts.insert(rollout.plan.id.clone(), rollout);
        }
        Ok(AppState {
            storage,
            rollouts: Arc::new(rollouts),
            replica,
            leader: Arc::default(),
            closing: Arc::default(),
            viewers: Arc::default(),
            public_url: None,
            sso: None,
        })
    }

    /// Begins to shut down: every live stream ends, and a stream opened from now on ends after
    /// its first state. Set before telling, so a stream that subscribes after the telling
    /// sees the flag.
    pub fn close(&self) {
        self.closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        for rollout in self.rollouts.values() {
            rollout.live.send_closing();
        }
    }

    /// Whether the server has begun to shut down.
    pub fn is_closing(&self) -> bool {
        self.closing.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether people reach the dashboard over HTTPS.
    pub fn https(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }

    pub fn rollout(&self, id: &str) -> Option<&Arc<Rollout>> {
        self.rollouts.get(id)
    }
}

/// Records `plan` (its hash and JSON) as the plan its rollout runs under, registering the
/// rollout in a fresh state if it is new.
async fn register(storage: &Storage, plan: &Plan, hash: &str, json: &str) -> anyhow::Result<()> {
    let fresh = serde_json::to_string(&RolloutState::new())?;
    storage
        .ensure_rollout(&plan.id, &plan.title, hash, json, &fresh, now())
        .await?;
    Ok(())
}

/// Maps a started rollout onto its changed plan by stage id, recording the change in the
/// audit log in the same transaction as the new state and plan; refuses to load a plan that
/// dropped the stage the rollout is in. Another replica starting with the same new plan maps
/// it once: the loser of the race finds the plan already recorded and takes the stored state.
async fn reconcile_plan(
    storage: &Storage,
    (old, old_hash): (&Plan, &str),
    (new, new_hash, new_json): (&Plan, &str, &str),
    state: RolloutState,
) -> anyhow::Result<RolloutState> {
    use cutover_core::rollout::{Reconciled, reconcile};
    match reconcile(old, new, &state, old_hash != new_hash, now())? {
        Reconciled::Unchanged => Ok(state),
        Reconciled::Changed(next, record) => {
            tracing::warn!(rollout = %new.id, "{}", record.reason.as_deref().unwrap_or_default());
            if storage
                .commit_plan_change(
                    &new.id,
                    old_hash,
                    new_hash,
                    new_json,
                    state.version,
                    &next,
                    &record,
                )
                .await?
            {
                return Ok(next);
            }
            match storage.stored_plan(&new.id).await? {
                Some((hash, _)) if hash == new_hash => {
                    Ok(storage.load_state(&new.id).await?.unwrap_or(next))
                }
                _ => anyhow::bail!(
                    "rollout {} changed while its plan was being updated; start again",
                    new.id
                ),
            }
        }
    }
}

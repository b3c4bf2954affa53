//! The storage suite, run against both engines: SQLite in a temporary directory and a real
//! PostgreSQL that the test starts itself. Every query `Storage` has is exercised here, so a
//! query one engine reads differently fails on that engine.

use crate::pg;

use std::collections::BTreeMap;

use cutover_core::gates::{GateMemory, Memory};
use cutover_core::query::{Aggregate, MetricKind, MetricSource};
use cutover_core::role::Role;
use cutover_core::rollout::{Action, Actor, AuditRecord, Phase, RolloutState, StateSummary};
use cutover_core::window::{MetricStore, Sample, SampleValue, StoreConfig};
use cutover_server::store::{Backend, Storage, redact};
use pg::Postgres;

const T0: i64 = 1_800_000_000_000;

fn summary(phase: Phase) -> StateSummary {
    StateSummary {
        phase,
        stage: None,
        traffic: 0.0,
    }
}

fn record(at: i64, action: Action) -> AuditRecord {
    AuditRecord {
        at,
        actor: Actor {
            name: "alice".into(),
            role: Role::Operator,
            ..Default::default()
        },
        action,
        reason: Some("because".into()),
        before: summary(Phase::NotStarted),
        after: summary(Phase::Running),
    }
}

fn state(version: u64) -> RolloutState {
    RolloutState {
        phase: Phase::Running,
        stage: Some(0),
        stage_entered_at: Some(T0),
        version,
        ..RolloutState::new()
    }
}

async fn users(s: &Storage) {
    let first = s.upsert_user("alice", Role::Operator, T0).await.unwrap();
    let user = s.user_by_token(&first).await.unwrap().unwrap();
    assert_eq!((user.name.as_str(), user.role), ("alice", Role::Operator));
    // Re-keying replaces the token and the role; the old token stops working.
    let second = s.upsert_user("alice", Role::Lead, T0).await.unwrap();
    assert_ne!(first, second);
    assert_eq!(s.user_by_token(&first).await.unwrap(), None);
    assert_eq!(
        s.user_by_token(&second).await.unwrap().unwrap().role,
        Role::Lead
    );
    assert_eq!(s.user_by_token("cut_nothing").await.unwrap(), None);

    // A new token under the same role keeps the browser signed in; another role ends the
    // sessions opened under the old one, and revoking ends every session and the token.
    let carol = s.upsert_user("carol", Role::Operator, T0).await.unwrap();
    let carol = s.user_by_token(&carol).await.unwrap().unwrap();
    let (sid, _) = s.create_session(&carol, None, T0 + 60_000).await.unwrap();
    s.upsert_user("carol", Role::Operator, T0).await.unwrap();
    assert!(s.session(&sid, T0).await.unwrap().is_some(), "same role");
    let token = s.upsert_user("carol", Role::Viewer, T0).await.unwrap();
    assert_eq!(s.session(&sid, T0).await.unwrap(), None, "demoted");
    let carol = s.user_by_token(&token).await.unwrap().unwrap();
    let (sid, _) = s.create_session(&carol, None, T0 + 60_000).await.unwrap();
    let listed: Vec<(String, String)> = s
        .users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| (u.name, u.role))
        .collect();
    assert_eq!(
        listed,
        [
            ("alice".to_string(), "lead".to_string()),
            ("carol".to_string(), "viewer".to_string())
        ]
    );
    assert!(s.revoke_user("carol").await.unwrap());
    assert_eq!(s.user_by_token(&token).await.unwrap(), None);
    assert_eq!(s.session(&sid, T0).await.unwrap(), None, "revoked");
    assert!(!s.revoke_user("carol").await.unwrap(), "already gone");
}

async fn rollouts_and_actions(s: &Storage) {
    s.ensure_rollout("r1", "Rollout one", "h1", "", "{}", T0)
        .await
        .unwrap();
    assert_eq!(s.load_state("r1").await.unwrap(), None, "never written yet");
    let seq = s
        .commit_action(
            "r1",
            0,
            &state(1),
            &record(T0, Action::Start),
            &cutover_core::evidence::Evidence {
                checklists: [("t-30".to_string(), Default::default())].into(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .expect("first commit wins")
        .seq;
    // Loading the plan again (a restart, a new title) keeps the state.
    s.ensure_rollout("r1", "Rollout one, renamed", "h2", "", "{}", T0 + 1)
        .await
        .unwrap();
    assert_eq!(s.load_state("r1").await.unwrap(), Some(state(1)));
    assert_eq!(s.rollout_ids().await.unwrap(), vec!["r1".to_string()]);

    // A commit decided on a stale version loses and writes nothing.
    let stale = s
        .commit_action(
            "r1",
            0,
            &state(1),
            &record(T0, Action::Kill),
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(stale, None);
    let mut seqs = vec![seq];
    for v in 1..5 {
        let seq = s
            .commit_action(
                "r1",
                v,
                &state(v + 1),
                // Two approvals among the pauses: records that mark no chart.
                &record(
                    T0 + i64::try_from(v).unwrap(),
                    if v == 2 || v == 3 {
                        Action::Approve
                    } else {
                        Action::Pause
                    },
                ),
                &Default::default(),
            )
            .await
            .unwrap()
            .unwrap()
            .seq;
        seqs.push(seq);
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");

    // Audit: newest first, paged by `before`, evidence kept.
    let page = s.audit("r1", None, 3, false, false).await.unwrap();
    let got: Vec<i64> = page.iter().map(|e| e.seq).collect();
    assert_eq!(got, vec![seqs[4], seqs[3], seqs[2]]);
    let rest = s
        .audit("r1", Some(seqs[2]), 10, false, false)
        .await
        .unwrap();
    let got: Vec<i64> = rest.iter().map(|e| e.seq).collect();
    assert_eq!(got, vec![seqs[1], seqs[0]]);
    assert!(rest[1].evidence.checklists.contains_key("t-30"));
    assert_eq!(rest[1].record.action.name(), "start");
    assert_eq!(rest[1].record.actor.name, "alice");
    // Markers only: the approvals are left out, whatever the engine.
    let marks = s.audit("r1", None, 10, true, false).await.unwrap();
    let got: Vec<i64> = marks.iter().map(|e| e.seq).collect();
    assert_eq!(got, vec![seqs[4], seqs[1], seqs[0]]);
}

/// Many writers deciding on the same version at once: exactly one wins, whatever the engine.
async fn racing_commits(s: &Storage) {
    s.ensure_rollout("race", "Race", "h", "", "{}", T0)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.commit_action(
                "race",
                0,
                &state(1),
                &record(T0 + i, Action::Kill),
                &Default::default(),
            )
            .await
            .unwrap()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap().is_some());
    }
    assert_eq!(winners, 1);
    assert_eq!(
        s.audit("race", None, 100, false, false)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn idempotency(s: &Storage) {
    use cutover_server::store::Claim;
    assert_eq!(
        s.claim_idempotency("k1", "r1", "fp-a", T0).await.unwrap(),
        Claim::Claimed
    );
    // While the first request runs, the same request waits and a different one is refused.
    assert_eq!(
        s.claim_idempotency("k1", "r1", "fp-a", T0).await.unwrap(),
        Claim::InProgress
    );
    assert_eq!(
        s.claim_idempotency("k1", "r1", "fp-b", T0).await.unwrap(),
        Claim::Mismatch
    );
    s.remember_response("k1", 200, "{\"ok\":true}")
        .await
        .unwrap();
    assert_eq!(
        s.claim_idempotency("k1", "r1", "fp-a", T0).await.unwrap(),
        Claim::Replay(200, "{\"ok\":true}".to_string())
    );
    // A server that dies between the action's commit and its answer: the key was settled in
    // the action's transaction, so a retry long after the stale window replays (the state as
    // it is then) and never acts a second time.
    assert_eq!(
        s.claim_idempotency("k-crash", "r1", "fp-a", T0)
            .await
            .unwrap(),
        Claim::Claimed
    );
    let version = s.load_state("r1").await.unwrap().unwrap().version;
    s.commit_keyed(
        "r1",
        version,
        &state(version + 1),
        &record(T0, Action::Pause),
        &Default::default(),
        Some("k-crash"),
    )
    .await
    .unwrap()
    .expect("committed");
    let later = T0 + cutover_server::store::STALE_CLAIM + 1_000;
    assert_eq!(
        s.claim_idempotency("k-crash", "r1", "fp-a", later)
            .await
            .unwrap(),
        Claim::Replay(200, String::new())
    );
    // A released claim (a refusal the state may lift) can be claimed again.
    assert_eq!(
        s.claim_idempotency("k2", "r1", "fp-a", T0).await.unwrap(),
        Claim::Claimed
    );
    s.release_idempotency("k2").await.unwrap();
    assert_eq!(
        s.claim_idempotency("k2", "r1", "fp-a", T0).await.unwrap(),
        Claim::Claimed
    );
    // Of twenty concurrent claims of one fresh key, exactly one wins.
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.claim_idempotency("k3", "r1", "fp", T0).await.unwrap() })
        })
        .collect();
    let mut claimed = 0;
    for t in tasks {
        claimed += usize::from(t.await.unwrap() == Claim::Claimed);
    }
    assert_eq!(claimed, 1);
    // A claim its server never settled (it died mid-request) is taken over once stale.
    let stale = T0 + cutover_server::store::STALE_CLAIM + 1;
    assert_eq!(
        s.claim_idempotency("k3", "r1", "fp", T0 + 1).await.unwrap(),
        Claim::InProgress
    );
    assert_eq!(
        s.claim_idempotency("k3", "r1", "fp", stale).await.unwrap(),
        Claim::Claimed
    );
}

async fn pruning(s: &Storage) {
    use cutover_server::store::Claim;
    let later = T0 + 3 * cutover_core::time::DAY;
    let token = s.upsert_user("carol", Role::Viewer, T0).await.unwrap();
    let carol = s.user_by_token(&token).await.unwrap().unwrap();
    let (old, _) = s.create_session(&carol, None, T0 + 1_000).await.unwrap();
    let (fresh, _) = s.create_session(&carol, None, later + 1_000).await.unwrap();
    s.claim_idempotency("old-key", "r1", "fp", T0)
        .await
        .unwrap();
    s.claim_idempotency("new-key", "r1", "fp", later)
        .await
        .unwrap();
    let gone = s
        .prune(later, later - cutover_core::time::DAY, T0, T0)
        .await
        .unwrap();
    assert!(gone >= 2, "{gone}");
    assert_eq!(
        s.session(&old, T0).await.unwrap(),
        None,
        "an ended session goes"
    );
    assert!(
        s.session(&fresh, later).await.unwrap().is_some(),
        "a live one stays"
    );
    assert_eq!(
        s.claim_idempotency("old-key", "r1", "other", later)
            .await
            .unwrap(),
        Claim::Claimed,
        "a day-old key is forgotten"
    );
    assert_eq!(
        s.claim_idempotency("new-key", "r1", "other", later)
            .await
            .unwrap(),
        Claim::Mismatch,
        "a recent key is kept"
    );
}

async fn sessions_and_shares(s: &Storage) {
    let token = s.upsert_user("bob", Role::Viewer, T0).await.unwrap();
    let bob = s.user_by_token(&token).await.unwrap().unwrap();
    let (sid, csrf) = s.create_session(&bob, None, T0 + 1_000).await.unwrap();
    let session = s.session(&sid, T0).await.unwrap().unwrap();
    assert_eq!((session.user, session.csrf), (bob.clone(), csrf));
    assert_eq!(s.session(&sid, T0 + 1_000).await.unwrap(), None, "expired");
    s.end_session(&sid).await.unwrap();
    assert_eq!(s.session(&sid, T0).await.unwrap(), None, "ended");

    let (share_id, secret) = s.create_share("r1", "alice", T0, T0 + 5_000).await.unwrap();
    let share = s.share_by_secret(&secret, T0).await.unwrap().unwrap();
    assert_eq!(
        (share.id.as_str(), share.rollout.as_str()),
        (share_id.as_str(), "r1")
    );
    assert_eq!(s.share_by_secret(&secret, T0 + 5_000).await.unwrap(), None);
    let viewer = cutover_server::store::User {
        name: "share".into(),
        role: Role::Viewer,
        only_rollout: Some("r1".into()),
        also: Vec::new(),
        person: None,
        email: None,
    };
    let (sid, _) = s
        .create_session(&viewer, Some(&share_id), T0 + 5_000)
        .await
        .unwrap();
    assert_eq!(
        s.session(&sid, T0)
            .await
            .unwrap()
            .unwrap()
            .user
            .only_rollout,
        Some("r1".into())
    );
    assert!(s.revoke_share(&share_id, T0 + 1).await.unwrap());
    assert!(
        !s.revoke_share(&share_id, T0 + 2).await.unwrap(),
        "already revoked"
    );
    assert_eq!(
        s.session(&sid, T0 + 3).await.unwrap(),
        None,
        "revoked link ends sessions"
    );
    assert_eq!(s.share_by_secret(&secret, T0 + 3).await.unwrap(), None);
}

fn store() -> MetricStore {
    MetricStore::new(
        StoreConfig::default(),
        [("latency_ms".to_string(), MetricKind::Distribution)],
    )
}

fn sample(ts: i64, v: f64, variant: &str) -> Sample {
    Sample {
        metric: "latency_ms".into(),
        labels: BTreeMap::from([("variant".into(), variant.into())]),
        ts,
        value: SampleValue::Number(v),
    }
}

async fn buckets_and_evaluation(s: &Storage) {
    let now = T0 + 120_000;
    let mut live = store();
    for i in 0..1_000 {
        let variant = if i % 4 == 0 { "canary" } else { "baseline" };
        let ts = T0 + (i % 100) * 1_000;
        live.record(&sample(ts, (i % 97) as f64 + 1.0, variant), now)
            .unwrap();
    }
    let exported = live.export_buckets(T0, now);
    s.save_buckets("r1", "replica-a", &exported, now)
        .await
        .unwrap();
    // Writing the same buckets again replaces them rather than adding.
    s.save_buckets("r1", "replica-a", &exported, now)
        .await
        .unwrap();
    let mut loaded = s.load_buckets("r1", T0).await.unwrap();
    assert_eq!(loaded.len(), 1, "one replica's");
    let loaded = loaded.remove(0);
    assert_eq!((loaded.replica.as_str(), loaded.as_of), ("replica-a", now));
    assert_eq!(loaded.buckets.len(), exported.len());
    let mut restored = store();
    restored.import(loaded.buckets);
    let p95 = Aggregate::Quantile(0.95);
    let all = BTreeMap::new();
    assert_eq!(
        restored.series("latency_ms", &all, &p95, T0, now, 60_000),
        live.series("latency_ms", &all, &p95, T0, now, 60_000)
    );
    // Loading since a later time drops what is older, for good.
    let later = s
        .load_buckets("r1", T0 + 50_000)
        .await
        .unwrap()
        .remove(0)
        .buckets;
    assert!(!later.is_empty() && later.iter().all(|b| b.start >= T0 + 50_000));
    assert_eq!(
        s.load_buckets("r1", T0).await.unwrap()[0].buckets.len(),
        later.len(),
        "older rows deleted"
    );

    assert_eq!(s.load_evaluation("r1").await.unwrap(), None);
    let memory = Memory {
        gates: BTreeMap::from([(
            "p95".into(),
            GateMemory {
                held_since: Some(T0),
                failures_in_a_row: 2,
                cycle_from: Some(T0),
                cycles: 1,
            },
        )]),
        // What a stage carries (baselines, firings) survives a restart too.
        stage: cutover_core::expr::StageMemory {
            entered_at: Some(T0),
            baselines: BTreeMap::from([("60000|p95(latency_ms)".into(), 412.5)]),
            fired: BTreeMap::from([("slow".into(), 2)]),
        },
        ..Memory::default()
    };
    s.save_evaluation("r1", &memory).await.unwrap();
    assert_eq!(s.load_evaluation("r1").await.unwrap(), Some(memory));
}

/// Old 10 s rows roll up into 10 min rows, per replica and series, whole slices only: what
/// a restart loads then counts the same, quantiles included, and a second run changes nothing.
async fn rolling_up(s: &Storage) {
    const TEN: i64 = 10 * 60_000;
    // Before every other row of the suite, which the roll-up (across rollouts) must not reach.
    let base = T0 - cutover_core::time::DAY - T0.rem_euclid(TEN);
    let mut stores = [store(), store()];
    // 25 minutes of a sample every 5 s from each of two replicas: two whole slices and half.
    for i in 0..300 {
        let ts = base + i * 5_000;
        for (n, store) in stores.iter_mut().enumerate() {
            let v = (i % 89) as f64 + 1.0 + 100.0 * n as f64;
            store.record(&sample(ts, v, "canary"), ts).unwrap();
        }
    }
    let end = base + 25 * 60_000;
    for (n, (store, replica)) in stores.iter().zip(["a", "b"]).enumerate() {
        let rows = store.export_buckets(base, end);
        assert_eq!(rows.len(), 150, "fine rows");
        s.save_buckets("r3", replica, &rows, end + n as i64)
            .await
            .unwrap();
    }
    let removed = s.roll_up_buckets(end, TEN, 12).await.unwrap();
    assert_eq!(removed, 2 * 2 * 60, "two whole slices of each replica");
    let loaded = s.load_buckets("r3", base).await.unwrap();
    assert_eq!(loaded.len(), 2);
    for (n, (replica, store)) in loaded.iter().zip(&stores).enumerate() {
        let widths: Vec<i64> = replica.buckets.iter().map(|b| b.width).collect();
        assert_eq!(widths.iter().filter(|w| **w == TEN).count(), 2);
        assert_eq!(widths.iter().filter(|w| **w == 10_000).count(), 30);
        assert_eq!(replica.as_of, end + n as i64, "its age, not the roll-up's");
        let mut restored = self::store();
        restored.import(replica.buckets.clone());
        let all = BTreeMap::new();
        for aggregate in [Aggregate::Count, Aggregate::Quantile(0.95), Aggregate::Sum] {
            let read = |m: &MetricStore| {
                m.aggregate("latency_ms", &all, &aggregate, 2 * TEN + TEN / 2, end)
            };
            assert!(read(store).is_some());
            assert_eq!(read(&restored), read(store), "{aggregate:?}");
        }
    }
    assert_eq!(s.roll_up_buckets(end, TEN, 12).await.unwrap(), 0);
    let again = s.load_buckets("r3", base).await.unwrap();
    let rows = |r: &[cutover_core::window::ReplicaBuckets]| -> Vec<(String, i64, i64)> {
        r.iter()
            .flat_map(|r| {
                r.buckets
                    .iter()
                    .map(|b| (r.replica.clone(), b.start, b.width))
            })
            .collect()
    };
    assert_eq!(rows(&again), rows(&loaded));
}

async fn replicas(s: &Storage) {
    // Two replicas' buckets for the same series and period live side by side.
    let now = T0 + 120_000;
    let mut a = store();
    let mut b = store();
    a.record(&sample(T0, 10.0, "canary"), now).unwrap();
    b.record(&sample(T0, 30.0, "canary"), now).unwrap();
    s.save_buckets("r2", "a", &a.export_buckets(T0, now), now)
        .await
        .unwrap();
    s.save_buckets("r2", "b", &b.export_buckets(T0, now), now + 1_000)
        .await
        .unwrap();
    assert_eq!(s.load_buckets("r2", T0).await.unwrap().len(), 2);
    // What changed since a moment, written by someone else.
    let mut for_a = s.buckets_changed("r2", "a", now).await.unwrap();
    assert_eq!(for_a.len(), 1, "one replica's");
    assert_eq!(
        (for_a[0].replica.as_str(), for_a[0].as_of),
        ("b", now + 1_000)
    );
    assert_eq!(for_a[0].buckets.len(), 1);
    let mut merged = a.clone();
    merged.import_remote(for_a.remove(0));
    let all = BTreeMap::new();
    let count = merged.series("latency_ms", &all, &Aggregate::Count, T0, T0, 10_000);
    assert_eq!(count[0].v, Some(2.0));
    assert!(
        s.buckets_changed("r2", "a", now + 1_001)
            .await
            .unwrap()
            .is_empty()
    );

    // The evaluator lease: one holder at a time; renewable; taken over once it runs out.
    assert!(s.acquire_lease("evaluator", "a", T0, 5_000).await.unwrap());
    assert!(
        !s.acquire_lease("evaluator", "b", T0 + 1_000, 5_000)
            .await
            .unwrap()
    );
    assert!(
        s.acquire_lease("evaluator", "a", T0 + 4_000, 5_000)
            .await
            .unwrap()
    );
    assert!(
        !s.acquire_lease("evaluator", "b", T0 + 8_000, 5_000)
            .await
            .unwrap()
    );
    assert!(
        s.acquire_lease("evaluator", "b", T0 + 9_001, 5_000)
            .await
            .unwrap()
    );
    assert!(
        !s.acquire_lease("evaluator", "a", T0 + 9_002, 5_000)
            .await
            .unwrap()
    );
    s.release_lease("evaluator", "b").await.unwrap();
    assert!(
        s.acquire_lease("evaluator", "a", T0 + 9_003, 5_000)
            .await
            .unwrap()
    );

    let versions = s.versions().await.unwrap();
    // Five actions, and the one the idempotency crash committed.
    assert!(versions.contains(&("r1".to_string(), 6)), "{versions:?}");
}

/// Replicas racing for the lease at the same moment: exactly one wins.
async fn racing_leases(s: &Storage) {
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.acquire_lease("race", &format!("replica-{i}"), T0, 5_000)
                .await
                .unwrap()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1);
}

/// Moving a user to another rollout (same role) ends their browser sessions: a session must
/// not keep reading the rollout they were moved off.
async fn a_moved_user_loses_their_sessions(s: &Storage) {
    s.upsert_user_for("mover", Role::Viewer, Some("r1"), T0)
        .await
        .unwrap();
    let user = cutover_server::store::User {
        name: "mover".into(),
        role: Role::Viewer,
        only_rollout: Some("r1".into()),
        also: Vec::new(),
        person: None,
        email: None,
    };
    let (id, _) = s
        .create_session(&user, None, T0 + cutover_core::time::DAY)
        .await
        .unwrap();
    // Re-keyed on the same rollout and role: the session stays.
    s.upsert_user_for("mover", Role::Viewer, Some("r1"), T0)
        .await
        .unwrap();
    assert!(s.session(&id, T0).await.unwrap().is_some());
    s.upsert_user_for("mover", Role::Viewer, Some("race"), T0)
        .await
        .unwrap();
    assert!(
        s.session(&id, T0).await.unwrap().is_none(),
        "moved, still signed in"
    );
    let (id, _) = s
        .create_session(&user, None, T0 + cutover_core::time::DAY)
        .await
        .unwrap();
    s.upsert_user_for("mover", Role::Viewer, None, T0)
        .await
        .unwrap();
    assert!(
        s.session(&id, T0).await.unwrap().is_none(),
        "widened, same session"
    );
}

async fn suite(s: &Storage) {
    users(s).await;
    a_moved_user_loses_their_sessions(s).await;
    rollouts_and_actions(s).await;
    racing_commits(s).await;
    idempotency(s).await;
    sessions_and_shares(s).await;
    buckets_and_evaluation(s).await;
    replicas(s).await;
    rolling_up(s).await;
    racing_leases(s).await;
    pruning(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open_sqlite(dir.path()).await.unwrap();
    assert_eq!(s.backend(), Backend::Sqlite);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("cutover.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the database is the owner's alone");
    }
    suite(&s).await;
    // Reopening applies no migration twice and finds the data.
    drop(s);
    let s = Storage::open(None, dir.path()).await.unwrap();
    assert_eq!(s.rollout_ids().await.unwrap(), vec!["r1", "race"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_on_postgres() {
    let pg = Postgres::start();
    let url = pg.database("suite").await;
    let s = Storage::open(Some(&url), std::path::Path::new("unused"))
        .await
        .unwrap();
    assert_eq!(s.backend(), Backend::Postgres);
    suite(&s).await;
    // A second replica opening the same database finds the schema and the data.
    let again = Storage::open_postgres(&url).await.unwrap();
    assert_eq!(again.rollout_ids().await.unwrap(), vec!["r1", "race"]);
}

#[tokio::test]
async fn a_bad_database_url_is_refused_in_words_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let e = Storage::open(Some("mysql://u:hunter2@h/db"), dir.path())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("postgres://") && !e.contains("hunter2"), "{e}");
    // Nothing listens on port 1: the error names the URL, redacted.
    let e = format!(
        "{:#}",
        Storage::open_postgres("postgres://u:hunter2@127.0.0.1:1/db")
            .await
            .unwrap_err()
    );
    assert!(
        e.contains("u:***@127.0.0.1:1") && !e.contains("hunter2"),
        "{e}"
    );
    assert_eq!(redact("postgres://127.0.0.1/db"), "postgres://127.0.0.1/db");
}

//! The audit log cannot be rewritten unseen: on SQLite and PostgreSQL, 1,000 random single
//! edits, deletions and reorderings made straight in the database (as someone with the
//! database file or a SQL prompt would) are each named at the first entry whose chain breaks;
//! entries from before the chain are sealed once, and `cutover audit verify` says so in words
//! and in its exit code.

use std::process::Command;

use cutover_core::chain::Break;
use cutover_core::role::Role;
use cutover_core::rollout::{Action, Actor, AuditRecord, Phase, RolloutState, StateSummary};
use cutover_server::store::{Storage, verify_on};
use rand::{Rng, SeedableRng};
use sqlx::AnyPool;

use crate::pg::Postgres;

const T0: i64 = 1_800_000_000_000;
const ENTRIES: u64 = 24;
const CASES: usize = 1_000;

fn record(i: u64) -> AuditRecord {
    let summary = |phase| StateSummary {
        phase,
        stage: None,
        traffic: 0.0,
    };
    AuditRecord {
        at: T0 + i64::try_from(i).unwrap() * 1_000,
        actor: Actor {
            name: format!("person {}", i % 3),
            role: Role::Operator,
            ..Default::default()
        },
        action: if i.is_multiple_of(2) {
            Action::Pause
        } else {
            Action::Resume
        },
        reason: Some(format!("reason {i}")),
        before: summary(Phase::Running),
        after: summary(Phase::Paused),
    }
}

/// A rollout `id` with `ENTRIES` actions committed the way the server commits them.
async fn committed(s: &Storage, id: &str) {
    s.ensure_rollout(id, "Chained", "h", "", "{}", T0)
        .await
        .unwrap();
    for v in 0..ENTRIES {
        // The state each record says it left.
        let state = RolloutState {
            version: v + 1,
            phase: Phase::Paused,
            ..RolloutState::new()
        };
        s.commit_action(
            id,
            v,
            &state,
            &record(v),
            &cutover_core::evidence::Evidence {
                checklists: [(format!("v{v}"), Default::default())].into(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .expect("no race here");
    }
}

/// One audit row's columns, to move between rows.
type Row = (
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);

async fn row(tx: &mut sqlx::AnyConnection, seq: i64) -> Row {
    sqlx::query_as(
        "SELECT at, actor, role, action, record, prev_hash, hash FROM audit WHERE seq = $1",
    )
    .bind(seq)
    .fetch_one(&mut *tx)
    .await
    .unwrap()
}

async fn put(tx: &mut sqlx::AnyConnection, seq: i64, r: &Row) {
    sqlx::query(
        "UPDATE audit SET at = $1, actor = $2, role = $3, action = $4, record = $5, \
         prev_hash = $6, hash = $7 WHERE seq = $8",
    )
    .bind(r.0)
    .bind(&r.1)
    .bind(&r.2)
    .bind(&r.3)
    .bind(&r.4)
    .bind(&r.5)
    .bind(&r.6)
    .bind(seq)
    .execute(&mut *tx)
    .await
    .unwrap();
}

/// `CASES` tamperings of rollout `id`'s entries through `direct`, a connection of the tester's
/// own, each rolled back after the chain is read inside it.
async fn every_tampering_is_named(s: &Storage, direct: &AnyPool, id: &str) {
    let verified = s.verify_audit(id).await.unwrap();
    assert_eq!(verified.result, Ok(ENTRIES as usize));
    let seqs: Vec<i64> =
        sqlx::query_scalar("SELECT seq FROM audit WHERE rollout = $1 ORDER BY seq")
            .bind(id)
            .fetch_all(direct)
            .await
            .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xa0d17);
    let mut kinds = [0usize; 6];
    for case in 0..CASES {
        let mut tx = direct.begin().await.unwrap();
        let i = rng.random_range(0..seqs.len());
        let seq = seqs[i];
        let kind = rng.random_range(0..6);
        kinds[kind] += 1;
        let expected = match kind {
            // An edited reason: what the runbook review would read.
            0 => {
                sqlx::query(
                    "UPDATE audit SET record = replace(record, 'reason', 'excuse') WHERE seq = $1",
                )
                .bind(seq)
                .execute(&mut *tx)
                .await
                .unwrap();
                Some(seq)
            }
            // Who did it, or when.
            1 => {
                let sql = if rng.random_bool(0.5) {
                    "UPDATE audit SET actor = 'someone else' WHERE seq = $1"
                } else {
                    "UPDATE audit SET at = at + 60000 WHERE seq = $1"
                };
                sqlx::query(sql).bind(seq).execute(&mut *tx).await.unwrap();
                Some(seq)
            }
            // A deleted entry (a kill, say): named at the entry after it, or past the end.
            2 => {
                sqlx::query("DELETE FROM audit WHERE seq = $1")
                    .bind(seq)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                seqs.get(i + 1).copied()
            }
            // Two entries trade places, hashes and all.
            3 => {
                let j = (i + rng.random_range(1..seqs.len())) % seqs.len();
                let (a, b) = (seqs[i.min(j)], seqs[i.max(j)]);
                let (ra, rb) = (row(&mut tx, a).await, row(&mut tx, b).await);
                put(&mut tx, a, &rb).await;
                put(&mut tx, b, &ra).await;
                Some(a)
            }
            // A hash replaced.
            4 => {
                sqlx::query("UPDATE audit SET hash = $1 WHERE seq = $2")
                    .bind(format!("{case:064x}"))
                    .bind(seq)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                Some(seq)
            }
            // Hashes removed, as if the entry were from before the chain.
            _ => {
                sqlx::query("UPDATE audit SET prev_hash = NULL, hash = NULL WHERE seq = $1")
                    .bind(seq)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                Some(seq)
            }
        };
        let found = verify_on(&mut tx, id, s.audit_key()).await.unwrap();
        let broken = found.result.expect_err("tampering went unseen");
        assert_eq!(
            broken.seq(),
            expected,
            "case {case} (kind {kind}, entry {seq}): {broken}"
        );
        if expected.is_none() {
            assert!(matches!(broken, Break::Truncated { .. }), "{broken}");
        }
        tx.rollback().await.unwrap();
    }
    assert!(
        kinds.iter().all(|&k| k > 100),
        "every kind tried: {kinds:?}"
    );
    // Rolled back every time: the chain holds again.
    assert_eq!(
        s.verify_audit(id).await.unwrap().result,
        Ok(ENTRIES as usize)
    );
}

#[tokio::test]
async fn every_single_tampering_is_named_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open_sqlite(dir.path()).await.unwrap();
    committed(&s, "chained").await;
    let url = format!("sqlite://{}", dir.path().join("cutover.db").display());
    let direct = AnyPool::connect(&url).await.unwrap();
    every_tampering_is_named(&s, &direct, "chained").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_single_tampering_is_named_on_postgres() {
    let pg = Postgres::start();
    let url = pg.database("chain").await;
    let s = Storage::open_postgres(&url).await.unwrap();
    committed(&s, "chained").await;
    let direct = AnyPool::connect(&url).await.unwrap();
    every_tampering_is_named(&s, &direct, "chained").await;
}

/// Entries written before the chain existed are chained when the database is opened, once;
/// `cutover audit verify` then says the chain holds, and names an edit made afterwards (exit 1).
#[tokio::test]
async fn old_entries_are_sealed_once_and_audit_verify_names_an_edit() {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open_sqlite(dir.path()).await.unwrap();
    committed(&s, "old").await;
    s.close().await;
    let url = format!("sqlite://{}", dir.path().join("cutover.db").display());
    let direct = AnyPool::connect(&url).await.unwrap();
    // As a database from before the chain: no hashes, no head.
    sqlx::query("UPDATE audit SET prev_hash = NULL, hash = NULL")
        .execute(&direct)
        .await
        .unwrap();
    sqlx::query("UPDATE rollouts SET audit_head = NULL, audit_head_mac = NULL")
        .execute(&direct)
        .await
        .unwrap();
    // As the sealing migration lists every rollout that exists when it runs.
    sqlx::query("INSERT INTO audit_seal (rollout) VALUES ('old')")
        .execute(&direct)
        .await
        .unwrap();
    // Closed before another process opens the file: an open pool in this process beside the
    // CLI's has read as a stale chain (or "disk I/O error") under load.
    direct.close().await;
    let s = Storage::open_sqlite(dir.path()).await.unwrap();
    assert_eq!(
        s.verify_audit("old").await.unwrap().result,
        Ok(ENTRIES as usize)
    );
    s.close().await;

    let verify = || {
        Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(["audit", "verify", "--data-dir"])
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let out = verify();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.starts_with("old: 24 entries, the chain holds (head ") && text.contains(", signed)"),
        "{text}"
    );

    // Someone softens a reason, and then hides the hashes to be "from before the chain".
    let direct = AnyPool::connect(&url).await.unwrap();
    let third: i64 = sqlx::query_scalar("SELECT seq FROM audit ORDER BY seq LIMIT 1 OFFSET 2")
        .fetch_one(&direct)
        .await
        .unwrap();
    sqlx::query("UPDATE audit SET record = replace(record, 'reason', 'excuse'), prev_hash = NULL, hash = NULL WHERE seq = $1")
        .bind(third)
        .execute(&direct)
        .await
        .unwrap();
    direct.close().await;
    let s = Storage::open_sqlite(dir.path()).await.unwrap();
    s.close().await;
    let out = verify();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("old: BROKEN: entry {third} carries no hash")),
        "not resealed on open: {text}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["audit", "verify", "nope", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("there is no rollout \"nope\""));
}

/// A verifier that knows nothing of cutover's code: it reads the audit pages and the
/// rollout's state over HTTP, recomputes each link as the API documents it (SHA-256 of the
/// compact JSON array of the hashed columns), and compares the end with a head it kept from
/// before. Returns what it found wrong, or `None`.
async fn third_party_check(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    id: &str,
    kept_head: &str,
) -> Option<String> {
    use sha2::Digest;
    let mut links: Vec<serde_json::Value> = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let mut path = format!("{url}/api/rollouts/{id}/audit?chain=true&limit=500");
        if let Some(b) = before {
            path.push_str(&format!("&before={b}"));
        }
        let page = crate::support::get_json(http, &path, token).await;
        if page.get("entries").is_none() {
            return Some(format!("no audit page: {page}"));
        }
        let entries = page["entries"].as_array().expect("an audit page");
        links.extend(entries.iter().map(|e| e["chain"].clone()));
        match page["next_before"].as_i64() {
            Some(next) if entries.len() == 500 => before = Some(next),
            _ => break,
        }
    }
    links.reverse();
    let mut prev = String::new();
    let mut seen_kept = false;
    for link in &links {
        let (Some(hash), Some(claimed)) = (link["hash"].as_str(), link["prev_hash"].as_str())
        else {
            return Some("an entry carries no hash".into());
        };
        if claimed != prev {
            return Some("an entry does not follow the one before".into());
        }
        let content = serde_json::json!([
            prev,
            link["rollout"],
            link["at"],
            link["actor"],
            link["role"],
            link["action"],
            link["record"]
        ])
        .to_string();
        if hex::encode(sha2::Sha256::digest(content.as_bytes())) != hash {
            return Some("an entry's hash does not match its content".into());
        }
        seen_kept |= hash == kept_head;
        prev = hash.to_string();
    }
    if !seen_kept {
        return Some("the head kept from before is not in the log: it was rewritten".into());
    }
    let state = crate::support::get_json(http, &format!("{url}/api/rollouts/{id}"), token).await;
    let last: serde_json::Value =
        serde_json::from_str(links.last()?["record"].as_str().unwrap()).unwrap();
    if last["after"]["phase"] != state["state"]["phase"] {
        return Some("the state is not the one the newest entry left".into());
    }
    None
}

/// The four ways a database writer can try to rewrite history (delete the newest entries and
/// move the head; strip every hash and restart; edit an entry and recompute every hash and
/// the head; un-kill the state), each named by `cutover audit verify` and by a third party
/// that reads only the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rewrite_is_named_by_audit_verify_and_from_the_api_alone() {
    use crate::support::{TestApp, open_plan};
    use serde_json::json;
    struct Case {
        name: &'static str,
        sql: &'static [&'static str],
        verify_says: &'static str,
    }
    let cases = [
        Case {
            name: "truncate and move the head",
            sql: &[
                "DELETE FROM audit WHERE seq = (SELECT max(seq) FROM audit WHERE rollout = 'ledger')",
                "UPDATE rollouts SET audit_head = (SELECT hash FROM audit WHERE rollout = 'ledger' ORDER BY seq DESC LIMIT 1), \
                 state = replace(state, '\"killed\"', '\"running\"') WHERE id = 'ledger'",
            ],
            verify_says: "not signed by this server's audit key",
        },
        Case {
            name: "strip every hash",
            sql: &[
                "UPDATE audit SET prev_hash = NULL, hash = NULL",
                "UPDATE rollouts SET audit_head = NULL, audit_head_mac = NULL",
            ],
            verify_says: "carries no hash",
        },
        Case {
            name: "edit and recompute",
            sql: &[],
            verify_says: "not signed by this server's audit key",
        },
        Case {
            name: "un-kill the state",
            sql: &[
                "UPDATE rollouts SET state = replace(state, '\"killed\"', '\"running\"') WHERE id = 'ledger'",
            ],
            verify_says: "the state was changed around the audit log",
        },
    ];
    for case in cases {
        let dir = tempfile::tempdir().unwrap();
        let app = TestApp::start(dir.path(), vec![open_plan("ledger", 2)]).await;
        for (action, body) in [
            ("start", json!({})),
            ("progress", json!({})),
            ("kill", json!({"reason": "errors"})),
        ] {
            let (status, answer) = app
                .post(
                    Some(Role::Operator),
                    &format!("/api/rollouts/ledger/{action}"),
                    body,
                )
                .await;
            assert_eq!(status, 200, "{action}: {answer}");
        }
        let page = app.get("/api/rollouts/ledger/audit").await;
        assert_eq!(page["integrity"]["holds"], true, "{page}");
        // Every page carries each entry's links, the newest's hash being the head.
        let newest = &page["entries"][0];
        assert_eq!(newest["hash"], page["head"], "{page}");
        assert_eq!(newest["prev_hash"], page["entries"][1]["hash"], "{page}");
        assert_eq!(page["integrity"]["signed"], true, "{page}");
        // The head as a report or a kill notification published it.
        let kept = page["head"].as_str().unwrap().to_string();
        let token = app.token(Role::Viewer).to_string();
        let http = reqwest::Client::new();
        assert_eq!(
            third_party_check(&http, &app.url, &token, "ledger", &kept).await,
            None
        );
        app.stop().await;

        let url = format!("sqlite://{}", dir.path().join("cutover.db").display());
        let direct = AnyPool::connect(&url).await.unwrap();
        for sql in case.sql {
            sqlx::query(sql).execute(&direct).await.unwrap();
        }
        if case.name == "edit and recompute" {
            // The kill's reason softened, then every hash and the head recomputed as the
            // server would (all but the signature, whose key is not in the database).
            sqlx::query("UPDATE audit SET record = replace(record, 'errors', 'a drill')")
                .execute(&direct)
                .await
                .unwrap();
            let rows: Vec<(i64, String, i64, String, String, String, String)> = sqlx::query_as(
                "SELECT seq, rollout, at, actor, role, action, record FROM audit WHERE rollout = 'ledger' ORDER BY seq",
            )
            .fetch_all(&direct)
            .await
            .unwrap();
            let mut prev = String::new();
            for (seq, rollout, at, actor, role, action, record) in rows {
                let hash =
                    cutover_core::chain::hash(&prev, &rollout, at, &actor, &role, &action, &record);
                sqlx::query("UPDATE audit SET prev_hash = $1, hash = $2 WHERE seq = $3")
                    .bind(&prev)
                    .bind(&hash)
                    .bind(seq)
                    .execute(&direct)
                    .await
                    .unwrap();
                prev = hash;
            }
            sqlx::query("UPDATE rollouts SET audit_head = $1 WHERE id = 'ledger'")
                .bind(&prev)
                .execute(&direct)
                .await
                .unwrap();
        }
        direct.close().await;

        // `audit verify` names it, and creates nothing beside the database.
        let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(["audit", "verify", "--data-dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{}: {text}", case.name);
        assert!(text.contains("ledger: BROKEN: "), "{}: {text}", case.name);
        assert!(text.contains(case.verify_says), "{}: {text}", case.name);

        // Reopened by the server: nothing is sealed again, and its audit pages say so.
        let app = TestApp::start(dir.path(), vec![open_plan("ledger", 2)]).await;
        let page = app.get("/api/rollouts/ledger/audit").await;
        assert_eq!(page["integrity"]["holds"], false, "{}: {page}", case.name);
        // Tokens are minted anew at each start.
        let token = app.token(Role::Viewer).to_string();
        let found = third_party_check(&http, &app.url, &token, "ledger", &kept).await;
        println!("{}: the third party found: {found:?}", case.name);
        assert!(
            found
                .as_deref()
                .is_some_and(|f| !f.starts_with("no audit page")),
            "{}: the third party saw nothing: {found:?}",
            case.name
        );
        app.stop().await;
    }
}

/// `audit verify` reads only: a missing database is an error, and nothing is created.
#[test]
fn audit_verify_creates_nothing_and_fails_on_a_missing_database() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["audit", "verify", "--data-dir"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("there is no database"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!missing.exists(), "verify created the data directory");
}

//! The audit log's hash chain (see `cutover_core::chain`): linking each new entry inside the
//! transaction that writes it, sealing entries written before the chain existed, and reading a
//! rollout's chain back to verify it.

use cutover_core::chain::{self, Break, Link};
use sqlx::AnyConnection;

use crate::store::{AuditKey, Storage};

/// The content columns a link hashes, then its two hashes, oldest first.
const LINKS: &str = "SELECT seq, rollout, at, actor, role, action, record, prev_hash, hash \
                     FROM audit WHERE rollout = $1 ORDER BY seq";

type Row = (
    i64,
    String,
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);

fn link(row: Row) -> Link {
    let (seq, rollout, at, actor, role, action, record, prev, hash) = row;
    Link {
        seq,
        rollout,
        at,
        actor,
        role,
        action,
        record,
        prev,
        hash,
    }
}

/// The entry to append: its content as it will be stored.
pub(super) struct Entry<'a> {
    pub rollout: &'a str,
    pub at: i64,
    pub actor: &'a str,
    pub role: &'a str,
    pub action: &'a str,
    pub record: &'a str,
}

/// An entry as appended: its place and its hash (the rollout's new head).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub seq: i64,
    pub head: String,
}

/// Appends `entry` to its rollout's chain inside the caller's transaction: links it to the
/// rollout's head, writes it, and makes it the head, signed under `key` when there is one.
/// Callers hold the rollout's row (they have just updated its version), so appends to one
/// chain never race.
pub(super) async fn append(
    conn: &mut AnyConnection,
    entry: &Entry<'_>,
    key: Option<&AuditKey>,
) -> anyhow::Result<Appended> {
    let head: Option<String> = sqlx::query_scalar("SELECT audit_head FROM rollouts WHERE id = $1")
        .bind(entry.rollout)
        .fetch_one(&mut *conn)
        .await?;
    let prev = head.unwrap_or_else(|| chain::GENESIS.to_string());
    let hash = chain::hash(
        &prev,
        entry.rollout,
        entry.at,
        entry.actor,
        entry.role,
        entry.action,
        entry.record,
    );
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO audit (rollout, at, actor, role, action, record, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING seq",
    )
    .bind(entry.rollout)
    .bind(entry.at)
    .bind(entry.actor)
    .bind(entry.role)
    .bind(entry.action)
    .bind(entry.record)
    .bind(&prev)
    .bind(&hash)
    .fetch_one(&mut *conn)
    .await?;
    let mac = key.map(|k| chain::head_mac(&k.0, entry.rollout, &hash));
    sqlx::query("UPDATE rollouts SET audit_head = $1, audit_head_mac = $2 WHERE id = $3")
        .bind(&hash)
        .bind(mac)
        .bind(entry.rollout)
        .execute(&mut *conn)
        .await?;
    Ok(Appended { seq, head: hash })
}

/// What verification reads of a rollout besides its entries.
struct Tip {
    head: Option<String>,
    mac: Option<String>,
    /// The stored state's phase, as it serialises.
    phase: Option<String>,
}

/// A rollout's chain and tip as stored, read on `conn`.
async fn links(conn: &mut AnyConnection, rollout: &str) -> anyhow::Result<(Vec<Link>, Tip)> {
    let rows: Vec<Row> = sqlx::query_as(LINKS)
        .bind(rollout)
        .fetch_all(&mut *conn)
        .await?;
    let tip: Option<(Option<String>, Option<String>, String)> =
        sqlx::query_as("SELECT audit_head, audit_head_mac, state FROM rollouts WHERE id = $1")
            .bind(rollout)
            .fetch_optional(&mut *conn)
            .await?;
    let tip = match tip {
        Some((head, mac, state)) => Tip {
            head,
            mac,
            phase: serde_json::from_str::<cutover_core::rollout::RolloutState>(&state)
                .ok()
                .and_then(|s| serde_json::to_value(s.phase).ok())
                .and_then(|p| p.as_str().map(str::to_string)),
        },
        None => Tip {
            head: None,
            mac: None,
            phase: None,
        },
    };
    Ok((rows.into_iter().map(link).collect(), tip))
}

/// How a rollout's audit chain stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// How many entries hold, or the first break.
    pub result: Result<usize, Break>,
    /// The newest hash the rollout keeps: kept outside (a report, a ticket), it shows a
    /// rewrite of the whole chain too.
    pub head: Option<String>,
    /// Whether the head's signature was checked (there is a key to check it with).
    pub signed: bool,
}

/// Verifies a rollout's audit chain on `conn`: its links, its head's signature under `key`,
/// and that the stored state is the one its newest entry left. The hashing runs on the
/// blocking pool: a long chain must not hold an async worker.
pub async fn verify_on(
    conn: &mut AnyConnection,
    rollout: &str,
    key: Option<&AuditKey>,
) -> anyhow::Result<Verified> {
    let (links, tip) = links(conn, rollout).await?;
    let head = tip.head.clone();
    let key = key.cloned();
    let id = rollout.to_string();
    let signed = key.is_some();
    let result = tokio::task::spawn_blocking(move || {
        let held = chain::verify(&links, tip.head.as_deref())?;
        if let Some(key) = &key {
            chain::verify_head(&key.0, &id, tip.head.as_deref(), tip.mac.as_deref())?;
        }
        if let Some(phase) = &tip.phase {
            chain::state_follows(&links, phase)?;
        }
        Ok(held)
    })
    .await?;
    Ok(Verified {
        result,
        head,
        signed,
    })
}

impl Storage {
    /// Verifies one rollout's audit chain.
    pub async fn verify_audit(&self, rollout: &str) -> anyhow::Result<Verified> {
        let mut conn = self.pool.acquire().await?;
        verify_on(&mut conn, rollout, self.audit_key.as_ref()).await
    }

    /// The rollouts the sealing migration listed, once: a rollout whose entries all lack
    /// hashes (written before the chain existed) is chained, and its head signed; then it is
    /// struck from the list in the same transaction, so no later open seals or signs anything
    /// again (removing hashes or a signature afterwards is a break, not papered over).
    pub(super) async fn seal_listed(&self) -> anyhow::Result<()> {
        let listed: Vec<String> = sqlx::query_scalar("SELECT rollout FROM audit_seal")
            .fetch_all(&self.pool)
            .await?;
        for rollout in listed {
            let mut tx = self.pool.begin().await?;
            let (links, tip) = links(&mut tx, &rollout).await?;
            let unchained = tip.head.is_none()
                && !links.is_empty()
                && links.iter().all(|l| l.hash.is_none() && l.prev.is_none());
            let mut head = tip.head.clone();
            if unchained {
                let mut prev = chain::GENESIS.to_string();
                for l in &links {
                    let hash = chain::hash(
                        &prev, &l.rollout, l.at, &l.actor, &l.role, &l.action, &l.record,
                    );
                    sqlx::query("UPDATE audit SET prev_hash = $1, hash = $2 WHERE seq = $3")
                        .bind(&prev)
                        .bind(&hash)
                        .bind(l.seq)
                        .execute(&mut *tx)
                        .await?;
                    prev = hash;
                }
                head = Some(prev);
                tracing::info!(%rollout, entries = links.len(), "audit entries from before the hash chain sealed");
            }
            if let Some(head) = &head {
                let mac = self
                    .audit_key
                    .as_ref()
                    .map(|k| chain::head_mac(&k.0, &rollout, head));
                sqlx::query(
                    "UPDATE rollouts SET audit_head = $1, audit_head_mac = $2 WHERE id = $3",
                )
                .bind(head)
                .bind(mac)
                .bind(&rollout)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("DELETE FROM audit_seal WHERE rollout = $1")
                .bind(&rollout)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }
}

//! The audit log's hash chain (see `cutover_core::chain`): linking each new entry inside the
//! transaction that writes it, sealing entries written before the chain existed, and reading a
//! rollout's chain back to verify it.

use cutover_core::chain::{self, Break, Link};
use sqlx::AnyConnection;

use crate::store::Storage;

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

/// Appends `entry` to its rollout's chain inside the caller's transaction: links it to the
/// rollout's head, writes it, and makes it the head. Returns its seq. Callers hold the
/// rollout's row (they have just updated its version), so appends to one chain never race.
pub(super) async fn append(conn: &mut AnyConnection, entry: &Entry<'_>) -> anyhow::Result<i64> {
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
    sqlx::query("UPDATE rollouts SET audit_head = $1 WHERE id = $2")
        .bind(&hash)
        .bind(entry.rollout)
        .execute(&mut *conn)
        .await?;
    Ok(seq)
}

/// A rollout's chain and head as stored, read on `conn`.
async fn links(
    conn: &mut AnyConnection,
    rollout: &str,
) -> anyhow::Result<(Vec<Link>, Option<String>)> {
    let rows: Vec<Row> = sqlx::query_as(LINKS)
        .bind(rollout)
        .fetch_all(&mut *conn)
        .await?;
    let head: Option<Option<String>> =
        sqlx::query_scalar("SELECT audit_head FROM rollouts WHERE id = $1")
            .bind(rollout)
            .fetch_optional(&mut *conn)
            .await?;
    Ok((rows.into_iter().map(link).collect(), head.flatten()))
}

/// How a rollout's audit chain stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// How many entries hold, or the first break.
    pub result: Result<usize, Break>,
    /// The newest hash the rollout keeps: kept outside (a report, a ticket), it shows a
    /// rewrite of the whole chain too.
    pub head: Option<String>,
}

/// Verifies a rollout's audit chain on `conn`.
pub async fn verify_on(conn: &mut AnyConnection, rollout: &str) -> anyhow::Result<Verified> {
    let (links, head) = links(conn, rollout).await?;
    Ok(Verified {
        result: chain::verify(&links, head.as_deref()),
        head,
    })
}

impl Storage {
    /// Verifies one rollout's audit chain.
    pub async fn verify_audit(&self, rollout: &str) -> anyhow::Result<Verified> {
        let mut conn = self.pool.acquire().await?;
        verify_on(&mut conn, rollout).await
    }

    /// Chains the entries written before the chain existed, once: a rollout with no head whose
    /// entries all lack hashes. A rollout with a head, or with any hashed entry, is never
    /// resealed, so removing hashes later shows as a break instead of being papered over.
    pub(super) async fn seal_unchained(&self) -> anyhow::Result<()> {
        let unchained: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM rollouts r WHERE audit_head IS NULL \
             AND EXISTS (SELECT 1 FROM audit a WHERE a.rollout = r.id) \
             AND NOT EXISTS (SELECT 1 FROM audit a WHERE a.rollout = r.id AND a.hash IS NOT NULL)",
        )
        .fetch_all(&self.pool)
        .await?;
        for rollout in unchained {
            let mut tx = self.pool.begin().await?;
            let (links, _) = links(&mut tx, &rollout).await?;
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
            sqlx::query("UPDATE rollouts SET audit_head = $1 WHERE id = $2")
                .bind(&prev)
                .bind(&rollout)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::info!(%rollout, entries = links.len(), "audit entries from before the hash chain sealed");
        }
        Ok(())
    }
}

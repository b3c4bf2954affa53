//! Idempotency keys: a retried action is answered once, then replayed, never done twice.

use cutover_core::time::Millis;

use super::Storage;

/// A claim still unsettled after this long was left by a server that died mid-request.
pub const STALE_CLAIM: Millis = 60_000;

/// Marks `key` as acted on inside the action's own transaction: status 200 with no answer
/// yet (`remember_response` adds it after the commit). A retry that finds it replays the
/// rollout's state as it is then.
pub(super) async fn settle_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    key: &str,
) -> anyhow::Result<()> {
    sqlx::query("UPDATE idempotency SET status = 200 WHERE key = $1 AND status = 0")
        .bind(key)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// What became of an idempotency key's claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This request holds the key: act, then remember the answer.
    Claimed,
    /// The same request was answered before: send this (status, JSON body) again. An empty
    /// body: the action was committed but its server died before answering; the caller
    /// answers with the state as it is.
    Replay(u16, String),
    /// The key was first used for a different request.
    Mismatch,
    /// The first request with this key is still running.
    InProgress,
}

impl Storage {
    /// Claims `key` for a request whose fingerprint is `fingerprint`, atomically: of any
    /// number of concurrent requests with one key, exactly one gets `Claimed`.
    pub async fn claim_idempotency(
        &self,
        key: &str,
        rollout: &str,
        fingerprint: &str,
        now: Millis,
    ) -> anyhow::Result<Claim> {
        let inserted = sqlx::query(
            "INSERT INTO idempotency (key, rollout, response, status, at, fingerprint)
             VALUES ($1, $2, '', 0, $3, $4) ON CONFLICT(key) DO NOTHING",
        )
        .bind(key)
        .bind(rollout)
        .bind(now)
        .bind(fingerprint)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(Claim::Claimed);
        }
        let row: Option<(i64, String, String, i64)> = sqlx::query_as(
            "SELECT status, response, fingerprint, at FROM idempotency WHERE key = $1",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            // Released between the insert and the select: the caller tries again.
            None => Claim::InProgress,
            Some((_, _, stored, _)) if stored != fingerprint => Claim::Mismatch,
            // Committed, its answer not yet kept: the first request is answering now, unless
            // its server died first (then the state as it is, never the action again).
            Some((status, body, _, at)) if status != 0 && body.is_empty() => {
                if at < now - STALE_CLAIM {
                    Claim::Replay(u16::try_from(status).unwrap_or(200), body)
                } else {
                    Claim::InProgress
                }
            }
            Some((0, _, _, _)) => {
                // A claim nobody settled (its server died mid-request) is taken over once
                // it is older than any request may run; one taker wins the update.
                let taken = sqlx::query(
                    "UPDATE idempotency SET at = $1 WHERE key = $2 AND status = 0 AND at < $3",
                )
                .bind(now)
                .bind(key)
                .bind(now - STALE_CLAIM)
                .execute(&self.pool)
                .await?;
                if taken.rows_affected() == 1 {
                    Claim::Claimed
                } else {
                    Claim::InProgress
                }
            }
            Some((status, body, _, _)) => Claim::Replay(u16::try_from(status).unwrap_or(200), body),
        })
    }

    /// Stores the answer to the request that claimed `key`, for its retries.
    pub async fn remember_response(
        &self,
        key: &str,
        status: u16,
        body: &str,
    ) -> anyhow::Result<()> {
        sqlx::query("UPDATE idempotency SET response = $1, status = $2 WHERE key = $3")
            .bind(body)
            .bind(i64::from(status))
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Gives up a claim whose request ended without an answer worth replaying (a server
    /// fault, or a refusal the state may lift): a retry then decides afresh.
    pub async fn release_idempotency(&self, key: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM idempotency WHERE key = $1 AND status = 0")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

//! Notify channels' outboxes, stored per replica (see `runtime::outboxes`).

use cutover_core::time::Millis;

use super::{Backend, Storage};

/// A replica whose outboxes were not touched this long has stopped: another adopts them.
pub const OUTBOX_STALE: Millis = 30_000;

impl Storage {
    /// Stores replica `replica`'s outbox of `channel` in `rollout`.
    pub async fn save_outbox(
        &self,
        rollout: &str,
        channel: &str,
        replica: &str,
        body: &str,
        at: Millis,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO outboxes (rollout, channel, replica, body, updated_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (rollout, channel, replica) \
             DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
        )
        .bind(rollout)
        .bind(channel)
        .bind(replica)
        .bind(body)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Says replica `replica` is alive: its stored outboxes are not for others to adopt.
    pub async fn touch_outboxes(&self, replica: &str, at: Millis) -> anyhow::Result<()> {
        sqlx::query("UPDATE outboxes SET updated_at = $1 WHERE replica = $2")
            .bind(at)
            .bind(replica)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Takes (deletes and returns) the outboxes of `rollout` that other replicas stored and
    /// have not touched since `stale_before`, as (channel, body). One statement: two replicas
    /// adopting at once never both get one.
    pub async fn adopt_outboxes(
        &self,
        rollout: &str,
        replica: &str,
        stale_before: Millis,
    ) -> anyhow::Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "DELETE FROM outboxes WHERE rollout = $1 AND replica <> $2 AND updated_at < $3 \
             RETURNING channel, body",
        )
        .bind(rollout)
        .bind(replica)
        .bind(stale_before)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Whether one server alone uses this database (SQLite): then every stored outbox is its
    /// own from before a restart, and is adopted at once.
    pub fn single_server(&self) -> bool {
        self.backend == Backend::Sqlite
    }
}

//! What each replica heard of the flag readers, shared so every replica counts the whole
//! fleet (`runtime::fleet`).

use cutover_core::confirm::Heard;
use cutover_core::time::Millis;

use super::Storage;

/// Rows written per statement.
const CHUNK: usize = 500;

impl Storage {
    /// Keeps what `replica` heard of these instances (its newest word on each).
    pub async fn save_fleet(
        &self,
        rollout: &str,
        replica: &str,
        heard: &[Heard],
    ) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        for chunk in heard.chunks(CHUNK) {
            // Numbered placeholders, which both engines read (sqlx's Any builder writes `?`).
            let rows: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let b = i * 6;
                    format!(
                        "(${}, ${}, ${}, ${}, ${}, ${})",
                        b + 1,
                        b + 2,
                        b + 3,
                        b + 4,
                        b + 5,
                        b + 6
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO fleet (rollout, instance, replica, version, since, seen_at) VALUES {} \
                 ON CONFLICT (rollout, instance, replica) DO UPDATE SET \
                 version = excluded.version, since = excluded.since, seen_at = excluded.seen_at",
                rows.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for h in chunk {
                q = q
                    .bind(rollout)
                    .bind(&h.instance)
                    .bind(replica)
                    .bind(i64::try_from(h.version).unwrap_or(i64::MAX))
                    .bind(h.since)
                    .bind(h.seen);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// What the other replicas heard of `rollout`'s instances since `since`.
    pub async fn fleet_heard(
        &self,
        rollout: &str,
        replica: &str,
        since: Millis,
    ) -> anyhow::Result<Vec<Heard>> {
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT instance, version, since, seen_at FROM fleet
             WHERE rollout = $1 AND replica <> $2 AND seen_at >= $3",
        )
        .bind(rollout)
        .bind(replica)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(instance, version, since, seen)| Heard {
                instance,
                version: u64::try_from(version).unwrap_or(0),
                since,
                seen,
            })
            .collect())
    }

    /// Forgets instances nobody heard from since `before`.
    pub async fn prune_fleet(&self, before: Millis) -> anyhow::Result<u64> {
        Ok(sqlx::query("DELETE FROM fleet WHERE seen_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}

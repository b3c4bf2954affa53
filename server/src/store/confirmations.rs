//! The fleet's confirmations of each kill: when each instance was first heard holding it.

use cutover_core::audit::Confirmed;
use cutover_core::time::Millis;

use super::Storage;

impl Storage {
    /// Keeps confirmations of the kill committed at `kill_at`; the first per instance stays.
    pub async fn save_confirmations(
        &self,
        rollout: &str,
        confirmed: &[(Millis, Confirmed)],
    ) -> anyhow::Result<()> {
        if confirmed.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for (kill_at, c) in confirmed {
            sqlx::query(
                "INSERT INTO confirmations (rollout, kill_at, instance, version, at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(rollout)
            .bind(kill_at)
            .bind(&c.instance)
            .bind(i64::try_from(c.version)?)
            .bind(c.at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The confirmations of the kill committed at `kill_at`, earliest first.
    pub async fn confirmations(
        &self,
        rollout: &str,
        kill_at: Millis,
    ) -> anyhow::Result<Vec<Confirmed>> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT instance, version, at FROM confirmations
             WHERE rollout = $1 AND kill_at = $2 ORDER BY at, instance",
        )
        .bind(rollout)
        .bind(kill_at)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(instance, version, at)| {
                Ok(Confirmed {
                    instance,
                    version: u64::try_from(version)?,
                    at,
                })
            })
            .collect()
    }
}

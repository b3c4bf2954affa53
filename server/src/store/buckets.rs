//! Metric buckets each replica persists, so windows survive restarts and merge across replicas.

use cutover_core::time::Millis;
use cutover_core::window::PersistedBucket;

use super::Storage;

fn bucket_of_row(
    (metric, labels, start, width, bucket): (String, String, i64, i64, String),
) -> anyhow::Result<PersistedBucket> {
    Ok(PersistedBucket {
        metric,
        labels: serde_json::from_str(&labels)?,
        start,
        width,
        bucket: serde_json::from_str(&bucket)?,
    })
}

impl Storage {
    /// Writes this replica's metric buckets; a bucket written again replaces its old row.
    pub async fn save_buckets(
        &self,
        rollout: &str,
        replica: &str,
        buckets: &[PersistedBucket],
        now: Millis,
    ) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        for b in buckets {
            sqlx::query(
                "INSERT INTO metric_buckets (rollout, metric, labels, start, width, replica, updated_at, bucket)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT(rollout, metric, labels, start, width, replica)
                 DO UPDATE SET bucket = excluded.bucket, updated_at = excluded.updated_at",
            )
            .bind(rollout)
            .bind(&b.metric)
            .bind(serde_json::to_string(&b.labels)?)
            .bind(b.start)
            .bind(b.width)
            .bind(replica)
            .bind(now)
            .bind(serde_json::to_string(&b.bucket)?)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every replica's metric buckets since `since`, oldest first; drops those older than it.
    pub async fn load_buckets(
        &self,
        rollout: &str,
        since: Millis,
    ) -> anyhow::Result<Vec<PersistedBucket>> {
        sqlx::query("DELETE FROM metric_buckets WHERE rollout = $1 AND start < $2")
            .bind(rollout)
            .bind(since)
            .execute(&self.pool)
            .await?;
        let rows: Vec<(String, String, i64, i64, String)> = sqlx::query_as(
            "SELECT metric, labels, start, width, bucket FROM metric_buckets
             WHERE rollout = $1 ORDER BY start, width",
        )
        .bind(rollout)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(bucket_of_row).collect()
    }

    /// Buckets other replicas wrote or rewrote at `updated_since` or later, for merging.
    pub async fn buckets_changed(
        &self,
        rollout: &str,
        except_replica: &str,
        updated_since: Millis,
    ) -> anyhow::Result<Vec<PersistedBucket>> {
        let rows: Vec<(String, String, i64, i64, String)> = sqlx::query_as(
            "SELECT metric, labels, start, width, bucket FROM metric_buckets
             WHERE rollout = $1 AND updated_at >= $2 AND replica <> $3 ORDER BY start, width",
        )
        .bind(rollout)
        .bind(updated_since)
        .bind(except_replica)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(bucket_of_row).collect()
    }
}

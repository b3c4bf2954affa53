//! Metric buckets each replica persists, so windows survive restarts and merge across replicas.

use std::collections::BTreeMap;

use cutover_core::time::Millis;
use cutover_core::window::{Bucket, PersistedBucket, ReplicaBuckets};

use super::Storage;

type Row = (String, String, i64, i64, String, String, i64);

/// Rows grouped by the replica that wrote them, each group with its newest write.
fn by_replica(rows: Vec<Row>) -> anyhow::Result<Vec<ReplicaBuckets>> {
    let mut out: BTreeMap<String, ReplicaBuckets> = BTreeMap::new();
    for (metric, labels, start, width, bucket, replica, updated_at) in rows {
        let group = out.entry(replica.clone()).or_insert(ReplicaBuckets {
            replica,
            as_of: updated_at,
            buckets: Vec::new(),
        });
        group.as_of = group.as_of.max(updated_at);
        group.buckets.push(PersistedBucket {
            metric,
            labels: serde_json::from_str(&labels)?,
            start,
            width,
            bucket: serde_json::from_str(&bucket)?,
        });
    }
    Ok(out.into_values().collect())
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

    /// Every replica's metric buckets since `since`, oldest first, by replica; drops those
    /// older than it.
    pub async fn load_buckets(
        &self,
        rollout: &str,
        since: Millis,
    ) -> anyhow::Result<Vec<ReplicaBuckets>> {
        sqlx::query("DELETE FROM metric_buckets WHERE rollout = $1 AND start < $2")
            .bind(rollout)
            .bind(since)
            .execute(&self.pool)
            .await?;
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT metric, labels, start, width, bucket, replica, updated_at FROM metric_buckets
             WHERE rollout = $1 ORDER BY start, width",
        )
        .bind(rollout)
        .fetch_all(&self.pool)
        .await?;
        by_replica(rows)
    }

    /// Buckets other replicas wrote or rewrote at `updated_since` or later, by replica, for
    /// merging.
    pub async fn buckets_changed(
        &self,
        rollout: &str,
        except_replica: &str,
        updated_since: Millis,
    ) -> anyhow::Result<Vec<ReplicaBuckets>> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT metric, labels, start, width, bucket, replica, updated_at FROM metric_buckets
             WHERE rollout = $1 AND updated_at >= $2 AND replica <> $3 ORDER BY start, width",
        )
        .bind(rollout)
        .bind(updated_since)
        .bind(except_replica)
        .fetch_all(&self.pool)
        .await?;
        by_replica(rows)
    }

    /// Rolls rows narrower than `width` that start before `before` into rows of `width`, one
    /// slice of `width` at a time (at most `slices` per call), as the stores do in memory:
    /// each slice's rows of a (rollout, series, replica) merge into one row and are deleted.
    /// A restart then loads a week as 10 min rows, not 60,000 rows a series.
    ///
    /// One rollout's slice at a time, read outside any transaction (one statement: one
    /// snapshot), then written in a short write-only transaction: SQLite's single writer is
    /// held for that rollout's upserts and one delete, never across reads, so a kill waiting
    /// to commit waits milliseconds. Any replica may run it at once with another: a slice
    /// already rolled up reads as its one row and is written again unchanged, so both write
    /// the same row. Nobody writes rows this old (replicas rewrite only the last minutes).
    /// Returns the rows removed.
    pub async fn roll_up_buckets(
        &self,
        before: Millis,
        width: Millis,
        slices: usize,
    ) -> anyhow::Result<u64> {
        anyhow::ensure!(width > 0, "a bucket width is positive");
        let mut removed = 0;
        for _ in 0..slices {
            let oldest: Option<i64> = sqlx::query_scalar(
                "SELECT MIN(start) FROM metric_buckets WHERE width < $1 AND start < $2",
            )
            .bind(width)
            .bind(before)
            .fetch_one(&self.pool)
            .await?;
            let Some(oldest) = oldest else { break };
            let slice = oldest - oldest.rem_euclid(width);
            // Only whole slices: the rest of this one may still be in use.
            if slice.saturating_add(width) > before {
                break;
            }
            let rollouts: Vec<String> = sqlx::query_scalar(
                "SELECT DISTINCT rollout FROM metric_buckets
                 WHERE start >= $1 AND start < $2 AND width < $3",
            )
            .bind(slice)
            .bind(slice + width)
            .bind(width)
            .fetch_all(&self.pool)
            .await?;
            for rollout in rollouts {
                removed += self.roll_up_slice(&rollout, slice, width).await?;
            }
        }
        Ok(removed)
    }

    /// One rollout's rows in `[slice, slice + width)` merged into rows of `width`.
    async fn roll_up_slice(
        &self,
        rollout: &str,
        slice: Millis,
        width: Millis,
    ) -> anyhow::Result<u64> {
        let rows: Vec<(String, String, String, i64, String)> = sqlx::query_as(
            "SELECT metric, labels, replica, updated_at, bucket FROM metric_buckets
             WHERE rollout = $1 AND start >= $2 AND start < $3 AND width <= $4",
        )
        .bind(rollout)
        .bind(slice)
        .bind(slice + width)
        .bind(width)
        .fetch_all(&self.pool)
        .await?;
        type Key = (String, String, String);
        let mut merged: BTreeMap<Key, (Bucket, i64)> = BTreeMap::new();
        for (metric, labels, replica, updated_at, bucket) in rows {
            let bucket: Bucket = serde_json::from_str(&bucket)?;
            let (into, at) = merged
                .entry((metric, labels, replica))
                .or_insert_with(|| (Bucket::default(), i64::MIN));
            into.merge(&bucket);
            // Its age, not now: a replica long gone must not look fresh.
            *at = (*at).max(updated_at);
        }
        let mut tx = self.pool.begin().await?;
        for ((metric, labels, replica), (bucket, updated_at)) in &merged {
            sqlx::query(
                "INSERT INTO metric_buckets (rollout, metric, labels, start, width, replica, updated_at, bucket)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT(rollout, metric, labels, start, width, replica)
                 DO UPDATE SET bucket = excluded.bucket, updated_at = excluded.updated_at",
            )
            .bind(rollout)
            .bind(metric)
            .bind(labels)
            .bind(slice)
            .bind(width)
            .bind(replica)
            .bind(updated_at)
            .bind(serde_json::to_string(bucket)?)
            .execute(&mut *tx)
            .await?;
        }
        let removed = sqlx::query(
            "DELETE FROM metric_buckets
             WHERE rollout = $1 AND start >= $2 AND start < $3 AND width < $4",
        )
        .bind(rollout)
        .bind(slice)
        .bind(slice + width)
        .bind(width)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(removed)
    }
}

//! Rollout rows: registration and plans, the durable state, the audit log, evaluator memory.

use anyhow::Context;
use cutover_core::audit::{AuditEntry, ChainLink};
use cutover_core::evidence::{Evidence, PlanChange};
use cutover_core::gates::Memory;
use cutover_core::rollout::{AuditRecord, RolloutState};
use cutover_core::time::Millis;

use super::chain::Appended;
use super::{Backend, CHANGES_CHANNEL, Storage};

impl Storage {
    /// Registers a rollout (or updates its title and plan) under the plan it now runs.
    pub async fn ensure_rollout(
        &self,
        id: &str,
        title: &str,
        plan_hash: &str,
        plan: &str,
        initial_state: &str,
        now: Millis,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO rollouts (id, title, plan_hash, plan, state, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT(id) DO UPDATE SET title = excluded.title, plan_hash = excluded.plan_hash, plan = excluded.plan",
        )
        .bind(id)
        .bind(title)
        .bind(plan_hash)
        .bind(plan)
        .bind(initial_state)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The hash and JSON of the plan a rollout last ran under (`None` for a new rollout; the
    /// JSON is empty for one registered before plans were kept).
    pub async fn stored_plan(&self, id: &str) -> sqlx::Result<Option<(String, String)>> {
        sqlx::query_as("SELECT plan_hash, plan FROM rollouts WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    pub async fn rollout_ids(&self) -> sqlx::Result<Vec<String>> {
        sqlx::query_scalar("SELECT id FROM rollouts ORDER BY id")
            .fetch_all(&self.pool)
            .await
    }

    /// The rollout's durable state; `None` if it was never written (a fresh rollout).
    pub async fn load_state(&self, id: &str) -> anyhow::Result<Option<RolloutState>> {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT state, version FROM rollouts WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        match row {
            Some((state, version)) if version > 0 => Ok(Some(serde_json::from_str(&state)?)),
            _ => Ok(None),
        }
    }

    /// Writes the new state and its audit record in one transaction, only if the stored
    /// version is still the one the action was decided on. Returns false on a lost race.
    pub async fn commit_action(
        &self,
        id: &str,
        expected_version: u64,
        state: &RolloutState,
        record: &AuditRecord,
        evidence: &Evidence,
    ) -> anyhow::Result<Option<Appended>> {
        self.commit_keyed(id, expected_version, state, record, evidence, None)
            .await
    }

    /// `commit_action` that also settles the idempotency key `key` claimed for this action,
    /// in the same transaction: a server that dies between the commit and its answer leaves a
    /// key that says "done" (a retry gets the state, and never acts again), not a claim a
    /// retry takes over a minute later.
    pub async fn commit_keyed(
        &self,
        id: &str,
        expected_version: u64,
        state: &RolloutState,
        record: &AuditRecord,
        evidence: &Evidence,
        key: Option<&str>,
    ) -> anyhow::Result<Option<Appended>> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE rollouts SET state = $1, version = $2, updated_at = $3 WHERE id = $4 AND version = $5",
        )
        .bind(serde_json::to_string(state)?)
        .bind(i64::try_from(state.version)?)
        .bind(record.at)
        .bind(id)
        .bind(i64::try_from(expected_version)?)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Ok(None);
        }
        let appended = self.audit_and_notify(&mut tx, id, record, evidence).await?;
        if let Some(key) = key {
            super::idempotency::settle_in(&mut tx, key).await?;
        }
        tx.commit().await?;
        Ok(Some(appended))
    }

    /// Maps a rollout onto a changed plan, in one transaction: the new state, the new plan
    /// and the audit record, only if the stored plan is still `old_hash` and the state still
    /// `expected_version`. False when another replica (or another start) got there first.
    #[allow(clippy::too_many_arguments)]
    pub async fn commit_plan_change(
        &self,
        id: &str,
        old_hash: &str,
        new_hash: &str,
        new_plan: &str,
        expected_version: u64,
        state: &RolloutState,
        record: &AuditRecord,
    ) -> anyhow::Result<bool> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE rollouts SET state = $1, version = $2, updated_at = $3, plan_hash = $4, plan = $5
             WHERE id = $6 AND version = $7 AND plan_hash = $8",
        )
        .bind(serde_json::to_string(state)?)
        .bind(i64::try_from(state.version)?)
        .bind(record.at)
        .bind(new_hash)
        .bind(new_plan)
        .bind(id)
        .bind(i64::try_from(expected_version)?)
        .bind(old_hash)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Ok(false);
        }
        let evidence = Evidence {
            plan: Some(PlanChange {
                from: old_hash.to_string(),
                to: new_hash.to_string(),
            }),
            ..Evidence::default()
        };
        self.audit_and_notify(&mut tx, id, record, &evidence)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Appends `record` to the audit log's chain and, on PostgreSQL, tells every replica,
    /// inside `tx`.
    async fn audit_and_notify(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        id: &str,
        record: &AuditRecord,
        evidence: &Evidence,
    ) -> anyhow::Result<Appended> {
        let mut entry = serde_json::to_value(record)?;
        if let Some(map) = entry.as_object_mut() {
            map.insert("evidence".into(), serde_json::to_value(evidence)?);
        }
        let record_text = entry.to_string();
        let link = super::chain::Entry {
            rollout: id,
            at: record.at,
            actor: &record.actor.name,
            role: record.actor.role.as_str(),
            action: record.action.name(),
            record: &record_text,
        };
        let appended = super::chain::append(tx, &link, self.audit_key.as_ref()).await?;
        if self.backend == Backend::Postgres {
            // Delivered to every listening replica when (and only if) the transaction commits.
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANGES_CHANNEL)
                .bind(id)
                .execute(&mut **tx)
                .await?;
        }
        Ok(appended)
    }

    /// Audit entries newest first, `limit` of them, older than `before` when given; with
    /// `marks_only`, only those that mark the charts (no checks or approvals), so a busy
    /// checklist does not push a day's stage changes out of the charts' reach. With
    /// `with_chain`, each carries its link in the hash chain as stored.
    pub async fn audit(
        &self,
        id: &str,
        before: Option<i64>,
        limit: i64,
        marks_only: bool,
        with_chain: bool,
    ) -> anyhow::Result<Vec<AuditEntry>> {
        // Built once: the action names are constants of core, not input.
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            let unmarked = cutover_core::chart::UNMARKED_ACTIONS
                .map(|a| format!("'{a}'"))
                .join(", ");
            format!(
                "SELECT seq, record, prev_hash, hash, at, actor, role, action FROM audit \
                 WHERE rollout = $1 AND seq < $2 \
                 AND ($4 = 0 OR action NOT IN ({unmarked})) ORDER BY seq DESC LIMIT $3"
            )
        });
        type AuditRow = (
            i64,
            String,
            Option<String>,
            Option<String>,
            i64,
            String,
            String,
            String,
        );
        let rows: Vec<AuditRow> = sqlx::query_as(SQL.as_str())
            .bind(id)
            .bind(before.unwrap_or(i64::MAX))
            .bind(limit)
            .bind(i64::from(marks_only))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|(seq, record, prev_hash, hash, at, actor, role, action)| {
                let mut v: serde_json::Value = serde_json::from_str(&record)?;
                if let Some(map) = v.as_object_mut() {
                    map.insert("seq".into(), seq.into());
                    for own in ["chain", "prev_hash", "hash"] {
                        map.remove(own);
                    }
                }
                let mut entry: AuditEntry = serde_json::from_value(v)
                    .with_context(|| format!("audit entry {seq} of {id}"))?;
                entry.prev_hash.clone_from(&prev_hash);
                entry.hash.clone_from(&hash);
                if with_chain {
                    entry.chain = Some(ChainLink {
                        prev_hash,
                        hash,
                        rollout: id.to_string(),
                        at,
                        actor,
                        role,
                        action,
                        record,
                    });
                }
                Ok(entry)
            })
            .collect()
    }

    /// The rollout's audit head now.
    pub async fn audit_head(&self, id: &str) -> anyhow::Result<Option<String>> {
        let head: Option<Option<String>> =
            sqlx::query_scalar("SELECT audit_head FROM rollouts WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(head.flatten())
    }

    /// Every rollout's state version: what a replica compares to find actions taken elsewhere.
    pub async fn versions(&self) -> anyhow::Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as("SELECT id, version FROM rollouts")
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn save_evaluation(&self, rollout: &str, memory: &Memory) -> anyhow::Result<()> {
        sqlx::query("UPDATE rollouts SET evaluation = $1 WHERE id = $2")
            .bind(serde_json::to_string(memory)?)
            .bind(rollout)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn load_evaluation(&self, rollout: &str) -> anyhow::Result<Option<Memory>> {
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT evaluation FROM rollouts WHERE id = $1")
                .bind(rollout)
                .fetch_optional(&self.pool)
                .await?;
        match row.and_then(|(e,)| e) {
            Some(text) => Ok(Some(serde_json::from_str(&text)?)),
            None => Ok(None),
        }
    }
}

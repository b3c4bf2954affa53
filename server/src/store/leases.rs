//! Leases: which replica runs a singleton task (one statement decides, so never two).

use cutover_core::time::Millis;

use super::Storage;

impl Storage {
    /// Takes or renews the lease `name` for `holder` until `now + ttl`; true if `holder` has it.
    /// One statement, so two replicas can never both win: the row's own lock decides.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: Millis,
        ttl: Millis,
    ) -> anyhow::Result<bool> {
        let won: Option<String> = sqlx::query_scalar(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT(name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
             WHERE leases.holder = excluded.holder OR leases.expires_at < $4
             RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(now + ttl)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(won.as_deref() == Some(holder))
    }

    /// Who holds the lease `name` and until when, if anyone took it and did not give it up.
    pub async fn lease(&self, name: &str) -> anyhow::Result<Option<(String, Millis)>> {
        Ok(
            sqlx::query_as("SELECT holder, expires_at FROM leases WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Gives a lease up at once (a clean shutdown), so another replica need not wait it out.
    pub async fn release_lease(&self, name: &str, holder: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

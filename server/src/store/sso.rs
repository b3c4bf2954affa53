//! People who sign in through the identity provider, and sign-ins on their way there and
//! back.

use cutover_core::role::Role;
use cutover_core::time::Millis;
use sqlx::Row;

use super::{Storage, hash_token};

/// A person as `cutover user list` shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoEntry {
    pub subject: String,
    pub name: String,
    pub email: Option<String>,
    pub groups: Vec<String>,
    pub roles: String,
    pub last_sign_in: Millis,
    pub revoked: bool,
}

/// What a sign-in left with: the secrets its callback must match, where it returns to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub nonce: String,
    pub verifier: String,
    pub return_to: String,
}

impl Storage {
    /// Keeps a sign-in under its `state` (hashed) until its callback, at most `ttl`; older
    /// ones are dropped on the way. False, and nothing kept, when `cap` sign-ins are already
    /// under way: anyone may start one, so their number must not grow without end.
    pub async fn sso_begin(
        &self,
        state: &str,
        pending: &Pending,
        now: Millis,
        ttl: Millis,
        cap: i64,
    ) -> sqlx::Result<bool> {
        sqlx::query("DELETE FROM sso_pending WHERE created_at < $1")
            .bind(now - ttl)
            .execute(&self.pool)
            .await?;
        let under_way: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sso_pending")
            .fetch_one(&self.pool)
            .await?;
        if under_way >= cap {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO sso_pending (state_hash, nonce, verifier, return_to, created_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(hash_token(state))
        .bind(&pending.nonce)
        .bind(&pending.verifier)
        .bind(&pending.return_to)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(true)
    }

    /// The sign-in under `state`, taken (a second callback with it finds nothing), if it is
    /// younger than `ttl`.
    pub async fn sso_take(
        &self,
        state: &str,
        now: Millis,
        ttl: Millis,
    ) -> sqlx::Result<Option<Pending>> {
        // One statement, so taken once however many callbacks race, and never a read that
        // must later become a write (SQLite refuses that upgrade at once, busy timeout or
        // not, when another connection wrote in between: a sign-in failed with a 500 under load).
        let row = sqlx::query(
            "DELETE FROM sso_pending WHERE state_hash = $1
             RETURNING nonce, verifier, return_to, created_at",
        )
        .bind(hash_token(state))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|row| {
            let created: Millis = row.get("created_at");
            (created >= now - ttl).then(|| Pending {
                nonce: row.get("nonce"),
                verifier: row.get("verifier"),
                return_to: row.get("return_to"),
            })
        }))
    }

    /// Records a sign-in of `subject` as the provider describes them now; false if the
    /// person is revoked here (then nothing else changes).
    pub async fn sso_signed_in(
        &self,
        subject: &str,
        name: &str,
        email: Option<&str>,
        groups: &[String],
        roles: &[Role],
        now: Millis,
    ) -> sqlx::Result<bool> {
        let revoked: Option<Option<Millis>> =
            sqlx::query_scalar("SELECT revoked_at FROM sso_users WHERE subject = $1")
                .bind(subject)
                .fetch_optional(&self.pool)
                .await?;
        if matches!(revoked, Some(Some(_))) {
            return Ok(false);
        }
        let groups = serde_json::to_string(groups).unwrap_or_else(|_| "[]".into());
        let roles: Vec<&str> = roles.iter().map(Role::as_str).collect();
        sqlx::query(
            "INSERT INTO sso_users (subject, name, email, groups, roles, first_seen, last_sign_in)
             VALUES ($1, $2, $3, $4, $5, $6, $6)
             ON CONFLICT(subject) DO UPDATE SET name = excluded.name, email = excluded.email,
               groups = excluded.groups, roles = excluded.roles, last_sign_in = excluded.last_sign_in",
        )
        .bind(subject)
        .bind(name)
        .bind(email)
        .bind(groups)
        .bind(roles.join(","))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(true)
    }

    /// Every person who signed in through the provider, by name.
    pub async fn sso_users(&self) -> sqlx::Result<Vec<SsoEntry>> {
        let rows = sqlx::query(
            "SELECT subject, name, email, groups, roles, last_sign_in, revoked_at
             FROM sso_users ORDER BY name, subject",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let groups: String = row.get("groups");
                let revoked: Option<Millis> = row.get("revoked_at");
                SsoEntry {
                    subject: row.get("subject"),
                    name: row.get("name"),
                    email: row.get("email"),
                    groups: serde_json::from_str(&groups).unwrap_or_default(),
                    roles: row.get("roles"),
                    last_sign_in: row.get("last_sign_in"),
                    revoked: revoked.is_some(),
                }
            })
            .collect())
    }

    /// Revokes (or with `revoked = false`, restores) the person named by subject or email:
    /// their sessions end at once and the provider's word no longer lets them in. The
    /// subjects changed.
    pub async fn sso_revoke(
        &self,
        who: &str,
        revoked: bool,
        now: Millis,
    ) -> sqlx::Result<Vec<String>> {
        let mut tx = self.pool.begin().await?;
        let subjects: Vec<String> = sqlx::query_scalar(
            "SELECT subject FROM sso_users WHERE subject = $1 OR LOWER(email) = LOWER($1)",
        )
        .bind(who)
        .fetch_all(&mut *tx)
        .await?;
        for subject in &subjects {
            sqlx::query("UPDATE sso_users SET revoked_at = $1 WHERE subject = $2")
                .bind(revoked.then_some(now))
                .bind(subject)
                .execute(&mut *tx)
                .await?;
            if revoked {
                sqlx::query("DELETE FROM sessions WHERE subject = $1")
                    .bind(subject)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(subjects)
    }
}

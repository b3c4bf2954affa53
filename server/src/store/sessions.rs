//! Browser sessions (cookie + CSRF) and the stakeholder share links that open them.

use std::str::FromStr;

use cutover_core::role::Role;
use cutover_core::time::Millis;

use super::{Storage, User, hash_token, random_hex};

/// A browser session found by its cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: User,
    pub csrf: String,
    /// The stakeholder link it was opened with: read-only, whatever the role may do.
    pub share: Option<String>,
}

/// user, roles, csrf, rollout, share id, subject, email
type SessionRow = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// A share link as listed for admins (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Share {
    pub id: String,
    pub rollout: String,
    pub created_by: String,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub revoked: bool,
}

impl Storage {
    /// Opens a browser session for `user`; returns (session id, csrf token).
    pub async fn create_session(
        &self,
        user: &User,
        share_id: Option<&str>,
        expires_at: Millis,
    ) -> anyhow::Result<(String, String)> {
        let (id, csrf) = (random_hex(), random_hex());
        let roles: Vec<&str> = std::iter::once(&user.role)
            .chain(&user.also)
            .map(Role::as_str)
            .collect();
        sqlx::query(
            "INSERT INTO sessions (id, user_name, role, csrf, rollout, share_id, expires_at, subject, email)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(hash_token(&id))
        .bind(&user.name)
        .bind(roles.join(","))
        .bind(&csrf)
        .bind(&user.only_rollout)
        .bind(share_id)
        .bind(expires_at)
        .bind(user.person.as_deref().and_then(|p| p.strip_prefix("sso:")))
        .bind(&user.email)
        .execute(&self.pool)
        .await?;
        Ok((id, csrf))
    }

    /// The live session for a cookie value: not expired, and its share link (if any) not revoked.
    pub async fn session(&self, id: &str, now: Millis) -> anyhow::Result<Option<Session>> {
        let row: Option<SessionRow> = sqlx::query_as(
            "SELECT s.user_name, s.role, s.csrf, s.rollout, s.share_id, s.subject, s.email
             FROM sessions s
             LEFT JOIN shares sh ON sh.id = s.share_id
             LEFT JOIN sso_users p ON p.subject = s.subject
             WHERE s.id = $1 AND s.expires_at > $2
               AND (s.share_id IS NULL OR (sh.revoked_at IS NULL AND sh.expires_at > $2))
               AND (s.subject IS NULL OR (p.subject IS NOT NULL AND p.revoked_at IS NULL))",
        )
        .bind(hash_token(id))
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(
            row.and_then(|(name, roles, csrf, rollout, share, subject, email)| {
                // A person in several groups holds several roles, most authority first.
                let mut roles = roles.split(',').map(Role::from_str);
                let role = roles.next()?.ok()?;
                let also = roles.collect::<Result<Vec<Role>, _>>().ok()?;
                Some(Session {
                    user: User {
                        name,
                        role,
                        only_rollout: rollout,
                        also,
                        person: subject.map(|s| format!("sso:{s}")),
                        email,
                    },
                    csrf,
                    share,
                })
            }),
        )
    }

    pub async fn end_session(&self, id: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(hash_token(id))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Creates a share link; returns (share id, secret). Only the secret's hash is stored.
    pub async fn create_share(
        &self,
        rollout: &str,
        by: &str,
        now: Millis,
        expires_at: Millis,
    ) -> anyhow::Result<(String, String)> {
        let (id, secret) = (random_hex()[..12].to_string(), random_hex());
        sqlx::query(
            "INSERT INTO shares (id, rollout, secret_hash, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(rollout)
        .bind(hash_token(&secret))
        .bind(by)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok((id, secret))
    }

    /// The share a secret opens, if it is neither revoked nor expired.
    pub async fn share_by_secret(
        &self,
        secret: &str,
        now: Millis,
    ) -> anyhow::Result<Option<Share>> {
        let row: Option<(String, String, String, i64, i64)> = sqlx::query_as(
            "SELECT id, rollout, created_by, created_at, expires_at FROM shares
             WHERE secret_hash = $1 AND revoked_at IS NULL AND expires_at > $2",
        )
        .bind(hash_token(secret))
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(
            row.map(|(id, rollout, created_by, created_at, expires_at)| Share {
                id,
                rollout,
                created_by,
                created_at,
                expires_at,
                revoked: false,
            }),
        )
    }

    /// Revokes a share link; its sessions stop working at once. False if there was none.
    pub async fn revoke_share(&self, id: &str, now: Millis) -> anyhow::Result<bool> {
        let done =
            sqlx::query("UPDATE shares SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The rollout a share link opens, if the link exists.
    pub async fn share_rollout(&self, id: &str) -> sqlx::Result<Option<String>> {
        sqlx::query_scalar("SELECT rollout FROM shares WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }
}

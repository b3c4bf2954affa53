//! Users and their API tokens: create, list, revoke, authenticate.

use std::str::FromStr;

use cutover_core::role::Role;
use cutover_core::time::Millis;
use sqlx::Row;

use super::{Storage, hash_token, random_hex};

/// A user as the server sees it after authenticating a token or a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// Share-link sessions may only read this one rollout.
    pub only_rollout: Option<String>,
    /// More roles, for a person in several mapped groups (most authority first after `role`).
    pub also: Vec<Role>,
    /// The person, stable across renames (`sso:<subject>`), when known.
    pub person: Option<String>,
    pub email: Option<String>,
}

impl User {
    /// Whether the user holds `role`, as their first role or another.
    pub fn holds(&self, role: Role) -> bool {
        self.role == role || self.also.contains(&role)
    }

    /// The user as an action's actor.
    pub fn actor(&self) -> cutover_core::rollout::Actor {
        cutover_core::rollout::Actor {
            name: self.name.clone(),
            role: self.role,
            person: self.person.clone(),
            email: self.email.clone(),
            also: self.also.clone(),
        }
    }
}

/// A user as `cutover user list` shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    pub name: String,
    pub role: String,
    pub created_at: Millis,
}

/// Ends the browser sessions `name` signed in with a token, all of them or those that do not
/// have `keep`'s role and rollout (a user moved to another rollout must not keep reading the
/// old one). Share-link sessions are the link's, and end with it.
async fn end_user_sessions(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    name: &str,
    keep: Option<(Role, Option<&str>)>,
) -> sqlx::Result<()> {
    sqlx::query(
        "DELETE FROM sessions WHERE user_name = $1 AND share_id IS NULL
           AND ($2 IS NULL OR role <> $2 OR rollout IS DISTINCT FROM $3)",
    )
    .bind(name)
    .bind(keep.map(|(r, _)| r.as_str().to_string()))
    .bind(keep.and_then(|(_, rollout)| rollout))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn new_token() -> String {
    format!("cut_{}", random_hex())
}

impl Storage {
    /// Creates a user (or replaces the token and role of an existing one) and returns the new
    /// token. The token is not stored, only its hash: this is the one time anyone sees it.
    /// Browser sessions signed in under another role end, so a demotion takes effect at once
    /// (after a leaked token, `revoke_user` ends every session).
    pub async fn upsert_user(&self, name: &str, role: Role, now: Millis) -> sqlx::Result<String> {
        self.upsert_user_for(name, role, None, now).await
    }

    /// `upsert_user` for a user limited to one rollout (`Some`): an ingest token for one
    /// service, say, that can neither push to nor read any other rollout.
    pub async fn upsert_user_for(
        &self,
        name: &str,
        role: Role,
        rollout: Option<&str>,
        now: Millis,
    ) -> sqlx::Result<String> {
        let token = new_token();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO users (name, role, token_hash, created_at, rollout) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT(name) DO UPDATE SET role = excluded.role, token_hash = excluded.token_hash,
               rollout = excluded.rollout",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(hash_token(&token))
        .bind(now)
        .bind(rollout)
        .execute(&mut *tx)
        .await?;
        end_user_sessions(&mut tx, name, Some((role, rollout))).await?;
        tx.commit().await?;
        Ok(token)
    }

    /// Every user with their role and when they were created, by name. Never a token.
    pub async fn users(&self) -> sqlx::Result<Vec<UserEntry>> {
        let rows = sqlx::query("SELECT name, role, created_at FROM users ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| UserEntry {
                name: row.get("name"),
                role: row.get("role"),
                created_at: row.get("created_at"),
            })
            .collect())
    }

    /// Deletes a user: their token stops working and their browser sessions end, at once.
    /// False if there was no such user.
    pub async fn revoke_user(&self, name: &str) -> sqlx::Result<bool> {
        let mut tx = self.pool.begin().await?;
        let deleted = sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        end_user_sessions(&mut tx, name, None).await?;
        tx.commit().await?;
        Ok(deleted > 0)
    }

    pub async fn user_by_token(&self, token: &str) -> sqlx::Result<Option<User>> {
        let row = sqlx::query(
            "SELECT u.name, u.role, u.rollout, u.email, p.subject FROM users u
             LEFT JOIN sso_users p ON u.email IS NOT NULL AND LOWER(p.email) = LOWER(u.email)
             WHERE u.token_hash = $1",
        )
        .bind(hash_token(token))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|row| {
            let role: String = row.get("role");
            let email: Option<String> = row.get("email");
            let subject: Option<String> = row.get("subject");
            // A token bound to an email is the provider's person with that email, if one has
            // signed in: sign-offs count them once, however they come.
            let person = subject.map(|s| format!("sso:{s}")).or_else(|| {
                email
                    .as_ref()
                    .map(|e| format!("email:{}", e.to_lowercase()))
            });
            // A role this build does not know is treated as no user rather than guessed.
            Role::from_str(&role).ok().map(|role| User {
                name: row.get("name"),
                role,
                only_rollout: row.get("rollout"),
                also: Vec::new(),
                person,
                email,
            })
        }))
    }

    /// Binds a token user to an email (`user add --email`); `None` unbinds.
    pub async fn set_user_email(&self, name: &str, email: Option<&str>) -> sqlx::Result<bool> {
        let done = sqlx::query("UPDATE users SET email = $1 WHERE name = $2")
            .bind(email)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

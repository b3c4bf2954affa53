//! Durable state: users and tokens, rollout state, audit, sessions, metric buckets. One
//! `Storage` for the whole server over SQLite (the embedded default) or PostgreSQL (several
//! replicas). Queries live here and nowhere else, written once with `$N` parameters, which
//! both engines accept; only the migrations differ, in each engine's types.

use std::path::Path;
use std::str::FromStr;

use anyhow::Context;
use cutover_core::gates::Memory;
use cutover_core::role::Role;
use cutover_core::rollout::{AuditRecord, RolloutState};
use cutover_core::time::Millis;
use cutover_core::window::PersistedBucket;
use sha2::{Digest, Sha256};
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::{Executor, Row};

/// A user as the server sees it after authenticating a token or a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// Share-link sessions may only read this one rollout.
    pub only_rollout: Option<String>,
}

/// A user as `cutover user list` shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    pub name: String,
    pub role: String,
    pub created_at: Millis,
}

/// Ends the browser sessions `name` signed in with a token, all of them or those with another
/// role than `keep`. Share-link sessions are the link's, and end with it.
async fn end_user_sessions(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    name: &str,
    keep: Option<Role>,
) -> sqlx::Result<()> {
    sqlx::query(
        "DELETE FROM sessions WHERE user_name = $1 AND share_id IS NULL
           AND ($2 IS NULL OR role <> $2)",
    )
    .bind(name)
    .bind(keep.map(|r| r.as_str()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A browser session found by its cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: User,
    pub csrf: String,
    /// Opened with a stakeholder link: read-only, whatever the role may do.
    pub shared: bool,
}

/// user, role, csrf, rollout, share id
type SessionRow = (String, String, String, Option<String>, Option<String>);

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

/// Which engine holds the data. SQLite is the embedded default; PostgreSQL lets several
/// replicas share one dashboard. Every query is written once, in SQL both accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else {
            None
        }
    }
}

/// A database URL with its password replaced, fit for an error message or a log line.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[derive(Clone)]
pub struct Storage {
    pool: AnyPool,
    backend: Backend,
    /// PostgreSQL's URL, for the replica listener's own connection.
    url: Option<String>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").finish_non_exhaustive()
    }
}

/// Tokens are stored as SHA-256 hashes: a leaked database does not leak credentials. They are
/// 192-bit random (`random_hex`), so a fast hash is enough (no password stretching needed).
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn new_token() -> String {
    format!("cut_{}", random_hex())
}

/// 192 random bits, hex-encoded: session ids, CSRF tokens, share secrets.
/// A claim still unsettled after this long was left by a server that died mid-request.
pub const STALE_CLAIM: Millis = 60_000;

/// What became of an idempotency key's claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This request holds the key: act, then remember the answer.
    Claimed,
    /// The same request was answered before: send this (status, JSON body) again.
    Replay(u16, String),
    /// The key was first used for a different request.
    Mismatch,
    /// The first request with this key is still running.
    InProgress,
}

pub fn random_hex() -> String {
    let bytes: [u8; 24] = rand::random();
    hex::encode(bytes)
}

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

/// The PostgreSQL channel on which a committed action names its rollout.
pub const CHANGES_CHANNEL: &str = "cutover_rollouts";

impl Storage {
    /// Opens the database `--database` names, or SQLite in `data_dir` when it names none.
    pub async fn open(database: Option<&str>, data_dir: &Path) -> anyhow::Result<Storage> {
        match database {
            Some(url) if Backend::of_url(url) == Some(Backend::Postgres) => {
                Storage::open_postgres(url).await
            }
            Some(url) => match url.strip_prefix("sqlite://") {
                Some(path) => Storage::open_sqlite_file(Path::new(path)).await,
                None => anyhow::bail!(
                    "--database must be postgres://... or sqlite://PATH, not {:?}",
                    redact(url)
                ),
            },
            None => Storage::open_sqlite(data_dir).await,
        }
    }

    /// Opens (creating if needed) `DIR/cutover.db` and applies the embedded migrations.
    pub async fn open_sqlite(data_dir: &Path) -> anyhow::Result<Storage> {
        std::fs::create_dir_all(data_dir)?;
        Storage::open_sqlite_file(&data_dir.join("cutover.db")).await
    }

    /// WAL lets readers run beside the writer; `synchronous=FULL` makes a committed action
    /// survive a power cut, which is what an acknowledged kill must do.
    async fn open_sqlite_file(path: &Path) -> anyhow::Result<Storage> {
        sqlx::any::install_default_drivers();
        // The database holds token hashes, sessions and the audit log: owner only. A new file
        // is created with these permissions; an existing one is tightened.
        #[cfg(unix)]
        {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            let _ = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path);
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                         PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;",
                    )
                    .await?;
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .with_context(|| format!("cannot open {}", path.display()))?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Storage {
            pool,
            backend: Backend::Sqlite,
            url: None,
        })
    }

    /// Connects to PostgreSQL and applies its migrations. Several `cutover serve` processes
    /// may share one database: the migrator takes an advisory lock, so they do not race.
    pub async fn open_postgres(url: &str) -> anyhow::Result<Storage> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(url)
            .await
            .with_context(|| format!("cannot connect to {}", redact(url)))?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Storage {
            pool,
            backend: Backend::Postgres,
            url: Some(url.to_string()),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

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
        end_user_sessions(&mut tx, name, Some(role)).await?;
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
        let row = sqlx::query("SELECT name, role, rollout FROM users WHERE token_hash = $1")
            .bind(hash_token(token))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.and_then(|row| {
            let role: String = row.get("role");
            // A role this build does not know is treated as no user rather than guessed.
            Role::from_str(&role).ok().map(|role| User {
                name: row.get("name"),
                role,
                only_rollout: row.get("rollout"),
            })
        }))
    }

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
        evidence: &serde_json::Value,
    ) -> anyhow::Result<Option<i64>> {
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
        let seq = self.audit_and_notify(&mut tx, id, record, evidence).await?;
        tx.commit().await?;
        Ok(Some(seq))
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
        let evidence = serde_json::json!({ "plan": { "from": old_hash, "to": new_hash } });
        self.audit_and_notify(&mut tx, id, record, &evidence)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Appends `record` to the audit log and, on PostgreSQL, tells every replica, inside `tx`.
    async fn audit_and_notify(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        id: &str,
        record: &AuditRecord,
        evidence: &serde_json::Value,
    ) -> anyhow::Result<i64> {
        let mut entry = serde_json::to_value(record)?;
        if let Some(map) = entry.as_object_mut() {
            map.insert("evidence".into(), evidence.clone());
        }
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO audit (rollout, at, actor, role, action, record) VALUES ($1, $2, $3, $4, $5, $6)
             RETURNING seq",
        )
        .bind(id)
        .bind(record.at)
        .bind(&record.actor.name)
        .bind(record.actor.role.as_str())
        .bind(record.action.name())
        .bind(entry.to_string())
        .fetch_one(&mut **tx)
        .await?;
        if self.backend == Backend::Postgres {
            // Delivered to every listening replica when (and only if) the transaction commits.
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANGES_CHANNEL)
                .bind(id)
                .execute(&mut **tx)
                .await?;
        }
        Ok(seq)
    }

    /// Audit entries newest first, `limit` of them, older than `before` when given; with
    /// `marks_only`, only those that mark the charts (no checks or approvals), so a busy
    /// checklist does not push a day's stage changes out of the charts' reach.
    pub async fn audit(
        &self,
        id: &str,
        before: Option<i64>,
        limit: i64,
        marks_only: bool,
    ) -> anyhow::Result<Vec<serde_json::Value>> {
        // Built once: the action names are constants of core, not input.
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            let unmarked = cutover_core::chart::UNMARKED_ACTIONS
                .map(|a| format!("'{a}'"))
                .join(", ");
            format!(
                "SELECT seq, record FROM audit WHERE rollout = $1 AND seq < $2 \
                 AND ($4 = 0 OR action NOT IN ({unmarked})) ORDER BY seq DESC LIMIT $3"
            )
        });
        let rows: Vec<(i64, String)> = sqlx::query_as(SQL.as_str())
            .bind(id)
            .bind(before.unwrap_or(i64::MAX))
            .bind(limit)
            .bind(i64::from(marks_only))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|(seq, record)| {
                let mut v: serde_json::Value = serde_json::from_str(&record)?;
                if let Some(map) = v.as_object_mut() {
                    map.insert("seq".into(), seq.into());
                }
                Ok(v)
            })
            .collect()
    }

    /// Claims `key` for a request whose fingerprint is `fingerprint`, atomically: of any
    /// number of concurrent requests with one key, exactly one gets `Claimed`.
    pub async fn claim_idempotency(
        &self,
        key: &str,
        rollout: &str,
        fingerprint: &str,
        now: Millis,
    ) -> anyhow::Result<Claim> {
        let inserted = sqlx::query(
            "INSERT INTO idempotency (key, rollout, response, status, at, fingerprint)
             VALUES ($1, $2, '', 0, $3, $4) ON CONFLICT(key) DO NOTHING",
        )
        .bind(key)
        .bind(rollout)
        .bind(now)
        .bind(fingerprint)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(Claim::Claimed);
        }
        let row: Option<(i64, String, String)> =
            sqlx::query_as("SELECT status, response, fingerprint FROM idempotency WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
        Ok(match row {
            // Released between the insert and the select: the caller tries again.
            None => Claim::InProgress,
            Some((_, _, stored)) if stored != fingerprint => Claim::Mismatch,
            Some((0, _, _)) => {
                // A claim nobody settled (its server died mid-request) is taken over once
                // it is older than any request may run; one taker wins the update.
                let taken = sqlx::query(
                    "UPDATE idempotency SET at = $1 WHERE key = $2 AND status = 0 AND at < $3",
                )
                .bind(now)
                .bind(key)
                .bind(now - STALE_CLAIM)
                .execute(&self.pool)
                .await?;
                if taken.rows_affected() == 1 {
                    Claim::Claimed
                } else {
                    Claim::InProgress
                }
            }
            Some((status, body, _)) => Claim::Replay(u16::try_from(status).unwrap_or(200), body),
        })
    }

    /// Stores the answer to the request that claimed `key`, for its retries.
    pub async fn remember_response(
        &self,
        key: &str,
        status: u16,
        body: &str,
    ) -> anyhow::Result<()> {
        sqlx::query("UPDATE idempotency SET response = $1, status = $2 WHERE key = $3")
            .bind(body)
            .bind(i64::from(status))
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Gives up a claim whose request ended without an answer worth replaying (a server
    /// fault, or a refusal the state may lift): a retry then decides afresh.
    pub async fn release_idempotency(&self, key: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM idempotency WHERE key = $1 AND status = 0")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Opens a browser session for `user`; returns (session id, csrf token).
    pub async fn create_session(
        &self,
        user: &User,
        share_id: Option<&str>,
        expires_at: Millis,
    ) -> anyhow::Result<(String, String)> {
        let (id, csrf) = (random_hex(), random_hex());
        sqlx::query(
            "INSERT INTO sessions (id, user_name, role, csrf, rollout, share_id, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(hash_token(&id))
        .bind(&user.name)
        .bind(user.role.as_str())
        .bind(&csrf)
        .bind(&user.only_rollout)
        .bind(share_id)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok((id, csrf))
    }

    /// The live session for a cookie value: not expired, and its share link (if any) not revoked.
    pub async fn session(&self, id: &str, now: Millis) -> anyhow::Result<Option<Session>> {
        let row: Option<SessionRow> = sqlx::query_as(
            "SELECT s.user_name, s.role, s.csrf, s.rollout, s.share_id FROM sessions s
             LEFT JOIN shares sh ON sh.id = s.share_id
             WHERE s.id = $1 AND s.expires_at > $2
               AND (s.share_id IS NULL OR (sh.revoked_at IS NULL AND sh.expires_at > $2))",
        )
        .bind(hash_token(id))
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|(name, role, csrf, rollout, share)| {
            let role = Role::from_str(&role).ok()?;
            Some(Session {
                user: User {
                    name,
                    role,
                    only_rollout: rollout,
                },
                csrf,
                shared: share.is_some(),
            })
        }))
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

    /// The rollout a share link opens, if the link exists.
    pub async fn share_rollout(&self, id: &str) -> sqlx::Result<Option<String>> {
        sqlx::query_scalar("SELECT rollout FROM shares WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Deletes what no one can use any more: ended sessions, idempotency keys older than
    /// `keys_before`, share links that expired before `shares_before`, and metric buckets that
    /// started before `buckets_before`. Returns how many rows went.
    pub async fn prune(
        &self,
        now: Millis,
        keys_before: Millis,
        shares_before: Millis,
        buckets_before: Millis,
    ) -> anyhow::Result<u64> {
        let mut gone = 0;
        for (sql, at) in [
            ("DELETE FROM sessions WHERE expires_at < $1", now),
            ("DELETE FROM idempotency WHERE at < $1", keys_before),
            (
                "DELETE FROM sessions WHERE share_id IN (SELECT id FROM shares WHERE expires_at < $1)",
                shares_before,
            ),
            ("DELETE FROM shares WHERE expires_at < $1", shares_before),
            (
                "DELETE FROM metric_buckets WHERE start < $1",
                buckets_before,
            ),
        ] {
            gone += sqlx::query(sql)
                .bind(at)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        Ok(gone)
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

    /// Gives a lease up at once (a clean shutdown), so another replica need not wait it out.
    pub async fn release_lease(&self, name: &str, holder: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
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

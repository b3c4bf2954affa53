//! Durable state: users and tokens, rollout state, audit, sessions, metric buckets. One
//! `Storage` for the whole server over SQLite (the embedded default) or PostgreSQL (several
//! replicas). Queries live here and nowhere else, written once with `$N` parameters, which
//! both engines accept; only the migrations differ, in each engine's types.
//!
//! One file per concern, each with its own `impl Storage` block: `users` (users, tokens),
//! `sessions` (browser sessions, share links), `rollouts` (state, plans, audit, evaluator
//! memory), `chain` (the audit log's hash chain), `idempotency` (action retries), `buckets` (metric buckets), `leases` (replica
//! leases). This file opens the database and holds what several of them share.

use std::path::Path;

use anyhow::Context;
use cutover_core::time::Millis;
use sha2::{Digest, Sha256};
use sqlx::AnyPool;
use sqlx::Executor;
use sqlx::any::AnyPoolOptions;

pub mod audit_key;
mod buckets;
mod chain;
mod confirmations;
mod fleet;
mod idempotency;
mod leases;
mod outboxes;
mod rollouts;
mod sessions;
mod sso;
mod users;

// The types stay at `crate::store::...`, where the rest of the crate names them.
pub use audit_key::AuditKey;
pub use chain::{Appended, Verified, verify_on};
pub use idempotency::{Claim, STALE_CLAIM};
pub use outboxes::OUTBOX_STALE;
pub use sessions::{Session, Share};
pub use sso::{Pending, SsoEntry};
pub use users::{User, UserEntry};

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
    /// Signs each audit head (outside the database); `None` on PostgreSQL without one set.
    audit_key: Option<AuditKey>,
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

/// 192 random bits, hex-encoded: session ids, CSRF tokens, share secrets.
pub fn random_hex() -> String {
    let bytes: [u8; 24] = rand::random();
    hex::encode(bytes)
}

/// A read-only SQLite URL for `path`, which must exist (opening must not create it).
fn sqlite_ro_url(path: &Path) -> anyhow::Result<String> {
    if !path.is_file() {
        anyhow::bail!("there is no database at {}", path.display());
    }
    Ok(format!("sqlite://{}?mode=ro", path.display()))
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

    /// Opens an existing database to read, for `cutover audit verify`: never creates a file,
    /// applies no migration, seals and signs nothing; a missing SQLite file is an error.
    pub async fn open_read_only(
        database: Option<&str>,
        data_dir: &Path,
    ) -> anyhow::Result<Storage> {
        sqlx::any::install_default_drivers();
        let (url, backend, key_dir) = match database {
            Some(url) if Backend::of_url(url) == Some(Backend::Postgres) => {
                (url.to_string(), Backend::Postgres, None)
            }
            Some(url) => match url.strip_prefix("sqlite://") {
                Some(path) => {
                    let path = Path::new(path);
                    (
                        sqlite_ro_url(path)?,
                        Backend::Sqlite,
                        path.parent().map(Path::to_path_buf),
                    )
                }
                None => anyhow::bail!(
                    "--database must be postgres://... or sqlite://PATH, not {:?}",
                    redact(url)
                ),
            },
            None => (
                sqlite_ro_url(&data_dir.join("cutover.db"))?,
                Backend::Sqlite,
                Some(data_dir.to_path_buf()),
            ),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(2)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Postgres {
                        conn.execute("SET default_transaction_read_only = on")
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .with_context(|| format!("cannot open {}", redact(&url)))?;
        let audit_key = match key_dir {
            Some(dir) => AuditKey::load(&dir, false)?,
            None => AuditKey::from_env(),
        };
        Ok(Storage {
            pool,
            backend,
            url: None,
            audit_key,
        })
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
        let dir = path.parent().unwrap_or(Path::new("."));
        let storage = Storage {
            pool,
            backend: Backend::Sqlite,
            url: None,
            audit_key: AuditKey::load(dir, true)?,
        };
        storage.seal_listed().await?;
        Ok(storage)
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
        let audit_key = AuditKey::from_env();
        if audit_key.is_none() {
            tracing::warn!(
                "no {} set: audit heads are not signed (set the same key on every replica)",
                audit_key::ENV
            );
        }
        let storage = Storage {
            pool,
            backend: Backend::Postgres,
            url: Some(url.to_string()),
            audit_key,
        };
        storage.seal_listed().await?;
        Ok(storage)
    }

    /// The key audit heads are signed with, if there is one.
    pub fn audit_key(&self) -> Option<&AuditKey> {
        self.audit_key.as_ref()
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection and waits until they are closed. Dropping a `Storage` closes
    /// them later, on sqlx's own threads: on SQLite, another process opening the file in
    /// that moment can read a half-checkpointed log (a stale read or "disk I/O error").
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }
}

/// Pruning spans every concern's tables at once, so it lives beside the `Storage` itself.
impl Storage {
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
}

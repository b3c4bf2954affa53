//! The key the audit head is signed with (`cutover_core::chain::head_mac`), kept outside the
//! database: a database writer who rewrites the chain cannot sign the new head.
//!
//! `CUTOVER_AUDIT_KEY` (the key's text; every replica on one PostgreSQL database must have the
//! same) wins; else, for SQLite, `audit.key` beside the database, made on first use (owner
//! only). Without either, on PostgreSQL, heads are not signed and verification says so.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

/// The environment variable holding the key's text.
pub const ENV: &str = "CUTOVER_AUDIT_KEY";
/// The key file's name in the data directory.
pub const FILE: &str = "audit.key";

/// A signing key: its bytes.
#[derive(Clone)]
pub struct AuditKey(pub Arc<[u8]>);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

impl AuditKey {
    /// The key from the environment, if set.
    pub fn from_env() -> Option<AuditKey> {
        std::env::var(ENV)
            .ok()
            .filter(|k| !k.trim().is_empty())
            .map(|k| AuditKey(k.trim().as_bytes().into()))
    }

    /// The key from the environment, or from `dir/audit.key`, made when `create` and absent.
    pub fn load(dir: &Path, create: bool) -> anyhow::Result<Option<AuditKey>> {
        if let Some(key) = AuditKey::from_env() {
            return Ok(Some(key));
        }
        let path = dir.join(FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) if !text.trim().is_empty() => {
                return Ok(Some(AuditKey(text.trim().as_bytes().into())));
            }
            Ok(_) => anyhow::bail!("{} is empty", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
        let text = crate::store::random_hex();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        use std::io::Write;
        let mut file = match options.open(&path) {
            Ok(file) => file,
            // Another process made it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return AuditKey::load(dir, false);
            }
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
        };
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        Ok(Some(AuditKey(text.as_bytes().into())))
    }
}

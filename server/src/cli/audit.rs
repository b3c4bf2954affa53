//! `cutover audit verify`: checks every rollout's audit chain straight in the server's
//! database, read-only (it creates nothing, migrates nothing and seals nothing: a stripped log
//! stays stripped), and names the first entry edited, deleted or moved after it was written,
//! a head the server's audit key never signed, and a state changed around the log.

use std::process::ExitCode;

use super::user::StoreArgs;

/// The audit log.
#[derive(clap::Args)]
pub(super) struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(clap::Subcommand)]
enum AuditCommand {
    /// Check each rollout's audit log against its hash chain; exits 1 when one is broken.
    ///
    /// Example: cutover audit verify --data-dir .data/cutover
    Verify {
        /// Only these rollouts (all when none is named).
        rollouts: Vec<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub(super) async fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let AuditCommand::Verify { rollouts, store } = args.command;
    let storage = match store.open_read_only().await {
        Ok(storage) => storage,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if storage.audit_key().is_none() {
        println!(
            "no audit key ({} or audit.key beside the database): heads are checked unsigned",
            crate::store::audit_key::ENV
        );
    }
    let known = storage.rollout_ids().await?;
    if let Some(unknown) = rollouts.iter().find(|r| !known.contains(r)) {
        eprintln!(
            "error: there is no rollout {unknown:?} (rollouts: {})",
            known.join(", ")
        );
        return Ok(ExitCode::FAILURE);
    }
    let ids = if rollouts.is_empty() { known } else { rollouts };
    let mut broken = false;
    for id in ids {
        let verified = storage.verify_audit(&id).await?;
        let head = verified.head.as_deref().unwrap_or("none");
        let signed = if verified.signed { ", signed" } else { "" };
        match verified.result {
            Ok(entries) => {
                println!("{id}: {entries} entries, the chain holds (head {head}{signed})")
            }
            Err(e) => {
                broken = true;
                println!("{id}: BROKEN: {e} (head {head})");
            }
        }
    }
    Ok(if broken {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

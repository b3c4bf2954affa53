//! `cutover audit verify`: checks every rollout's audit chain straight in the server's
//! database and names the first entry that was edited, deleted or moved after it was written.

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
    let storage = store.open().await?;
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
        match verified.result {
            Ok(entries) => println!("{id}: {entries} entries, the chain holds (head {head})"),
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

//! `cutover plan check`: validate plan files offline, as an editor or CI step would.

use std::path::PathBuf;
use std::process::ExitCode;

use cutover_core::plan;

/// Plan files.
#[derive(clap::Args)]
pub(super) struct PlanArgs {
    #[command(subcommand)]
    command: PlanCommand,
}

#[derive(clap::Subcommand)]
enum PlanCommand {
    /// Validate plan files; prints `file:line:col: message` per problem, exit 1 on any.
    ///
    /// Example: cutover plan check plans/*.toml
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

pub(super) fn run(args: PlanArgs) -> ExitCode {
    match args.command {
        PlanCommand::Check { files } => check(&files),
    }
}

/// Checks every file, not just up to the first bad one, so one run lists every problem.
fn check(files: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for file in files {
        let name = file.display().to_string();
        match std::fs::read_to_string(file) {
            Err(e) => {
                eprintln!("{name}: cannot read: {e}");
                failed = true;
            }
            Ok(text) => match plan::parse(&name, &text) {
                Ok(plan) => println!(
                    "{name}: ok ({}: {} stages, {} gates, {} triggers)",
                    plan.id,
                    plan.stages.len(),
                    plan.gates.len(),
                    plan.triggers.len()
                ),
                Err(errors) => {
                    failed = true;
                    for e in errors {
                        eprintln!("{e}");
                    }
                }
            },
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

//! The `cutover` command line: the clap tree's root and the dispatch to one module per
//! subcommand. Server side: `serve`, `demo`, `plan check`, `user`. Client side (talking to a
//! server over HTTP): `status`, `export`, the actions, `gate-check`, `simulate`. Usage errors
//! exit 2 (clap); client commands exit as `client::ClientError` says.

mod audit;
pub mod client;
pub mod config;
mod demo;
mod plan;
mod serve;
mod user;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cutover",
    version,
    about = "Live war-room dashboard for progressive rollouts and production cutovers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Every subcommand, in the order `--help` lists them. Each one's help text lives on its `Args`
// struct, beside the code that runs it (a `///` here would become clap help, hence `//`).
#[derive(Subcommand)]
enum Command {
    Serve(serve::ServeArgs),
    Demo(demo::DemoArgs),
    // Flattened: the client commands sit at the top level (`cutover status`) yet live in their
    // own module, with their own exit codes.
    #[command(flatten)]
    Client(client::ClientCommand),
    Plan(plan::PlanArgs),
    User(user::UserArgs),
    Audit(audit::AuditArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "cutover_server=info,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => serve::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Client(command) => Ok(command.run().await),
        Command::Plan(args) => Ok(plan::run(args)),
        Command::User(args) => user::run(args).await,
        Command::Audit(args) => audit::run(args).await,
    }
}

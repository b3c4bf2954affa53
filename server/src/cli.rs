//! The `cutover` command line: `serve`, `demo`, `plan check`, `user add`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use cutover_core::plan::{self, Plan};
use cutover_core::role::Role;

use crate::state::{AppState, now};
use crate::storage::Storage;

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

#[derive(Subcommand)]
enum Command {
    /// Serve the dashboard and API for the plans in a directory.
    ///
    /// Example: cutover serve --plans plans/ --data-dir /var/lib/cutover
    Serve {
        #[command(flatten)]
        server: ServerArgs,
        /// Directory of plan files (*.toml); each becomes a rollout named by its id.
        #[arg(long, env = "CUTOVER_PLANS")]
        plans: PathBuf,
    },
    /// Serve the example plans with simulated traffic and print a token per role.
    ///
    /// Example: cutover demo --addr 127.0.0.1:8787
    Demo {
        #[command(flatten)]
        server: ServerArgs,
        /// Simulated events per second per rollout.
        #[arg(long, default_value_t = 40)]
        rate: u32,
    },
    /// Plan files.
    Plan {
        #[command(subcommand)]
        command: PlanCommand,
    },
    /// Users and their tokens.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "CUTOVER_ADDR", default_value = "127.0.0.1:8787")]
    addr: SocketAddr,
    /// Where the SQLite database lives.
    #[arg(long, env = "CUTOVER_DATA_DIR", default_value = ".data/cutover")]
    data_dir: PathBuf,
}

#[derive(Subcommand)]
enum PlanCommand {
    /// Validate plan files; prints `file:line:col: message` per problem, exit 1 on any.
    ///
    /// Example: cutover plan check plans/*.toml
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user (or give an existing one a new token) and print the token once.
    ///
    /// Example: cutover user add alice --role operator
    Add {
        name: String,
        #[arg(long)]
        role: Role,
        #[arg(long, env = "CUTOVER_DATA_DIR", default_value = ".data/cutover")]
        data_dir: PathBuf,
    },
}

#[derive(rust_embed::RustEmbed)]
#[folder = "../plans"]
#[include = "*.toml"]
struct ExamplePlans;

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
        Command::Serve { server, plans } => {
            let plans = match load_plan_dir(&plans)? {
                Ok(plans) => plans,
                Err(errors) => {
                    for e in errors {
                        eprintln!("{e}");
                    }
                    return Ok(ExitCode::FAILURE);
                }
            };
            let storage = Storage::open_sqlite(&server.data_dir).await?;
            start(server.addr, storage, plans, None).await?;
        }
        Command::Demo { server, rate } => {
            let plans = example_plans()?;
            let storage = Storage::open_sqlite(&server.data_dir).await?;
            start(server.addr, storage, plans, Some(rate)).await?;
        }
        Command::Plan {
            command: PlanCommand::Check { files },
        } => return Ok(check_plans(&files)),
        Command::User {
            command:
                UserCommand::Add {
                    name,
                    role,
                    data_dir,
                },
        } => {
            let storage = Storage::open_sqlite(&data_dir).await?;
            let token = storage.upsert_user(&name, role, now()).await?;
            println!("{token}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn check_plans(files: &[PathBuf]) -> ExitCode {
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

/// Every `*.toml` in `dir`, parsed; a bad plan stops start-up with its errors.
fn load_plan_dir(dir: &Path) -> anyhow::Result<Result<Vec<Plan>, Vec<plan::PlanError>>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read plan directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    let mut plans = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        match plan::parse(&path.display().to_string(), &text) {
            Ok(p) => plans.push(p),
            Err(e) => errors.extend(e),
        }
    }
    if plans.is_empty() && errors.is_empty() {
        anyhow::bail!("no plans (*.toml) in {}", dir.display());
    }
    Ok(if errors.is_empty() {
        Ok(plans)
    } else {
        Err(errors)
    })
}

fn example_plans() -> anyhow::Result<Vec<Plan>> {
    let mut plans = Vec::new();
    for name in ExamplePlans::iter() {
        let file = ExamplePlans::get(&name).context("embedded plan vanished")?;
        let text = std::str::from_utf8(&file.data)?;
        let plan = plan::parse(&name, text).map_err(|e| {
            anyhow::anyhow!(
                e.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        })?;
        plans.push(plan);
    }
    Ok(plans)
}

/// Binds, prints where to look, and serves until Ctrl-C. `demo_rate` turns on the demo:
/// simulated traffic and a fresh token per role.
async fn start(
    addr: SocketAddr,
    storage: Storage,
    plans: Vec<Plan>,
    demo_rate: Option<u32>,
) -> anyhow::Result<()> {
    for plan in &plans {
        let hash = crate::storage::hash_token(&serde_json::to_string(plan)?);
        storage
            .ensure_rollout(&plan.id, &plan.title, &hash, "{}", now())
            .await?;
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let addr = listener.local_addr()?;
    let state = AppState::load(storage.clone(), plans).await?;
    println!(
        "cutover is serving {} rollout(s) at http://{addr}",
        state.rollouts.len()
    );
    for id in state.rollouts.keys() {
        println!("  rollout  http://{addr}/r/{id}");
    }
    if let Some(rate) = demo_rate {
        println!(
            "tokens (paste one into the sign-in box, or send `Authorization: Bearer <token>`):"
        );
        for role in Role::ALL {
            let token = storage
                .upsert_user(&format!("demo-{role}"), role, now())
                .await?;
            println!("  {:<9} {token}", role.as_str());
        }
        if let Some(first) = state
            .rollouts
            .keys()
            .find(|id| *id == "spiralogic")
            .or(state.rollouts.keys().next())
        {
            let (_, secret) = storage
                .create_share(first, "demo", now(), now() + 7 * cutover_core::time::DAY)
                .await?;
            println!("read-only stakeholder link for {first}:");
            println!("  stakeholder http://{addr}/s/{secret}");
        }
        println!("simulated traffic: healthy, {rate} events/s per rollout");
        tokio::spawn(crate::simulate::run(state.clone(), rate));
    }
    tokio::spawn(crate::evaluator::run(state.clone()));
    crate::serve(listener, state, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

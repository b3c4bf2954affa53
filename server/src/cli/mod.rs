//! The `cutover` command line. Server side: `serve`, `demo`, `plan check`, `user add`. Client
//! side (talking to a server over HTTP): `status`, `export`, the actions, `gate-check`,
//! `simulate`. Usage errors exit 2 (clap); client commands exit as `client::ClientError` says.

pub mod client;
pub mod config;
mod demo;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use cutover_core::plan::{self, Plan};
use cutover_core::role::Role;

use crate::cli::client::gate_check::Require;
use crate::clock::now;
use crate::runtime::state::AppState;
use crate::sources::simulate::{Mix, Scenario};
use crate::store::Storage;
use client::{Client, ClientError, Connection, act::Act};

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
    /// Settings come from flags, then environment variables, then --config, then defaults.
    /// A config file holds `addr`, `data_dir` and `plans`.
    ///
    /// Examples:
    ///   cutover serve --plans plans/ --data-dir /var/lib/cutover
    ///   cutover serve --config /etc/cutover/cutover.toml
    Serve {
        #[command(flatten)]
        server: ServerArgs,
        /// Directory of plan files (*.toml); each becomes a rollout named by its id.
        #[arg(long, env = "CUTOVER_PLANS")]
        plans: Option<PathBuf>,
    },
    /// Serve the example plans with simulated traffic and print a token per role.
    ///
    /// Examples:
    ///   cutover demo --addr 127.0.0.1:8787
    ///   cutover demo --plans my-plans/ --scenario checkout=latency-spike
    Demo {
        #[command(flatten)]
        server: ServerArgs,
        /// Serve the plans in this directory instead of the examples (a rehearsal of your
        /// own plan against simulated traffic).
        #[arg(long)]
        plans: Option<PathBuf>,
        /// Simulated events per second per rollout.
        #[arg(long, default_value_t = 40)]
        rate: u32,
        /// Start with this much simulated healthy history (at most 24h, what the charts keep),
        /// so the longer chart ranges show something; `./x demo` asks for 24h.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, overrides_with = "backfill")]
        backfill: Option<std::time::Duration>,
        /// Traffic scenario for one rollout, e.g. spiralogic=latency-spike (repeatable; the
        /// others run healthy). Without any, the example lens-v1 runs error-spike so the demo
        /// shows an incident; `--scenario lens-v1=healthy` turns it off.
        #[arg(long, value_name = "ROLLOUT=SCENARIO", value_parser = parse_scenario)]
        scenario: Vec<(String, Scenario)>,
    },
    /// Where every rollout stands: one line each, or the full view of one.
    ///
    /// Examples:
    ///   cutover status --compact --once
    ///   cutover status spiralogic --watch --interval 5
    ///   cutover status spiralogic --json | jq '.gates[] | {id, verdict}'
    Status {
        /// One rollout (all when omitted; the full view needs one).
        rollout: Option<String>,
        /// One line per rollout: stage, traffic, health, gates passing, headline numbers.
        #[arg(long)]
        compact: bool,
        /// Print once and exit (the default).
        #[arg(long, conflicts_with = "watch")]
        once: bool,
        /// Redraw every --interval seconds until interrupted.
        #[arg(long)]
        watch: bool,
        #[arg(long, default_value_t = 5, value_name = "SECS")]
        interval: u64,
        /// Machine-readable: the snapshot (full view) or the summaries (compact).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        connection: Connection,
    },
    /// Append a rollout's time series and gate verdicts to a CSV file.
    ///
    /// One row per completed 10 s step (1 min beyond an hour). Appending continues after the
    /// file's last row, so repeated runs never duplicate a row.
    ///
    /// Examples:
    ///   cutover export spiralogic --csv baseline_metrics.csv --since 2h
    ///   cutover export spiralogic --csv cutover_metrics.csv --watch --interval 60
    Export {
        rollout: String,
        #[arg(long, value_name = "FILE")]
        csv: PathBuf,
        /// How far back the first export reaches, e.g. 15m, 2h.
        #[arg(long, default_value = "1h")]
        since: String,
        /// Keep appending every --interval seconds until interrupted.
        #[arg(long)]
        watch: bool,
        #[arg(long, default_value_t = 10, value_name = "SECS")]
        interval: u64,
        #[command(flatten)]
        connection: Connection,
    },
    /// Start a rollout: enter its first stage.
    ///
    /// Example: cutover start spiralogic
    Start(ActArgs),
    /// Progress a rollout to its next stage (refused, with the reasons, until gates hold).
    ///
    /// Example: cutover progress spiralogic
    Progress(ActArgs),
    /// Pause a rollout: traffic stays where it is, progress stops.
    ///
    /// Example: cutover pause spiralogic --reason "investigating p99"
    Pause(ActArgs),
    /// Resume a paused or killed rollout (after a kill a reason is required).
    ///
    /// Example: cutover resume spiralogic --reason "fix deployed"
    Resume(ActArgs),
    /// Kill switch: traffic to 0 at once. A reason is required and goes in the audit log.
    ///
    /// Example: cutover kill spiralogic --reason "error rate 4% on canary"
    Kill(ActArgs),
    /// Approve the sign-off for the next stage.
    ///
    /// Example: cutover approve lens-v1
    Approve(ActArgs),
    /// Check (or --uncheck) a checklist item.
    ///
    /// Example: cutover check spiralogic preflight backups --note "snapshot 02:10"
    Check {
        rollout: String,
        list: String,
        item: String,
        /// A note kept with the check.
        #[arg(long)]
        note: Option<String>,
        #[arg(long)]
        uncheck: bool,
        #[command(flatten)]
        connection: Connection,
    },
    /// Override a failing gate for the current stage, with a reason.
    ///
    /// Example: cutover override spiralogic p95-latency --reason "p95 skewed by a batch job"
    Override {
        rollout: String,
        gate: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// For CI: exit 0 only when the gates guarding a stage hold; print each failing gate.
    ///
    /// Exit codes: 0 the gates hold, 1 they do not (or the rollout is killed), 2 usage,
    /// 3 server unreachable or token refused.
    ///
    /// Example: cutover gate-check spiralogic --stage canary --require held
    GateCheck {
        rollout: String,
        /// The stage whose gates to check (default: the current one).
        #[arg(long)]
        stage: Option<String>,
        #[arg(long, value_enum, default_value_t = Require::Held)]
        require: Require,
        #[command(flatten)]
        connection: Connection,
    },
    /// Post realistic traffic for one rollout, healthy or in an incident scenario.
    ///
    /// Scenarios: healthy, latency-spike (latencies x4), error-spike (error ratios at 3x their
    /// limit), fallback-storm (60% fallback mode), cache-cold (hit ratios at a third of their
    /// floor), no-data (nothing: gates turn `no data`). Incidents hit every event; use
    /// --canary-slowdown for a canary-only latency regression. Needs an `ingest` token.
    ///
    /// Example: cutover simulate --plan spiralogic --rate 200/s --scenario latency-spike --duration 2m
    Simulate {
        /// The rollout (plan id) to feed.
        #[arg(long)]
        plan: String,
        /// Events per second, e.g. 200/s.
        #[arg(long, default_value = "50/s", value_parser = client::simulate::parse_rate)]
        rate: f64,
        #[arg(long, value_enum, default_value_t = Scenario::Healthy)]
        scenario: Scenario,
        /// Latency factor for events labelled canary (1.1: canary 10% slower than baseline).
        #[arg(long, default_value_t = 1.0)]
        canary_slowdown: f64,
        /// Stop after this long, e.g. 90s, 5m (default: until interrupted).
        #[arg(long)]
        duration: Option<String>,
        #[command(flatten)]
        connection: Connection,
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
struct ActArgs {
    rollout: String,
    /// Why: goes in the audit log (required for kill, override, and resume after a kill).
    #[arg(long)]
    reason: Option<String>,
    #[command(flatten)]
    connection: Connection,
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Address to listen on [default: 127.0.0.1:8787].
    #[arg(long, env = "CUTOVER_ADDR")]
    addr: Option<SocketAddr>,
    /// Where the SQLite database lives [default: .data/cutover].
    #[arg(long, env = "CUTOVER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// A PostgreSQL URL (postgres://user:password@host/db) so several replicas share one
    /// dashboard; without it, SQLite in --data-dir.
    #[arg(long, env = "CUTOVER_DATABASE", value_name = "URL")]
    database: Option<String>,
    /// Prometheus (or Thanos, Mimir, VictoriaMetrics) HTTP API base URL, for plan metrics with
    /// `source = "prometheus"` and `promql(...)` gates. Credentials come from the environment:
    /// CUTOVER_PROMETHEUS_TOKEN, or CUTOVER_PROMETHEUS_USER and CUTOVER_PROMETHEUS_PASSWORD.
    #[arg(long, env = "CUTOVER_PROMETHEUS_URL", value_name = "URL")]
    prometheus: Option<String>,
    /// How often to ask Prometheus, e.g. 10s [default: 10s].
    #[arg(long, env = "CUTOVER_PROMETHEUS_INTERVAL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    prometheus_interval: Option<std::time::Duration>,
    /// Where people reach the dashboard, e.g. https://cutover.example.com. An https:// URL
    /// turns on `__Host-` secure session cookies and HSTS (put TLS in front: a proxy or a
    /// load balancer).
    #[arg(long, env = "CUTOVER_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,
    /// A TOML file with `addr`, `data_dir`, `database`, `prometheus`, `prometheus_interval`,
    /// `public_url` and `plans`; flags win over it.
    #[arg(long, env = "CUTOVER_CONFIG")]
    config: Option<PathBuf>,
}

/// Settings after flags, environment, config file and defaults have had their say.
struct Settings {
    addr: SocketAddr,
    data_dir: PathBuf,
    database: Option<String>,
    prometheus: Option<crate::sources::prometheus::PromConfig>,
    plans: Option<PathBuf>,
    public_url: Option<String>,
}

impl Settings {
    async fn storage(&self) -> anyhow::Result<Storage> {
        Storage::open(self.database.as_deref(), &self.data_dir).await
    }
}

impl ServerArgs {
    fn settle(self, plans: Option<PathBuf>) -> Result<Settings, String> {
        let file = match &self.config {
            Some(path) => crate::cli::config::Config::load(path)?,
            None => crate::cli::config::Config::default(),
        };
        let default_addr: SocketAddr = crate::cli::config::DEFAULT_ADDR
            .parse()
            .map_err(|e| format!("{e}"))?;
        Ok(Settings {
            addr: self.addr.or(file.addr).unwrap_or(default_addr),
            data_dir: self
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| crate::cli::config::DEFAULT_DATA_DIR.into()),
            database: self.database.or(file.database),
            prometheus: self.prometheus.or(file.prometheus).map(|url| {
                let interval = self
                    .prometheus_interval
                    .or(file.prometheus_interval.map(|d| d.0))
                    .unwrap_or(std::time::Duration::from_secs(10));
                crate::sources::prometheus::PromConfig::from_env(&url, interval)
            }),
            plans: plans.or(file.plans),
            public_url: self
                .public_url
                .or(file.public_url)
                .map(|u| u.trim_end_matches('/').to_string()),
        })
    }
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
    /// Create a user (or give an existing one a new token) and print the token once. Giving
    /// a user another role ends their browser sessions under the old one.
    ///
    /// Example: cutover user add alice --role operator
    Add {
        name: String,
        #[arg(long)]
        role: Role,
        /// Limit the user to one rollout (e.g. a service's ingest token): it can neither see
        /// nor push to any other.
        #[arg(long, value_name = "ROLLOUT")]
        rollout: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List users with their roles (never tokens).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete a user: their token and browser sessions stop working at once.
    ///
    /// Example: cutover user revoke alice
    Revoke {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Where the server keeps its users: its data directory, or its PostgreSQL.
#[derive(clap::Args)]
struct StoreArgs {
    #[arg(long, env = "CUTOVER_DATA_DIR", default_value = ".data/cutover")]
    data_dir: PathBuf,
    /// The server's PostgreSQL URL, when it runs on one.
    #[arg(long, env = "CUTOVER_DATABASE", value_name = "URL")]
    database: Option<String>,
}

impl StoreArgs {
    async fn open(&self) -> anyhow::Result<Storage> {
        Storage::open(self.database.as_deref(), &self.data_dir).await
    }
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
            let settings = match server.settle(plans) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("{e}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let Some(plans) = settings.plans.clone() else {
                eprintln!("error: no plans: pass --plans DIR (or `plans` in the --config file)");
                return Ok(ExitCode::from(2));
            };
            let plans = match load_plan_dir(&plans)? {
                Ok(plans) => plans,
                Err(errors) => {
                    for e in errors {
                        eprintln!("{e}");
                    }
                    return Ok(ExitCode::FAILURE);
                }
            };
            let storage = settings.storage().await?;
            start(&settings, storage, plans, None).await?;
        }
        Command::Demo {
            server,
            plans,
            rate,
            backfill,
            scenario,
        } => {
            let examples = plans.is_none();
            let plans = match plans {
                None => example_plans()?,
                Some(dir) => match load_plan_dir(&dir)? {
                    Ok(plans) => plans,
                    Err(errors) => {
                        for e in errors {
                            eprintln!("{e}");
                        }
                        return Ok(ExitCode::FAILURE);
                    }
                },
            };
            let settings = match server.settle(None) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("{e}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let storage = settings.storage().await?;
            let scenario = if scenario.is_empty() && examples {
                vec![("lens-v1".to_string(), Scenario::ErrorSpike)]
            } else {
                scenario
            };
            let demo = Demo {
                rate,
                backfill,
                mixes: scenario
                    .into_iter()
                    .map(|(id, scenario)| {
                        let mix = Mix {
                            scenario,
                            ..Mix::default()
                        };
                        (id, mix)
                    })
                    .collect(),
            };
            start(&settings, storage, plans, Some(demo)).await?;
        }
        Command::Plan {
            command: PlanCommand::Check { files },
        } => return Ok(check_plans(&files)),
        Command::User {
            command:
                UserCommand::Add {
                    name,
                    role,
                    rollout,
                    store,
                },
        } => {
            let token = store
                .open()
                .await?
                .upsert_user_for(&name, role, rollout.as_deref(), now())
                .await?;
            println!("{token}");
        }
        Command::User {
            command: UserCommand::List { store },
        } => {
            for user in store.open().await?.users().await? {
                let created = humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH
                        + std::time::Duration::from_millis(user.created_at.max(0) as u64),
                );
                println!("{:<24} {:<9} created {created}", user.name, user.role);
            }
        }
        Command::User {
            command: UserCommand::Revoke { name, store },
        } => {
            if !store.open().await?.revoke_user(&name).await? {
                eprintln!("error: there is no user {name:?}");
                return Ok(ExitCode::FAILURE);
            }
            println!("revoked {name}: their token and sessions no longer work");
        }
        client_command => return Ok(run_client(client_command).await),
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a client command; prints its error and turns it into the documented exit code.
async fn run_client(command: Command) -> ExitCode {
    match client_command(command).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn seconds(watch: bool, interval: u64) -> Option<std::time::Duration> {
    watch.then(|| std::time::Duration::from_secs(interval.max(1)))
}

async fn client_command(command: Command) -> Result<ExitCode, ClientError> {
    let action = |act: Act, args: ActArgs| (act, args.rollout, args.reason, args.connection);
    let (act, rollout, reason, connection) = match command {
        Command::Status {
            rollout,
            compact,
            once: _,
            watch,
            interval,
            json,
            connection,
        } => {
            let client = Client::new(&connection)?;
            let format = client::status::Format { compact, json };
            client::status::run(
                &client,
                rollout.as_deref(),
                format,
                seconds(watch, interval),
            )
            .await?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Export {
            rollout,
            csv,
            since,
            watch,
            interval,
            connection,
        } => {
            let client = Client::new(&connection)?;
            client::export::run(&client, &rollout, &csv, &since, seconds(watch, interval)).await?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::GateCheck {
            rollout,
            stage,
            require,
            connection,
        } => {
            let client = Client::new(&connection)?;
            let snapshot = client
                .get_json(&format!("/api/rollouts/{}", client::segment(&rollout)))
                .await?;
            let outcome = client::gate_check::check(&snapshot, stage.as_deref(), require)
                .map_err(ClientError::Refused)?;
            for line in &outcome.lines {
                println!("{line}");
            }
            return Ok(if outcome.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        Command::Simulate {
            plan,
            rate,
            scenario,
            canary_slowdown,
            duration,
            connection,
        } => {
            let duration = duration
                .map(|d| {
                    cutover_core::time::Span::parse(&d)
                        .map(|s| std::time::Duration::from_millis(s.0.max(0) as u64))
                        .map_err(|e| ClientError::Refused(format!("--duration: {e}")))
                })
                .transpose()?;
            let client = Client::new(&connection)?;
            let mix = Mix {
                scenario,
                canary_slowdown,
                ..Mix::default()
            };
            let report = tokio::select! {
                r = client::simulate::run(&client, &plan, rate, mix, duration) => r?,
                _ = tokio::signal::ctrl_c() => {
                    eprintln!("interrupted");
                    return Ok(ExitCode::SUCCESS);
                }
            };
            println!("{report}");
            return Ok(ExitCode::SUCCESS);
        }
        Command::Start(a) => action(Act::Start, a),
        Command::Progress(a) => action(Act::Progress, a),
        Command::Pause(a) => action(Act::Pause, a),
        Command::Resume(a) => action(Act::Resume, a),
        Command::Kill(a) => action(Act::Kill, a),
        Command::Approve(a) => action(Act::Approve, a),
        Command::Check {
            rollout,
            list,
            item,
            note,
            uncheck,
            connection,
        } => (
            Act::Check {
                list,
                item,
                uncheck,
            },
            rollout,
            note,
            connection,
        ),
        Command::Override {
            rollout,
            gate,
            reason,
            connection,
        } => (Act::Override { gate }, rollout, Some(reason), connection),
        Command::Serve { .. }
        | Command::Demo { .. }
        | Command::Plan { .. }
        | Command::User { .. } => {
            unreachable!("server commands are run by `run`")
        }
    };
    let client = Client::new(&connection)?;
    println!(
        "{}",
        client::act::run(&client, &rollout, &act, reason).await?
    );
    Ok(ExitCode::SUCCESS)
}

/// `ROLLOUT=SCENARIO` for `demo --scenario`.
fn parse_scenario(text: &str) -> Result<(String, Scenario), String> {
    let (id, name) = text.split_once('=').ok_or_else(|| {
        format!("\"{text}\": write ROLLOUT=SCENARIO, e.g. spiralogic=latency-spike")
    })?;
    let scenario = <Scenario as clap::ValueEnum>::from_str(name, true).map_err(|_| {
        let names: Vec<&str> = <Scenario as clap::ValueEnum>::value_variants()
            .iter()
            .map(|s| s.name())
            .collect();
        format!("unknown scenario \"{name}\" (one of: {})", names.join(", "))
    })?;
    Ok((id.to_string(), scenario))
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

/// Fills every rollout's charts with `span` of simulated history before now, one rollout per
/// blocking task (it is CPU work), before the live simulation starts.
async fn backfill(state: &AppState, span: std::time::Duration, rate: u32) -> anyhow::Result<()> {
    let span = i64::try_from(span.as_millis()).unwrap_or(i64::MAX);
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for rollout in state.rollouts.values() {
        let rollout = rollout.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            let mut rng = rand::rng();
            rollout.with_metrics(|store| {
                crate::sources::simulate::backfill(
                    &rollout.plan,
                    store,
                    span,
                    now(),
                    rate * 10,
                    &mut rng,
                )
            })
        }));
    }
    let mut samples = 0;
    for task in tasks {
        samples += task.await?;
    }
    println!(
        "backfilled {:.1} h of history per rollout ({samples} samples) in {:.1} s",
        span as f64 / cutover_core::time::HOUR as f64,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The demo's simulated traffic: a rate and each rollout's scenario.
struct Demo {
    rate: u32,
    backfill: Option<std::time::Duration>,
    mixes: std::collections::BTreeMap<String, Mix>,
}

/// Binds, prints where to look, and serves until Ctrl-C. `demo` turns on the demo: simulated
/// traffic and a fresh token per role.
async fn start(
    settings: &Settings,
    storage: Storage,
    plans: Vec<Plan>,
    demo: Option<Demo>,
) -> anyhow::Result<()> {
    let addr = settings.addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let addr = listener.local_addr()?;
    let mut state = AppState::load(storage.clone(), plans).await?;
    state.public_url = settings.public_url.as_deref().map(Into::into);
    println!(
        "cutover is serving {} rollout(s) at http://{addr}",
        state.rollouts.len()
    );
    for id in state.rollouts.keys() {
        println!("  rollout  http://{addr}/r/{id}");
    }
    if let Some(demo) = demo {
        if let Some(unknown) = demo
            .mixes
            .keys()
            .find(|id| !state.rollouts.contains_key(*id))
        {
            anyhow::bail!("--scenario names rollout \"{unknown}\", which the demo does not have");
        }
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
        if let Some(span) = demo.backfill {
            backfill(&state, span, demo.rate).await?;
        }
        println!("simulated traffic, {} events/s per rollout:", demo.rate);
        for id in state.rollouts.keys() {
            let scenario = demo.mixes.get(id).copied().unwrap_or_default().scenario;
            println!("  {id:<16} {scenario}: {}", scenario.describe());
        }
        println!("  (change one with --scenario ROLLOUT=SCENARIO, or run `cutover simulate`)");
        tokio::spawn(demo::run(state.clone(), demo.rate, demo.mixes));
    }
    let prometheus = match &settings.prometheus {
        Some(config) => Some(std::sync::Arc::new(
            crate::sources::prometheus::PromClient::new(config.clone())?,
        )),
        None => None,
    };
    let background = crate::spawn_background(&state, prometheus);
    crate::serve(listener, state.clone(), stop_signal()).await?;
    for task in background {
        task.abort();
    }
    // Another replica takes over evaluation at once instead of waiting the lease out.
    state
        .storage
        .release_lease("evaluator", &state.replica)
        .await?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM (what service managers and orchestrators send), so the
/// server drains its streams and hands the evaluator lease over instead of leaving it to run
/// out.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    eprintln!("shutting down: ending live streams, handing over the evaluator lease");
}

//! `cutover serve`: its flags, how they settle against the environment and `--config`, and
//! the bind/serve/shutdown sequence that `demo` reuses.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use cutover_core::plan::{self, Plan};

use crate::cli::config::{Config, DEFAULT_ADDR, DEFAULT_DATA_DIR};
use crate::runtime::state::AppState;
use crate::sources::prometheus::{PromClient, PromConfig};
use crate::store::Storage;

/// Serve the dashboard and API for the plans in a directory.
///
/// Settings come from flags, then environment variables, then --config, then defaults.
/// A config file holds `addr`, `data_dir` and `plans`.
///
/// Examples:
///   cutover serve --plans plans/ --data-dir /var/lib/cutover
///   cutover serve --config /etc/cutover/cutover.toml
#[derive(clap::Args)]
pub(super) struct ServeArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Directory of plan files (*.toml); each becomes a rollout named by its id.
    #[arg(long, env = "CUTOVER_PLANS")]
    plans: Option<PathBuf>,
}

// The flags `serve` and `demo` share. No `///` on the struct: clap would take it as help text.
#[derive(clap::Args)]
pub(super) struct ServerArgs {
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
    /// A proxy in front (an address or a CIDR range, repeatable): its `Forwarded` and
    /// `X-Forwarded-For` name the client, and it has no per-address connection cap. Nobody
    /// else's forwarding headers are believed.
    #[arg(
        long = "trusted-proxy",
        env = "CUTOVER_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "CIDR"
    )]
    trusted_proxies: Vec<String>,
    /// Live streams one token or browser session may hold open [default: 16].
    #[arg(long, env = "CUTOVER_STREAMS_PER_SIGN_IN", value_name = "N")]
    streams_per_sign_in: Option<usize>,
    /// A TOML file with `addr`, `data_dir`, `database`, `prometheus`, `prometheus_interval`,
    /// `public_url`, `trusted_proxies`, `streams_per_sign_in` and `plans`; flags win over it.
    #[arg(long, env = "CUTOVER_CONFIG")]
    config: Option<PathBuf>,
}

/// Settings after flags, environment, config file and defaults have had their say.
pub(super) struct Settings {
    addr: SocketAddr,
    data_dir: PathBuf,
    database: Option<String>,
    prometheus: Option<PromConfig>,
    plans: Option<PathBuf>,
    public_url: Option<String>,
    /// Channels for plans that declare none (the config file's `[[notify]]`).
    pub(super) notify: Vec<cutover_core::plan::Channel>,
    /// How the server meets the network.
    pub(super) edge: crate::ServeOptions,
    /// Single sign-on, if configured.
    pub(super) sso: Option<crate::sso::Settings>,
}

impl Settings {
    pub(super) async fn storage(&self) -> anyhow::Result<Storage> {
        Storage::open(self.database.as_deref(), &self.data_dir).await
    }
}

impl ServerArgs {
    /// Err is the config file's problem, printed as is (it carries file, line and column).
    pub(super) fn settle(self, plans: Option<PathBuf>) -> Result<Settings, String> {
        let file = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        let default_addr: SocketAddr = DEFAULT_ADDR.parse().map_err(|e| format!("{e}"))?;
        let proxies = if self.trusted_proxies.is_empty() {
            file.trusted_proxies.clone()
        } else {
            self.trusted_proxies.clone()
        };
        let mut edge = crate::ServeOptions {
            trusted_proxies: crate::http::peer::TrustedProxies::parse(&proxies)?,
            ..crate::ServeOptions::default()
        };
        if let Some(n) = self.streams_per_sign_in.or(file.streams_per_sign_in) {
            if n == 0 {
                return Err("streams_per_sign_in: at least 1".into());
            }
            edge.streams_per_sign_in = n;
        }
        Ok(Settings {
            addr: self.addr.or(file.addr).unwrap_or(default_addr),
            data_dir: self
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
            database: self.database.or(file.database),
            prometheus: self.prometheus.or(file.prometheus).map(|url| {
                let interval = self
                    .prometheus_interval
                    .or(file.prometheus_interval.map(|d| d.0))
                    .unwrap_or(std::time::Duration::from_secs(10));
                PromConfig::from_env(&url, interval)
            }),
            plans: plans.or(file.plans),
            public_url: self
                .public_url
                .or(file.public_url)
                .map(|u| u.trim_end_matches('/').to_string()),
            sso: match &file.sso {
                Some(sso) => Some(
                    sso.settle(
                        self.config
                            .as_deref()
                            .and_then(std::path::Path::parent)
                            .unwrap_or(std::path::Path::new("")),
                    )?,
                ),
                None => None,
            },
            notify: file.notify,
            edge,
        })
    }
}

pub(super) async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let settings = match args.server.settle(args.plans) {
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
    let mut plans = plans;
    with_default_channels(&mut plans, &settings.notify);
    let storage = settings.storage().await?;
    let bound = bind(&settings, storage, plans).await?;
    serve(&settings, bound).await?;
    Ok(ExitCode::SUCCESS)
}

/// Plans that declare no `[[notify]]` channel get the config file's.
pub(super) fn with_default_channels(plans: &mut [Plan], defaults: &[cutover_core::plan::Channel]) {
    for plan in plans.iter_mut().filter(|p| p.channels.is_empty()) {
        plan.channels = defaults.to_vec();
    }
}

/// Every `*.toml` in `dir`, parsed; a bad plan stops start-up with its errors.
pub(super) fn load_plan_dir(dir: &Path) -> anyhow::Result<Result<Vec<Plan>, Vec<plan::PlanError>>> {
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

/// A listening socket and the loaded rollouts, not serving yet: the gap where `demo` prints
/// its tokens and starts its traffic.
pub(super) struct Bound {
    listener: tokio::net::TcpListener,
    pub(super) addr: SocketAddr,
    pub(super) state: AppState,
}

/// Binds, loads the rollouts and prints where to look.
pub(super) async fn bind(
    settings: &Settings,
    storage: Storage,
    plans: Vec<Plan>,
) -> anyhow::Result<Bound> {
    let addr = settings.addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let addr = listener.local_addr()?;
    if let Some(sso) = &settings.sso {
        // A plan role the provider's groups give must exist, or the grant silently means
        // nothing.
        let defined: std::collections::BTreeSet<cutover_core::role::Role> = plans
            .iter()
            .flat_map(|p| p.roles.iter().map(|r| r.role))
            .collect();
        if let Some(role) = sso
            .groups
            .values()
            .flatten()
            .chain(&sso.default_roles)
            .find(|r| r.is_named() && !defined.contains(r))
        {
            anyhow::bail!(
                "[sso] gives the role {role}, which no plan defines (a plan's [[role]] id = \"{role}\")"
            );
        }
    }
    let mut state = AppState::load(storage, plans).await?;
    state.public_url = settings.public_url.as_deref().map(Into::into);
    if let Some(sso) = &settings.sso {
        state.sso = Some(std::sync::Arc::new(crate::sso::Sso::new(sso.clone())?));
    }
    println!(
        "cutover is serving {} rollout(s) at http://{addr}",
        state.rollouts.len()
    );
    for id in state.rollouts.keys() {
        println!("  rollout  http://{addr}/r/{id}");
    }
    Ok(Bound {
        listener,
        addr,
        state,
    })
}

/// Serves until Ctrl-C or SIGTERM, then hands the evaluator lease over.
pub(super) async fn serve(settings: &Settings, bound: Bound) -> anyhow::Result<()> {
    let Bound {
        listener, state, ..
    } = bound;
    let prometheus = match &settings.prometheus {
        Some(config) => Some(std::sync::Arc::new(PromClient::new(config.clone())?)),
        None => None,
    };
    let background = crate::spawn_background(&state, prometheus);
    crate::serve_with(
        listener,
        state.clone(),
        settings.edge.clone(),
        stop_signal(),
    )
    .await?;
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

//! `cutover demo`: `serve` on the example plans (or your own), with a token per role, a
//! stakeholder link, optional backfilled history and live simulated traffic.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use cutover_core::plan::{self, Plan};
use cutover_core::role::Role;

use crate::cli::serve::{self, ServerArgs};
use crate::clock::now;
use crate::runtime::state::AppState;
use crate::sources::ingest;
use crate::sources::simulate::{Mix, Scenario, Targets, warmth_after};

/// Serve the example plans with simulated traffic and print a token per role.
///
/// Examples:
///   cutover demo --addr 127.0.0.1:8787
///   cutover demo --plans my-plans/ --scenario checkout=latency-spike
#[derive(clap::Args)]
pub(super) struct DemoArgs {
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
    backfill: Option<Duration>,
    /// Traffic scenario for one rollout, e.g. spiralogic=latency-spike (repeatable; the
    /// others run healthy). Without any, the example lens-v1 runs error-spike so the demo
    /// shows an incident; `--scenario lens-v1=healthy` turns it off.
    #[arg(long, value_name = "ROLLOUT=SCENARIO", value_parser = parse_scenario)]
    scenario: Vec<(String, Scenario)>,
}

#[derive(rust_embed::RustEmbed)]
#[folder = "../plans"]
#[include = "*.toml"]
struct ExamplePlans;

pub(super) async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let examples = args.plans.is_none();
    let plans = match args.plans {
        None => example_plans()?,
        Some(dir) => match serve::load_plan_dir(&dir)? {
            Ok(plans) => plans,
            Err(errors) => {
                for e in errors {
                    eprintln!("{e}");
                }
                return Ok(ExitCode::FAILURE);
            }
        },
    };
    let settings = match args.server.settle(None) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let storage = settings.storage().await?;
    let scenario = if args.scenario.is_empty() && examples {
        vec![("lens-v1".to_string(), Scenario::ErrorSpike)]
    } else {
        args.scenario
    };
    let mixes: BTreeMap<String, Mix> = scenario
        .into_iter()
        .map(|(id, scenario)| {
            let mix = Mix {
                scenario,
                ..Mix::default()
            };
            (id, mix)
        })
        .collect();

    let bound = serve::bind(&settings, storage.clone(), plans).await?;
    let (addr, state) = (bound.addr, &bound.state);
    if let Some(unknown) = mixes.keys().find(|id| !state.rollouts.contains_key(*id)) {
        anyhow::bail!("--scenario names rollout \"{unknown}\", which the demo does not have");
    }
    println!("tokens (paste one into the sign-in box, or send `Authorization: Bearer <token>`):");
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
    if let Some(span) = args.backfill {
        backfill(state, span, args.rate).await?;
    }
    println!("simulated traffic, {} events/s per rollout:", args.rate);
    for id in state.rollouts.keys() {
        let scenario = mixes.get(id).copied().unwrap_or_default().scenario;
        println!("  {id:<16} {scenario}: {}", scenario.describe());
    }
    println!("  (change one with --scenario ROLLOUT=SCENARIO, or run `cutover simulate`)");
    tokio::spawn(traffic(state.clone(), args.rate, mixes));
    serve::serve(&settings, bound).await?;
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
async fn backfill(state: &AppState, span: Duration, rate: u32) -> anyhow::Result<()> {
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

/// The demo's live traffic: feeds every rollout `rate` events per second, as if services
/// pushed them, each with its own mix (healthy when not named), until the task is dropped.
async fn traffic(state: AppState, rate: u32, mixes: BTreeMap<String, Mix>) {
    let targets: BTreeMap<String, Targets> = state
        .rollouts
        .iter()
        .map(|(id, r)| (id.clone(), Targets::from_plan(&r.plan)))
        .collect();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let per_tick = (rate / 5).max(1);
    let started = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        let mut rng = rand::rng();
        let warmth = warmth_after(started.elapsed());
        for (id, rollout) in state.rollouts.iter() {
            let Some(t) = targets.get(id) else { continue };
            let mix = Mix {
                warmth,
                ..mixes.get(id).copied().unwrap_or_default()
            };
            if mix.scenario == Scenario::NoData {
                continue;
            }
            let body: String = (0..per_tick)
                .map(|_| t.event(&rollout.plan, mix, &mut rng).to_string() + "\n")
                .collect();
            let at = now();
            if let Ok((records, mut report)) = ingest::parse_batch(&rollout.plan, &body, at) {
                rollout.record(records, at, &mut report);
            }
        }
    }
}

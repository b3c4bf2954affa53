//! `cutover demo`: `serve` on the example plans (or your own), with a token per role, a
//! stakeholder link, optional backfilled history and live simulated traffic. The example
//! rollouts start in flight (see `scene`); `--fresh` starts them all not started.

mod receiver;
mod scene;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use cutover_core::plan::{self, Plan};
use cutover_core::role::Role;

use crate::cli::serve::{self, ServerArgs};
use cutover_core::time::{HOUR, Millis, Span};

use crate::clock::now;
use crate::runtime::evaluator::LEASE_TTL;
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
    /// Start with this much simulated healthy history (at most what the store keeps, 8 days
    /// or a plan's hypercare and a day), so the longer chart ranges show something; `./x demo`
    /// asks for 7d.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, overrides_with = "backfill")]
    backfill: Option<Duration>,
    /// Traffic scenario for one rollout, e.g. spiralogic=latency-spike (repeatable; the
    /// others run healthy). Without any, the example lens-v1 runs error-spike so the demo
    /// shows an incident; `--scenario lens-v1=healthy` turns it off.
    #[arg(long, value_name = "ROLLOUT=SCENARIO", value_parser = parse_scenario)]
    scenario: Vec<(String, Scenario)>,
    /// Start every example rollout not started, with nothing ticked, instead of in flight.
    #[arg(long)]
    fresh: bool,
    /// When the in-flight demo's moments come: lens-v1's incident begins this long after the
    /// start, and spiralogic's canary hold completes at twice this.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "45s")]
    moment: Duration,
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
    let mut plans = plans;
    serve::with_default_channels(&mut plans, &settings.notify);
    // A demo (or a rehearsal of your own plans) never pages real people: every channel
    // delivers to a receiver of its own.
    let receiver = receiver::start().await?;
    let pointed = receiver::point(&mut plans, receiver);
    let storage = settings.storage().await?;
    let moment = i64::try_from(args.moment.as_millis())
        .unwrap_or(i64::MAX)
        .min(HOUR / 4);
    let scenes = if examples && !args.fresh {
        scene::examples(moment)
    } else {
        Vec::new()
    };
    // The fresh examples show an incident from the start; the in-flight ones, their scenes'.
    let scenario = if args.scenario.is_empty() && examples && scenes.is_empty() {
        vec![("lens-v1".to_string(), Scenario::ErrorSpike)]
    } else {
        args.scenario
    };
    let mut mixes: BTreeMap<String, Live> = scenario
        .into_iter()
        .map(|(id, scenario)| {
            let mix = Mix {
                scenario,
                ..Mix::default()
            };
            (id, Live { mix, after: 0 })
        })
        .collect();
    for scene in &scenes {
        if let Some((scenario, after)) = scene.incident {
            let mix = Mix {
                scenario,
                ..Mix::default()
            };
            mixes
                .entry(scene.rollout.to_string())
                .or_insert(Live { mix, after });
        }
    }

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
    // The scenes replay evaluations over simulated history: there must be enough of it.
    let history = match (args.backfill, scenes.is_empty()) {
        (span, true) => span,
        (span, false) => {
            let needed = Duration::from_millis(scene::history_needed(&scenes).unsigned_abs());
            Some(span.map_or(needed, |s| s.max(needed)))
        }
    };
    // Live traffic first: the history then ends where it begins, and the scenes' moments
    // count from here.
    let started = now();
    tokio::spawn(traffic(
        state.clone(),
        args.rate,
        mixes.clone(),
        history.is_some(),
    ));
    if let Some(span) = history {
        backfill(state, span, args.rate).await?;
    }
    if !scenes.is_empty() {
        play(state, &scenes, started).await?;
    }
    println!("simulated traffic, {} events/s per rollout:", args.rate);
    for id in state.rollouts.keys() {
        let live = mixes.get(id).copied().unwrap_or_default();
        let scenario = live.mix.scenario;
        let when = match live.after {
            0 => String::new(),
            after => format!(" (healthy for the first {})", Span(after).human()),
        };
        println!("  {id:<16} {scenario}{when}: {}", scenario.describe());
    }
    println!("  (change one with --scenario ROLLOUT=SCENARIO, or run `cutover simulate`)");
    if pointed > 0 {
        println!(
            "{pointed} notification channels deliver to the demo's own receiver: read what they said at http://{receiver}/"
        );
    }
    serve::serve(&settings, bound).await?;
    Ok(ExitCode::SUCCESS)
}

/// Puts the rollouts that have no history yet where the scenes say (their moments counted from
/// `started`), and says where to look.
async fn play(state: &AppState, scenes: &[scene::Scene], started: Millis) -> anyhow::Result<()> {
    let leader = state
        .storage
        .acquire_lease("evaluator", &state.replica, now(), LEASE_TTL)
        .await?;
    if !leader {
        println!("another replica evaluates these rollouts: the demo leaves them as they are");
        return Ok(());
    }
    let clock = std::time::Instant::now();
    let played = scene::play(state, scenes, started).await?;
    if played.is_empty() {
        println!("the rollouts keep the history in the data directory (`--fresh` on a new one");
        println!("starts them all not started; a new directory plays the launch in flight)");
        return Ok(());
    }
    println!(
        "a launch in flight (history replayed in {:.1} s); what to look at first:",
        clock.elapsed().as_secs_f64()
    );
    for scene in scenes
        .iter()
        .filter(|s| played.iter().any(|p| p == s.rollout))
    {
        let ready = match state.rollout(scene.rollout) {
            Some(rollout) if scene.waits_for_ready() => {
                // The replay took wall time (seconds in a debug build) that no evaluation
                // observed: the live evaluator's first tick would move every hold past that
                // gap. One evaluation now takes the gap first, so the time printed holds.
                crate::runtime::evaluator::replay(state, rollout, now()).await;
                scene::ready_at(rollout, now()).await
            }
            _ => None,
        };
        println!(
            "  {:<16} {}",
            scene.rollout,
            scene.story(started, now(), ready)
        );
    }
    Ok(())
}

/// The live traffic of one rollout: its mix, from `after` milliseconds on (healthy before).
#[derive(Debug, Clone, Copy, Default)]
struct Live {
    mix: Mix,
    after: Millis,
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
            // The store's lock only to read where its data begins and to import: the live
            // traffic and the pages go on meanwhile.
            let (config, earliest) =
                rollout.with_metrics(|store| (*store.config(), store.earliest()));
            let (buckets, samples) = crate::sources::simulate::history(
                &rollout.plan,
                config,
                earliest,
                span,
                now(),
                rate * 10,
                &mut rng,
            );
            rollout.with_metrics(|store| store.import(buckets));
            samples
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
/// Caches start cold unless there is history (`warm`): then they carry on as they were.
async fn traffic(state: AppState, rate: u32, mixes: BTreeMap<String, Live>, warm: bool) {
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
        // A service obeys what cutover publishes: after a kill the new path (and its
        // incident) is gone and nothing goes to the canary, so a kill is seen to work.
        let mut killed = std::collections::BTreeSet::new();
        for (id, rollout) in state.rollouts.iter() {
            if rollout.state().await.phase == cutover_core::rollout::Phase::Killed {
                killed.insert(id.clone());
            }
        }
        let mut rng = rand::rng();
        let elapsed = started.elapsed();
        let warmth = if warm { 1.0 } else { warmth_after(elapsed) };
        let elapsed = i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX);
        for (id, rollout) in state.rollouts.iter() {
            let Some(t) = targets.get(id) else { continue };
            let live = mixes.get(id).copied().unwrap_or_default();
            let mix = if killed.contains(id) {
                Mix {
                    warmth,
                    canary_off: true,
                    ..Mix::default()
                }
            } else {
                Mix {
                    warmth,
                    ..if elapsed >= live.after {
                        live.mix
                    } else {
                        Mix::default()
                    }
                }
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

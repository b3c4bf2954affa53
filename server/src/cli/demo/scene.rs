//! The demo's launch in flight: each example rollout put where a war room finds one, with the
//! history that makes it true. Every beat is a real action committed at its past moment
//! through the audited path (checklist items and sign-offs first, by the roles the plan
//! names), and the evaluator is replayed every few seconds over the backfilled traffic in
//! between, so hold timers, cycles and trigger episodes are what a server running then would
//! have recorded. A rollout that already has history (a data directory from an earlier run)
//! keeps it.

use std::sync::Arc;

use anyhow::Context;
use cutover_core::plan::Plan;
use cutover_core::role::Role;
use cutover_core::rollout::{Action, Actor, Phase, Refusal, Request, RolloutState};
use cutover_core::schedule::{self, DueStatus};
use cutover_core::time::{HOUR, MINUTE, Millis, SECOND, Span};

use crate::runtime::commit::{CommitError, commit};
use crate::runtime::evaluator;
use crate::runtime::state::{AppState, Rollout};
use crate::sources::simulate::Scenario;

/// How often the replayed evaluator looks: within `gates::MAX_UNOBSERVED`, so holds run on.
const STEP: Millis = 10 * SECOND;

/// Something that happens to a rollout.
#[derive(Debug, Clone)]
enum Beat {
    /// T-0 set this far from now.
    Schedule { t0: Millis },
    /// Everything the start needs (items, sign-offs), then the start.
    Start,
    /// Everything leaving the current stage needs, then the progress.
    Progress,
    /// These items of `list`, checked by the roles they name.
    Check {
        list: &'static str,
        items: &'static [&'static str],
    },
}

/// One rollout's story: beats at moments relative to now.
#[derive(Debug, Clone)]
pub struct Scene {
    pub rollout: &'static str,
    /// What a newcomer sees, for the demo's printout.
    story: String,
    beats: Vec<(Millis, Beat)>,
    /// The evaluator is replayed from this moment (relative to now) on.
    evaluate_from: Millis,
    /// Items left for a person even once due (a sign-off the demo leaves pending).
    pending: &'static [(&'static str, &'static str)],
    /// The live traffic turns to this incident this long after the demo starts.
    pub incident: Option<(Scenario, Millis)>,
    /// Something that happens soon after the scene is played (`{in}` says when), and when,
    /// for the printout.
    soon: Option<(&'static str, Soon)>,
}

/// When a scene's next thing happens.
#[derive(Debug, Clone, Copy)]
enum Soon {
    /// This long after the scene was played.
    After(Millis),
    /// When the current stage may be left: its minimum run and its gates' holds, read from
    /// the rollout once played (a comparison's hold counts from when it concluded, which the
    /// traffic decides).
    Ready,
}

impl Scene {
    /// What a newcomer sees, with how long until what happens next, at `now` when the scene
    /// was played at `played`.
    /// `ready` is when the rollout's current stage may be left, if known.
    pub fn story(&self, played: Millis, now: Millis, ready: Option<Millis>) -> String {
        let Some((what, soon)) = self.soon else {
            return self.story.clone();
        };
        let at = match soon {
            Soon::After(after) => Some(played + after),
            Soon::Ready => ready,
        };
        let when = match at {
            Some(at) if at > now => format!("in {}", Span(at - now).human()),
            Some(_) => "already".to_string(),
            None => "once its gates have held".to_string(),
        };
        format!("{}: {}", self.story, what.replace("{in}", &when))
    }

    /// Whether its printout needs to know when the rollout's stage may be left.
    pub fn waits_for_ready(&self) -> bool {
        matches!(self.soon, Some((_, Soon::Ready)))
    }
}

/// The example plans' scenes. `moment` paces what happens while the newcomer watches: lens-v1's
/// incident begins `moment` after the start, spiralogic's canary reaches its minimum run at
/// twice that, and its holds complete then or soon after (its quality comparison holds from
/// when it concluded, a minute or two into the stage).
pub fn examples(moment: Millis) -> Vec<Scene> {
    let canary_entered = 60 * MINUTE - 2 * moment;
    vec![
        Scene {
            rollout: "spiralogic",
            story: format!(
                "canary at 10%, {} into its 60-minute minimum",
                Span(canary_entered).human(),
            ),
            beats: vec![
                (-canary_entered, Beat::Start),
                // The runbook's "team standing by for the first two hours", ticked as the
                // canary began.
                (
                    5 * MINUTE - canary_entered,
                    Beat::Check {
                        list: "day-of",
                        items: &["standing-by", "metrics-documented"],
                    },
                ),
            ],
            evaluate_from: -canary_entered,
            pending: &[],
            incident: None,
            soon: Some(("the holds complete {in}, and beta may start", Soon::Ready)),
        },
        Scene {
            rollout: "lens-v1",
            story: "canary at 5% for 20m".into(),
            beats: vec![(-20 * MINUTE, Beat::Start)],
            evaluate_from: -20 * MINUTE,
            pending: &[],
            incident: Some((Scenario::ErrorSpike, moment)),
            soon: Some((
                "errors spike {in}; its error-storm trigger kills it about a minute later",
                Soon::After(moment),
            )),
        },
        Scene {
            rollout: "hal9-shadow",
            story: "shadow mode (mirrored, no user traffic), 2h into its 24h soak".into(),
            beats: vec![(-2 * HOUR, Beat::Start)],
            evaluate_from: -2 * HOUR,
            pending: &[],
            incident: None,
            soon: None,
        },
        Scene {
            rollout: "pags-cutover",
            story: "T-30: T-0 scheduled, checklists half ticked, the lead's review pending".into(),
            beats: vec![
                (-90 * MINUTE, Beat::Schedule { t0: 34 * MINUTE }),
                (
                    -5 * MINUTE,
                    Beat::Check {
                        list: "t-30",
                        items: &["monitoring", "db", "mv"],
                    },
                ),
            ],
            evaluate_from: -20 * MINUTE,
            pending: &[("t-60", "shadow-review")],
            incident: None,
            soon: None,
        },
        Scene {
            rollout: "semantic-mirror",
            story: "in hypercare: 24h shadow soak, two green KPI cycles, 2h live; daily and weekly checks through the week".into(),
            beats: vec![
                (-(24 * HOUR + 160 * MINUTE), Beat::Start),
                (-155 * MINUTE, Beat::Progress),
                (-25 * MINUTE, Beat::Progress),
            ],
            evaluate_from: -175 * MINUTE,
            pending: &[],
            incident: None,
            soon: None,
        },
    ]
}

/// When `rollout`'s current stage may be left, as far as time decides: its minimum run and
/// every gate guarding it held. `None` while a gate's hold cannot yet count (not yet known).
pub async fn ready_at(rollout: &Rollout, now: Millis) -> Option<Millis> {
    let snapshot = rollout.snapshot(now).await;
    let stage = snapshot
        .state
        .stage
        .and_then(|i| rollout.plan.stages.get(i))?;
    let entered = snapshot.state.stage_entered_at?;
    let mut ready = entered.saturating_add(stage.min_duration.map_or(0, |d| d.0));
    for gate in snapshot.gates.iter().filter(|g| g.guards_current) {
        if gate.verdict != cutover_core::gates::Verdict::Pass {
            return None;
        }
        ready = ready.max(now.saturating_add(gate.needs.0));
    }
    Some(ready)
}

/// How much history the scenes read: from their earliest replayed evaluation back over the
/// longest window a gate reads (15 minutes in the examples; a little more to spare).
pub fn history_needed(scenes: &[Scene]) -> Millis {
    scenes
        .iter()
        .map(|s| -s.evaluate_from)
        .max()
        .unwrap_or(0)
        .saturating_add(20 * MINUTE)
}

/// Plays each scene whose rollout is loaded and has no history yet; returns the rollouts
/// played. A beat the plan refuses is an error: the scene and the plan disagree.
pub async fn play(state: &AppState, scenes: &[Scene], now: Millis) -> anyhow::Result<Vec<String>> {
    let mut played = Vec::new();
    for scene in scenes {
        let Some(rollout) = state.rollout(scene.rollout) else {
            continue;
        };
        if rollout.state().await.version != 0 {
            continue;
        }
        play_one(state, rollout, scene, now)
            .await
            .with_context(|| format!("the demo's scene for {}", scene.rollout))?;
        played.push(scene.rollout.to_string());
    }
    Ok(played)
}

async fn play_one(
    state: &AppState,
    rollout: &Arc<Rollout>,
    scene: &Scene,
    now: Millis,
) -> anyhow::Result<()> {
    let ctx = Ctx { state, rollout };
    let mut beats: Vec<(Millis, &Beat)> = scene.beats.iter().map(|(t, b)| (now + t, b)).collect();
    beats.sort_by_key(|(t, _)| *t);
    let mut beats = beats.into_iter().peekable();
    let mut t = now + scene.evaluate_from;
    // Beats before the replayed evaluations (a start a day ago) happen at their own moments.
    while let Some((at, beat)) = beats.next_if(|(at, _)| *at < t) {
        take(ctx, beat, at, now).await?;
    }
    // Until the wall clock: the replay itself takes a moment.
    while t <= crate::clock::now() {
        while let Some((at, beat)) = beats.next_if(|(at, _)| *at <= t) {
            take(ctx, beat, at, now).await?;
        }
        keep_up(ctx, scene.pending, t).await?;
        evaluator::replay(state, rollout, t).await;
        t += STEP;
    }
    Ok(())
}

/// What a beat needs to act on a rollout.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    state: &'a AppState,
    rollout: &'a Arc<Rollout>,
}

async fn take(ctx: Ctx<'_>, beat: &Beat, at: Millis, now: Millis) -> anyhow::Result<()> {
    let plan = &ctx.rollout.plan;
    match beat {
        Beat::Schedule { t0 } => {
            let t0 = now + t0;
            act(
                ctx,
                first(&plan.permissions.progress),
                Action::Schedule { t0 },
                at,
            )
            .await
        }
        Beat::Start | Beat::Progress => {
            let current = ctx.rollout.state().await;
            let prep = preparation(plan, &current);
            // Each item and approval a second apart, just before the action.
            let mut when = at - SECOND * Millis::try_from(prep.len()).unwrap_or(0);
            for (role, action) in prep {
                act_once(ctx, role, action, when).await?;
                when += SECOND;
            }
            let action = if matches!(beat, Beat::Start) {
                Action::Start
            } else {
                Action::Progress
            };
            act(ctx, first(&plan.permissions.progress), action, at).await
        }
        Beat::Check { list, items } => {
            for (i, item) in items.iter().enumerate() {
                let role = item_role(plan, list, item);
                let action = Action::Check {
                    list: (*list).to_string(),
                    item: (*item).to_string(),
                };
                act_once(ctx, role, action, at + SECOND * i as Millis).await?;
            }
            Ok(())
        }
    }
}

/// Checks every item whose due time has come by `t`, as a war room keeps up, except those the
/// scene leaves pending.
async fn keep_up(ctx: Ctx<'_>, pending: &[(&str, &str)], t: Millis) -> anyhow::Result<()> {
    let current = ctx.rollout.state().await;
    let clock = schedule::clock(&ctx.rollout.plan, &current, t);
    for item in clock
        .items
        .iter()
        .filter(|i| i.status == DueStatus::Overdue)
    {
        if pending.contains(&(item.list.as_str(), item.item.as_str())) {
            continue;
        }
        let role = item_role(&ctx.rollout.plan, &item.list, &item.item);
        let action = Action::Check {
            list: item.list.clone(),
            item: item.item.clone(),
        };
        act_once(ctx, role, action, t).await?;
    }
    Ok(())
}

/// The checks and approvals the rollout's next start or progress needs, each with the role
/// that may give it.
fn preparation(plan: &Plan, state: &RolloutState) -> Vec<(Role, Action)> {
    let (leaving, entering) = match (state.phase, state.stage) {
        (Phase::NotStarted, _) => (None, plan.stages.first()),
        (_, Some(i)) => (plan.stages.get(i), plan.stages.get(i + 1)),
        (_, None) => (None, None),
    };
    let last = entering.is_none() && plan.hypercare.is_none();
    let mut prep = Vec::new();
    for list in &plan.checklists {
        let needed = entering.is_some_and(|s| list.required_for.as_deref() == Some(&s.id))
            || leaving.is_some_and(|s| list.required_to_leave.as_deref() == Some(&s.id))
            || (last && list.required_to_close);
        if !needed {
            continue;
        }
        for item in &list.items {
            let role = item.role.unwrap_or(first(&plan.permissions.check));
            prep.push((
                role,
                Action::Check {
                    list: list.id.clone(),
                    item: item.id.clone(),
                },
            ));
        }
    }
    if let Some(signoff) = entering.and_then(|s| plan.signoffs.iter().find(|o| o.stage == s.id)) {
        let approvers: Vec<Role> = if signoff.each {
            signoff.roles.clone()
        } else {
            let role = first(&signoff.roles);
            (0..signoff.approvals.max(1)).map(|_| role).collect()
        };
        prep.extend(approvers.into_iter().map(|role| (role, Action::Approve)));
    }
    prep
}

fn item_role(plan: &Plan, list: &str, item: &str) -> Role {
    plan.checklists
        .iter()
        .find(|c| c.id == list)
        .and_then(|c| c.items.iter().find(|i| i.id == item))
        .and_then(|i| i.role)
        .unwrap_or(first(&plan.permissions.check))
}

fn first(roles: &[Role]) -> Role {
    roles.first().copied().unwrap_or(Role::Lead)
}

/// Like `act`, where "already done" is fine (an item a gate checked, one checked earlier),
/// and a second approval by the same role comes from a second person.
async fn act_once(ctx: Ctx<'_>, role: Role, action: Action, at: Millis) -> anyhow::Result<()> {
    for n in 1..=3 {
        match commit(ctx.state, ctx.rollout, request(role, n, action.clone(), at)).await {
            Ok(_) => return Ok(()),
            Err(CommitError::Refused(Refusal::Duplicate(_))) if action == Action::Approve => {}
            Err(CommitError::Refused(Refusal::Duplicate(_))) => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("{} by {role}", action.name())),
        }
    }
    Ok(())
}

async fn act(ctx: Ctx<'_>, role: Role, action: Action, at: Millis) -> anyhow::Result<()> {
    let name = action.name();
    commit(ctx.state, ctx.rollout, request(role, 1, action, at))
        .await
        .with_context(|| format!("{name} by {role}"))?;
    Ok(())
}

/// A demo person with `role` (the demo's tokens sign in as `demo-ROLE`); `n` > 1 is a second
/// person with the same role.
fn request(role: Role, n: u32, action: Action, at: Millis) -> Request {
    let name = match n {
        1 => format!("demo-{role}"),
        n => format!("demo-{role}-{n}"),
    };
    Request {
        actor: Actor {
            name,
            role,
            ..Default::default()
        },
        action,
        reason: None,
        at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_covers_every_replayed_evaluation_and_its_windows() {
        let scenes = examples(MINUTE);
        let needed = history_needed(&scenes);
        for scene in &scenes {
            assert!(
                -scene.evaluate_from + 15 * MINUTE <= needed,
                "{}",
                scene.rollout
            );
        }
    }

    /// Each "what to look at first" line says when in words, never a `{in}` placeholder.
    #[test]
    fn stories_say_when_without_placeholders() {
        let scenes = examples(MINUTE);
        let soon: Vec<String> = scenes
            .iter()
            .filter(|s| s.soon.is_some())
            .map(|s| s.story(0, 30_000, Some(60_000)))
            .collect();
        assert!(!soon.is_empty());
        for story in &soon {
            assert!(!story.contains('{'), "{story}");
            assert!(story.contains(" in "), "{story}");
        }
        for scene in &scenes {
            let late = scene.story(0, 10 * MINUTE, Some(MINUTE));
            assert!(!late.contains('{'), "{late}");
            let unknown = scene.story(0, 10 * MINUTE, None);
            assert!(!unknown.contains('{'), "{unknown}");
        }
    }
}

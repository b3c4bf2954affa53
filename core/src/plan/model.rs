//! The plan as written (`Raw*`, straight from TOML, unknown keys refused) and as validated
//! (`Plan`, with durations parsed, defaults filled in and every reference checked).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::query::MetricKind;
use crate::role::Role;
use crate::time::{Millis, Span};

// ---- As written ---------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPlan {
    pub rollout: RawRollout,
    #[serde(default)]
    pub rollback: Option<RawRollback>,
    #[serde(default, rename = "stage")]
    pub stages: Vec<RawStage>,
    #[serde(default, rename = "metric")]
    pub metrics: Vec<RawMetric>,
    #[serde(default, rename = "gate")]
    pub gates: Vec<RawGate>,
    #[serde(default, rename = "trigger")]
    pub triggers: Vec<RawTrigger>,
    #[serde(default, rename = "checklist")]
    pub checklists: Vec<RawChecklist>,
    #[serde(default)]
    pub permissions: Option<Spanned<RawPermissions>>,
    #[serde(default, rename = "signoff")]
    pub signoffs: Vec<RawSignoff>,
    #[serde(default, rename = "actuator")]
    pub actuators: Vec<RawActuator>,
    #[serde(default, rename = "role")]
    pub roles: Vec<RawRole>,
    #[serde(default, rename = "notify")]
    pub channels: Vec<RawNotify>,
    #[serde(default, rename = "adjust")]
    pub adjust: Vec<RawAdjust>,
    #[serde(default)]
    pub confirm: Option<RawConfirm>,
    #[serde(default)]
    pub compare: Option<RawCompare>,
}

/// `[compare]`: what the plan's sequential comparisons assume of their arms.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCompare {
    #[serde(default)]
    pub split: Split,
}

/// How a stage's compared events should split between canary and baseline: the check for
/// sample-ratio mismatch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// The canary has the stage's traffic share, the baseline the rest (baseline is the
    /// stable version serving everyone else).
    #[default]
    Traffic,
    /// Half and half (a baseline deployment the size of the canary, as Kayenta runs).
    Even,
    /// Not checked (a shadow that mirrors a sample, say).
    None,
}

impl Split {
    /// The canary's expected share of the compared events at a stage of `traffic` percent.
    pub fn canary_share(self, traffic: f64) -> Option<f64> {
        match self {
            Split::Traffic => Some(traffic / 100.0),
            Split::Even => Some(0.5),
            Split::None => None,
        }
    }
}

/// `[confirm]`: how long a kill may go unconfirmed by the fleet before people are told, and
/// how recently before a change an instance must have been heard from to be expected.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfirm {
    #[serde(default)]
    pub within: Option<Spanned<String>>,
    #[serde(default)]
    pub expect_seen: Option<Spanned<String>>,
    /// A plan metric by which services report the version they applied.
    #[serde(default)]
    pub metric: Option<Spanned<String>>,
    #[serde(default)]
    pub instance_label: Option<String>,
}

/// `[[adjust]]`: a flag people may set within a stage (HAL9's shadow sampling), and its bounds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdjust {
    pub flag: Spanned<String>,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default)]
    pub values: Vec<String>,
    #[serde(default)]
    pub stages: Vec<Spanned<String>>,
    #[serde(default)]
    pub title: Option<String>,
}

/// `[[notify]]`: a channel people are told on.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNotify {
    pub id: Spanned<String>,
    pub kind: Spanned<String>,
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    #[serde(default)]
    pub url_env: Option<Spanned<String>>,
    #[serde(default)]
    pub secret_env: Option<Spanned<String>>,
    /// PagerDuty: the environment variable holding the integration's routing key.
    #[serde(default)]
    pub routing_key_env: Option<Spanned<String>>,
    /// Email: the SMTP server (`host:port`), sender, recipients, TLS and credentials.
    #[serde(default)]
    pub smtp: Option<Spanned<String>>,
    #[serde(default)]
    pub from: Option<Spanned<String>>,
    #[serde(default)]
    pub to: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub tls: Option<Spanned<String>>,
    #[serde(default)]
    pub user_env: Option<Spanned<String>>,
    #[serde(default)]
    pub password_env: Option<Spanned<String>>,
    /// Email: a CA (PEM file) to check the server's certificate against, beside the system's
    /// (a company relay with a certificate of its own CA).
    #[serde(default)]
    pub ca_file: Option<Spanned<String>>,
    /// A status update to this channel every so often ("30m"), from and until times around
    /// T-0 ("T-0", "T+4h").
    #[serde(default)]
    pub status_every: Option<Spanned<String>>,
    #[serde(default)]
    pub status_from: Option<Spanned<String>>,
    #[serde(default)]
    pub status_until: Option<Spanned<String>>,
    #[serde(default)]
    pub events: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub min_severity: Option<Severity>,
    #[serde(default)]
    pub escalate_after: Option<Spanned<String>>,
    /// Calls to a loopback, private, link-local or metadata address are refused unless the
    /// plan says the receiver lives there.
    #[serde(default)]
    pub allow_private: bool,
}

/// `[[role]]`: a role of the plan's own, beyond the built-in ones.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRole {
    pub id: Spanned<String>,
    #[serde(default)]
    pub title: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawActuator {
    pub id: Spanned<String>,
    pub kind: Spanned<String>,
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    #[serde(default)]
    pub secret_env: Option<Spanned<String>>,
    #[serde(default)]
    pub path: Option<Spanned<String>>,
    /// See `RawNotify::allow_private`.
    #[serde(default)]
    pub allow_private: bool,
    /// A call in the service's own terms (see `Shape`).
    #[serde(default)]
    pub method: Option<Spanned<String>>,
    #[serde(default)]
    pub body: Option<Spanned<String>>,
    #[serde(default)]
    pub per_flag: bool,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub headers_env: BTreeMap<String, String>,
}

/// `[rollback]`: what a kill publishes instead of "every flag off".
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRollback {
    #[serde(default)]
    pub flags: BTreeMap<String, FlagValue>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRollout {
    pub id: Spanned<String>,
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub runbook: Option<String>,
    /// The watch after the last stage, e.g. `72h`.
    #[serde(default)]
    pub hypercare: Option<Spanned<String>>,
    /// Each stage's flags start from the previous stage's.
    #[serde(default)]
    pub inherit_flags: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStage {
    pub id: Spanned<String>,
    #[serde(default)]
    pub title: Option<String>,
    pub traffic: Spanned<f64>,
    #[serde(default)]
    pub shadow: bool,
    #[serde(default)]
    pub min_duration: Option<Spanned<String>>,
    #[serde(default)]
    pub flags: BTreeMap<String, FlagValue>,
    /// What a kill in this stage publishes where it differs from `[rollback]`.
    #[serde(default)]
    pub rollback_flags: BTreeMap<String, FlagValue>,
    /// Overrides `[rollout] inherit_flags` for this stage.
    #[serde(default)]
    pub inherit_flags: Option<bool>,
    #[serde(default)]
    pub max_duration: Option<Spanned<String>>,
    #[serde(default)]
    pub on_max_duration: Option<TriggerAction>,
    #[serde(default)]
    pub auto_progress: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetric {
    pub id: Spanned<String>,
    pub kind: MetricKind,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub values: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub source: Option<Spanned<MetricSourceKind>>,
    #[serde(default)]
    pub query: Option<Spanned<String>>,
    /// The values the metric can take (`[0, 60000]` for a latency in ms): pushed values
    /// outside are refused, so a broken client cannot bend a percentile with 1e300.
    #[serde(default)]
    pub range: Option<Spanned<[f64; 2]>>,
    /// Where the metric comes from in OpenTelemetry data pushed to `/v1/metrics` or
    /// `/v1/logs`.
    #[serde(default)]
    pub otel: Option<Spanned<RawOtel>>,
}

/// `otel = { name = "http.server.request.duration", labels = { variant = "app.variant" } }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOtel {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub flag: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default, rename = "match")]
    pub matches: BTreeMap<String, String>,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub true_when: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGate {
    pub id: Spanned<String>,
    #[serde(default)]
    pub title: Option<String>,
    pub expr: Spanned<String>,
    pub window: Spanned<String>,
    #[serde(default)]
    pub hold: Option<Spanned<String>>,
    /// Consecutive windows that must end passing, instead of a continuous `hold`.
    #[serde(default)]
    pub cycles: Option<Spanned<u32>>,
    #[serde(default)]
    pub stages: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub severity: Severity,
    /// Whether a failing gate blocks progress: critical ones do, warning and info ones are
    /// shown and recorded but do not, unless this says so.
    #[serde(default)]
    pub blocks: Option<bool>,
    #[serde(default)]
    pub tolerate: u32,
    /// A number the runbook does not give, chosen by the plan's author: said on the board.
    #[serde(default)]
    pub assumption: Option<String>,
    /// The runbook's response, shown where the decision is made (see [`Guidance`]).
    #[serde(default)]
    pub cause: Option<String>,
    #[serde(default)]
    pub check: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub runbook: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTrigger {
    pub id: Spanned<String>,
    #[serde(default)]
    pub title: Option<String>,
    pub expr: Spanned<String>,
    #[serde(default)]
    pub window: Option<Spanned<String>>,
    #[serde(rename = "for")]
    pub for_: Spanned<String>,
    pub action: TriggerAction,
    #[serde(default)]
    pub severity: Severity,
    #[serde(default)]
    pub stages: Option<Spanned<Vec<String>>>,
    /// A number the runbook does not give, chosen by the plan's author: said on the board.
    #[serde(default)]
    pub assumption: Option<String>,
    /// The runbook's response, shown when the trigger fires (see [`Guidance`]); `respond`
    /// because `action` is what cutover itself does.
    #[serde(default)]
    pub cause: Option<String>,
    #[serde(default)]
    pub check: Option<String>,
    #[serde(default)]
    pub respond: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub runbook: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawChecklist {
    pub id: Spanned<String>,
    pub title: String,
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default)]
    pub required_for: Option<Spanned<String>>,
    #[serde(default)]
    pub required_to_leave: Option<Spanned<String>>,
    #[serde(default)]
    pub required_to_close: bool,
    #[serde(default)]
    pub required_to_resume: bool,
    pub items: Vec<RawItem>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawItem {
    pub id: Spanned<String>,
    pub text: String,
    #[serde(default)]
    pub role: Option<Spanned<String>>,
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default)]
    pub gate: Option<Spanned<String>>,
    /// Checked on this many consecutive days (nightly validations).
    #[serde(default)]
    pub days: Option<Spanned<u32>>,
    /// Due once per period through the hypercare (`1d`: daily), each occurrence ticked on
    /// its own.
    #[serde(default)]
    pub every: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPermissions {
    pub progress: Option<Vec<String>>,
    pub pause: Option<Vec<String>>,
    pub resume: Option<Vec<String>>,
    pub kill: Option<Vec<String>>,
    #[serde(rename = "override")]
    pub override_: Option<Vec<String>>,
    pub check: Option<Vec<String>>,
    pub approve: Option<Vec<String>>,
    pub step_back: Option<Vec<String>>,
    pub decide: Option<Vec<String>>,
    pub ack: Option<Vec<String>>,
    pub adjust: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSignoff {
    pub stage: Spanned<String>,
    /// How many approvals from any of `roles`; with `each`, one from every role instead.
    #[serde(default)]
    pub approvals: Option<Spanned<u32>>,
    #[serde(default)]
    pub each: bool,
    pub roles: Spanned<Vec<String>>,
    #[serde(default)]
    pub title: Option<String>,
}

// ---- As validated -------------------------------------------------------------------------

/// What applies a rollout's state to the world besides `GET .../flags`: a webhook told of every
/// change, or a `KEY=value` file rewritten atomically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actuator {
    Webhook {
        id: String,
        url: String,
        /// Environment variable holding the bearer secret sent with each call.
        secret_env: Option<String>,
        /// The receiver may be on a loopback, private or link-local address.
        #[serde(default)]
        allow_private: bool,
        /// The call shaped like the service's own API (templates), when the plan says so;
        /// otherwise cutover's desired-state JSON is POSTed.
        #[serde(default)]
        shape: Option<Shape>,
    },
    EnvFile {
        id: String,
        /// Relative paths are relative to the server's working directory.
        path: String,
    },
}

pub use crate::template::Shape;

impl Plan {
    /// What the plan assumes for gate or trigger `id`, where its runbook gives no number.
    pub fn assumption(&self, id: &str) -> Option<&str> {
        let gate = self.gates.iter().find(|g| g.id == id);
        gate.and_then(|g| g.assumption.as_deref()).or_else(|| {
            self.triggers
                .iter()
                .find(|t| t.id == id)
                .and_then(|t| t.assumption.as_deref())
        })
    }

    /// What a kill in stage `stage` publishes: the plan's rollback flags, with the stage's
    /// own over them.
    pub fn rollback_flags(&self, stage: Option<usize>) -> BTreeMap<String, FlagValue> {
        let mut flags = self.rollback_flags.clone();
        if let Some(s) = stage.and_then(|i| self.stages.get(i)) {
            flags.extend(s.rollback_flags.clone());
        }
        flags
    }
}

impl Metric {
    /// What the metric's values are in.
    pub fn unit(&self) -> crate::unit::Unit {
        crate::unit::Unit::of_plan(self.unit.as_deref())
    }
}

/// A `[[notify]]` channel: where events go, which ones, and when an unacknowledged alert moves
/// on to the next channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    pub id: String,
    pub kind: ChannelKind,
    pub url: ChannelUrl,
    /// Environment variable holding the key a webhook's body is signed with (HMAC-SHA256).
    pub secret_env: Option<String>,
    /// PagerDuty: the environment variable holding the routing key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_key_env: Option<String>,
    /// PagerDuty: a routing key the server itself gives (the demo's own receiver); a plan
    /// can only name an environment variable.
    #[serde(skip)]
    pub routing_key: Option<String>,
    /// Email: how to reach the SMTP server and whom to write to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Email>,
    /// Periodic status updates this channel gets, if it asks for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusUpdates>,
    /// The events it takes (empty: all).
    pub events: Vec<EventKind>,
    /// The lightest severity it takes.
    pub min_severity: Severity,
    /// An alert nobody acknowledged this long goes to the next channel.
    pub escalate_after: Option<Span>,
    /// The receiver may be on a loopback, private or link-local address.
    #[serde(default)]
    pub allow_private: bool,
}

/// A status update every `every`, from `from` until `until` (offsets from T-0; the start
/// and no end when absent), while the rollout is under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusUpdates {
    pub every: Span,
    pub from: Option<crate::time::Millis>,
    pub until: Option<crate::time::Millis>,
}

/// An email channel's SMTP server, sender and recipients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    pub host: String,
    pub port: u16,
    pub from: String,
    pub to: Vec<String>,
    pub tls: SmtpTls,
    /// Environment variables holding the SMTP login, when the server wants one.
    pub user_env: Option<String>,
    pub password_env: Option<String>,
    /// A CA to check the server's certificate against, beside the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain at first, then STARTTLS, which must succeed (port 587): the default.
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS at all: only for a relay on the same host or network.
    None,
}

/// What happened, as a `[[notify]]` channel's `events` names it (`core::notify` makes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    AlertFired,
    AlertResolved,
    Kill,
    StepBack,
    StageEntered,
    Completed,
    GateFailing,
    Stale,
    Timebox,
    ActuatorFailing,
    /// Someone acknowledged an open alert or kill.
    Acknowledged,
    /// A lead recorded a decision (proceed, extend, investigate).
    Decision,
    /// A periodic status update (only to the channels that ask for them).
    Status,
    /// A kill not applied by every instance of the fleet within `[confirm] within`.
    Unconfirmed,
    /// ...and then applied by all of them.
    Confirmed,
    /// A checklist item past its due time and not done.
    Overdue,
    /// A canary-against-baseline comparison concluded "worse".
    Worse,
}

impl EventKind {
    pub const ALL: [EventKind; 17] = [
        EventKind::AlertFired,
        EventKind::AlertResolved,
        EventKind::Kill,
        EventKind::StepBack,
        EventKind::StageEntered,
        EventKind::Completed,
        EventKind::GateFailing,
        EventKind::Stale,
        EventKind::Timebox,
        EventKind::ActuatorFailing,
        EventKind::Acknowledged,
        EventKind::Decision,
        EventKind::Status,
        EventKind::Unconfirmed,
        EventKind::Confirmed,
        EventKind::Overdue,
        EventKind::Worse,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::AlertFired => "alert_fired",
            EventKind::AlertResolved => "alert_resolved",
            EventKind::Kill => "kill",
            EventKind::StepBack => "step_back",
            EventKind::StageEntered => "stage_entered",
            EventKind::Completed => "completed",
            EventKind::GateFailing => "gate_failing",
            EventKind::Stale => "stale",
            EventKind::Timebox => "timebox",
            EventKind::ActuatorFailing => "actuator_failing",
            EventKind::Acknowledged => "acknowledged",
            EventKind::Decision => "decision",
            EventKind::Status => "status",
            EventKind::Unconfirmed => "unconfirmed",
            EventKind::Confirmed => "confirmed",
            EventKind::Overdue => "overdue",
            EventKind::Worse => "worse",
        }
    }

    pub fn parse(text: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// What a channel's body looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// Slack-compatible incoming webhook JSON (`{"text": ...}`; Mattermost and Rocket.Chat
    /// take it too).
    Slack,
    /// cutover's own JSON, signed: `X-Cutover-Signature: sha256=<hex HMAC of the body>`.
    Webhook,
    /// PagerDuty's Events API v2: alerts and kills trigger an incident, an acknowledgement
    /// acknowledges it and a resolved alert resolves it, one dedup key per episode.
    PagerDuty,
    /// Email over SMTP.
    Email,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Slack => "slack",
            ChannelKind::Webhook => "webhook",
            ChannelKind::PagerDuty => "pagerduty",
            ChannelKind::Email => "email",
        }
    }
}

/// Where a channel posts: written in the plan, or (a secret, as Slack's URLs are) read from
/// the environment when sending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelUrl {
    Url(String),
    Env(String),
}

impl Actuator {
    pub fn id(&self) -> &str {
        match self {
            Actuator::Webhook { id, .. } | Actuator::EnvFile { id, .. } => id,
        }
    }
}

pub use crate::flag::FlagValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    #[default]
    Critical,
    Warning,
    Info,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerAction {
    /// Roll back: traffic to 0, the rollout is killed.
    Kill,
    /// Retreat one stage: the previous stage's traffic and flags.
    StepBack,
    /// Tell people; change nothing.
    Alert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricSourceKind {
    /// Events pushed to cutover's ingestion endpoint.
    #[default]
    Push,
    /// A PromQL query against the configured Prometheus.
    Prometheus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub id: String,
    pub title: String,
    pub description: String,
    /// The runbook this plan was written from, if any.
    pub runbook: Option<String>,
    pub stages: Vec<Stage>,
    pub metrics: Vec<Metric>,
    pub gates: Vec<Gate>,
    pub triggers: Vec<Trigger>,
    pub checklists: Vec<Checklist>,
    pub permissions: Permissions,
    pub signoffs: Vec<Signoff>,
    /// What a kill publishes (`[rollback] flags`): the known state to return to, e.g. the
    /// old path read-only or shadow metrics kept, instead of every flag dropped.
    #[serde(default)]
    pub rollback_flags: BTreeMap<String, FlagValue>,
    /// The watch after the last stage: completing it starts hypercare, which a close ends
    /// once this long has passed (`None`: completing the last stage closes the rollout).
    #[serde(default)]
    pub hypercare: Option<Span>,
    /// Never sent to browsers: URLs can carry credentials, and viewers need only the status.
    #[serde(default, skip_serializing)]
    pub actuators: Vec<Actuator>,
    /// Roles the plan defines beyond the built-in ones.
    #[serde(default)]
    pub roles: Vec<RoleDef>,
    /// Where people are told (`[[notify]]`). Never sent to browsers, like actuators.
    #[serde(default, skip_serializing)]
    pub channels: Vec<Channel>,
    /// Flags people may set within a stage (`[[adjust]]`).
    #[serde(default)]
    pub adjust: Vec<Adjustable>,
    /// When the fleet's confirmation of a kill is overdue (`[confirm]`).
    #[serde(default)]
    pub confirm: crate::confirm::ConfirmSettings,
    /// How compared events should split between the arms (`[compare] split`).
    #[serde(default)]
    pub split: Split,
}

/// A flag people may set within a stage, undone by the next stage change, step back or kill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Adjustable {
    pub flag: String,
    /// How people read it ("shadow sampling").
    pub title: String,
    /// A number's bounds, inclusive.
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// A text flag's allowed values (empty: any).
    #[serde(default)]
    pub values: Vec<String>,
    /// Stages where it may be set (empty: every stage).
    #[serde(default)]
    pub stages: Vec<String>,
}

impl Plan {
    /// How far back its metric store keeps data: a week and a day, or its whole hypercare and
    /// the day before.
    pub fn lookback(&self) -> crate::time::Millis {
        crate::window::lookback_for(self.hypercare.map(|h| h.0))
    }

    /// The `[[adjust]]` entry for `flag`, if people may set it in stage `stage`.
    pub fn adjustable(&self, flag: &str, stage: &str) -> Option<&Adjustable> {
        self.adjust.iter().find(|a| {
            a.flag == flag && (a.stages.is_empty() || a.stages.iter().any(|s| s == stage))
        })
    }
}

/// A plan's own role: its id (what `cutover user add --role` takes) and how people read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleDef {
    pub role: Role,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    pub id: String,
    pub title: String,
    /// Share of user traffic served by the new path, 0..=100.
    pub traffic: f64,
    /// Traffic is mirrored to the new path but responses come from the old one.
    pub shadow: bool,
    pub min_duration: Option<Span>,
    pub flags: BTreeMap<String, FlagValue>,
    /// What a kill in this stage publishes over the plan's `[rollback]` flags.
    #[serde(default)]
    pub rollback_flags: BTreeMap<String, FlagValue>,
    /// How long the stage should last at most (a timebox); past it the rollout says so and
    /// `on_max_duration` fires once.
    #[serde(default)]
    pub max_duration: Option<Span>,
    #[serde(default = "alert")]
    pub on_max_duration: TriggerAction,
    /// Progress by itself once ready (minimum duration, every blocking gate held, lists and
    /// the next stage's sign-offs done), as the system, unless paused. Left out of the JSON
    /// when off: a stored plan's hash (which says whether the plan changed) stays the same.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_progress: bool,
}

fn alert() -> TriggerAction {
    TriggerAction::Alert
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub id: String,
    pub kind: MetricKind,
    /// The author's word for what the values are in (`ms`, `%` for percentage points, ...);
    /// read it as a [`crate::unit::Unit`] with [`Metric::unit`].
    pub unit: Option<String>,
    pub title: String,
    /// The allowed values of a category metric, in display order.
    pub values: Vec<String>,
    pub source: MetricSourceKind,
    /// PromQL for `source = "prometheus"`.
    pub query: Option<String>,
    /// The values it can take, inclusive; pushed values outside are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<[f64; 2]>,
    /// Where it comes from in pushed OpenTelemetry data, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otel: Option<OtelSource>,
}

/// A plan metric fed by OpenTelemetry: from an OTLP metric by name, or from
/// `feature_flag.evaluation` log records of one flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtelSource {
    pub from: OtelFrom,
    /// Plan label ← attribute (looked up on the data point or log record first, then the
    /// resource): `variant = "app.variant"`. Other attributes are not kept.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Attributes that must have these values (on the point or the resource), e.g.
    /// `"service.name" = "search"`: the same OTLP metric from other services is not this one.
    #[serde(default)]
    pub matches: BTreeMap<String, String>,
    /// The unit the sender's values are in when its data states none (UCUM: `s`, `ms`).
    pub unit: Option<String>,
    /// Ratio metrics: which points count as yes.
    pub true_when: Option<AttributeTest>,
    /// Category metrics fed by a metric: the attribute whose value is the category.
    pub category: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtelFrom {
    /// An OTLP metric's name.
    Metric(String),
    /// `feature_flag.evaluation` log records whose `feature_flag.key` is this: each
    /// evaluation's variant is a category sample.
    Flag(String),
}

/// `error.type` (the attribute is present) or `cache.hit=true` (it has that value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeTest {
    pub attribute: String,
    pub equals: Option<String>,
}

impl AttributeTest {
    pub fn parse(text: &str) -> Option<AttributeTest> {
        let (attribute, equals) = match text.split_once('=') {
            Some((a, v)) => (a.trim(), Some(v.trim().to_string())),
            None => (text.trim(), None),
        };
        (!attribute.is_empty()).then(|| AttributeTest {
            attribute: attribute.to_string(),
            equals,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    pub id: String,
    pub title: String,
    pub expr: String,
    pub window: Span,
    /// How long the gate must pass continuously before progress is allowed.
    pub hold: Span,
    /// Stages whose progress this gate guards (all stages when the plan names none).
    pub stages: Vec<String>,
    pub severity: Severity,
    /// Whether it blocks progress (critical gates do; warnings only when the plan says).
    #[serde(default = "blocking")]
    pub blocks: bool,
    /// Consecutive failed evaluations tolerated before the hold resets (flaky signals).
    pub tolerate: u32,
    /// Windows that must end passing in a row instead of a continuous hold (0: a hold);
    /// `hold` is then `cycles` windows long.
    #[serde(default)]
    pub cycles: u32,
    #[serde(default, skip_serializing_if = "Guidance::is_empty")]
    pub guidance: Guidance,
    /// What the plan assumes where its runbook gives no number (shown with the gate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assumption: Option<String>,
}

/// A plan stored before gates could be non-blocking: every gate blocked.
fn blocking() -> bool {
    true
}

/// What the runbook says to do when a gate fails or a trigger fires: shown on the gate board,
/// the trigger list and the wall at the moment the decision is made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Guidance {
    /// What usually causes it.
    pub cause: Option<String>,
    /// The command or look that confirms it.
    pub check: Option<String>,
    /// What to do.
    pub action: Option<String>,
    /// Who decides.
    pub owner: Option<String>,
    /// Where the runbook says more (an http(s) link).
    pub runbook: Option<String>,
}

impl Guidance {
    pub fn is_empty(&self) -> bool {
        *self == Guidance::default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    pub id: String,
    pub title: String,
    pub expr: String,
    pub window: Span,
    /// How long the condition must be true continuously before the action fires.
    pub for_: Span,
    pub action: TriggerAction,
    pub severity: Severity,
    /// Stages in which the trigger is armed (all when the plan names none).
    pub stages: Vec<String>,
    #[serde(default, skip_serializing_if = "Guidance::is_empty")]
    pub guidance: Guidance,
    /// What the plan assumes where its runbook gives no number (shown with the trigger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assumption: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checklist {
    pub id: String,
    pub title: String,
    pub phase: Option<String>,
    /// Entering this stage requires every item checked.
    pub required_for: Option<String>,
    /// Leaving this stage (a progress, or completing the last stage) requires every item.
    #[serde(default)]
    pub required_to_leave: Option<String>,
    /// Closing the rollout after its hypercare requires every item.
    #[serde(default)]
    pub required_to_close: bool,
    /// Resuming after a kill requires every item checked since the kill (the quick asserts
    /// after a rollback).
    #[serde(default)]
    pub required_to_resume: bool,
    pub items: Vec<Item>,
}

impl Checklist {
    /// When `item` is due: its own phase (a label such as "Launch Day" is no time), else
    /// the list's: from T-0 (`T-30m`) or after a stage's latest entry (`live+15m`).
    pub fn due(&self, item: &Item) -> Option<Due> {
        self.due_phase(item).and_then(Due::parse)
    }

    /// The phase `due` reads, as the plan writes it (`T-60m`, `live+5m`), when it is a time.
    pub fn due_phase<'a>(&'a self, item: &'a Item) -> Option<&'a str> {
        item.phase
            .as_deref()
            .or(self.phase.as_deref())
            .filter(|p| Due::parse(p).is_some())
            .map(str::trim)
    }
}

/// When a checklist item is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// This long from T-0 (negative: before).
    FromT0(crate::time::Millis),
    /// This long after the latest entry into `stage`.
    AfterEntry {
        stage: String,
        after: crate::time::Millis,
    },
}

impl Due {
    pub fn parse(text: &str) -> Option<Due> {
        if let Some(offset) = crate::time::t_offset(text) {
            return Some(Due::FromT0(offset));
        }
        crate::time::stage_offset(text).map(|(stage, after)| Due::AfterEntry {
            stage: stage.to_string(),
            after,
        })
    }

    /// As a person reads it: `T-30m` as written, `15m after entering Live`.
    pub fn label(&self, plan: &Plan, written: &str) -> String {
        match self {
            Due::FromT0(_) => written.to_string(),
            Due::AfterEntry { stage, after } => {
                let title = plan
                    .stages
                    .iter()
                    .find(|s| &s.id == stage)
                    .map_or(stage.as_str(), |s| s.title.as_str());
                match after {
                    0 => format!("on entering {title}"),
                    a => format!("{} after entering {title}", crate::time::Span(*a).human()),
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub id: String,
    pub text: String,
    /// Who may check it (anyone with the `check` permission when unset).
    pub role: Option<Role>,
    /// When in the timeline it is due, e.g. `T-30m`.
    pub phase: Option<String>,
    /// A gate that checks this item by itself while it passes.
    pub gate: Option<String>,
    /// Done once checked on this many consecutive days (0 or 1: once).
    #[serde(default)]
    pub days: u32,
    /// Due once per period through the hypercare, each occurrence ticked on its own: the
    /// `n`-th (from 1) opens at `n - 1` periods into the hypercare and is due at `n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<Span>,
    /// How many periods the hypercare holds (0 unless it recurs).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub occurrences: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Item {
    /// The occurrence (from 1) open at `at` for a hypercare that began at `since`: the one
    /// whose period contains `at`, capped at the last. `None` before the hypercare.
    pub fn occurrence_at(&self, since: Millis, at: Millis) -> Option<u32> {
        let every = self.every?.0;
        if at < since || every <= 0 || self.occurrences == 0 {
            return None;
        }
        let open = u32::try_from((at - since) / every + 1).unwrap_or(u32::MAX);
        Some(open.min(self.occurrences))
    }

    /// How often it recurs, in words: `daily`, `weekly`, `every 12h 00m`.
    pub fn every_text(&self) -> Option<String> {
        let every = self.every?;
        Some(match every.0 {
            e if e == crate::time::DAY => "daily".to_string(),
            e if e == 7 * crate::time::DAY => "weekly".to_string(),
            _ => format!("every {}", every.human()),
        })
    }

    /// When occurrence `n` is due, for a hypercare that began at `since`.
    pub fn occurrence_due(&self, since: Millis, n: u32) -> Option<Millis> {
        let every = self.every?.0;
        Some(since.saturating_add(every.saturating_mul(i64::from(n))))
    }
}

/// The key an occurrence's tick is kept under: `list/item#n`.
pub fn occurrence_key(list: &str, item: &str, n: u32) -> String {
    format!("{list}/{item}#{n}")
}

/// Which roles may take each action. Defaults follow the runbooks: operators progress and
/// kill, product may kill, the lead overrides and resumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    pub progress: Vec<Role>,
    pub pause: Vec<Role>,
    pub resume: Vec<Role>,
    pub kill: Vec<Role>,
    pub override_: Vec<Role>,
    pub check: Vec<Role>,
    pub approve: Vec<Role>,
    #[serde(default = "default_step_back")]
    pub step_back: Vec<Role>,
    /// Who records a decision (proceed, extend, investigate) that changes no state.
    #[serde(default = "default_decide")]
    pub decide: Vec<Role>,
    /// Who acknowledges an open alert or automatic kill.
    #[serde(default = "default_ack")]
    pub ack: Vec<Role>,
    /// Who sets an `[[adjust]]` flag within a stage.
    #[serde(default = "default_step_back")]
    pub adjust: Vec<Role>,
}

fn default_ack() -> Vec<Role> {
    vec![Role::Operator, Role::Product, Role::Lead]
}

fn default_step_back() -> Vec<Role> {
    vec![Role::Operator, Role::Lead]
}

fn default_decide() -> Vec<Role> {
    vec![Role::Lead]
}

impl Default for Permissions {
    fn default() -> Self {
        use Role::*;
        Permissions {
            progress: vec![Operator, Lead],
            pause: vec![Operator, Lead],
            resume: vec![Lead],
            kill: vec![Operator, Product, Lead],
            override_: vec![Lead],
            check: vec![Operator, Lead],
            approve: vec![Product, Lead],
            step_back: default_step_back(),
            decide: default_decide(),
            ack: default_ack(),
            adjust: default_step_back(),
        }
    }
}

/// Entering `stage` needs `approvals` distinct approvers holding one of `roles`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signoff {
    pub stage: String,
    pub approvals: u32,
    pub roles: Vec<Role>,
    /// One approval from each of `roles` ("lead AND product"), not `approvals` from the pool.
    #[serde(default)]
    pub each: bool,
    pub title: String,
}

impl Plan {
    pub fn stage(&self, id: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.id == id)
    }

    pub fn metric(&self, id: &str) -> Option<&Metric> {
        self.metrics.iter().find(|m| m.id == id)
    }

    /// How people read `role`: a plan role's title ("Database lead"), else its id or the
    /// built-in role's word ("lead").
    pub fn role_title<'a>(&'a self, role: &'a Role) -> &'a str {
        self.roles
            .iter()
            .find(|def| def.role == *role)
            .map_or(role.as_str(), |def| def.title.as_str())
    }
}

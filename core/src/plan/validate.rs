//! Turns a plan as written into a `Plan`, collecting every problem with the byte offset of
//! the value at fault, so one run of `cutover plan check` lists them all.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use toml::Spanned;

use super::duration;
use super::model::*;
use crate::query::MetricKind;
use crate::role::Role;

type Problems = Vec<(usize, String)>;

/// What a plan's expressions may name: its metrics, its stages' flags, its triggers.
struct PlanNames<'a> {
    metrics: &'a [Metric],
    stages: &'a [Stage],
    triggers: BTreeSet<&'a str>,
}

impl crate::expr::Resolve for PlanNames<'_> {
    fn metric(&self, name: &str) -> Option<(MetricKind, Vec<String>)> {
        self.metrics
            .iter()
            .find(|m| m.id == name)
            .map(|m| (m.kind, m.values.clone()))
    }

    fn flag(&self, name: &str) -> Option<crate::expr::Type> {
        let mut types = self
            .stages
            .iter()
            .filter_map(|s| s.flags.get(name))
            .map(|v| match v {
                FlagValue::Bool(_) => Some(crate::expr::Type::Bool),
                FlagValue::Number(_) => Some(crate::expr::Type::Number),
                FlagValue::Text(_) => None,
            });
        let first = types.next()??;
        types.all(|t| t == Some(first)).then_some(first)
    }

    fn trigger(&self, id: &str) -> bool {
        self.triggers.contains(id)
    }

    fn range(&self, name: &str) -> Option<[f64; 2]> {
        self.metrics.iter().find(|m| m.id == name)?.range
    }

    fn events(&self, name: &str) -> bool {
        self.metrics
            .iter()
            .find(|m| m.id == name)
            .is_some_and(|m| m.source == MetricSourceKind::Push)
    }
}

/// Parses and checks one expression; an error points into the TOML string at the right
/// character (escapes such as \" count as one character of the expression).
fn check_expr(
    expr: &Spanned<String>,
    what: &str,
    names: &PlanNames<'_>,
    text: &str,
    p: &mut Problems,
) {
    let result = crate::expr::parse(expr.get_ref()).and_then(|e| crate::expr::check(&e, names));
    if let Err(e) = result {
        let start = expr.span().start;
        // Skip the opening quote, then walk the raw text one expression character at a time.
        let mut offset = start + 1;
        let raw = text.get(offset..).unwrap_or("");
        let mut chars = raw.char_indices();
        for _ in 1..e.column {
            match chars.next() {
                Some((_, '\\')) => {
                    chars.next();
                }
                Some(_) => {}
                None => break,
            }
        }
        offset += chars.next().map_or(raw.len(), |(i, _)| i);
        p.push((
            offset,
            format!("in this {what}'s expression: {}", e.message),
        ));
    }
}

pub(crate) fn validate(raw: RawPlan, text: &str) -> Result<Plan, Problems> {
    let mut p = Problems::new();

    check_slug(&raw.rollout.id, "rollout id", &mut p);
    let stages = stages(&raw.stages, raw.rollout.inherit_flags, &mut p);
    let metrics = metrics(&raw.metrics, &mut p);
    let stage_ids: BTreeSet<&str> = stages.iter().map(|s| s.id.as_str()).collect();
    let resolver = PlanNames {
        metrics: &metrics,
        stages: &stages,
        triggers: raw
            .triggers
            .iter()
            .map(|t| t.id.get_ref().as_str())
            .collect(),
    };
    let roles = roles(&raw.roles, &mut p);
    let known = KnownRoles(roles.iter().map(|r| r.role).collect());
    for (expr, what) in raw
        .gates
        .iter()
        .map(|g| (&g.expr, "gate"))
        .chain(raw.triggers.iter().map(|t| (&t.expr, "trigger")))
    {
        check_expr(expr, what, &resolver, text, &mut p);
    }
    let gates = gates(&raw.gates, &stage_ids, &mut p);
    let gate_ids: BTreeSet<&str> = gates.iter().map(|g| g.id.as_str()).collect();
    let triggers = triggers(&raw.triggers, &stage_ids, &mut p);
    let hypercare = raw
        .rollout
        .hypercare
        .as_ref()
        .and_then(|d| super::duration(d).map_err(|e| p.push(e)).ok())
        .filter(|h| {
            let ok = h.0 <= MAX_HYPERCARE;
            if !ok {
                p.push((
                    raw.rollout.hypercare.as_ref().map_or(0, |d| d.span().start),
                    format!(
                        "hypercare is at most {}: a longer watch is a rollout of its own",
                        crate::time::Span(MAX_HYPERCARE).human()
                    ),
                ));
            }
            ok
        });
    let keep = crate::window::lookback_for(hypercare.map(|h| h.0));
    for (expr, window) in raw
        .gates
        .iter()
        .zip(&gates)
        .map(|(r, g)| (&r.expr, g.window))
        .chain(
            raw.triggers
                .iter()
                .zip(&triggers)
                .map(|(r, t)| (&r.expr, t.window)),
        )
    {
        check_lookback(expr, window, keep, &mut p);
    }
    let checklists = checklists(
        &raw.checklists,
        (&stage_ids, &gate_ids),
        hypercare,
        &known,
        &mut p,
    );
    let permissions = permissions(raw.permissions.as_ref(), &known, &mut p);
    let signoffs = signoffs(&raw.signoffs, &stage_ids, &known, &mut p);
    let actuators = actuators(&raw.actuators, &stages, &raw, &mut p);
    let channels = channels(&raw.channels, &mut p);
    let adjust = adjustables(&raw.adjust, &stages, &mut p);
    let confirm = confirm_settings(raw.confirm.as_ref(), &metrics, &mut p);

    if !p.is_empty() {
        p.sort_by_key(|(offset, _)| *offset);
        return Err(p);
    }
    Ok(Plan {
        id: raw.rollout.id.into_inner(),
        title: raw.rollout.title,
        description: raw.rollout.description,
        runbook: raw.rollout.runbook,
        stages,
        metrics,
        gates,
        triggers,
        checklists,
        permissions,
        signoffs,
        actuators,
        rollback_flags: raw.rollback.map(|r| r.flags).unwrap_or_default(),
        hypercare,
        roles,
        channels,
        adjust,
        confirm,
        split: raw.compare.map(|c| c.split).unwrap_or_default(),
    })
}

fn confirm_settings(
    raw: Option<&RawConfirm>,
    metrics: &[Metric],
    p: &mut Problems,
) -> crate::confirm::ConfirmSettings {
    let mut out = crate::confirm::ConfirmSettings::default();
    let Some(raw) = raw else { return out };
    let mut read = |field: &Option<Spanned<String>>, name: &str, slot: &mut crate::time::Span| {
        let Some(text) = field else { return };
        match duration(text) {
            Ok(span) if span.0 >= crate::time::SECOND && span.0 <= crate::time::DAY => *slot = span,
            Ok(_) => p.push((
                text.span().start,
                format!("confirm {name} must be between 1s and 24h"),
            )),
            Err(e) => p.push(e),
        }
    };
    read(&raw.within, "within", &mut out.within);
    read(&raw.expect_seen, "expect_seen", &mut out.expect_seen);
    if let Some(m) = &raw.metric {
        match metrics.iter().find(|x| &x.id == m.get_ref()) {
            Some(x) if matches!(x.kind, MetricKind::Gauge | MetricKind::Distribution) => {
                out.metric = Some(x.id.clone());
            }
            Some(_) => p.push((
                m.span().start,
                format!(
                    "confirm metric {} must be a gauge (the version each instance applied)",
                    m.get_ref()
                ),
            )),
            None => p.push((
                m.span().start,
                format!("unknown metric \"{}\"", m.get_ref()),
            )),
        }
    }
    if let Some(label) = raw.instance_label.as_ref().filter(|l| !l.trim().is_empty()) {
        out.instance_label = label.trim().to_string();
    }
    out
}

/// `[[adjust]]`: each flag once, bounds that fit the flag's type in the stages that set it.
fn adjustables(raw: &[RawAdjust], stages: &[Stage], p: &mut Problems) -> Vec<Adjustable> {
    let mut out: Vec<Adjustable> = Vec::new();
    for a in raw {
        let at = a.flag.span().start;
        let flag = a.flag.get_ref().trim().to_string();
        if flag.is_empty() || flag.len() > 128 {
            p.push((
                at,
                "an adjust flag needs a name of 1 to 128 characters".into(),
            ));
            continue;
        }
        if out.iter().any(|o| o.flag == flag) {
            p.push((at, format!("adjust {flag} is declared twice")));
            continue;
        }
        for s in &a.stages {
            if !stages.iter().any(|st| &st.id == s.get_ref()) {
                p.push((s.span().start, format!("unknown stage \"{}\"", s.get_ref())));
            }
        }
        let numeric = a.min.is_some() || a.max.is_some();
        if numeric && !a.values.is_empty() {
            p.push((
                at,
                format!("adjust {flag}: min/max bound a number, values list texts; give one or the other"),
            ));
        }
        if let (Some(lo), Some(hi)) = (a.min, a.max)
            && lo > hi
        {
            p.push((at, format!("adjust {flag}: min {lo} is above max {hi}")));
        }
        if [a.min, a.max].iter().flatten().any(|v| !v.is_finite()) {
            p.push((at, format!("adjust {flag}: bounds must be finite numbers")));
        }
        // The stages that set the flag say its type; bounds of another type could never hold.
        for st in stages
            .iter()
            .filter(|st| a.stages.is_empty() || a.stages.iter().any(|s| s.get_ref() == &st.id))
        {
            let wrong = match st.flags.get(&flag) {
                Some(FlagValue::Number(_)) => !a.values.is_empty(),
                Some(FlagValue::Text(_)) => numeric,
                Some(FlagValue::Bool(_)) => numeric || !a.values.is_empty(),
                None => false,
            };
            if wrong {
                p.push((
                    at,
                    format!(
                        "adjust {flag}: stage {} sets it to {}, which these bounds do not fit",
                        st.id,
                        st.flags
                            .get(&flag)
                            .map(|v| v.to_string())
                            .unwrap_or_default()
                    ),
                ));
                break;
            }
        }
        out.push(Adjustable {
            title: a.title.clone().unwrap_or_else(|| flag.clone()),
            flag,
            min: a.min,
            max: a.max,
            values: a.values.clone(),
            stages: a.stages.iter().map(|s| s.get_ref().clone()).collect(),
        });
    }
    out
}

/// The longest hypercare: the store keeps its buckets that long (see `window::lookback_for`).
const MAX_HYPERCARE: crate::time::Millis = 30 * crate::time::DAY;

/// An `offset` reaches back only as far as the metric store keeps data (`keep`): beyond it the
/// read could only ever say "no data". Where it reaches rolled-up buckets, its window must be
/// at least their width, or it may hold no bucket at all.
fn check_lookback(
    expr: &Spanned<String>,
    window: crate::time::Span,
    keep: crate::time::Millis,
    p: &mut Problems,
) {
    let Ok(e) = crate::expr::parse(expr.get_ref()) else {
        return;
    };
    let config = crate::window::StoreConfig::keeping(keep);
    for read in e.metrics() {
        let oldest = read.offset.saturating_add(window.0);
        let width = config.width_at(oldest);
        // A window of whole buckets: a part of one would take the bucket or not depending
        // on the second it is read at.
        let whole = window.0 >= width && window.0 % width == 0;
        if read.offset > 0 && !whole && oldest <= keep {
            p.push((
                expr.span().start,
                format!(
                    "offset {} reads data kept in {} buckets: give it a window of at least {}, a whole number of them",
                    crate::time::Span(read.offset).human(),
                    crate::time::Span(width).human(),
                    crate::time::Span(width).human(),
                ),
            ));
        }
        if read.offset.saturating_add(window.0) > keep {
            p.push((
                expr.span().start,
                format!(
                    "offset {} plus the window {} reaches past the {} of data the store keeps: at most offset {}",
                    crate::time::Span(read.offset).human(),
                    window.human(),
                    crate::time::Span(keep).human(),
                    crate::time::Span((keep - window.0).max(0)).human(),
                ),
            ));
        }
    }
}

/// The plan's own roles: well-formed, not a built-in name, once each.
fn roles(raw: &[RawRole], p: &mut Problems) -> Vec<RoleDef> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for r in raw {
        let name = r.id.get_ref();
        let at = r.id.span().start;
        match Role::from_wire(name) {
            Some(role @ Role::Named(_)) if seen.insert(role) => out.push(RoleDef {
                role,
                title: r.title.clone().unwrap_or_else(|| name.clone()),
            }),
            Some(Role::Named(_)) => p.push((at, format!("duplicate role id \"{name}\""))),
            Some(_) => p.push((at, format!("\"{name}\" is a built-in role: define only new ones"))),
            None => p.push((
                at,
                format!("role id \"{name}\" must be 1 to 32 lowercase letters, digits or \"_\", starting with a letter"),
            )),
        }
    }
    out
}

/// The built-in roles and the plan's own: what permissions, sign-offs and items may name.
struct KnownRoles(BTreeSet<Role>);

impl KnownRoles {
    fn parse(&self, name: &str, at: usize, p: &mut Problems) -> Option<Role> {
        match Role::from_str(name) {
            Ok(role) if role.is_named() && !self.0.contains(&role) => {
                p.push((at, format!("unknown role \"{name}\": built-in roles are viewer, operator, product, lead, admin; define a role of the plan's own with [[role]] id = \"{name}\"")));
                None
            }
            Ok(role) => Some(role),
            Err(e) => {
                p.push((at, e.to_string()));
                None
            }
        }
    }
}

/// Ids appear in URLs and CLI arguments: lowercase letters, digits, `-` and `_`.
fn check_slug(id: &Spanned<String>, what: &str, p: &mut Problems) {
    let text = id.get_ref();
    let ok = !text.is_empty()
        && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        p.push((
            id.span().start,
            format!("{what} \"{text}\" must be 1 to 64 lowercase letters, digits, \"-\" or \"_\""),
        ));
    }
}

/// Flags duplicate ids; `what` names the kind of thing in the message.
fn unique<'a>(ids: impl Iterator<Item = &'a Spanned<String>>, what: &str, p: &mut Problems) {
    let mut seen = BTreeSet::new();
    for id in ids {
        check_slug(id, &format!("{what} id"), p);
        if !seen.insert(id.get_ref().as_str()) {
            p.push((
                id.span().start,
                format!("duplicate {what} id \"{}\"", id.get_ref()),
            ));
        }
    }
}

fn stages(raw: &[RawStage], inherit_flags: bool, p: &mut Problems) -> Vec<Stage> {
    if raw.is_empty() {
        p.push((0, "a plan needs at least one [[stage]]".to_string()));
    }
    unique(raw.iter().map(|s| &s.id), "stage", p);
    let mut previous: Option<&RawStage> = None;
    let mut out: Vec<Stage> = Vec::new();
    for s in raw {
        // A stage that inherits starts from the previous stage's flags and sets what changes,
        // so a later stage cannot drop the new stack by leaving a flag out.
        let mut flags = match (s.inherit_flags.unwrap_or(inherit_flags), out.last()) {
            (true, Some(before)) => before.flags.clone(),
            _ => BTreeMap::new(),
        };
        flags.extend(s.flags.clone());
        let traffic = *s.traffic.get_ref();
        if !(0.0..=100.0).contains(&traffic) || traffic.is_nan() {
            p.push((
                s.traffic.span().start,
                format!("traffic {traffic} is not a percentage between 0 and 100"),
            ));
        }
        if let Some(before) = previous.filter(|b| !b.shadow) {
            let was = *before.traffic.get_ref();
            if s.shadow {
                p.push((
                    s.id.span().start,
                    format!(
                        "shadow stage \"{}\" must come before every live stage",
                        s.id.get_ref()
                    ),
                ));
            } else if traffic < was {
                p.push((
                    s.traffic.span().start,
                    format!("traffic must not decrease from stage to stage: {traffic}% is less than the previous stage's {was}%"),
                ));
            } else if traffic == was && out.last().is_some_and(|b| b.flags == flags) {
                // Same traffic is fine when the stage changes something else (PAGS's T+60
                // enables publishing gates at 100%); otherwise it is a stage that does nothing.
                p.push((
                    s.traffic.span().start,
                    format!("stage \"{}\" keeps {traffic}% traffic and the same flags as the previous stage: it changes nothing", s.id.get_ref()),
                ));
            }
        }
        previous = Some(s);
        let min_duration = s
            .min_duration
            .as_ref()
            .and_then(|d| duration(d).map_err(|e| p.push(e)).ok());
        let max_duration = s
            .max_duration
            .as_ref()
            .and_then(|d| duration(d).map_err(|e| p.push(e)).ok());
        if let (Some(max), Some(raw_max)) = (max_duration, &s.max_duration) {
            if max.0 <= 0 {
                p.push((
                    raw_max.span().start,
                    "max_duration must be longer than zero".to_string(),
                ));
            } else if min_duration.is_some_and(|min| min > max) {
                p.push((raw_max.span().start, format!("max_duration {} is shorter than min_duration: the stage could never be left in time", raw_max.get_ref())));
            }
        }
        if s.on_max_duration.is_some() && s.max_duration.is_none() {
            p.push((
                s.id.span().start,
                format!(
                    "stage \"{}\" has on_max_duration but no max_duration",
                    s.id.get_ref()
                ),
            ));
        }
        let auto_progress = s.auto_progress.as_ref().is_some_and(|a| *a.get_ref());
        if let Some(at) = s.auto_progress.as_ref().filter(|a| *a.get_ref()) {
            let last = std::ptr::eq(s, raw.last().unwrap_or(s));
            if last {
                p.push((
                    at.span().start,
                    "auto_progress on the last stage: completing a launch is a person's call"
                        .to_string(),
                ));
            } else if min_duration.is_none() {
                p.push((
                    at.span().start,
                    "auto_progress needs a min_duration: the least the stage runs before it promotes itself".to_string(),
                ));
            }
        }
        out.push(Stage {
            auto_progress,
            id: s.id.get_ref().clone(),
            title: s.title.clone().unwrap_or_else(|| s.id.get_ref().clone()),
            traffic,
            shadow: s.shadow,
            min_duration,
            flags,
            rollback_flags: s.rollback_flags.clone(),
            max_duration,
            on_max_duration: s.on_max_duration.unwrap_or(TriggerAction::Alert),
        });
    }
    out
}

fn metrics(raw: &[RawMetric], p: &mut Problems) -> Vec<Metric> {
    unique(raw.iter().map(|m| &m.id), "metric", p);
    raw.iter()
        .map(|m| {
            let values = m.values.as_ref().map(|v| v.get_ref().clone()).unwrap_or_default();
            match (&m.values, m.kind) {
                (None, MetricKind::Category) => p.push((
                    m.id.span().start,
                    format!("category metric \"{}\" needs its values, e.g. values = [\"full\", \"lite\"]", m.id.get_ref()),
                )),
                (Some(v), MetricKind::Category) if v.get_ref().is_empty() => {
                    p.push((v.span().start, "a category metric needs at least one value".to_string()))
                }
                (Some(v), kind) if kind != MetricKind::Category => p.push((
                    v.span().start,
                    "only category metrics take values".to_string(),
                )),
                _ => {}
            }
            let source = m.source.as_ref().map(|s| *s.get_ref()).unwrap_or_default();
            match (source, &m.query) {
                (MetricSourceKind::Prometheus, None) => p.push((
                    m.id.span().start,
                    format!("metric \"{}\" has source = \"prometheus\" but no query", m.id.get_ref()),
                )),
                (MetricSourceKind::Prometheus, Some(_)) if m.kind != MetricKind::Gauge => p.push((
                    m.id.span().start,
                    format!(
                        "metric \"{}\" comes from Prometheus, so its kind is \"gauge\" (the query's value over time)",
                        m.id.get_ref()
                    ),
                )),
                (MetricSourceKind::Push, Some(q)) => p.push((
                    q.span().start,
                    "query is only used with source = \"prometheus\"".to_string(),
                )),
                _ => {}
            }
            let range = m.range.as_ref().and_then(|r| {
                let [low, high] = *r.get_ref();
                if low.is_finite() && high.is_finite() && low < high {
                    Some([low, high])
                } else {
                    p.push((
                        r.span().start,
                        format!("range [{low}, {high}]: two finite numbers, the first below the second"),
                    ));
                    None
                }
            });
            let otel = m.otel.as_ref().and_then(|o| otel_source(m, source, o, p));
            Metric {
                id: m.id.get_ref().clone(),
                kind: m.kind,
                unit: m.unit.clone(),
                title: m.title.clone().unwrap_or_else(|| m.id.get_ref().clone()),
                values,
                source,
                query: m.query.as_ref().map(|q| q.get_ref().clone()),
                range,
                otel,
            }
        })
        .collect()
}

/// A metric's `otel` table, checked against its kind.
fn otel_source(
    m: &RawMetric,
    source: MetricSourceKind,
    raw: &Spanned<RawOtel>,
    p: &mut Problems,
) -> Option<OtelSource> {
    let at = raw.span().start;
    let o = raw.get_ref();
    let id = m.id.get_ref();
    let mut fail = |msg: String| p.push((at, format!("metric \"{id}\": {msg}")));
    if source != MetricSourceKind::Push {
        fail("otel is for pushed metrics, not source = \"prometheus\"".into());
        return None;
    }
    let from = match (&o.name, &o.flag) {
        (Some(name), None) if !name.trim().is_empty() => OtelFrom::Metric(name.trim().into()),
        (None, Some(flag)) if !flag.trim().is_empty() => OtelFrom::Flag(flag.trim().into()),
        _ => {
            fail(
                "otel needs one of name (an OTLP metric) or flag (a feature flag's evaluations)"
                    .into(),
            );
            return None;
        }
    };
    let true_when = match (&o.true_when, m.kind) {
        (Some(t), MetricKind::Ratio) => match AttributeTest::parse(t) {
            Some(t) => Some(t),
            None => {
                fail(format!(
                    "true_when \"{t}\": an attribute, or attribute=value"
                ));
                return None;
            }
        },
        (Some(_), _) => {
            fail("true_when is for ratio metrics".into());
            return None;
        }
        (None, MetricKind::Ratio) => {
            fail("a ratio metric from OpenTelemetry needs true_when (e.g. \"error.type\" or \"cache.hit=true\")".into());
            return None;
        }
        (None, _) => None,
    };
    match (&from, &o.category, m.kind) {
        (OtelFrom::Flag(_), None, MetricKind::Category) => {}
        (OtelFrom::Flag(_), _, _) => {
            fail("flag feeds a category metric (the variant is the category), with no category attribute".into());
            return None;
        }
        (OtelFrom::Metric(_), Some(_), MetricKind::Category) => {}
        (OtelFrom::Metric(_), None, MetricKind::Category) => {
            fail("a category metric from an OTLP metric needs category (the attribute naming the value)".into());
            return None;
        }
        (OtelFrom::Metric(_), Some(_), _) => {
            fail("category is for category metrics".into());
            return None;
        }
        _ => {}
    }
    for (label, attribute) in &o.labels {
        if label.is_empty() || label.starts_with("__") || attribute.is_empty() {
            fail(format!(
                "labels: \"{label}\" = \"{attribute}\" is not a label and an attribute"
            ));
            return None;
        }
    }
    Some(OtelSource {
        from,
        labels: o.labels.clone(),
        matches: o.matches.clone(),
        unit: o.unit.clone(),
        true_when,
        category: o.category.clone(),
    })
}

/// Stage lists default to every stage; named stages must exist.
fn stage_list(
    raw: Option<&Spanned<Vec<String>>>,
    known: &BTreeSet<&str>,
    p: &mut Problems,
) -> Vec<String> {
    match raw {
        None => known.iter().map(|s| s.to_string()).collect(),
        Some(list) => {
            for s in list.get_ref() {
                if !known.contains(s.as_str()) {
                    p.push((list.span().start, format!("unknown stage \"{s}\"")));
                }
            }
            list.get_ref().clone()
        }
    }
}

fn gates(raw: &[RawGate], stage_ids: &BTreeSet<&str>, p: &mut Problems) -> Vec<Gate> {
    unique(raw.iter().map(|g| &g.id), "gate", p);
    raw.iter()
        .map(|g| {
            let window = duration(&g.window).map_err(|e| p.push(e));
            if window.is_ok_and(|w| w.0 <= 0) {
                p.push((g.window.span().start, "window must be longer than zero".to_string()));
            }
            let window = window.unwrap_or_default();
            let (hold, cycles) = match (&g.hold, &g.cycles) {
                (Some(hold), None) => {
                    let span = duration(hold).map_err(|e| p.push(e)).unwrap_or_default();
                    if span < window {
                        p.push((
                            hold.span().start,
                            format!("hold {} is shorter than the window {}: the gate could pass before one full window of data exists", hold.get_ref(), g.window.get_ref()),
                        ));
                    }
                    (span, 0)
                }
                (None, Some(cycles)) => {
                    let n = *cycles.get_ref();
                    if g.tolerate > 0 {
                        p.push((cycles.span().start, "tolerate forgives failed evaluations of a continuous hold; a cycle gate judges whole windows: use hold, or drop tolerate".to_string()));
                    }
                    if !(1..=100).contains(&n) {
                        p.push((cycles.span().start, "cycles must be 1 to 100 windows".to_string()));
                    }
                    (crate::time::Span(window.0.saturating_mul(i64::from(n))), n)
                }
                (Some(hold), Some(_)) => {
                    p.push((hold.span().start, "a gate takes hold (a continuous pass) or cycles (windows that end passing), not both".to_string()));
                    (window, 0)
                }
                (None, None) => {
                    p.push((g.id.span().start, format!("gate \"{}\" needs hold = \"...\" or cycles = N", g.id.get_ref())));
                    (window, 0)
                }
            };
            Gate {
                id: g.id.get_ref().clone(),
                title: g.title.clone().unwrap_or_else(|| g.id.get_ref().clone()),
                expr: g.expr.get_ref().clone(),
                window,
                hold,
                stages: stage_list(g.stages.as_ref(), stage_ids, p),
                severity: g.severity,
                blocks: g.blocks.unwrap_or(g.severity == Severity::Critical),
                tolerate: g.tolerate,
                cycles,
                guidance: Guidance {
                    cause: g.cause.clone(),
                    check: g.check.clone(),
                    action: g.action.clone(),
                    owner: g.owner.clone(),
                    runbook: runbook_link(g.runbook.as_ref(), p),
                },
                assumption: g.assumption.clone(),
            }
        })
        .collect()
}

fn triggers(raw: &[RawTrigger], stage_ids: &BTreeSet<&str>, p: &mut Problems) -> Vec<Trigger> {
    unique(raw.iter().map(|t| &t.id), "trigger", p);
    raw.iter()
        .map(|t| {
            let for_ = duration(&t.for_).map_err(|e| p.push(e)).unwrap_or_default();
            // A trigger's window defaults to its `for`, capped at 5 minutes of data.
            let window = match &t.window {
                Some(w) => duration(w).map_err(|e| p.push(e)).unwrap_or_default(),
                None => {
                    crate::time::Span(for_.0.clamp(crate::time::MINUTE, 5 * crate::time::MINUTE))
                }
            };
            Trigger {
                id: t.id.get_ref().clone(),
                title: t.title.clone().unwrap_or_else(|| t.id.get_ref().clone()),
                expr: t.expr.get_ref().clone(),
                window,
                for_,
                action: t.action,
                severity: t.severity,
                stages: stage_list(t.stages.as_ref(), stage_ids, p),
                guidance: Guidance {
                    cause: t.cause.clone(),
                    check: t.check.clone(),
                    action: t.respond.clone(),
                    owner: t.owner.clone(),
                    runbook: runbook_link(t.runbook.as_ref(), p),
                },
                assumption: t.assumption.clone(),
            }
        })
        .collect()
}

/// A runbook link is shown as a link to every viewer: an http(s) URL or a plain path, never
/// a `javascript:` or other scheme.
fn runbook_link(raw: Option<&Spanned<String>>, p: &mut Problems) -> Option<String> {
    let raw = raw?;
    let text = raw.get_ref().trim();
    let scheme = text.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
    let plain_path = !text.contains(':');
    if plain_path || matches!(scheme.as_deref(), Some("http" | "https")) {
        Some(text.to_string())
    } else {
        p.push((
            raw.span().start,
            format!("runbook \"{text}\" must be an http(s) link or a path"),
        ));
        None
    }
}

/// A phase that starts like a time (`T+`, `T-`) must be one, and one after a stage's entry
/// (`live+15m`) must name a stage: a typo would silently make a due item a label.
fn check_phase(phase: Option<&String>, stages: &BTreeSet<&str>, at: usize, p: &mut Problems) {
    let Some(text) = phase else { return };
    if (text.starts_with("T+") || text.starts_with("T-")) && crate::time::t_offset(text).is_none() {
        p.push((
            at,
            format!("phase \"{text}\" is not a time from T-0: write T-60m, T+15m, T+2h or T+1d"),
        ));
    }
    if let Some((stage, _)) = crate::time::stage_offset(text)
        && !stages.contains(stage)
    {
        p.push((
            at,
            format!(
                "phase \"{text}\" counts from stage \"{stage}\", which the plan does not have (stages: {})",
                stages.iter().copied().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
}

/// An item's `every`: a period that divides the plan's hypercare into occurrences, each due
/// and ticked on its own. `conflicts`: whether the item also needs days or a gate, and
/// whether it has a phase of its own (its occurrences are its times).
fn recurrence(
    every: &Spanned<String>,
    hypercare: Option<crate::time::Span>,
    (checked_otherwise, phased): (bool, bool),
    p: &mut Problems,
) -> Option<crate::time::Span> {
    let at = every.span().start;
    let span = super::duration(every).map_err(|e| p.push(e)).ok()?;
    let Some(window) = hypercare.filter(|h| h.0 > 0) else {
        p.push((
            at,
            "an item that recurs (every) recurs through the hypercare: give the rollout a hypercare = \"...\"".to_string(),
        ));
        return None;
    };
    if span.0 < crate::time::MINUTE || span.0 > window.0 {
        p.push((
            at,
            format!(
                "every must be at least 1m and at most the hypercare ({})",
                window.human()
            ),
        ));
        return None;
    }
    if window.0 / span.0 > 400 {
        p.push((
            at,
            "more than 400 occurrences in the hypercare: recur less often".to_string(),
        ));
        return None;
    }
    if checked_otherwise {
        p.push((
            at,
            "an item that recurs cannot also need days or a gate".to_string(),
        ));
        return None;
    }
    if phased {
        p.push((
            at,
            "an item that recurs is due at each occurrence: leave out its phase".to_string(),
        ));
        return None;
    }
    Some(span)
}

fn checklists(
    raw: &[RawChecklist],
    (stage_ids, gate_ids): (&BTreeSet<&str>, &BTreeSet<&str>),
    hypercare: Option<crate::time::Span>,
    roles: &KnownRoles,
    p: &mut Problems,
) -> Vec<Checklist> {
    unique(raw.iter().map(|c| &c.id), "checklist", p);
    raw.iter()
        .map(|c| {
            unique(c.items.iter().map(|i| &i.id), "item", p);
            check_phase(c.phase.as_ref(), stage_ids, c.id.span().start, p);
            for stage in [&c.required_for, &c.required_to_leave]
                .into_iter()
                .flatten()
            {
                if !stage_ids.contains(stage.get_ref().as_str()) {
                    p.push((
                        stage.span().start,
                        format!("unknown stage \"{}\"", stage.get_ref()),
                    ));
                }
            }
            let items = c
                .items
                .iter()
                .map(|i| {
                    if let Some(gate) = &i.gate
                        && !gate_ids.contains(gate.get_ref().as_str())
                    {
                        p.push((
                            gate.span().start,
                            format!("unknown gate \"{}\"", gate.get_ref()),
                        ));
                    }
                    check_phase(i.phase.as_ref(), stage_ids, i.id.span().start, p);
                    let days = i.days.as_ref().map_or(0, |d| {
                        if !(1..=31).contains(d.get_ref()) {
                            p.push((d.span().start, "days must be 1 to 31".to_string()));
                        }
                        *d.get_ref()
                    });
                    if days > 1 && i.gate.is_some() {
                        p.push((
                            i.id.span().start,
                            "an item a gate checks cannot also need several days of checks"
                                .to_string(),
                        ));
                    }
                    let every = i.every.as_ref().and_then(|e| {
                        recurrence(
                            e,
                            hypercare,
                            (days > 1 || i.gate.is_some(), i.phase.is_some()),
                            p,
                        )
                    });
                    Item {
                        id: i.id.get_ref().clone(),
                        text: i.text.clone(),
                        role: i
                            .role
                            .as_ref()
                            .and_then(|r| roles.parse(r.get_ref(), r.span().start, p)),
                        phase: i.phase.clone(),
                        gate: i.gate.as_ref().map(|g| g.get_ref().clone()),
                        days,
                        every,
                        occurrences: match (every, hypercare) {
                            (Some(e), Some(h)) if e.0 > 0 => {
                                u32::try_from(h.0 / e.0).unwrap_or(u32::MAX)
                            }
                            _ => 0,
                        },
                    }
                })
                .collect();
            Checklist {
                id: c.id.get_ref().clone(),
                title: c.title.clone(),
                phase: c.phase.clone(),
                required_for: c.required_for.as_ref().map(|s| s.get_ref().clone()),
                required_to_leave: c.required_to_leave.as_ref().map(|s| s.get_ref().clone()),
                required_to_close: c.required_to_close,
                required_to_resume: c.required_to_resume,
                items,
            }
        })
        .collect()
}

fn permissions(
    raw: Option<&Spanned<RawPermissions>>,
    known: &KnownRoles,
    p: &mut Problems,
) -> Permissions {
    let mut out = Permissions::default();
    let Some(raw) = raw else { return out };
    let at = raw.span().start;
    let r = raw.get_ref();
    // viewer is the read-only role: stakeholders' share links sign in as it.
    for (name, list) in [
        ("progress", &r.progress),
        ("pause", &r.pause),
        ("resume", &r.resume),
        ("kill", &r.kill),
        ("override", &r.override_),
        ("check", &r.check),
        ("approve", &r.approve),
        ("step_back", &r.step_back),
        ("decide", &r.decide),
        ("ack", &r.ack),
        ("adjust", &r.adjust),
    ] {
        if list
            .as_ref()
            .is_some_and(|l| l.iter().any(|r| r == "viewer"))
        {
            p.push((
                at,
                format!(
                    "{name} cannot be given to viewer: viewer is the read-only role (share links sign in as it); give it to operator, product or lead"
                ),
            ));
        }
        // The ingest token sits in every service's configuration: it may push events, never
        // act.
        if list
            .as_ref()
            .is_some_and(|l| l.iter().any(|r| r == "ingest" || r == "system"))
        {
            p.push((
                at,
                format!(
                    "{name} cannot be given to ingest or system: ingest tokens live in services' configuration and may only push events; give it to operator, product or lead"
                ),
            ));
        }
    }
    let mut roles = |list: &Option<Vec<String>>, slot: &mut Vec<Role>| {
        if let Some(list) = list {
            let parsed: Vec<Role> = list.iter().filter_map(|r| known.parse(r, at, p)).collect();
            *slot = parsed;
        }
    };
    roles(&r.progress, &mut out.progress);
    roles(&r.pause, &mut out.pause);
    roles(&r.resume, &mut out.resume);
    roles(&r.kill, &mut out.kill);
    roles(&r.override_, &mut out.override_);
    roles(&r.check, &mut out.check);
    roles(&r.approve, &mut out.approve);
    roles(&r.step_back, &mut out.step_back);
    roles(&r.decide, &mut out.decide);
    roles(&r.ack, &mut out.ack);
    roles(&r.adjust, &mut out.adjust);
    if out.kill.is_empty() {
        p.push((
            at,
            "kill must be allowed to at least one role: the kill switch must always be usable"
                .to_string(),
        ));
    }
    out
}

fn signoffs(
    raw: &[RawSignoff],
    stage_ids: &BTreeSet<&str>,
    known: &KnownRoles,
    p: &mut Problems,
) -> Vec<Signoff> {
    raw.iter()
        .map(|s| {
            if !stage_ids.contains(s.stage.get_ref().as_str()) {
                p.push((
                    s.stage.span().start,
                    format!("unknown stage \"{}\"", s.stage.get_ref()),
                ));
            }
            match (&s.approvals, s.each) {
                (Some(n), false) if *n.get_ref() == 0 => {
                    p.push((n.span().start, "approvals must be at least 1".to_string()));
                }
                (Some(n), true) => p.push((
                    n.span().start,
                    "approvals goes with a pool of roles; with each = true every role approves once"
                        .to_string(),
                )),
                (None, false) => p.push((
                    s.stage.span().start,
                    "a sign-off needs approvals = N, or each = true for one approval per role"
                        .to_string(),
                )),
                _ => {}
            }
            let roles: Vec<Role> = s
                .roles
                .get_ref()
                .iter()
                .filter_map(|r| known.parse(r, s.roles.span().start, p))
                .collect();
            if roles.is_empty() && !s.roles.get_ref().is_empty() {
                // Already reported per role above.
            } else if roles.is_empty() {
                p.push((
                    s.roles.span().start,
                    "a sign-off needs at least one role".to_string(),
                ));
            }
            Signoff {
                stage: s.stage.get_ref().clone(),
                approvals: if s.each {
                    u32::try_from(roles.len()).unwrap_or(u32::MAX)
                } else {
                    s.approvals.as_ref().map_or(1, |n| *n.get_ref())
                },
                each: s.each,
                roles,
                title: s
                    .title
                    .clone()
                    .unwrap_or_else(|| format!("Sign-off for {}", s.stage.get_ref())),
            }
        })
        .collect()
}

/// Channels alone (a server config's defaults), with their problems.
pub(crate) fn channels_only(raw: &[RawNotify]) -> Result<Vec<Channel>, Problems> {
    let mut p = Problems::new();
    let out = channels(raw, &mut p);
    if p.is_empty() { Ok(out) } else { Err(p) }
}

/// An email channel's settings, checked; `None` (with problems said) when they do not hold,
/// or for another kind (whose email keys are problems).
fn email(c: &RawNotify, kind: ChannelKind, p: &mut Problems) -> Option<Email> {
    let fields = [
        ("smtp", c.smtp.as_ref().map(|s| s.span().start)),
        ("from", c.from.as_ref().map(|s| s.span().start)),
        ("to", c.to.as_ref().map(|s| s.span().start)),
        ("tls", c.tls.as_ref().map(|s| s.span().start)),
        ("user_env", c.user_env.as_ref().map(|s| s.span().start)),
        (
            "password_env",
            c.password_env.as_ref().map(|s| s.span().start),
        ),
        ("ca_file", c.ca_file.as_ref().map(|s| s.span().start)),
    ];
    if kind != ChannelKind::Email {
        for (name, at) in fields {
            if let Some(at) = at {
                p.push((at, format!("{name} is for email channels")));
            }
        }
        return None;
    }
    let at = c.id.span().start;
    let id = c.id.get_ref();
    let (Some(smtp), Some(from), Some(to)) = (&c.smtp, &c.from, &c.to) else {
        p.push((
            at,
            format!("email channel \"{id}\" needs smtp (\"host:port\"), from and to"),
        ));
        return None;
    };
    let Some((host, port)) = smtp
        .get_ref()
        .rsplit_once(':')
        .and_then(|(h, port)| Some((h.to_string(), port.parse::<u16>().ok()?)))
        .filter(|(h, _)| !h.is_empty())
    else {
        p.push((
            smtp.span().start,
            format!(
                "smtp \"{}\": host:port, e.g. smtp.example.com:587",
                smtp.get_ref()
            ),
        ));
        return None;
    };
    let address = |a: &str| {
        let a = a.trim();
        a.len() <= 254
            && a.split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.contains('@'))
    };
    if !address(from.get_ref()) {
        p.push((
            from.span().start,
            format!("from \"{}\" is not an email address", from.get_ref()),
        ));
        return None;
    }
    if to.get_ref().is_empty()
        || to.get_ref().len() > 50
        || !to.get_ref().iter().all(|a| address(a))
    {
        p.push((to.span().start, "to: 1 to 50 email addresses".to_string()));
        return None;
    }
    let tls = match c.tls.as_ref().map(|t| t.get_ref().as_str()) {
        None | Some("starttls") => SmtpTls::Starttls,
        Some("tls") => SmtpTls::Tls,
        Some("none") => SmtpTls::None,
        Some(other) => {
            p.push((
                c.tls.as_ref().map_or(at, |t| t.span().start),
                format!("tls \"{other}\": starttls (the default), tls or none"),
            ));
            return None;
        }
    };
    if c.user_env.is_some() != c.password_env.is_some() {
        p.push((at, "user_env and password_env go together".to_string()));
        return None;
    }
    if let Some(ca) = &c.ca_file
        && (tls == SmtpTls::None || ca.get_ref().trim().is_empty())
    {
        p.push((
            ca.span().start,
            "ca_file names the PEM file of the CA the server's certificate is checked against, with tls = starttls or tls".into(),
        ));
        return None;
    }
    Some(Email {
        ca_file: c.ca_file.as_ref().map(|s| s.get_ref().clone()),
        host,
        port,
        from: from.get_ref().trim().to_string(),
        to: to.get_ref().iter().map(|a| a.trim().to_string()).collect(),
        tls,
        user_env: c.user_env.as_ref().map(|s| s.get_ref().clone()),
        password_env: c.password_env.as_ref().map(|s| s.get_ref().clone()),
    })
}

/// A channel's periodic status updates: an interval of at least 10 s, and times from T-0.
fn status_updates(c: &RawNotify, p: &mut Problems) -> Option<StatusUpdates> {
    let at = c.id.span().start;
    let Some(every) = &c.status_every else {
        if let Some(x) = c.status_from.as_ref().or(c.status_until.as_ref()) {
            p.push((
                x.span().start,
                "status_from and status_until go with status_every".into(),
            ));
        }
        return None;
    };
    let every = super::duration(every).map_err(|e| p.push(e)).ok()?;
    if every.0 < 10_000 {
        p.push((at, "status_every: at least 10s".into()));
        return None;
    }
    let offset = |raw: &Option<Spanned<String>>,
                  p: &mut Problems|
     -> Result<Option<crate::time::Millis>, ()> {
        match raw {
            None => Ok(None),
            Some(t) => match crate::time::t_offset(t.get_ref()) {
                Some(ms) => Ok(Some(ms)),
                None => {
                    p.push((
                        t.span().start,
                        format!(
                            "\"{}\" is not a time from T-0: write T-0, T-30m, T+4h",
                            t.get_ref()
                        ),
                    ));
                    Err(())
                }
            },
        }
    };
    let from = offset(&c.status_from, p).ok()?;
    let until = offset(&c.status_until, p).ok()?;
    if let (Some(f), Some(u)) = (from, until)
        && u <= f
    {
        p.push((at, "status_until must come after status_from".into()));
        return None;
    }
    Some(StatusUpdates { every, from, until })
}

/// Where PagerDuty's Events API v2 takes events.
pub const PAGERDUTY_EVENTS: &str = "https://events.pagerduty.com/v2/enqueue";

/// `[[notify]]` channels: a kind, one place to post (a URL in the plan or an environment
/// variable holding it), the events they take, and an escalation delay that needs a next
/// channel to escalate to.
fn channels(raw: &[RawNotify], p: &mut Problems) -> Vec<Channel> {
    unique(raw.iter().map(|c| &c.id), "notify channel", p);
    let mut out = Vec::new();
    for (i, c) in raw.iter().enumerate() {
        let id = c.id.get_ref().clone();
        let at = c.id.span().start;
        let kind = match c.kind.get_ref().as_str() {
            "slack" => ChannelKind::Slack,
            "webhook" => ChannelKind::Webhook,
            "pagerduty" => ChannelKind::PagerDuty,
            "email" => ChannelKind::Email,
            other => {
                p.push((
                    c.kind.span().start,
                    format!("unknown notify kind \"{other}\" (slack, webhook, pagerduty or email)"),
                ));
                continue;
            }
        };
        let email = email(c, kind, p);
        if kind == ChannelKind::Email {
            if let Some(u) = c.url.as_ref().or(c.url_env.as_ref()) {
                p.push((
                    u.span().start,
                    "an email channel is reached by smtp, not url".to_string(),
                ));
            }
            if email.is_none() {
                continue;
            }
        }
        match (kind, &c.routing_key_env) {
            (ChannelKind::PagerDuty, None) => p.push((
                at,
                format!(
                    "pagerduty channel \"{id}\" needs routing_key_env (the environment variable holding the integration's routing key)"
                ),
            )),
            (ChannelKind::PagerDuty, Some(_)) => {}
            (_, Some(r)) => p.push((
                r.span().start,
                "routing_key_env is for pagerduty channels".to_string(),
            )),
            (_, None) => {}
        }
        let url = match (&c.url, &c.url_env) {
            (None, None) if kind == ChannelKind::PagerDuty => {
                ChannelUrl::Url(PAGERDUTY_EVENTS.to_string())
            }
            (None, None) if kind == ChannelKind::Email => {
                let e = email.as_ref().expect("checked above");
                ChannelUrl::Url(format!("smtp://{}:{}", e.host, e.port))
            }
            (Some(url), None) => {
                let text = url.get_ref();
                if !(text.starts_with("http://") || text.starts_with("https://")) {
                    p.push((
                        url.span().start,
                        format!("url \"{text}\" must start with http:// or https://"),
                    ));
                }
                ChannelUrl::Url(text.clone())
            }
            (None, Some(name)) => ChannelUrl::Env(name.get_ref().clone()),
            _ => {
                p.push((
                    at,
                    format!(
                        "notify channel \"{id}\" needs one of url or url_env (an environment variable holding a secret URL)"
                    ),
                ));
                continue;
            }
        };
        if kind != ChannelKind::Webhook
            && let Some(secret) = &c.secret_env
        {
            p.push((
                secret.span().start,
                "secret_env signs webhook bodies; a slack channel's secret is its URL (url_env), a pagerduty one's its routing key"
                    .to_string(),
            ));
        }
        let mut events = Vec::new();
        if let Some(list) = &c.events {
            for name in list.get_ref() {
                match EventKind::parse(name) {
                    Some(kind) => events.push(kind),
                    None => p.push((
                        list.span().start,
                        format!(
                            "unknown event \"{name}\" (one of: {})",
                            EventKind::ALL.map(|k| k.as_str()).join(", ")
                        ),
                    )),
                }
            }
        }
        let escalate_after = c
            .escalate_after
            .as_ref()
            .and_then(|d| super::duration(d).map_err(|e| p.push(e)).ok());
        if let (Some(d), true) = (&c.escalate_after, i + 1 == raw.len()) {
            p.push((
                d.span().start,
                format!(
                    "escalate_after on \"{id}\", the last channel: an escalation goes to the next [[notify]]"
                ),
            ));
        }
        out.push(Channel {
            id,
            kind,
            url,
            secret_env: c.secret_env.as_ref().map(|s| s.get_ref().clone()),
            routing_key_env: c.routing_key_env.as_ref().map(|s| s.get_ref().clone()),
            routing_key: None,
            email,
            status: status_updates(c, p),
            events,
            // Paging is for what needs a person: warnings and worse, unless the plan says.
            min_severity: c.min_severity.unwrap_or(if kind == ChannelKind::PagerDuty {
                Severity::Warning
            } else {
                Severity::Info
            }),
            escalate_after,
            allow_private: c.allow_private,
        });
    }
    out
}

fn actuators(
    raw: &[RawActuator],
    stages: &[Stage],
    plan: &RawPlan,
    p: &mut Problems,
) -> Vec<Actuator> {
    unique(raw.iter().map(|a| &a.id), "actuator", p);
    let mut out = Vec::new();
    for a in raw {
        let id = a.id.get_ref().clone();
        let unexpected = |field: &Option<Spanned<String>>, name: &str, p: &mut Problems| {
            if let Some(f) = field {
                p.push((
                    f.span().start,
                    format!("{name} does not apply to a {} actuator", a.kind.get_ref()),
                ));
            }
        };
        match a.kind.get_ref().as_str() {
            "webhook" => {
                unexpected(&a.path, "path", p);
                let Some(url) = &a.url else {
                    p.push((
                        a.id.span().start,
                        format!("webhook actuator \"{id}\" needs a url"),
                    ));
                    continue;
                };
                let text = url.get_ref();
                if !(text.starts_with("http://") || text.starts_with("https://")) {
                    p.push((
                        url.span().start,
                        format!("url \"{text}\" must start with http:// or https://"),
                    ));
                }
                let shape = shape(a, text, stages, plan, p);
                out.push(Actuator::Webhook {
                    id,
                    url: text.clone(),
                    secret_env: a.secret_env.as_ref().map(|s| s.get_ref().clone()),
                    allow_private: a.allow_private,
                    shape,
                });
            }
            "env_file" => {
                unexpected(&a.url, "url", p);
                unexpected(&a.method, "method", p);
                unexpected(&a.body, "body", p);
                unexpected(&a.secret_env, "secret_env", p);
                // A file takes no call's shape: say so rather than ignore it.
                for (set, name) in [
                    (a.per_flag, "per_flag"),
                    (!a.headers.is_empty(), "headers"),
                    (!a.headers_env.is_empty(), "headers_env"),
                    (a.allow_private, "allow_private"),
                ] {
                    if set {
                        p.push((
                            a.id.span().start,
                            format!("{name} does not apply to an env_file actuator"),
                        ));
                    }
                }
                match a
                    .path
                    .as_ref()
                    .filter(|path| !path.get_ref().trim().is_empty())
                {
                    Some(path) => out.push(Actuator::EnvFile {
                        id,
                        path: path.get_ref().clone(),
                    }),
                    None => p.push((
                        a.id.span().start,
                        format!("env_file actuator \"{id}\" needs a path"),
                    )),
                }
            }
            other => p.push((
                a.kind.span().start,
                format!("unknown actuator kind \"{other}\" (webhook or env_file)"),
            )),
        }
    }
    out
}

/// A webhook in the service's own terms, when the actuator says anything beyond its URL: the
/// method, header names and environment variables checked, every template rendered once over
/// a sample state (every flag the plan sets), so a typo is a plan error.
fn shape(
    a: &RawActuator,
    url: &str,
    stages: &[Stage],
    plan: &RawPlan,
    p: &mut Problems,
) -> Option<Shape> {
    let templated = url.contains("{{") || url.contains("{%");
    let shaped = a.method.is_some()
        || a.body.is_some()
        || a.per_flag
        || !a.headers.is_empty()
        || !a.headers_env.is_empty()
        || templated;
    if !shaped {
        return None;
    }
    let at = a.id.span().start;
    let method = a
        .method
        .as_ref()
        .map_or("POST".to_string(), |m| m.get_ref().to_ascii_uppercase());
    if !["POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
        p.push((
            a.method.as_ref().map_or(at, |m| m.span().start),
            format!("method \"{method}\": POST, PUT, PATCH or DELETE"),
        ));
    }
    let header_name = |name: &str| {
        !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    for name in a.headers.keys().chain(a.headers_env.keys()) {
        if !header_name(name) {
            p.push((
                at,
                format!("header name \"{name}\": letters, digits, - and _"),
            ));
        }
        let lower = name.to_ascii_lowercase();
        if [
            "host",
            "content-length",
            "x-cutover-version",
            "idempotency-key",
        ]
        .contains(&lower.as_str())
        {
            p.push((at, format!("header {name} is set by cutover")));
        }
    }
    for var in a.headers_env.values() {
        let ok = !var.is_empty() && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok {
            p.push((
                at,
                format!("headers_env names environment variables: \"{var}\" is not one"),
            ));
        }
    }
    let shape = Shape {
        method,
        body: a.body.as_ref().map(|b| b.get_ref().clone()),
        per_flag: a.per_flag,
        headers: a.headers.clone(),
        headers_env: a.headers_env.clone(),
    };
    let mut flags: BTreeMap<String, FlagValue> = BTreeMap::new();
    for s in stages {
        flags.extend(s.flags.clone());
        flags.extend(s.rollback_flags.clone());
    }
    if let Some(r) = &plan.rollback {
        flags.extend(r.flags.clone());
    }
    let stage = stages.first().map(|s| s.id.as_str());
    if let Err(e) = crate::template::check(&shape, url, plan.rollout.id.get_ref(), stage, &flags) {
        p.push((
            a.body.as_ref().map_or(at, |b| b.span().start),
            format!("actuator {}: {e}", a.id.get_ref()),
        ));
    }
    Some(shape)
}

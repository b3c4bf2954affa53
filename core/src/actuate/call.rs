//! Webhook calls in the service's own terms: a plan's `Shape` rendered over a desired state,
//! one call for all, or one per flag whose value the receiver does not yet hold (a flag
//! service's REST API, without a script between). Templates are MiniJinja, with undefined
//! names an error (a typo is caught by `plan check`, not at 3 a.m.) and a fuel limit, so no
//! template can loop for long.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior, Value};

use super::Desired;
use crate::flag::FlagValue;
use crate::plan::Shape;

/// The most a rendered URL, header or body may hold.
pub const MAX_RENDERED: usize = 64 * 1024;
/// Template instructions per render: plenty for any real body, none for a runaway loop.
const FUEL: u64 = 50_000;

/// One call to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    /// The flag this call sets, for per-flag calls.
    pub flag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {message}")]
pub struct TemplateError {
    pub what: String,
    pub message: String,
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    // Bodies are JSON or form text, never HTML: nothing is escaped unless a template asks
    // (`tojson`, `urlencode`).
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    // `urlencode` keeps `/` (as Jinja's does); a flag's name in a path is one segment.
    env.add_filter("segment", |s: String| crate::route::segment(&s));
    env
}

fn render(
    env: &Environment,
    what: &str,
    source: &str,
    ctx: &Value,
) -> Result<String, TemplateError> {
    let fail = |e: minijinja::Error| TemplateError {
        what: what.to_string(),
        message: match e.detail() {
            Some(d) => format!("{} ({d})", e.kind()),
            None => e.kind().to_string(),
        },
    };
    let out = env.render_str(source, ctx).map_err(fail)?;
    if out.len() > MAX_RENDERED {
        return Err(TemplateError {
            what: what.to_string(),
            message: format!("renders to {} bytes, more than {MAX_RENDERED}", out.len()),
        });
    }
    Ok(out)
}

/// The calls that bring a receiver holding `known` (per flag; empty when unknown) to
/// `desired`.
pub fn calls(
    shape: &Shape,
    url: &str,
    desired: &Desired,
    known: &BTreeMap<String, FlagValue>,
) -> Result<Vec<Call>, TemplateError> {
    let env = environment();
    let flags: BTreeMap<&str, serde_json::Value> = desired
        .flags
        .iter()
        .map(|(k, v)| (k.as_str(), v.to_json()))
        .collect();
    let base = serde_json::json!({
        "rollout": desired.rollout,
        "version": desired.version,
        "phase": desired.phase,
        "stage": desired.stage,
        "traffic": desired.traffic,
        "killed": desired.killed,
        "flags": flags,
    });
    let one = |ctx: serde_json::Value, flag: Option<String>| -> Result<Call, TemplateError> {
        let ctx = Value::from(minijinja::value::Serde(ctx));
        let mut headers = Vec::new();
        for (name, template) in &shape.headers {
            headers.push((
                name.clone(),
                render(&env, &format!("header {name}"), template, &ctx)?,
            ));
        }
        Ok(Call {
            method: shape.method.clone(),
            url: render(&env, "url", url, &ctx)?,
            headers,
            body: shape
                .body
                .as_deref()
                .map(|b| render(&env, "body", b, &ctx))
                .transpose()?,
            flag,
        })
    };
    if !shape.per_flag {
        return Ok(vec![one(base, None)?]);
    }
    let mut out = Vec::new();
    for (key, value) in &desired.flags {
        if known.get(key) != Some(value) {
            let mut ctx = base.clone();
            ctx["flag"] = key.clone().into();
            ctx["value"] = value.to_json();
            ctx["removed"] = false.into();
            out.push(one(ctx, Some(key.clone()))?);
        }
    }
    // A flag the receiver holds that is no longer published: the template says what that
    // means to the service (`{% if removed %}`), with `value` null.
    for key in known.keys().filter(|k| !desired.flags.contains_key(*k)) {
        let mut ctx = base.clone();
        ctx["flag"] = key.clone().into();
        ctx["value"] = serde_json::Value::Null;
        ctx["removed"] = true.into();
        out.push(one(ctx, Some(key.clone()))?);
    }
    Ok(out)
}

/// Renders the shape once over a sample state (every flag the plan sets), so a syntax error
/// or an undefined name is a plan error.
pub fn check(shape: &Shape, url: &str, sample: &Desired) -> Result<(), TemplateError> {
    // A filter takes an undefined name quietly (`{{ valu | tojson }}` renders `null`): every
    // name a template reads must be one the context has, or a function the engine gives.
    let env = environment();
    let mut known = vec![
        "rollout",
        "version",
        "phase",
        "stage",
        "traffic",
        "killed",
        "flags",
        "range",
        "dict",
        "namespace",
    ];
    if shape.per_flag {
        known.extend(["flag", "value", "removed"]);
    }
    let sources = std::iter::once(("url".to_string(), url))
        .chain(shape.body.iter().map(|b| ("body".to_string(), b.as_str())))
        .chain(
            shape
                .headers
                .iter()
                .map(|(n, t)| (format!("header {n}"), t.as_str())),
        );
    for (what, source) in sources {
        let template = env.template_from_str(source).map_err(|e| TemplateError {
            what: what.clone(),
            message: e.to_string(),
        })?;
        let mut unknown: Vec<String> = template
            .undeclared_variables(false)
            .into_iter()
            .filter(|v| !known.contains(&v.as_str()))
            .collect();
        unknown.sort();
        if let Some(name) = unknown.first() {
            let hint = if !shape.per_flag && ["flag", "value", "removed"].contains(&name.as_str()) {
                " (flag, value and removed are there only with per_flag = true)"
            } else {
                ""
            };
            return Err(TemplateError {
                what,
                message: format!(
                    "undefined name \"{name}\"{hint}; known: {}",
                    known[..7].join(", ")
                ),
            });
        }
    }
    let mut sample = sample.clone();
    if sample.flags.is_empty() {
        sample.flags.insert("example".into(), FlagValue::Bool(true));
    }
    calls(shape, url, &sample, &BTreeMap::new()).map(|_| ())
}

#[cfg(test)]
mod tests;

//! Templates for calls in a service's own terms (a shaped webhook actuator, `Shape`):
//! MiniJinja with undefined names an error, no escaping but what a template asks for
//! (`tojson`, `urlencode`, `segment`), a fuel limit and a size limit. Apart from the plan and
//! the actuators, which both use it, so neither depends on the other through it.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior, Value};
use serde::{Deserialize, Serialize};

use crate::flag::FlagValue;

/// A webhook call in the service's own terms: `url`, `body` and header values are templates
/// (MiniJinja) over the desired state (`rollout`, `version`, `phase`, `stage`, `traffic`,
/// `killed`, `flags`) and, with `per_flag`, the one changed flag (`flag`, `value`, `removed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    /// POST, PUT, PATCH or DELETE.
    pub method: String,
    /// No body when `None` (a DELETE, say).
    pub body: Option<String>,
    /// One call per flag whose value changed since the receiver last took one.
    pub per_flag: bool,
    /// Header name -> value template.
    pub headers: BTreeMap<String, String>,
    /// Header name -> the environment variable holding its value (a secret).
    pub headers_env: BTreeMap<String, String>,
}

/// The most a rendered URL, header or body may hold.
pub const MAX_RENDERED: usize = 64 * 1024;
/// Template instructions per render: plenty for any real body, none for a runaway loop.
const FUEL: u64 = 50_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {message}")]
pub struct TemplateError {
    pub what: String,
    pub message: String,
}

pub(crate) fn environment() -> Environment<'static> {
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

pub(crate) fn render(
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

/// Renders the shape once over a sample state (every flag the plan sets), so a syntax error
/// or an undefined name is a plan error.
pub fn check(
    shape: &Shape,
    url: &str,
    rollout: &str,
    stage: Option<&str>,
    flags: &BTreeMap<String, FlagValue>,
) -> Result<(), TemplateError> {
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
    let mut flags = flags.clone();
    if flags.is_empty() {
        flags.insert("example".into(), FlagValue::Bool(true));
    }
    let values: BTreeMap<&str, serde_json::Value> = flags
        .iter()
        .map(|(k, v)| (k.as_str(), v.to_json()))
        .collect();
    let mut ctx = serde_json::json!({
        "rollout": rollout,
        "version": 1,
        "phase": "running",
        "stage": stage,
        "traffic": 10.0,
        "killed": false,
        "flags": values,
    });
    if shape.per_flag
        && let Some((key, value)) = flags.iter().next()
    {
        ctx["flag"] = key.clone().into();
        ctx["value"] = value.to_json();
        ctx["removed"] = false.into();
    }
    let ctx = Value::from(minijinja::value::Serde(ctx));
    render(&env, "url", url, &ctx)?;
    if let Some(body) = &shape.body {
        render(&env, "body", body, &ctx)?;
    }
    for (name, t) in &shape.headers {
        render(&env, &format!("header {name}"), t, &ctx)?;
    }
    Ok(())
}

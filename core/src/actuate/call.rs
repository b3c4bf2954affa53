//! Webhook calls in the service's own terms: a plan's `Shape` rendered over a desired state,
//! one call for all, or one per flag whose value the receiver does not yet hold (a flag
//! service's REST API, without a script between). The templates' rules are `template`'s;
//! `plan check` renders every shape once (`template::check`).

use std::collections::BTreeMap;

use minijinja::Value;

use super::Desired;
use crate::flag::FlagValue;
use crate::template::{Shape, TemplateError, environment, render};

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

#[cfg(test)]
mod tests;

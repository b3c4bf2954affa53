//! Ticks that carry what changed. A viewer gets one whole [`Tick`] on connect; every second
//! after that the stream sends a [`TickDelta`] against the tick before it: the chart points
//! that changed or are new (columnar: series index, age, value), the window the charts now
//! cover, and a patch of the gates and triggers whose status moved. Applying a delta to the
//! tick it names gives exactly the tick the server made; a delta for any other tick is a
//! [`Gap`], and the viewer asks for a whole one again.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::series::{Frame, Point};
use crate::snapshot::Tick;
use crate::time::Millis;

/// The changes from the tick numbered `base` to the tick numbered `seq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TickDelta {
    pub seq: u64,
    pub base: u64,
    pub frame: FrameDelta,
    /// A [`patch`] of the gate statuses, absent when none changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gates: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<Value>,
}

/// What changed in a frame. Each series keeps its points in `[from, to]`, then takes the
/// points listed: the `i`th change is series `s[i]`, the point at `to - age[i]`, value `v[i]`
/// (one array per column, not an object per point: a tick is mostly these).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameDelta {
    pub at: Millis,
    pub from: Millis,
    pub to: Millis,
    pub s: Vec<u32>,
    pub age: Vec<Millis>,
    pub v: Vec<Option<f64>>,
}

/// Why a delta cannot be applied: the viewer must start again from a whole tick.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Gap {
    #[error("a change for tick {base} arrived while this page holds tick {held}")]
    Base { base: u64, held: u64 },
    #[error("a change names series {0}, which this page does not have")]
    Series(u32),
    #[error("the gate or trigger patch does not fit what this page holds: {0}")]
    Patch(String),
    #[error("the columns of a chart change differ in length")]
    Columns,
}

/// The delta from `old` to `new`, or `None` when only a whole tick can say it (the series
/// themselves changed: their ids, names, units or step). Checked: the delta applied to `old`
/// gives `new`, or there is none.
pub fn diff(old: &Tick, new: &Tick) -> Option<TickDelta> {
    let frame = diff_frame(&old.frame, &new.frame)?;
    let delta = TickDelta {
        seq: new.seq,
        base: old.seq,
        frame,
        gates: diff_json(&old.gates, &new.gates)?,
        triggers: diff_json(&old.triggers, &new.triggers)?,
        replicas: diff_json(&old.replicas, &new.replicas)?,
    };
    let mut check = old.clone();
    (apply(&mut check, &delta).is_ok() && check == *new).then_some(delta)
}

/// Applies `delta` to `tick`, which must be the tick it was made against; on a [`Gap`] the
/// tick is left as it was.
pub fn apply(tick: &mut Tick, delta: &TickDelta) -> Result<(), Gap> {
    if delta.base != tick.seq {
        return Err(Gap::Base {
            base: delta.base,
            held: tick.seq,
        });
    }
    let f = &delta.frame;
    if f.s.len() != f.age.len() || f.s.len() != f.v.len() {
        return Err(Gap::Columns);
    }
    if let Some(&s) = f.s.iter().find(|&&s| s as usize >= tick.frame.series.len()) {
        return Err(Gap::Series(s));
    }
    let gates = patched(&tick.gates, delta.gates.as_ref())?;
    let triggers = patched(&tick.triggers, delta.triggers.as_ref())?;
    let replicas = patched(&tick.replicas, delta.replicas.as_ref())?;
    for series in &mut tick.frame.series {
        series.points.retain(|p| p.t >= f.from && p.t <= f.to);
    }
    for ((&s, &age), &v) in f.s.iter().zip(&f.age).zip(&f.v) {
        let points = &mut tick.frame.series[s as usize].points;
        let t = f.to.saturating_sub(age);
        match points.binary_search_by_key(&t, |p| p.t) {
            Ok(i) => points[i].v = v,
            Err(i) => points.insert(i, Point { t, v }),
        }
    }
    tick.frame.at = f.at;
    if let Some(gates) = gates {
        tick.gates = gates;
    }
    if let Some(triggers) = triggers {
        tick.triggers = triggers;
    }
    if let Some(replicas) = replicas {
        tick.replicas = replicas;
    }
    tick.seq = delta.seq;
    Ok(())
}

fn diff_frame(old: &Frame, new: &Frame) -> Option<FrameDelta> {
    let same_series = old.rollout == new.rollout
        && old.step == new.step
        && old.series.len() == new.series.len()
        && old
            .series
            .iter()
            .zip(&new.series)
            .all(|(a, b)| a.id == b.id && a.label == b.label && a.unit == b.unit);
    if !same_series {
        return None;
    }
    let times = new.series.iter().flat_map(|s| s.points.iter().map(|p| p.t));
    let from = times.clone().min().unwrap_or(new.at);
    let to = times.max().unwrap_or(new.at);
    let mut delta = FrameDelta {
        at: new.at,
        from,
        to,
        s: Vec::new(),
        age: Vec::new(),
        v: Vec::new(),
    };
    for (i, (a, b)) in old.series.iter().zip(&new.series).enumerate() {
        for p in &b.points {
            let unchanged = a
                .points
                .binary_search_by_key(&p.t, |q| q.t)
                .is_ok_and(|j| same_value(a.points[j].v, p.v));
            if !unchanged {
                delta.s.push(u32::try_from(i).ok()?);
                delta.age.push(to - p.t);
                delta.v.push(p.v);
            }
        }
    }
    Some(delta)
}

/// Equal as the wire carries them: bit for bit, so a NaN never looks like a change forever.
fn same_value(a: Option<f64>, b: Option<f64>) -> bool {
    a.map(f64::to_bits) == b.map(f64::to_bits)
}

/// `Some(None)`: no change; `None`: the values do not serialise (never for our types).
fn diff_json<T: Serialize>(old: &T, new: &T) -> Option<Option<Value>> {
    let (old, new) = (
        serde_json::to_value(old).ok()?,
        serde_json::to_value(new).ok()?,
    );
    Some(patch(&old, &new))
}

fn patched<T>(current: &T, patch: Option<&Value>) -> Result<Option<T>, Gap>
where
    T: Serialize + serde::de::DeserializeOwned,
{
    let Some(patch) = patch else { return Ok(None) };
    let mut value = serde_json::to_value(current).map_err(|e| Gap::Patch(e.to_string()))?;
    apply_patch(&mut value, patch)?;
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| Gap::Patch(e.to_string()))
}

/// A patch that turns `old` into `new`, or `None` when they are equal. Its form:
/// - an object patches what it is applied to, key by key (an object) or at the indices its
///   keys name (an array of the same length);
/// - a one-element array replaces the value with its element;
/// - any other value (a number, a string, `true`, `null`) replaces the value.
///
/// So a gate whose left value moved costs `{"3":{"comparisons":{"0":{"left_value":0.0123}}}}`,
/// not the gate.
pub fn patch(old: &Value, new: &Value) -> Option<Value> {
    if old == new {
        return None;
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b))
            if a.len() == b.len() && a.keys().all(|k| b.contains_key(k)) =>
        {
            let changes: Map<String, Value> = b
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), patch(&a[k], v)?)))
                .collect();
            Some(Value::Object(changes))
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            let changes: Map<String, Value> = a
                .iter()
                .zip(b)
                .enumerate()
                .filter_map(|(i, (x, y))| Some((i.to_string(), patch(x, y)?)))
                .collect();
            Some(Value::Object(changes))
        }
        (_, Value::Object(_) | Value::Array(_)) => Some(Value::Array(vec![new.clone()])),
        _ => Some(new.clone()),
    }
}

/// Applies a [`patch`]; on an error `value` may be partly patched (callers patch a copy).
pub fn apply_patch(value: &mut Value, patch: &Value) -> Result<(), Gap> {
    match patch {
        Value::Object(changes) => {
            for (key, change) in changes {
                let slot = match value {
                    Value::Object(fields) => fields.get_mut(key),
                    Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
                    _ => None,
                };
                let slot = slot.ok_or_else(|| Gap::Patch(format!("nothing at {key:?}")))?;
                apply_patch(slot, change)?;
            }
            Ok(())
        }
        Value::Array(whole) => match whole.as_slice() {
            [one] => {
                *value = one.clone();
                Ok(())
            }
            _ => Err(Gap::Patch("a replacement holds one value".into())),
        },
        scalar => {
            *value = scalar.clone();
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;

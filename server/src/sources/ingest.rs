//! Metric events pushed by services: a JSON array or NDJSON of `{ts?, labels?, values{...}}`.
//! Every record is checked against the plan's metrics; good ones are recorded, bad ones are
//! reported back by index, field and reason. One bad record never loses the good ones.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use cutover_core::plan::{Metric, Plan};
use cutover_core::query::MetricKind;
use cutover_core::time::{Millis, SECOND};
use cutover_core::window::{Observation, Sample, SampleValue};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How far ahead of the server's clock an event's timestamp may be (clock skew allowance).
pub const MAX_FUTURE: Millis = 10 * SECOND;
/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Rejections listed one by one in an answer; the rest are counted by field. A 4 MB body of
/// junk used to produce a 200 MB report.
pub const MAX_LISTED: usize = 100;
/// Longest reason kept (a parser's message can quote the input).
const MAX_REASON: usize = 200;
/// Labels per event, and the longest label name and value.
pub const MAX_LABELS: usize = 16;
pub const MAX_LABEL_NAME: usize = 64;
pub const MAX_LABEL_VALUE: usize = 128;

/// An event as the original, owned parser reads it. Lines the fast reader does not take are
/// read with it, so every message a client gets (a parser's included) stays the same.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    ts: Option<Millis>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    values: BTreeMap<String, Value>,
}

/// A batch's valid records, in order, with their samples and the distinct label sets they
/// carry (each stored once, however many records share it). Derefs to the records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Records {
    records: Vec<Record>,
    samples: Vec<Observed>,
    label_sets: Vec<BTreeMap<String, String>>,
}

/// One valid record: its position in the batch, its time, its label set and its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub index: usize,
    pub ts: Millis,
    /// Into [`Records::label_sets`].
    pub labels: usize,
    /// Into [`Records::samples_of`]'s slice.
    pub samples: Range<usize>,
}

/// One value of a record, for a metric of the plan (by position in `plan.metrics`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observed {
    pub metric: usize,
    pub value: ObservedValue,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ObservedValue {
    Number(f64),
    Flag(bool),
    /// By position in the metric's `values`.
    Category(usize),
}

impl ObservedValue {
    /// The value as the metric windows take it, naming a category from `metric`.
    pub fn observation<'p>(&self, metric: &'p Metric) -> Observation<'p> {
        match *self {
            ObservedValue::Number(v) => Observation::Number(v),
            ObservedValue::Flag(b) => Observation::Flag(b),
            ObservedValue::Category(i) => {
                Observation::Category(metric.values.get(i).map_or("", String::as_str))
            }
        }
    }
}

impl std::ops::Deref for Records {
    type Target = [Record];
    fn deref(&self) -> &[Record] {
        &self.records
    }
}

impl Records {
    pub fn samples_of(&self, record: &Record) -> &[Observed] {
        &self.samples[record.samples.clone()]
    }

    pub fn labels_of(&self, record: &Record) -> &BTreeMap<String, String> {
        &self.label_sets[record.labels]
    }

    /// Every distinct label set, in order of first appearance.
    pub fn label_sets(&self) -> &[BTreeMap<String, String>] {
        &self.label_sets
    }

    /// Every sample as an owned [`Sample`], record by record (`plan` is the one parsed for).
    pub fn samples<'r>(&'r self, plan: &'r Plan) -> impl Iterator<Item = Sample> + 'r {
        self.records.iter().flat_map(move |r| {
            self.samples_of(r).iter().filter_map(move |o| {
                let metric = plan.metrics.get(o.metric)?;
                Some(Sample {
                    metric: metric.id.clone(),
                    labels: self.labels_of(r).clone(),
                    ts: r.ts,
                    value: match o.value.observation(metric) {
                        Observation::Number(v) => SampleValue::Number(v),
                        Observation::Flag(b) => SampleValue::Flag(b),
                        Observation::Category(c) => SampleValue::Category(c.to_string()),
                    },
                })
            })
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// 0-based position of the record in the batch.
    pub index: usize,
    /// The field at fault (`values.latency_ms`, `ts`), or `record` for the whole line.
    pub field: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestReport {
    pub accepted: usize,
    /// The first `MAX_LISTED` rejected records by position.
    pub rejected: Vec<Rejection>,
    /// Every rejected record, listed or not.
    #[serde(default)]
    pub rejected_total: usize,
    /// Rejected records by the field at fault.
    #[serde(default)]
    pub rejected_by_field: BTreeMap<String, usize>,
}

impl IngestReport {
    /// Counts a rejection, and lists it while fewer than `MAX_LISTED` are listed.
    pub fn reject(&mut self, mut rejection: Rejection) {
        self.rejected_total += 1;
        *self
            .rejected_by_field
            .entry(rejection.field.clone())
            .or_default() += 1;
        if self.rejected.len() < MAX_LISTED {
            if rejection.reason.len() > MAX_REASON {
                let mut end = MAX_REASON;
                while !rejection.reason.is_char_boundary(end) {
                    end -= 1;
                }
                rejection.reason.truncate(end);
                rejection.reason.push('…');
            }
            self.rejected.push(rejection);
        }
    }
}

/// A value of `values`, as much as the plan's rules look at; borrowed where the text allows.
#[derive(Debug)]
enum Val<'a> {
    Bool(bool),
    Number(f64),
    Str(Cow<'a, str>),
    /// Null, an array or an object: never a valid value.
    Other,
}

impl From<Value> for Val<'_> {
    fn from(value: Value) -> Self {
        match value {
            Value::Bool(b) => Val::Bool(b),
            Value::Number(n) => Val::Number(n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => Val::Str(Cow::Owned(s)),
            _ => Val::Other,
        }
    }
}

/// A record's values as read, in the order written.
type Values<'a> = Vec<(Cow<'a, str>, Val<'a>)>;

/// Reads one NDJSON line in a single borrowed pass: `ts`, the text of `labels` (resolved once
/// per distinct text, see [`LabelSets`]) and `values` into `values`. It takes only lines the
/// owned [`RawEvent`] reader reads the same way, with no duplicate fields and no nested
/// values; `None` leaves the line to that reader, which has the final word (and the message).
fn read_fast<'a>(line: &'a str, values: &mut Values<'a>) -> Option<(Option<Millis>, &'a str)> {
    values.clear();
    let mut de = serde_json::Deserializer::from_str(line);
    let event = EventSeed(values).deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(event)
}

/// The whole line, reading `values` into the vector it holds; answers `ts` and the raw text
/// of `labels` (empty when absent).
struct EventSeed<'b, 'a>(&'b mut Values<'a>);

/// Any refusal of the fast reader: the owned reader reads the line again and says why.
const FALL_BACK: &str = "left to the owned reader";

impl<'a> DeserializeSeed<'a> for EventSeed<'_, 'a> {
    type Value = (Option<Millis>, &'a str);
    fn deserialize<D: Deserializer<'a>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'a> Visitor<'a> for EventSeed<'_, 'a> {
    type Value = (Option<Millis>, &'a str);
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an event")
    }
    fn visit_map<A: MapAccess<'a>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error;
        let (mut ts, mut labels, mut values) = (None, None, false);
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Ts if ts.is_none() => ts = Some(map.next_value::<Option<Millis>>()?),
                Field::Labels if labels.is_none() => {
                    labels = Some(map.next_value::<&'a serde_json::value::RawValue>()?.get());
                }
                Field::Values if !values => {
                    map.next_value_seed(ValuesSeed(&mut *self.0))?;
                    values = true;
                }
                _ => return Err(A::Error::custom(FALL_BACK)),
            }
        }
        if !values {
            return Err(A::Error::custom(FALL_BACK));
        }
        Ok((ts.flatten(), labels.unwrap_or("")))
    }
}

enum Field {
    Ts,
    Labels,
    Values,
}

impl<'a> Deserialize<'a> for Field {
    fn deserialize<D: Deserializer<'a>>(d: D) -> Result<Field, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Field;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("ts, labels or values")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Field, E> {
                match v {
                    "ts" => Ok(Field::Ts),
                    "labels" => Ok(Field::Labels),
                    "values" => Ok(Field::Values),
                    _ => Err(E::custom(FALL_BACK)),
                }
            }
        }
        d.deserialize_identifier(V)
    }
}

struct ValuesSeed<'b, 'a>(&'b mut Values<'a>);

impl<'a> DeserializeSeed<'a> for ValuesSeed<'_, 'a> {
    type Value = ();
    fn deserialize<D: Deserializer<'a>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'a> Visitor<'a> for ValuesSeed<'_, 'a> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a map")
    }
    fn visit_map<A: MapAccess<'a>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(Text(name)) = map.next_key()? {
            let value = map.next_value()?;
            self.0.push((name, value));
        }
        Ok(())
    }
}

/// A string, borrowed unless it holds escapes.
struct Text<'a>(Cow<'a, str>);

impl<'a> Deserialize<'a> for Text<'a> {
    fn deserialize<D: Deserializer<'a>>(d: D) -> Result<Text<'a>, D::Error> {
        struct V;
        impl<'a> Visitor<'a> for V {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'a str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A value read as `serde_json::Value` would read it (numbers through the same calls), but
/// borrowed; arrays and objects are refused, for the owned reader.
impl<'a> Deserialize<'a> for Val<'a> {
    fn deserialize<D: Deserializer<'a>>(d: D) -> Result<Val<'a>, D::Error> {
        struct V;
        impl<'a> Visitor<'a> for V {
            type Value = Val<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON scalar")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Val<'a>, E> {
                Ok(Val::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Val<'a>, E> {
                Ok(Val::Number(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Val<'a>, E> {
                Ok(Val::Number(v as f64))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Val<'a>, E> {
                Ok(Val::Number(v))
            }
            fn visit_borrowed_str<E>(self, v: &'a str) -> Result<Val<'a>, E> {
                Ok(Val::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Val<'a>, E> {
                Ok(Val::Str(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Val<'a>, E> {
                Ok(Val::Str(Cow::Owned(v)))
            }
            fn visit_unit<E>(self) -> Result<Val<'a>, E> {
                Ok(Val::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// What a label set's text comes to.
#[derive(Clone)]
enum Labels {
    /// A valid set, by position in [`Records::label_sets`].
    Set(usize),
    /// Refused by [`bad_labels`], with its reason.
    Bad(String),
    /// Not a map of strings: the owned reader reads the line.
    Unreadable,
}

/// A batch's label sets, each text parsed and checked once, each distinct set kept once.
#[derive(Default)]
struct LabelSets<'a> {
    by_text: HashMap<&'a str, Labels>,
    by_set: HashMap<BTreeMap<String, String>, usize>,
}

impl<'a> LabelSets<'a> {
    /// The set written as `text` (empty: no labels).
    fn of_text(&mut self, text: &'a str, out: &mut Records) -> Labels {
        if let Some(known) = self.by_text.get(text) {
            return known.clone();
        }
        let parsed = if text.is_empty() {
            Ok(BTreeMap::new())
        } else {
            serde_json::from_str(text)
        };
        let labels = match parsed.map(|set| self.of_set(set, out)) {
            Ok(Ok(id)) => Labels::Set(id),
            Ok(Err(reason)) => Labels::Bad(reason),
            Err(_) => Labels::Unreadable,
        };
        self.by_text.insert(text, labels.clone());
        labels
    }

    /// A set's position in [`Records::label_sets`], or why [`bad_labels`] refuses it.
    fn of_set(
        &mut self,
        set: BTreeMap<String, String>,
        out: &mut Records,
    ) -> Result<usize, String> {
        if let Some(reason) = bad_labels(&set) {
            return Err(reason);
        }
        if let Some(id) = self.by_set.get(&set) {
            return Ok(*id);
        }
        out.label_sets.push(set.clone());
        self.by_set.insert(set, out.label_sets.len() - 1);
        Ok(out.label_sets.len() - 1)
    }
}

/// A batch being judged: the valid records so far and the report.
struct Batch<'p, 'a> {
    plan: &'p Plan,
    now: Millis,
    labels: LabelSets<'a>,
    out: Records,
    report: IngestReport,
}

impl<'a> Batch<'_, 'a> {
    /// One NDJSON line: the fast reader where it can, the owned one (which words every
    /// rejection) where it cannot.
    fn line(&mut self, index: usize, line: &'a str, values: &mut Values<'a>, fast: bool) {
        if let Some((ts, text)) = read_fast(line, values).filter(|_| fast) {
            let labels = match self.labels.of_text(text, &mut self.out) {
                Labels::Set(id) => Some(Ok(id)),
                Labels::Bad(reason) => Some(Err(reason)),
                Labels::Unreadable => None,
            };
            if let Some(labels) = labels {
                self.judge(index, ts, labels, values);
                return;
            }
        }
        match serde_json::from_str(line) {
            Ok(event) => self.owned(index, event),
            Err(e) => self.reject(index, "record", e.to_string()),
        }
    }
}

impl<'p> Batch<'p, '_> {
    fn new(plan: &'p Plan, now: Millis) -> Self {
        Batch {
            plan,
            now,
            labels: LabelSets::default(),
            out: Records::default(),
            report: IngestReport::default(),
        }
    }
}

impl Batch<'_, '_> {
    fn reject(&mut self, index: usize, field: &str, reason: String) {
        self.report.reject(Rejection {
            index,
            field: field.to_string(),
            reason,
        });
    }

    /// A record read by the owned reader.
    fn owned(&mut self, index: usize, event: RawEvent) {
        let labels = self.labels.of_set(event.labels, &mut self.out);
        let mut values: Values = event
            .values
            .into_iter()
            .map(|(name, value)| (Cow::Owned(name), Val::from(value)))
            .collect();
        self.judge(index, event.ts, labels, &mut values);
    }

    /// Checks one record (time, labels, then each value by name) and keeps it, or rejects
    /// it whole: a partial event never skews a ratio.
    fn judge(
        &mut self,
        index: usize,
        ts: Option<Millis>,
        labels: Result<usize, String>,
        values: &mut Values,
    ) {
        let now = self.now;
        let ts = ts.unwrap_or(now);
        if ts > now.saturating_add(MAX_FUTURE) {
            let reason = format!("{}s in the future", ts.saturating_sub(now) / SECOND);
            return self.reject(index, "ts", reason);
        }
        let labels = match labels {
            Ok(id) => id,
            Err(reason) => return self.reject(index, "labels", reason),
        };
        if values.is_empty() {
            return self.reject(index, "values", "no values".into());
        }
        // As a map reads them: by name, a repeated name's last value winning.
        values.sort_by(|a, b| a.0.cmp(&b.0));
        let start = self.out.samples.len();
        for (i, (name, value)) in values.iter().enumerate() {
            if values.get(i + 1).is_some_and(|next| next.0 == *name) {
                continue;
            }
            match observe(self.plan, name, value) {
                Ok(observed) => self.out.samples.push(observed),
                Err(reason) => {
                    self.out.samples.truncate(start);
                    return self.reject(index, &format!("values.{name}"), reason);
                }
            }
        }
        self.report.accepted += 1;
        self.out.records.push(Record {
            index,
            ts,
            labels,
            samples: start..self.out.samples.len(),
        });
    }
}

/// Parses and validates a batch against `plan` at server time `now`.
pub fn parse_batch(
    plan: &Plan,
    body: &str,
    now: Millis,
) -> Result<(Records, IngestReport), String> {
    parse(plan, body, now, true)
}

/// [`parse_batch`], with the fast reader or (`fast` false, for tests) the owned one only.
fn parse(
    plan: &Plan,
    body: &str,
    now: Millis,
    fast: bool,
) -> Result<(Records, IngestReport), String> {
    let mut batch = Batch::new(plan, now);
    let trimmed = body.trim_start();
    if trimmed.starts_with('[') {
        let items: Vec<Value> = serde_json::from_str(trimmed)
            .map_err(|e| format!("body is not a JSON array of events: {e}"))?;
        for (index, item) in items.into_iter().enumerate() {
            match serde_json::from_value(item) {
                Ok(event) => batch.owned(index, event),
                Err(e) => batch.reject(index, "record", e.to_string()),
            }
        }
    } else {
        let mut values = Values::new();
        let lines = body.lines().filter(|l| !l.trim().is_empty());
        for (index, line) in lines.enumerate() {
            batch.line(index, line, &mut values, fast);
        }
    }
    Ok((batch.out, batch.report))
}

/// [`parse_batch`] of a body as sent: NDJSON whose lines are not all UTF-8 keeps its good
/// lines (a bad byte costs its own line, named, not the batch); a JSON array must be UTF-8.
pub fn parse_bytes(
    plan: &Plan,
    body: &[u8],
    now: Millis,
) -> Result<(Records, IngestReport), String> {
    if let Ok(text) = std::str::from_utf8(body) {
        return parse_batch(plan, text, now);
    }
    if body.trim_ascii_start().starts_with(b"[") {
        return Err("body is not UTF-8".into());
    }
    let mut batch = Batch::new(plan, now);
    let mut values = Values::new();
    let lines = body
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.trim_ascii().is_empty());
    for (index, line) in lines.enumerate() {
        match std::str::from_utf8(line) {
            Ok(line) => batch.line(index, line, &mut values, true),
            Err(e) => batch.reject(
                index,
                "record",
                format!("not UTF-8 (a bad byte at {})", e.valid_up_to()),
            ),
        }
    }
    Ok((batch.out, batch.report))
}

/// A value no metric takes (a latency of 30,000 years in ms, a petabyte count): refused even where the plan
/// declares no `range`, so one broken client cannot bend every percentile.
pub const ABSURD: f64 = 1e15;

/// Why a record's labels are refused, if they are: too many, too long, or reserved.
fn bad_labels(labels: &BTreeMap<String, String>) -> Option<String> {
    if labels.len() > MAX_LABELS {
        return Some(format!("at most {MAX_LABELS} labels per event"));
    }
    for (name, value) in labels {
        if name.is_empty() || name.len() > MAX_LABEL_NAME {
            return Some(format!("label names are 1 to {MAX_LABEL_NAME} bytes"));
        }
        if name.starts_with("__") {
            return Some("label names starting with __ are reserved".into());
        }
        if value.len() > MAX_LABEL_VALUE {
            return Some(format!(
                "label {name}: values are at most {MAX_LABEL_VALUE} bytes"
            ));
        }
    }
    None
}

fn observe(plan: &Plan, name: &str, value: &Val) -> Result<Observed, String> {
    let (index, metric) = plan
        .metrics
        .iter()
        .enumerate()
        .find(|(_, m)| m.id == name)
        .ok_or_else(|| format!("the plan declares no metric \"{name}\""))?;
    let value = match (metric.kind, value) {
        (MetricKind::Ratio, Val::Bool(b)) => ObservedValue::Flag(*b),
        (MetricKind::Ratio, Val::Number(n)) if *n == 0.0 || *n == 1.0 => {
            ObservedValue::Flag(*n == 1.0)
        }
        (MetricKind::Ratio, _) => return Err("a ratio metric takes true/false (or 1/0)".into()),
        (MetricKind::Category, Val::Str(s)) => match metric.values.iter().position(|v| v == s) {
            Some(i) => ObservedValue::Category(i),
            None => return Err(format!("expected one of {:?}", metric.values)),
        },
        (MetricKind::Category, _) => return Err(format!("expected one of {:?}", metric.values)),
        (kind, Val::Number(v)) => {
            if !v.is_finite() {
                return Err("not a finite number".into());
            }
            if *v < 0.0 && kind != MetricKind::Gauge {
                return Err(format!("{v} is negative"));
            }
            if let Some([low, high]) = metric.range
                && !(low..=high).contains(v)
            {
                return Err(format!(
                    "{v} is outside the metric's range [{low}, {high}] (the plan's `range`)"
                ));
            }
            if v.abs() > ABSURD {
                return Err(format!("{v:e} is beyond any value a metric here takes"));
            }
            ObservedValue::Number(*v)
        }
        (_, _) => return Err("expected a number".into()),
    };
    Ok(Observed {
        metric: index,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;

    fn plan() -> Plan {
        cutover_core::plan::parse(
            "t.toml",
            r#"
[rollout]
id = "t"
title = "T"
[[stage]]
id = "a"
traffic = 10
[[metric]]
id = "latency_ms"
kind = "distribution"
[[metric]]
id = "error"
kind = "ratio"
[[metric]]
id = "mode"
kind = "category"
values = ["full", "lite"]
"#,
        )
        .unwrap()
    }

    /// A value outside the metric's declared range, or beyond any value a metric takes, is
    /// refused with its reason; the values around it are kept.
    #[test]
    fn values_outside_the_declared_range_are_refused() {
        let text = "[rollout]\nid = \"t\"\ntitle = \"T\"\n[[stage]]\nid = \"a\"\ntraffic = 10\n\
                    [[metric]]\nid = \"latency_ms\"\nkind = \"distribution\"\nrange = [0, 60000]\n\
                    [[metric]]\nid = \"depth\"\nkind = \"gauge\"\n";
        let plan = cutover_core::plan::parse("t.toml", text).unwrap();
        let body = "{\"values\":{\"latency_ms\":120}}\n\
                    {\"values\":{\"latency_ms\":60001}}\n\
                    {\"values\":{\"depth\":1e300}}\n\
                    {\"values\":{\"depth\":-3}}\n";
        let (_, report) = parse_batch(&plan, body, 0).unwrap();
        assert_eq!(report.accepted, 2, "{report:?}");
        let reasons: Vec<&str> = report.rejected.iter().map(|r| r.reason.as_str()).collect();
        assert!(
            reasons[0].contains("outside the metric's range [0, 60000]"),
            "{reasons:?}"
        );
        assert!(reasons[1].contains("beyond any value"), "{reasons:?}");
        let bad = "[rollout]\nid = \"t\"\ntitle = \"T\"\n[[stage]]\nid = \"a\"\ntraffic = 10\n\
                   [[metric]]\nid = \"x\"\nkind = \"gauge\"\nrange = [5, 1]\n";
        assert!(cutover_core::plan::parse("t.toml", bad).is_err());
    }

    /// One bad byte costs its own line, named, never the good lines around it; a JSON array
    /// (one document) that is not UTF-8 is refused whole.
    #[test]
    fn a_bad_byte_costs_its_line_not_the_batch() {
        let mut body = b"{\"values\":{\"latency_ms\":120}}\n".to_vec();
        body.extend_from_slice(b"{\"values\":{\"latency_ms\":1\xff0}}\r\n\n");
        body.extend_from_slice(b"{\"values\":{\"latency_ms\":130}}\n");
        let (records, report) = parse_bytes(&plan(), &body, 1_000).unwrap();
        assert_eq!(report.accepted, 2);
        assert_eq!(report.rejected_total, 1);
        assert_eq!(report.rejected[0].index, 1);
        assert!(
            report.rejected[0].reason.starts_with("not UTF-8"),
            "{:?}",
            report.rejected
        );
        assert_eq!(records.len(), 2);
        assert!(parse_bytes(&plan(), b"[{\"values\":{\"x\":\xff}}]", 0).is_err());
    }

    #[test]
    fn ndjson_and_arrays_give_the_same_observations() {
        let nd =
            "{\"ts\":1000,\"values\":{\"latency_ms\":12.5,\"error\":false,\"mode\":\"lite\"}}\n";
        let arr =
            "[{\"ts\":1000,\"values\":{\"latency_ms\":12.5,\"error\":false,\"mode\":\"lite\"}}]";
        let a = parse_batch(&plan(), nd, 1000).unwrap();
        let b = parse_batch(&plan(), arr, 1000).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.0[0].samples.len(), 3);
        assert_eq!(a.1.accepted, 1);
    }

    #[test]
    fn each_bad_record_is_named_by_index_and_field() {
        let body = [
            r#"{"values":{"latency_ms":-1}}"#,
            r#"{"values":{"latency":5}}"#,
            r#"{"values":{"mode":"turbo"}}"#,
            r#"{"ts":99999999,"values":{"latency_ms":1}}"#,
            r#"not json"#,
            r#"{"values":{"latency_ms":3}}"#,
        ]
        .join("\n");
        let (records, report) = parse_batch(&plan(), &body, 0).unwrap();
        assert_eq!(report.accepted, 1);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].index, 5);
        let fields: Vec<(usize, &str)> = report
            .rejected
            .iter()
            .map(|r| (r.index, r.field.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                (0, "values.latency_ms"),
                (1, "values.latency"),
                (2, "values.mode"),
                (3, "ts"),
                (4, "record")
            ]
        );
        assert_eq!(report.rejected_total, 5);
    }

    /// Pieces of events, valid and not, for the fuzzer to put together.
    const PIECES: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"values\"",
        "\"labels\"",
        "\"ts\"",
        "\"latency_ms\"",
        "\"error\"",
        "\"mode\"",
        "\"lite\"",
        "\"variant\"",
        "\"canary\"",
        "1",
        "-1",
        "1e999",
        "9223372036854775807",
        "-9223372036854775808",
        "true",
        "null",
        "\n",
        " ",
        "\"__x\"",
        r#"{"values":{"latency_ms":12}}"#,
        r#"{"ts":1,"values":{"error":true}}"#,
    ];

    proptest::proptest! {
        #[test]
        fn any_body_gets_a_bounded_answer_without_panicking(
            body in proptest::prop_oneof![
                proptest::collection::vec(proptest::sample::select(PIECES), 0..200)
                    .prop_map(|p| p.concat()),
                ".{0,300}",
            ],
            now in proptest::prelude::any::<i64>(),
        ) {
            if let Ok((records, report)) = parse_batch(&plan(), &body, now) {
                proptest::prop_assert_eq!(records.len(), report.accepted);
                proptest::prop_assert!(report.rejected.len() <= MAX_LISTED);
                proptest::prop_assert_eq!(
                    report.rejected_by_field.values().sum::<usize>(),
                    report.rejected_total
                );
            }
        }
    }

    /// Lines the fast reader has to get right or leave alone: escapes, repeated names,
    /// nested and null values, odd types.
    const TRICKY: &[&str] = &[
        r#"{"values":{"latency_ms":1,"latency_ms":2}}"#,
        r#"{"values":{"lat\u0065ncy_ms":3},"ts":null}"#,
        r#"{"labels":{"variant":"can\u0061ry"},"values":{"mode":"l\u0069te"}}"#,
        r#"{"labels":{"variant":"canary","variant":"baseline"},"values":{"error":1}}"#,
        r#"{"labels":null,"values":{"error":0}}"#,
        r#"{"labels":{"a":1},"values":{"error":0}}"#,
        r#"{"values":{"mode":["lite"]}}"#,
        r#"{"values":{"latency_ms":{"a":1}}}"#,
        r#"{"values":{"latency_ms":null}}"#,
        r#"{"values":{"error":0.0,"latency_ms":-0}}"#,
        r#"{"ts":1.5,"values":{"latency_ms":1}}"#,
        r#"{"ts":1,"ts":2,"values":{"latency_ms":1}}"#,
        r#"{"values":{},"values":{"latency_ms":1}}"#,
        r#"{"values":{"latency_ms":1}} x"#,
        r#"{"values":{"latency_ms":1},"extra":1}"#,
        r#"[1,{},{"latency_ms":1}]"#,
        r#" {"labels":{},"values":{"latency_ms":18446744073709551615}} "#,
        r#"{"labels":{"variant":"canary"},"values":{"latency_ms":1,"mode":"lite"}}"#,
        r#"{"labels": {"variant":"canary"},"values":{"latency_ms":2}}"#,
        r#"{"labels":{"__x":"1"},"values":{"latency_ms":2}}"#,
    ];

    proptest::proptest! {
        /// The fast reader answers exactly what the owned reader answers, record for record
        /// and message for message.
        #[test]
        fn the_fast_reader_reads_as_the_owned_one(
            lines in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(TRICKY).prop_map(str::to_string),
                    proptest::collection::vec(proptest::sample::select(PIECES), 0..40)
                        .prop_map(|p| p.concat()),
                ],
                0..30,
            ),
        ) {
            let body = lines.join("\n");
            let fast = parse(&plan(), &body, 5_000, true);
            let owned = parse(&plan(), &body, 5_000, false);
            proptest::prop_assert_eq!(fast, owned);
        }
    }

    #[test]
    fn a_huge_batch_of_junk_gets_a_small_report() {
        let line = format!("{{\"{}\":1}}\n", "x".repeat(5000));
        let body = line.repeat(800) + "{\"values\":{\"latency_ms\":3}}\n";
        let (records, report) = parse_batch(&plan(), &body, 0).unwrap();
        assert_eq!(records.len(), 1, "the good record is kept");
        assert_eq!(report.rejected_total, 800);
        assert_eq!(report.rejected.len(), MAX_LISTED);
        assert_eq!(report.rejected_by_field["record"], 800);
        let size = serde_json::to_string(&report).unwrap().len();
        assert!(size < 40_000, "report is {size} bytes");
    }

    #[test]
    fn labels_are_bounded_and_reserved_names_refused() {
        let long = "v".repeat(MAX_LABEL_VALUE + 1);
        let many: String = (0..=MAX_LABELS)
            .map(|i| format!("\"k{i}\":\"v\""))
            .collect::<Vec<_>>()
            .join(",");
        let body = [
            format!(r#"{{"labels":{{"variant":"{long}"}},"values":{{"latency_ms":1}}}}"#),
            format!(r#"{{"labels":{{{many}}},"values":{{"latency_ms":1}}}}"#),
            r#"{"labels":{"__overflow__":"true"},"values":{"latency_ms":1}}"#.to_string(),
            r#"{"labels":{"variant":"canary"},"values":{"latency_ms":1}}"#.to_string(),
        ]
        .join("\n");
        let (records, report) = parse_batch(&plan(), &body, 0).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(report.rejected_by_field["labels"], 3);
    }
}

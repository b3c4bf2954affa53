//! Metric events pushed by services: a JSON array or NDJSON of `{ts?, labels?, values{...}}`.
//! Every record is checked against the plan's metrics; good ones are recorded, bad ones are
//! reported back by index, field and reason. One bad record never loses the good ones.

use std::collections::BTreeMap;

use cutover_core::plan::Plan;
use cutover_core::query::MetricKind;
use cutover_core::time::{Millis, SECOND};
use cutover_core::window::{Sample, SampleValue};
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    ts: Option<Millis>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    values: BTreeMap<String, Value>,
}

/// One valid record: its position in the batch and a sample per value it carried.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub index: usize,
    pub samples: Vec<Sample>,
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

/// Splits a body into records: a JSON array, or one JSON object per line.
/// A record's position in the batch and the record, or why it is not one.
type Parsed = (usize, Result<RawEvent, String>);

fn records(body: &str) -> Result<Vec<Parsed>, String> {
    let trimmed = body.trim_start();
    if trimmed.starts_with('[') {
        let items: Vec<Value> = serde_json::from_str(trimmed)
            .map_err(|e| format!("body is not a JSON array of events: {e}"))?;
        Ok(items
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i, serde_json::from_value(v).map_err(|e| e.to_string())))
            .collect())
    } else {
        Ok(body
            .lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, line)| (i, serde_json::from_str(line).map_err(|e| e.to_string())))
            .collect())
    }
}

/// Parses and validates a batch against `plan` at server time `now`.
pub fn parse_batch(
    plan: &Plan,
    body: &str,
    now: Millis,
) -> Result<(Vec<Record>, IngestReport), String> {
    let mut valid = Vec::new();
    let mut report = IngestReport::default();
    for (index, record) in records(body)? {
        let reject = |field: &str, reason: String| Rejection {
            index,
            field: field.to_string(),
            reason,
        };
        let event = match record {
            Ok(event) => event,
            Err(reason) => {
                report.reject(reject("record", reason));
                continue;
            }
        };
        let ts = event.ts.unwrap_or(now);
        if ts > now.saturating_add(MAX_FUTURE) {
            report.reject(reject(
                "ts",
                format!("{}s in the future", ts.saturating_sub(now) / SECOND),
            ));
            continue;
        }
        if let Some(reason) = bad_labels(&event.labels) {
            report.reject(reject("labels", reason));
            continue;
        }
        if event.values.is_empty() {
            report.reject(reject("values", "no values".into()));
            continue;
        }
        let mut accepted = Vec::new();
        let mut bad = None;
        for (name, value) in &event.values {
            match observe(plan, name, value) {
                Ok(value) => accepted.push(Sample {
                    metric: name.clone(),
                    labels: event.labels.clone(),
                    ts,
                    value,
                }),
                Err(reason) => {
                    bad = Some(reject(&format!("values.{name}"), reason));
                    break;
                }
            }
        }
        // A record is all or nothing, so a partial event never skews a ratio.
        match bad {
            Some(rejection) => report.reject(rejection),
            None => {
                report.accepted += 1;
                valid.push(Record {
                    index,
                    samples: accepted,
                });
            }
        }
    }
    Ok((valid, report))
}

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

fn observe(plan: &Plan, name: &str, value: &Value) -> Result<SampleValue, String> {
    let metric = plan
        .metric(name)
        .ok_or_else(|| format!("the plan declares no metric \"{name}\""))?;
    match (metric.kind, value) {
        (MetricKind::Ratio, Value::Bool(b)) => Ok(SampleValue::Flag(*b)),
        (MetricKind::Ratio, Value::Number(n))
            if n.as_f64() == Some(0.0) || n.as_f64() == Some(1.0) =>
        {
            Ok(SampleValue::Flag(n.as_f64() == Some(1.0)))
        }
        (MetricKind::Ratio, _) => Err("a ratio metric takes true/false (or 1/0)".into()),
        (MetricKind::Category, Value::String(s)) if metric.values.contains(s) => {
            Ok(SampleValue::Category(s.clone()))
        }
        (MetricKind::Category, _) => Err(format!("expected one of {:?}", metric.values)),
        (kind, Value::Number(n)) => {
            let v = n
                .as_f64()
                .filter(|v| v.is_finite())
                .ok_or("not a finite number")?;
            if v < 0.0 && kind != MetricKind::Gauge {
                return Err(format!("{v} is negative"));
            }
            Ok(SampleValue::Number(v))
        }
        (_, _) => Err("expected a number".into()),
    }
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

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestReport {
    pub accepted: usize,
    pub rejected: Vec<Rejection>,
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
    let mut report = IngestReport {
        accepted: 0,
        rejected: Vec::new(),
    };
    for (index, record) in records(body)? {
        let reject = |field: &str, reason: String| Rejection {
            index,
            field: field.to_string(),
            reason,
        };
        let event = match record {
            Ok(event) => event,
            Err(reason) => {
                report.rejected.push(reject("record", reason));
                continue;
            }
        };
        let ts = event.ts.unwrap_or(now);
        if ts > now + MAX_FUTURE {
            report.rejected.push(reject(
                "ts",
                format!("{}s in the future", (ts - now) / SECOND),
            ));
            continue;
        }
        if event.values.is_empty() {
            report.rejected.push(reject("values", "no values".into()));
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
            Some(rejection) => report.rejected.push(rejection),
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
    }
}

//! OpenTelemetry in: OTLP/HTTP metrics and `feature_flag.evaluation` log records, decoded with
//! the maintained message types (`opentelemetry-proto`: prost for protobuf, its serde for
//! OTLP/JSON) and turned into samples of the plan metrics that name them (`otel = {...}`).
//! The arithmetic (histogram buckets, cumulative deltas, units) is `cutover_core::otel`.
//!
//! Every point is accounted for: taken by at least one rollout, or rejected with a reason
//! that the answer's partial success counts and names. A bad point never loses a good one.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Read;

use cutover_core::otel::{
    Buckets, Delta, Deltas, ExpBuckets, ExplicitBuckets, Histogram, PointValue, unit_factor,
};
use cutover_core::plan::{Metric, OtelFrom, OtelSource, Plan};
use cutover_core::query::MetricKind;
use cutover_core::time::{MINUTE, Millis};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogramDataPoint, HistogramDataPoint, NumberDataPoint,
    metric::Data, number_data_point,
};
use prost::Message;

use crate::sources::ingest::MAX_LABEL_VALUE;

/// Largest body accepted as sent (the server's body limit).
pub const MAX_BODY_BYTES: usize = crate::sources::ingest::MAX_BODY_BYTES;
/// Largest body after gzip is undone: a small body cannot inflate into unbounded memory.
pub const MAX_INFLATED_BYTES: usize = 32 * 1024 * 1024;
/// Cumulative streams remembered per rollout (the least recently seen is forgotten first).
pub const MAX_STREAMS: usize = 8192;
/// Distinct reasons named in a partial success's message; the rest are counted.
const MAX_REASONS: usize = 8;
/// A stream first met whose start is within this of now counts from its start; one that
/// started earlier is a baseline (cutover's restart must not read as a spike).
const RECENT: Millis = 5 * MINUTE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    /// From a request's `Content-Type`; `None` for anything OTLP/HTTP does not define.
    pub fn of(content_type: Option<&str>) -> Option<Encoding> {
        let essence = content_type?.split(';').next()?.trim();
        match essence {
            "application/x-protobuf" | "application/protobuf" => Some(Encoding::Protobuf),
            "application/json" => Some(Encoding::Json),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Malformed(String),
}

/// The body as the sender meant it: inflated if it says gzip, never past
/// [`MAX_INFLATED_BYTES`].
pub fn inflate(body: &[u8], gzip: bool) -> Result<std::borrow::Cow<'_, [u8]>, DecodeError> {
    if !gzip {
        return Ok(body.into());
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .take(MAX_INFLATED_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Malformed(format!("gzip body: {e}")))?;
    if out.len() > MAX_INFLATED_BYTES {
        return Err(DecodeError::TooLarge(format!(
            "the body inflates past {MAX_INFLATED_BYTES} bytes: send smaller batches"
        )));
    }
    Ok(out.into())
}

fn decode<T: Message + Default + serde::de::DeserializeOwned>(
    bytes: &[u8],
    encoding: Encoding,
) -> Result<T, DecodeError> {
    match encoding {
        Encoding::Protobuf => {
            T::decode(bytes).map_err(|e| DecodeError::Malformed(format!("protobuf body: {e}")))
        }
        Encoding::Json => serde_json::from_slice(bytes)
            .map_err(|e| DecodeError::Malformed(format!("OTLP/JSON body: {e}"))),
    }
}

pub fn metrics_request(
    bytes: &[u8],
    encoding: Encoding,
) -> Result<ExportMetricsServiceRequest, DecodeError> {
    decode(bytes, encoding)
}

pub fn logs_request(
    bytes: &[u8],
    encoding: Encoding,
) -> Result<ExportLogsServiceRequest, DecodeError> {
    decode(bytes, encoding)
}

/// A sample for one plan metric, standing for `count` equal observations.
#[derive(Debug, Clone, PartialEq)]
pub struct Weighted {
    /// Index into the plan's metrics.
    pub metric: usize,
    pub labels: BTreeMap<String, String>,
    pub ts: Millis,
    pub value: WeightedValue,
    pub count: u64,
    /// The point it came from (numbered across the request), for the tally.
    pub point: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WeightedValue {
    Number(f64),
    Flag(bool),
    /// By position in the metric's `values`.
    Category(usize),
}

/// Points rejected, by reason: what the answer's partial success says.
#[derive(Debug, Default)]
pub struct Tally {
    pub points: u64,
    pub rejected: u64,
    reasons: BTreeMap<String, u64>,
    rejected_points: std::collections::HashSet<usize>,
}

impl Tally {
    /// Counts `point` as rejected (once, whatever else is said of it) for `reason`.
    pub fn reject(&mut self, point: usize, reason: String) {
        if !self.rejected_points.insert(point) {
            return;
        }
        self.rejected += 1;
        if self.reasons.len() < MAX_REASONS || self.reasons.contains_key(&reason) {
            *self.reasons.entry(reason).or_default() += 1;
        } else {
            *self.reasons.entry("other reasons".into()).or_default() += 1;
        }
    }

    /// The English message of a partial success, or `None` when nothing was rejected.
    pub fn message(&self) -> Option<String> {
        (self.rejected > 0).then(|| {
            let parts: Vec<String> = self
                .reasons
                .iter()
                .map(|(reason, n)| format!("{n} × {reason}"))
                .collect();
            format!(
                "{} of {} rejected: {}",
                self.rejected,
                self.points,
                parts.join("; ")
            )
        })
    }
}

/// One rollout's part in a request: its plan, its cumulative streams, and what it takes.
pub struct Taker<'a> {
    pub plan: &'a Plan,
    pub deltas: &'a mut Deltas,
    pub samples: Vec<Weighted>,
}

/// Attributes of a point (or record), then of its resource: the lookup order of `labels`
/// and `match`.
struct Attributes<'a> {
    point: &'a [KeyValue],
    resource: &'a [KeyValue],
}

impl Attributes<'_> {
    fn get(&self, key: &str) -> Option<String> {
        self.get_ref(key).map(Cow::into_owned)
    }

    /// As `get`, borrowing a string attribute: what every point's matching, labels and stream
    /// hash read, without a copy each.
    fn get_ref(&self, key: &str) -> Option<Cow<'_, str>> {
        self.point
            .iter()
            .chain(self.resource)
            .find(|kv| kv.key == key)
            .and_then(|kv| text(kv.value.as_ref()?.value.as_ref()?))
    }

    fn matches(&self, source: &OtelSource) -> bool {
        source
            .matches
            .iter()
            .all(|(k, v)| self.get_ref(k).as_deref() == Some(v.as_str()))
    }

    fn labels(&self, source: &OtelSource) -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        for (label, attribute) in &source.labels {
            if let Some(v) = self.get_ref(attribute) {
                if v.len() > MAX_LABEL_VALUE {
                    return Err(format!(
                        "attribute {attribute} is longer than {MAX_LABEL_VALUE} bytes"
                    ));
                }
                out.insert(label.clone(), v.into_owned());
            }
        }
        Ok(out)
    }

    fn hash(&self, into: &mut impl Hasher) {
        for kv in self.point.iter().chain(self.resource) {
            kv.key.hash(into);
            if let Some(v) = kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                text(v).hash(into);
            }
        }
    }
}

fn text(v: &any_value::Value) -> Option<Cow<'_, str>> {
    Some(match v {
        any_value::Value::StringValue(s) => Cow::Borrowed(s.as_str()),
        any_value::Value::BoolValue(b) => Cow::Owned(b.to_string()),
        any_value::Value::IntValue(i) => Cow::Owned(i.to_string()),
        any_value::Value::DoubleValue(d) => Cow::Owned(d.to_string()),
        _ => return None,
    })
}

fn millis(ns: u64, now: Millis) -> Millis {
    if ns == 0 {
        now
    } else {
        Millis::try_from(ns / 1_000_000).unwrap_or(Millis::MAX)
    }
}

/// A point as read from the wire, before deltas.
enum Wire {
    Number(f64),
    Histogram(Histogram),
}

struct Point<'a> {
    attributes: Attributes<'a>,
    start_ns: u64,
    time_ns: u64,
    read: Result<Wire, String>,
}

/// What the OTLP metric is, for the rules of what it may feed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    Gauge,
    /// A sum: monotonic or not, cumulative or not.
    Sum {
        monotonic: bool,
        cumulative: bool,
    },
    Histogram {
        cumulative: bool,
    },
}

fn number(p: &NumberDataPoint) -> Result<Wire, String> {
    match p.value {
        Some(number_data_point::Value::AsDouble(v)) => Ok(Wire::Number(v)),
        Some(number_data_point::Value::AsInt(v)) => Ok(Wire::Number(v as f64)),
        None => Err("a number point with no value".into()),
    }
}

fn explicit(p: &HistogramDataPoint) -> Result<Wire, String> {
    if p.bucket_counts.is_empty() {
        return Err("a histogram point with no buckets".into());
    }
    if p.bucket_counts.len() != p.explicit_bounds.len() + 1 {
        return Err("a histogram point needs one more bucket count than bounds".into());
    }
    if p.explicit_bounds
        .windows(2)
        .any(|w| w[0].partial_cmp(&w[1]) != Some(std::cmp::Ordering::Less))
        || p.explicit_bounds.iter().any(|b| !b.is_finite())
    {
        return Err("histogram bounds must be finite and increasing".into());
    }
    Ok(Wire::Histogram(Histogram {
        count: p.count,
        sum: p.sum,
        min: p.min,
        max: p.max,
        buckets: Buckets::Explicit(ExplicitBuckets {
            bounds: p.explicit_bounds.clone(),
            counts: p.bucket_counts.clone(),
        }),
    }))
}

fn exponential(p: &ExponentialHistogramDataPoint) -> Result<Wire, String> {
    if !(cutover_core::otel::MIN_SCALE..=cutover_core::otel::MAX_SCALE).contains(&p.scale) {
        return Err(format!(
            "exponential histogram scale {} is outside -10..=20",
            p.scale
        ));
    }
    if p.negative
        .as_ref()
        .is_some_and(|n| n.bucket_counts.iter().any(|c| *c > 0))
    {
        return Err("negative values: cutover's metrics never go below zero".into());
    }
    let positive = p.positive.clone().unwrap_or_default();
    Ok(Wire::Histogram(Histogram {
        count: p.count,
        sum: p.sum,
        min: p.min,
        max: p.max,
        buckets: Buckets::Exponential(ExpBuckets {
            scale: p.scale,
            zero_count: p.zero_count,
            offset: positive.offset,
            counts: positive.bucket_counts,
        }),
    }))
}

fn cumulative(temporality: i32) -> Option<bool> {
    match AggregationTemporality::try_from(temporality).ok()? {
        AggregationTemporality::Cumulative => Some(true),
        AggregationTemporality::Delta => Some(false),
        AggregationTemporality::Unspecified => None,
    }
}

/// Turns a request's metrics into samples for every taker whose plan maps them.
pub fn take_metrics(
    request: &ExportMetricsServiceRequest,
    takers: &mut [Taker<'_>],
    now: Millis,
    tally: &mut Tally,
) {
    // OTLP metric name -> (taker, plan metric index).
    let mut wanted: HashMap<&str, Vec<(usize, usize)>> = HashMap::new();
    for (t, taker) in takers.iter().enumerate() {
        for (m, metric) in taker.plan.metrics.iter().enumerate() {
            if let Some(OtelFrom::Metric(name)) = metric.otel.as_ref().map(|o| &o.from) {
                wanted.entry(name.as_str()).or_default().push((t, m));
            }
        }
    }
    let mut next_point = 0usize;
    for rm in &request.resource_metrics {
        let resource = rm.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
        for sm in &rm.scope_metrics {
            let scope = sm.scope.as_ref().map_or("", |s| s.name.as_str());
            for metric in &sm.metrics {
                let histogram = |t: i32| {
                    cumulative(t)
                        .map(|c| Shape::Histogram { cumulative: c })
                        .ok_or_else(|| "a histogram with no temporality".to_string())
                };
                let (shape, points): (Result<Shape, String>, Vec<Point>) = match &metric.data {
                    Some(Data::Gauge(g)) => {
                        (Ok(Shape::Gauge), points(resource, &g.data_points, number))
                    }
                    Some(Data::Sum(s)) => (
                        cumulative(s.aggregation_temporality)
                            .map(|c| Shape::Sum {
                                monotonic: s.is_monotonic,
                                cumulative: c,
                            })
                            .ok_or_else(|| "a sum with no temporality".to_string()),
                        points(resource, &s.data_points, number),
                    ),
                    Some(Data::Histogram(h)) => (
                        histogram(h.aggregation_temporality),
                        points(resource, &h.data_points, explicit),
                    ),
                    Some(Data::ExponentialHistogram(h)) => (
                        histogram(h.aggregation_temporality),
                        points(resource, &h.data_points, exponential),
                    ),
                    Some(Data::Summary(s)) => {
                        for _ in &s.data_points {
                            tally.points += 1;
                            tally.reject(next_point, format!("metric \"{}\": a summary has no buckets to merge; export a histogram", metric.name));
                            next_point += 1;
                        }
                        continue;
                    }
                    None => {
                        tally.points += 1;
                        tally.reject(
                            next_point,
                            format!(
                                "metric \"{}\": no data, or data that could not be read",
                                metric.name
                            ),
                        );
                        next_point += 1;
                        continue;
                    }
                };
                let targets = wanted.get(metric.name.as_str());
                for p in points {
                    let id = next_point;
                    next_point += 1;
                    tally.points += 1;
                    let Some(targets) = targets else {
                        tally.reject(id, format!("metric \"{}\": no plan maps it", metric.name));
                        continue;
                    };
                    let shape = match &shape {
                        Ok(s) => *s,
                        Err(e) => {
                            tally.reject(id, format!("metric \"{}\": {e}", metric.name));
                            continue;
                        }
                    };
                    let mut took = false;
                    let mut why: Option<String> = None;
                    for &(t, m) in targets {
                        let taker = &mut takers[t];
                        let plan_metric = &taker.plan.metrics[m];
                        let Some(source) = plan_metric.otel.as_ref() else {
                            continue;
                        };
                        if !p.attributes.matches(source) {
                            continue;
                        }
                        let mut stream = DefaultHasher::new();
                        (m, scope, metric.name.as_str()).hash(&mut stream);
                        p.attributes.hash(&mut stream);
                        let stream = stream.finish();
                        match samples_of(
                            &p,
                            shape,
                            &metric.unit,
                            plan_metric,
                            m,
                            source,
                            stream,
                            taker.deltas,
                            now,
                            id,
                        ) {
                            Ok(samples) => {
                                took = true;
                                taker.samples.extend(samples);
                            }
                            Err(e) => {
                                why.get_or_insert(format!(
                                    "metric \"{}\" for {}: {e}",
                                    metric.name, plan_metric.id
                                ));
                            }
                        }
                    }
                    if !took {
                        tally.reject(
                            id,
                            why.unwrap_or_else(|| {
                                format!("metric \"{}\": no plan's match selects it", metric.name)
                            }),
                        );
                    }
                }
            }
        }
    }
}

/// What every kind of data point has: attributes and times.
trait DataPoint {
    fn attributes(&self) -> &[KeyValue];
    fn times(&self) -> (u64, u64);
}

macro_rules! data_point {
    ($($t:ty),*) => {$(
        impl DataPoint for $t {
            fn attributes(&self) -> &[KeyValue] {
                &self.attributes
            }
            fn times(&self) -> (u64, u64) {
                (self.start_time_unix_nano, self.time_unix_nano)
            }
        }
    )*};
}
data_point!(
    NumberDataPoint,
    HistogramDataPoint,
    ExponentialHistogramDataPoint
);

/// A metric's points, each read by `read`, with the resource's attributes behind its own.
fn points<'a, P: DataPoint>(
    resource: &'a [KeyValue],
    all: &'a [P],
    read: fn(&P) -> Result<Wire, String>,
) -> Vec<Point<'a>> {
    all.iter()
        .map(|p| {
            let (start_ns, time_ns) = p.times();
            Point {
                attributes: Attributes {
                    point: p.attributes(),
                    resource,
                },
                start_ns,
                time_ns,
                read: read(p),
            }
        })
        .collect()
}

/// The samples one point gives one plan metric: `Ok(empty)` for a point that counts nothing
/// (a baseline, a retry).
#[allow(clippy::too_many_arguments)]
fn samples_of(
    p: &Point<'_>,
    shape: Shape,
    unit: &str,
    metric: &Metric,
    index: usize,
    source: &OtelSource,
    stream: u64,
    deltas: &mut Deltas,
    now: Millis,
    id: usize,
) -> Result<Vec<Weighted>, String> {
    let read = p.read.as_ref().map_err(Clone::clone)?;
    let ts = millis(p.time_ns, now);
    let labels = p.attributes.labels(source)?;
    let recent_ns = u64::try_from(now.saturating_sub(RECENT)).unwrap_or(0) * 1_000_000;
    // Cumulative sums and histograms become deltas; gauges and delta points are as sent.
    let value = match (read, shape) {
        (Wire::Number(v), Shape::Gauge) => PointValue::Number(*v),
        (Wire::Number(v), Shape::Sum { .. }) if metric.kind == MetricKind::Gauge => {
            PointValue::Number(*v)
        }
        (
            Wire::Number(v),
            Shape::Sum {
                monotonic,
                cumulative,
            },
        ) => {
            if !monotonic {
                return Err("an up-down counter is a level: map it to a gauge".into());
            }
            if cumulative {
                match deltas.delta(
                    stream,
                    p.start_ns,
                    p.time_ns,
                    PointValue::Number(*v),
                    recent_ns,
                    now,
                ) {
                    Delta::New(d) => d,
                    Delta::Baseline | Delta::Stale => return Ok(Vec::new()),
                }
            } else {
                PointValue::Number(*v)
            }
        }
        (Wire::Histogram(h), Shape::Histogram { cumulative: true }) => {
            match deltas.delta(
                stream,
                p.start_ns,
                p.time_ns,
                PointValue::Histogram(h.clone()),
                recent_ns,
                now,
            ) {
                Delta::New(d) => d,
                Delta::Baseline | Delta::Stale => return Ok(Vec::new()),
            }
        }
        (Wire::Histogram(h), _) => PointValue::Histogram(h.clone()),
        (Wire::Number(_), Shape::Histogram { .. }) => {
            return Err("a histogram point with a number".into());
        }
    };
    let one = |value: WeightedValue, count: u64| Weighted {
        metric: index,
        labels: labels.clone(),
        ts,
        value,
        count,
        point: id,
    };
    let factor = || {
        let from = if unit.is_empty() {
            source.unit.as_deref().unwrap_or("")
        } else {
            unit
        };
        unit_factor(from, metric.unit.as_deref()).ok_or_else(|| {
            format!(
                "unit {from} cannot become {}",
                metric.unit.as_deref().unwrap_or("?")
            )
        })
    };
    let counted = |n: f64| -> Result<u64, String> {
        if n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n < 9.0e15 {
            Ok(n as u64)
        } else {
            Err(format!("{n} is not a count"))
        }
    };
    let in_range = |v: f64| -> Result<f64, String> {
        match metric.range {
            Some([low, high]) if !(low..=high).contains(&v) => {
                Err(format!("{v} is outside the metric's range [{low}, {high}]"))
            }
            _ if !v.is_finite() => Err("not a finite number".into()),
            _ => Ok(v),
        }
    };
    let category = |attributes: &Attributes| -> Result<usize, String> {
        let attribute = source.category.as_deref().unwrap_or("");
        let v = attributes
            .get(attribute)
            .ok_or_else(|| format!("no attribute {attribute} to name the category"))?;
        metric
            .values
            .iter()
            .position(|x| *x == v)
            .ok_or_else(|| format!("{attribute} = {v:?} is not one of {:?}", metric.values))
    };
    let yes = || {
        source.true_when.as_ref().is_some_and(|t| {
            let v = p.attributes.get(&t.attribute);
            match &t.equals {
                Some(want) => v.as_deref() == Some(want.as_str()),
                None => v.is_some(),
            }
        })
    };
    Ok(match (metric.kind, value) {
        (MetricKind::Distribution, PointValue::Histogram(h)) => {
            let f = factor()?;
            let mut out = Vec::new();
            for (v, n) in h.values() {
                out.push(one(WeightedValue::Number(in_range(v * f)?), n));
            }
            out
        }
        (MetricKind::Distribution | MetricKind::Gauge, PointValue::Number(v))
            if matches!(shape, Shape::Gauge) || metric.kind == MetricKind::Gauge =>
        {
            vec![one(WeightedValue::Number(in_range(v * factor()?)?), 1)]
        }
        (MetricKind::Counter, PointValue::Number(v)) => {
            vec![one(WeightedValue::Number(in_range(v * factor()?)?), 1)]
        }
        (MetricKind::Counter, PointValue::Histogram(h)) => {
            vec![one(WeightedValue::Number(h.count as f64), 1)]
        }
        (MetricKind::Ratio, PointValue::Histogram(h)) => {
            vec![one(WeightedValue::Flag(yes()), h.count)]
        }
        (MetricKind::Ratio, PointValue::Number(v)) if !matches!(shape, Shape::Gauge) => {
            vec![one(WeightedValue::Flag(yes()), counted(v)?)]
        }
        (MetricKind::Category, PointValue::Histogram(h)) => {
            vec![one(
                WeightedValue::Category(category(&p.attributes)?),
                h.count,
            )]
        }
        (MetricKind::Category, PointValue::Number(v)) if !matches!(shape, Shape::Gauge) => {
            vec![one(
                WeightedValue::Category(category(&p.attributes)?),
                counted(v)?,
            )]
        }
        (kind, _) => {
            return Err(format!(
                "a {} cannot feed a {kind:?} metric",
                match shape {
                    Shape::Gauge => "gauge",
                    Shape::Sum { .. } => "sum",
                    Shape::Histogram { .. } => "histogram",
                }
            ));
        }
    }
    .into_iter()
    .filter(|w| w.count > 0)
    .collect())
}

/// The log records of `feature_flag.evaluation` events, as category samples of the plan
/// metrics that name their flag (`otel = { flag = "search-mode" }`).
pub fn take_logs(
    request: &ExportLogsServiceRequest,
    takers: &mut [Taker<'_>],
    now: Millis,
    tally: &mut Tally,
) {
    let mut next = 0usize;
    for rl in &request.resource_logs {
        let resource = rl.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
        for sl in &rl.scope_logs {
            for record in &sl.log_records {
                let id = next;
                next += 1;
                tally.points += 1;
                let attributes = Attributes {
                    point: &record.attributes,
                    resource,
                };
                let event = if record.event_name.is_empty() {
                    attributes.get("event.name").unwrap_or_default()
                } else {
                    record.event_name.clone()
                };
                if event != "feature_flag.evaluation" {
                    tally.reject(
                        id,
                        "a log record that is not a feature_flag.evaluation event".into(),
                    );
                    continue;
                }
                let Some(key) = attributes.get("feature_flag.key") else {
                    tally.reject(
                        id,
                        "a feature_flag.evaluation with no feature_flag.key".into(),
                    );
                    continue;
                };
                let variant = attributes
                    .get("feature_flag.result.variant")
                    .or_else(|| attributes.get("feature_flag.variant"))
                    .or_else(|| attributes.get("feature_flag.result.value"));
                let ts_ns = if record.time_unix_nano != 0 {
                    record.time_unix_nano
                } else {
                    record.observed_time_unix_nano
                };
                let ts = millis(ts_ns, now);
                let mut took = false;
                let mut why = None;
                for taker in takers.iter_mut() {
                    for (m, metric) in taker.plan.metrics.iter().enumerate() {
                        let Some(source) = &metric.otel else { continue };
                        if source.from != OtelFrom::Flag(key.clone()) || !attributes.matches(source)
                        {
                            continue;
                        }
                        let result = variant
                            .as_ref()
                            .ok_or_else(|| "no variant (feature_flag.result.variant)".to_string())
                            .and_then(|v| {
                                metric.values.iter().position(|x| x == v).ok_or_else(|| {
                                    format!("variant {v:?} is not one of {:?}", metric.values)
                                })
                            })
                            .and_then(|c| Ok((c, attributes.labels(source)?)));
                        match result {
                            Ok((c, labels)) => {
                                took = true;
                                taker.samples.push(Weighted {
                                    metric: m,
                                    labels,
                                    ts,
                                    value: WeightedValue::Category(c),
                                    count: 1,
                                    point: id,
                                });
                            }
                            Err(e) => {
                                why.get_or_insert(format!("flag {key} for {}: {e}", metric.id));
                            }
                        }
                    }
                }
                if !took {
                    tally.reject(
                        id,
                        why.unwrap_or_else(|| format!("flag {key}: no plan maps it")),
                    );
                }
            }
        }
    }
}

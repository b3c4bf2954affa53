//! Prometheus as a metric source. A plan metric with `source = "prometheus"` is a gauge whose
//! value is its PromQL query; a gate may also be a raw `promql("...")` condition. A poller asks
//! the Prometheus HTTP API every interval: `/api/v1/query` for each metric (recorded as samples
//! into the rollout's windows, so charts, windows, persistence and hold timers treat it like
//! pushed data) and for each raw query (kept for the evaluation); `/api/v1/query_range` once at
//! start to fill the charts' history. A failed query makes every expression over it "no data"
//! with the error, never a pass on samples held from before.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use cutover_core::query::{Aggregate, MetricSource, Selector};
use cutover_core::time::Millis;
use cutover_core::window::MetricStore;
use serde::Deserialize;

/// Where Prometheus is and how to ask it.
#[derive(Debug, Clone)]
pub struct PromConfig {
    pub url: String,
    pub auth: Option<Auth>,
    pub interval: Duration,
    pub timeout: Duration,
}

#[derive(Clone)]
pub enum Auth {
    Bearer(String),
    Basic { user: String, password: String },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::Bearer(_) => "Bearer(***)",
            Auth::Basic { .. } => "Basic(***)",
        })
    }
}

impl PromConfig {
    /// `url` with credentials from the environment: `CUTOVER_PROMETHEUS_TOKEN` (bearer) or
    /// `CUTOVER_PROMETHEUS_USER` and `CUTOVER_PROMETHEUS_PASSWORD` (basic). Secrets never go in
    /// plan or config files.
    pub fn from_env(url: &str, interval: Duration) -> PromConfig {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let auth = match (
            var("CUTOVER_PROMETHEUS_TOKEN"),
            var("CUTOVER_PROMETHEUS_USER"),
        ) {
            (Some(token), _) => Some(Auth::Bearer(token)),
            (None, Some(user)) => Some(Auth::Basic {
                user,
                password: var("CUTOVER_PROMETHEUS_PASSWORD").unwrap_or_default(),
            }),
            (None, None) => None,
        };
        PromConfig {
            url: url.trim_end_matches('/').to_string(),
            auth,
            interval,
            timeout: Duration::from_secs(5),
        }
    }
}

/// What the last poll learned, read by the evaluation.
#[derive(Debug, Default)]
pub struct PromStatus {
    /// Metric id -> why its values cannot be trusted now.
    pub failing: HashMap<String, String>,
    /// Raw query -> its value (None: no series), or the error.
    pub instant: HashMap<String, Result<Option<f64>, String>>,
}

impl PromStatus {
    /// Before the first poll nothing is known, and nothing passes.
    pub fn waiting(rollout_metrics: impl IntoIterator<Item = String>, why: &str) -> PromStatus {
        PromStatus {
            failing: rollout_metrics
                .into_iter()
                .map(|m| (m, why.to_string()))
                .collect(),
            instant: HashMap::new(),
        }
    }
}

/// The metric windows plus what Prometheus said: the source every evaluation reads.
pub struct Source<'a> {
    pub store: &'a MetricStore,
    pub prom: &'a PromStatus,
}

impl MetricSource for Source<'_> {
    fn aggregate(
        &self,
        metric: &str,
        selector: &Selector,
        aggregate: &Aggregate,
        window: Millis,
        at: Millis,
    ) -> Option<f64> {
        self.store
            .aggregate(metric, selector, aggregate, window, at)
    }

    fn label_values(
        &self,
        metric: &str,
        selector: &Selector,
        label: &str,
        window: Millis,
        at: Millis,
    ) -> Vec<String> {
        self.store.label_values(metric, selector, label, window, at)
    }

    fn tally(
        &self,
        metric: &str,
        selector: &Selector,
        window: Millis,
        at: Millis,
    ) -> Option<cutover_core::sequential::Tally> {
        if self.prom.failing.contains_key(metric) {
            return None;
        }
        self.store.tally(metric, selector, window, at)
    }

    fn promql(&self, query: &str, _at: Millis) -> Result<Option<f64>, String> {
        self.prom
            .instant
            .get(query)
            .cloned()
            .unwrap_or_else(|| Err("not queried yet".into()))
    }

    fn unavailable(&self, metric: &str) -> Option<String> {
        self.prom.failing.get(metric).cloned()
    }
}

pub const NOT_CONFIGURED: &str = "no Prometheus configured: start the server with --prometheus URL";

#[derive(Deserialize)]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum ApiData {
    Vector(Vec<VectorSample>),
    Matrix(Vec<MatrixSeries>),
    Scalar((f64, String)),
    String(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct VectorSample {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

#[derive(Deserialize)]
struct MatrixSeries {
    metric: BTreeMap<String, String>,
    values: Vec<(f64, String)>,
}

/// One series' labels (without `__name__`) and its samples as (ms, value).
pub type Series = (BTreeMap<String, String>, Vec<(Millis, f64)>);

/// The largest answer read from Prometheus: a range query of the plan's series over a chart's
/// range is far below it; a larger one is refused, not buffered.
const ANSWER_LIMIT: usize = 32 * 1024 * 1024;

/// A small client for the Prometheus HTTP API.
#[derive(Clone)]
pub struct PromClient {
    http: reqwest::Client,
    config: PromConfig,
}

fn parse_value(v: &str) -> Option<f64> {
    // Prometheus writes NaN and +Inf as such; neither is a value a gate can use.
    v.parse::<f64>().ok().filter(|v| v.is_finite())
}

fn labels(mut metric: BTreeMap<String, String>) -> BTreeMap<String, String> {
    metric.remove("__name__");
    metric
}

impl PromClient {
    pub fn new(config: PromConfig) -> anyhow::Result<PromClient> {
        let http = crate::net::trusted_client(config.timeout)?;
        Ok(PromClient { http, config })
    }

    pub fn config(&self) -> &PromConfig {
        &self.config
    }

    async fn get(&self, path: &str, params: &[(&str, String)]) -> Result<ApiData, String> {
        // One retry: a pooled keep-alive connection that the server (or a proxy) closed
        // fails with a send error although a fresh connection might succeed.
        let response = match self.send(path, params).await {
            Err(e) if !e.is_timeout() && !e.is_connect() => self.send(path, params).await,
            first => first,
        }
        .map_err(|e| {
            if e.is_timeout() {
                format!("Prometheus did not answer within {:?}", self.config.timeout)
            } else if e.is_connect() || e.is_request() {
                format!(
                    "cannot reach Prometheus at {}: {}",
                    self.config.url,
                    crate::net::root_cause(&e)
                )
            } else {
                format!("Prometheus request failed: {}", crate::net::root_cause(&e))
            }
        })?;
        let status = response.status();
        if status.is_redirection() {
            return Err(format!(
                "Prometheus answered {status} (redirects are not followed): point the URL at the server itself"
            ));
        }
        let bytes = crate::net::read_bounded(response, ANSWER_LIMIT)
            .await
            .map_err(|e| format!("Prometheus answered {status}, unreadable: {e}"))?;
        let body: ApiResponse = serde_json::from_slice(&bytes)
            .map_err(|e| format!("Prometheus answered {status} with an unreadable body: {e}"))?;
        match (body.status.as_str(), body.data) {
            ("success", Some(data)) => Ok(data),
            _ => Err(format!(
                "Prometheus: {}",
                body.error.unwrap_or_else(|| format!("status {status}"))
            )),
        }
    }

    async fn send(
        &self,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<reqwest::Response, reqwest::Error> {
        let request = self
            .http
            .get(format!("{}{path}", self.config.url))
            .query(params);
        match &self.config.auth {
            Some(Auth::Bearer(token)) => request.bearer_auth(token),
            Some(Auth::Basic { user, password }) => request.basic_auth(user, Some(password)),
            None => request,
        }
        .send()
        .await
    }

    /// `/api/v1/query` at `at`: each series' labels and value.
    pub async fn query(&self, query: &str, at: Millis) -> Result<Vec<Series>, String> {
        let params = [
            ("query", query.to_string()),
            ("time", format!("{:.3}", at as f64 / 1000.0)),
        ];
        let one = |t: f64, v: &str| parse_value(v).map(|v| ((t * 1000.0) as Millis, v));
        Ok(match self.get("/api/v1/query", &params).await? {
            ApiData::Vector(samples) => samples
                .into_iter()
                .map(|s| {
                    let point = one(s.value.0, &s.value.1);
                    (labels(s.metric), point.into_iter().collect())
                })
                .collect(),
            ApiData::Scalar((t, v)) => vec![(BTreeMap::new(), one(t, &v).into_iter().collect())],
            ApiData::Matrix(_) | ApiData::String(_) => {
                return Err("the query must return an instant vector or a scalar".into());
            }
        })
    }

    /// `/api/v1/query_range` over `[from, to]` every `step`.
    pub async fn query_range(
        &self,
        query: &str,
        from: Millis,
        to: Millis,
        step: Duration,
    ) -> Result<Vec<Series>, String> {
        let params = [
            ("query", query.to_string()),
            ("start", format!("{:.3}", from as f64 / 1000.0)),
            ("end", format!("{:.3}", to as f64 / 1000.0)),
            ("step", format!("{}s", step.as_secs().max(1))),
        ];
        match self.get("/api/v1/query_range", &params).await? {
            ApiData::Matrix(series) => Ok(series
                .into_iter()
                .map(|s| {
                    let points = s
                        .values
                        .iter()
                        .filter_map(|(t, v)| Some(((t * 1000.0) as Millis, parse_value(v)?)))
                        .collect();
                    (labels(s.metric), points)
                })
                .collect()),
            _ => Err("query_range did not return a matrix".into()),
        }
    }
}

//! The client half of the `cutover` binary: commands that talk to a running server over HTTP
//! with a bearer token, for on-call terminals and CI jobs. Exit codes scripts can rely on:
//! 0 done, 1 refused (the server's reason is printed), 2 usage, 3 unreachable or not signed in.

pub mod act;
pub mod export;
pub mod gate_check;
pub mod report;
pub mod simulate;
pub mod status;

use std::process::ExitCode;
use std::time::Duration;

use crate::net::root_cause;
use serde::de::DeserializeOwned;
use serde_json::Value;

// The commands that talk to a server, flattened into the top-level `Command`. The actions that
// share `ActArgs` carry their help on their variant; the others carry it on their own `Args`.
#[derive(clap::Subcommand)]
pub enum ClientCommand {
    Status(status::StatusArgs),
    Export(export::ExportArgs),
    /// Start a rollout: enter its first stage.
    ///
    /// Example: cutover start spiralogic
    Start(act::ActArgs),
    /// Progress a rollout to its next stage (refused, with the reasons, until gates hold).
    ///
    /// Example: cutover progress spiralogic
    Progress(act::ActArgs),
    /// Pause a rollout: traffic stays where it is, progress stops.
    ///
    /// Example: cutover pause spiralogic --reason "investigating p99"
    Pause(act::ActArgs),
    /// Resume a paused or killed rollout (after a kill a reason is required).
    ///
    /// Example: cutover resume spiralogic --reason "fix deployed"
    Resume(act::ActArgs),
    /// Kill switch: traffic to 0 at once. A reason is required and goes in the audit log.
    ///
    /// Example: cutover kill spiralogic --reason "error rate 4% on canary"
    Kill(act::ActArgs),
    /// Step back to the previous stage (its traffic and flags). A reason is required.
    ///
    /// Example: cutover step-back lens-v1 --reason "recall dropped in canary-50"
    StepBack(act::ActArgs),
    /// Close a rollout in hypercare once its watch has run and its close checklists are done.
    ///
    /// Example: cutover close pags-cutover
    Close(act::ActArgs),
    /// Approve the sign-off for the next stage.
    ///
    /// Example: cutover approve lens-v1
    Approve(act::ActArgs),
    Check(act::CheckArgs),
    Override(act::OverrideArgs),
    Schedule(act::ScheduleArgs),
    Decide(act::DecideArgs),
    Ack(act::AckArgs),
    Adjust(act::AdjustArgs),
    Report(report::ReportArgs),
    GateCheck(gate_check::GateCheckArgs),
    Simulate(simulate::SimulateArgs),
}

impl ClientCommand {
    /// Runs the command; prints its error and turns it into the documented exit code.
    pub async fn run(self) -> ExitCode {
        let result = match self {
            ClientCommand::Status(args) => status::run(args).await,
            ClientCommand::Export(args) => export::run(args).await,
            ClientCommand::Start(args) => act::run(act::Act::Start, args).await,
            ClientCommand::Progress(args) => act::run(act::Act::Progress, args).await,
            ClientCommand::Pause(args) => act::run(act::Act::Pause, args).await,
            ClientCommand::Resume(args) => act::run(act::Act::Resume, args).await,
            ClientCommand::Kill(args) => act::run(act::Act::Kill, args).await,
            ClientCommand::StepBack(args) => act::run(act::Act::StepBack, args).await,
            ClientCommand::Close(args) => act::run(act::Act::Close, args).await,
            ClientCommand::Approve(args) => act::run(act::Act::Approve, args).await,
            ClientCommand::Check(args) => act::run_check(args).await,
            ClientCommand::Override(args) => act::run_override(args).await,
            ClientCommand::Schedule(args) => act::run_schedule(args).await,
            ClientCommand::Decide(args) => act::run_decide(args).await,
            ClientCommand::Ack(args) => act::run_ack(args).await,
            ClientCommand::Adjust(args) => act::run_adjust(args).await,
            ClientCommand::Report(args) => report::run(args).await,
            ClientCommand::GateCheck(args) => gate_check::run(args).await,
            ClientCommand::Simulate(args) => simulate::run(args).await,
        };
        match result {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(e.exit_code())
            }
        }
    }
}

/// `--watch` with `--interval SECS` as a period; at least a second, so a typo cannot spin.
fn every(watch: bool, interval: u64) -> Option<Duration> {
    watch.then(|| Duration::from_secs(interval.max(1)))
}

/// Why a client command did not succeed, and so which exit code it ends with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server understood and said no (403, 404, 409, 422...), or the check failed.
    #[error("{0}")]
    Refused(String),
    /// 401: no token, or one the server does not know.
    #[error("{0}")]
    Auth(String),
    /// No answer: connection refused, timeout, or the server failed (5xx).
    #[error("{0}")]
    Unreachable(String),
    /// A local problem: a file that cannot be written, an answer that cannot be read.
    #[error("{0}")]
    Local(String),
}

impl ClientError {
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Refused(_) | ClientError::Local(_) => 1,
            ClientError::Auth(_) | ClientError::Unreachable(_) => 3,
        }
    }
}

/// Where the server is and who we are.
#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// The cutover server.
    #[arg(long, env = "CUTOVER_SERVER", default_value = "http://127.0.0.1:8787")]
    pub server: String,
    /// Access token (as `cutover demo` or `cutover user add` printed it).
    #[arg(long, env = "CUTOVER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// An HTTP client for one server and token.
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    pub fn new(connection: &Connection) -> Result<Client, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("cutover/", env!("CARGO_PKG_VERSION")))
            // A proxy's 302 to a sign-in page is an answer to report, not a hop to follow.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ClientError::Local(format!("cannot set up HTTP: {e}")))?;
        Ok(Client {
            base: connection.server.trim_end_matches('/').to_string(),
            token: connection.token.clone().filter(|t| !t.trim().is_empty()),
            http,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.map_err(|e| {
            ClientError::Unreachable(format!("cannot reach {}: {}", self.base, root_cause(&e)))
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| text.trim().to_string());
        Err(match status.as_u16() {
            401 if self.token.is_none() => ClientError::Auth(format!(
                "not signed in: pass --token or set CUTOVER_TOKEN ({message})"
            )),
            401 => ClientError::Auth(format!("{} refused the token: {message}", self.base)),
            code if code >= 500 => {
                ClientError::Unreachable(format!("{} failed ({status}): {message}", self.base))
            }
            _ => ClientError::Refused(message),
        })
    }

    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let response = self
            .send(self.http.get(format!("{}{path}", self.base)))
            .await?;
        response
            .json()
            .await
            .map_err(|e| ClientError::Local(format!("cannot read the answer to {path}: {e}")))
    }

    pub async fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let response = self
            .send(self.http.get(format!("{}{path}", self.base)))
            .await?;
        response
            .text()
            .await
            .map_err(|e| ClientError::Unreachable(format!("reading {path}: {e}")))
    }

    pub async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<T, ClientError> {
        let request = self.http.post(format!("{}{path}", self.base)).json(body);
        let response = self.send(request).await?;
        response
            .json()
            .await
            .map_err(|e| ClientError::Local(format!("cannot read the answer to {path}: {e}")))
    }

    /// POSTs a raw body (NDJSON events) and returns the JSON answer.
    pub async fn post_ndjson(&self, path: &str, body: String) -> Result<Value, ClientError> {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-ndjson")
            .body(body);
        let response = self.send(request).await?;
        response
            .json()
            .await
            .map_err(|e| ClientError::Local(format!("cannot read the answer to {path}: {e}")))
    }
}

pub use cutover_core::route::segment;

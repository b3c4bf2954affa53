//! `cutover export ROLLOUT --csv FILE`: appends the rollout's time series and gate verdicts to
//! a CSV file, one row per completed 10 s step. Appending to an existing file continues after
//! its last row (never a duplicate row), and refuses a file whose columns differ.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use super::{Client, ClientError, Connection, every, segment};

/// Append a rollout's time series and gate verdicts to a CSV file.
///
/// One row per completed 10 s step (1 min beyond an hour). Appending continues after the
/// file's last row, so repeated runs never duplicate a row.
///
/// Examples:
///   cutover export spiralogic --csv baseline_metrics.csv --since 2h
///   cutover export spiralogic --csv cutover_metrics.csv --watch --interval 60
#[derive(clap::Args)]
pub struct ExportArgs {
    rollout: String,
    #[arg(long, value_name = "FILE")]
    csv: PathBuf,
    /// How far back the first export reaches, e.g. 15m, 2h.
    #[arg(long, default_value = "1h")]
    since: String,
    /// Keep appending every --interval seconds until interrupted.
    #[arg(long)]
    watch: bool,
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    interval: u64,
    #[command(flatten)]
    connection: Connection,
}

pub(super) async fn run(args: ExportArgs) -> Result<ExitCode, ClientError> {
    let client = Client::new(&args.connection)?;
    let watch = every(args.watch, args.interval);
    rounds(&client, &args.rollout, &args.csv, &args.since, watch).await?;
    Ok(ExitCode::SUCCESS)
}

/// The header and the `ts_ms` of the last row of an existing export, if any.
fn existing(path: &Path) -> Result<Option<(String, Option<i64>)>, ClientError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ClientError::Local(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return Ok(None);
    };
    let last = lines
        .next_back()
        .and_then(|l| l.split(',').nth(1))
        .and_then(|ts| ts.parse().ok());
    Ok(Some((header.to_string(), last)))
}

/// One export round: fetches rows after the file's last one and appends them. Returns how
/// many rows were written.
pub async fn append(
    client: &Client,
    rollout: &str,
    path: &Path,
    since: &str,
) -> Result<usize, ClientError> {
    let previous = existing(path)?;
    let mut query = format!(
        "/api/rollouts/{}/export.csv?since={}",
        segment(rollout),
        segment(since)
    );
    if let Some((_, Some(after))) = &previous {
        query.push_str(&format!("&after={after}"));
    }
    let csv = client.get_text(&query).await?;
    let mut lines = csv.lines();
    let header = lines.next().unwrap_or_default();
    let rows: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
    let mut out = String::new();
    match &previous {
        Some((old, _)) if old != header => {
            return Err(ClientError::Refused(format!(
                "{} has other columns than {rollout}'s export (a different rollout or plan?): \
                 write to a new file",
                path.display()
            )));
        }
        Some(_) => {}
        None => {
            out.push_str(header);
            out.push('\n');
        }
    }
    for row in &rows {
        out.push_str(row);
        out.push('\n');
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| ClientError::Local(format!("cannot open {}: {e}", path.display())))?;
    file.write_all(out.as_bytes())
        .and_then(|()| file.sync_data())
        .map_err(|e| ClientError::Local(format!("cannot write {}: {e}", path.display())))?;
    Ok(rows.len())
}

/// `--once` (default): one round. `--watch`: a round every `interval` until interrupted.
pub async fn rounds(
    client: &Client,
    rollout: &str,
    path: &Path,
    since: &str,
    watch: Option<Duration>,
) -> Result<(), ClientError> {
    loop {
        match append(client, rollout, path, since).await {
            Ok(n) => eprintln!("{rollout}: {n} row(s) appended to {}", path.display()),
            // While watching, an unreachable server is reported and retried.
            Err(ClientError::Unreachable(e)) if watch.is_some() => eprintln!("error: {e}"),
            Err(e) => return Err(e),
        }
        let Some(interval) = watch else {
            return Ok(());
        };
        tokio::time::sleep(interval).await;
    }
}

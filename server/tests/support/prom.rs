//! A real Prometheus for a test (Debian's `prometheus`): its own config and TSDB in a temporary
//! directory, a free loopback port, scraping the given targets every second; killed when
//! dropped or stopped. And a tiny exporter whose values the test sets.

// Each test binary includes this file and uses a different subset of it.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Prometheus {
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub url: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (`host:port`, path `/metrics`) every second and
    /// waits until it is ready.
    pub async fn start(targets: &[String]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: fixture\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(
            std::env::var("CUTOVER_PROMETHEUS_BIN").unwrap_or("prometheus".into()),
        )
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect(
            "cannot start prometheus: is Debian's `prometheus` installed? (./x test installs it)",
        );
        let prom = Prometheus {
            dir,
            child: Some(child),
            url: format!("http://127.0.0.1:{port}"),
        };
        let ready = format!("{}/-/ready", prom.url);
        for _ in 0..300 {
            if let Ok(r) = reqwest::get(&ready).await
                && r.status().is_success()
            {
                return prom;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "prometheus never became ready: {}",
            std::fs::read_to_string(prom.dir.path().join("prometheus.log")).unwrap_or_default()
        );
    }

    /// Kills Prometheus now, as if its machine went away.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Polls until Prometheus has a value for `query`.
    pub async fn wait_for_data(&self, query: &str) {
        let url = format!("{}/api/v1/query", self.url);
        for _ in 0..300 {
            let body: serde_json::Value = reqwest::Client::new()
                .get(&url)
                .query(&[("query", query)])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if body["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("prometheus never had data for {query}");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An exporter serving `/metrics` in text format from values the test changes.
#[derive(Clone, Default)]
pub struct Exporter {
    lines: Arc<Mutex<Vec<(String, f64)>>>,
}

impl Exporter {
    /// Serves on a loopback port; returns `host:port`.
    pub async fn serve(&self) -> String {
        let lines = self.lines.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let lines = lines.clone();
                async move {
                    let mut out = String::new();
                    for (series, value) in lines.lock().unwrap().iter() {
                        out.push_str(&format!("{series} {value}\n"));
                    }
                    out
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    /// Sets `series` (name with labels, e.g. `x{variant="canary"}`) to `value`.
    pub fn set(&self, series: &str, value: f64) {
        let mut lines = self.lines.lock().unwrap();
        match lines.iter_mut().find(|(s, _)| s == series) {
            Some(line) => line.1 = value,
            None => lines.push((series.to_string(), value)),
        }
    }
}

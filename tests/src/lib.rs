//! Harness for end-to-end tests: start the real `cutover` binary on a free loopback port with
//! a temp data dir, start ChromeDriver + headless Chromium, and stop both when dropped.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fantoccini::{Client, ClientBuilder, Locator};

/// The binary under test: `CUTOVER_BIN` (set by `./x test`), else the workspace's debug build.
pub fn cutover_bin() -> PathBuf {
    std::env::var_os("CUTOVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/cutover")
        })
}

/// Where tests leave screenshots for people to look at.
pub fn output_dir() -> PathBuf {
    let dir = std::env::var_os("CUTOVER_TEST_OUTPUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-output"));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// A loopback port nobody holds now.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running `cutover demo`, killed on drop.
pub struct Demo {
    child: Child,
    pub url: String,
    /// Role name → token, as the demo printed them.
    pub tokens: BTreeMap<String, String>,
    /// What it printed before it began serving (the stories of a launch in flight among it).
    pub printed: Vec<String>,
    /// Extra `cutover demo` arguments, kept for a restart.
    args: Vec<String>,
    /// The one core the server is given, if it was.
    cpu: Option<usize>,
    _data: tempfile::TempDir,
}

/// Runs `cutover demo` on `addr` over `data` (on one core, `cpu`, if given: `taskset` runs it
/// there from the start, so its runtime sizes itself to that core); returns the process, its
/// URL and what it printed per role.
/// A started demo: its process, URL, tokens by role, and what it printed before serving.
type Spawned = (Child, String, BTreeMap<String, String>, Vec<String>);

fn spawn_demo(
    addr: &str,
    data: &Path,
    args: &[String],
    cpu: Option<usize>,
    env: &[(String, String)],
) -> anyhow::Result<Spawned> {
    let bin = cutover_bin();
    let mut command = match cpu {
        Some(cpu) => {
            let mut taskset = Command::new("taskset");
            taskset.arg("-c").arg(cpu.to_string()).arg(&bin);
            taskset
        }
        None => Command::new(&bin),
    };
    let mut child = command
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .args(["demo", "--addr", addr, "--data-dir"])
        .arg(data)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut url = None;
    let mut tokens = BTreeMap::new();
    let mut printed = Vec::new();
    for line in lines.by_ref() {
        let line = line?;
        printed.push(line.clone());
        if let Some(rest) = line.split("at http://").nth(1) {
            url = Some(format!("http://{}", rest.trim()));
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if let [role, token] = words[..]
            && token.starts_with("cut_")
        {
            tokens.insert(role.to_string(), token.to_string());
        }
        if let Some(link) = line.trim().strip_prefix("stakeholder ") {
            tokens.insert("stakeholder".to_string(), link.trim().to_string());
        }
        if line.starts_with("simulated traffic") {
            break;
        }
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let url = url.context("the demo did not print its URL")?;
    Ok((child, url, tokens, printed))
}

impl Demo {
    /// Starts `cutover demo --fresh` (every rollout not started) on a free port and waits until
    /// it has printed its tokens.
    pub fn start() -> anyhow::Result<Demo> {
        Demo::start_with(&[])
    }

    /// Starts `cutover demo --fresh` with extra arguments, e.g. `--plans DIR --scenario ID=NAME`.
    pub fn start_with(args: &[&str]) -> anyhow::Result<Demo> {
        let mut all = vec!["--fresh"];
        all.extend_from_slice(args);
        Demo::start_in_flight(&all)
    }

    /// Starts `cutover demo` as a newcomer does: the example rollouts in flight, with their
    /// history replayed (it takes a while in a debug build), plus `args`.
    pub fn start_in_flight(args: &[&str]) -> anyhow::Result<Demo> {
        Demo::spawn(args, None)
    }

    /// Starts `cutover demo --fresh` given one core, `cpu`, as a server on a machine of one
    /// core would be (the benches' "server on one core"). The benches open thousands of
    /// streams with one viewer's token, so that token may hold them.
    pub fn start_on_cpu(cpu: usize) -> anyhow::Result<Demo> {
        Demo::spawn(&["--fresh", "--streams-per-sign-in", "20000"], Some(cpu))
    }

    /// Starts `cutover demo --fresh` on `addr` with `args` and environment variables `env`
    /// (a config file's secrets): for a server whose address must be known before it starts,
    /// such as the callback an OpenID provider is told.
    pub fn start_at(addr: &str, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Demo> {
        let data = tempfile::tempdir()?;
        let mut all = vec!["--fresh".to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (child, url, tokens, printed) = spawn_demo(addr, data.path(), &all, None, &env)?;
        Ok(Demo {
            child,
            url,
            tokens,
            printed,
            args: all,
            cpu: None,
            _data: data,
        })
    }

    fn spawn(args: &[&str], cpu: Option<usize>) -> anyhow::Result<Demo> {
        let data = tempfile::tempdir()?;
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let (child, url, tokens, printed) =
            spawn_demo("127.0.0.1:0", data.path(), &args, cpu, &[])?;
        Ok(Demo {
            child,
            url,
            tokens,
            printed,
            args,
            cpu,
            _data: data,
        })
    }

    /// The server's process id (to pin it to a core, or read its memory).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server process (the data stays).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same address and data, as after a crash or a deploy.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        let addr = self.url.trim_start_matches("http://").to_string();
        let (child, url, tokens, printed) =
            spawn_demo(&addr, self._data.path(), &self.args, self.cpu, &[])?;
        self.child = child;
        self.url = url;
        self.tokens = tokens;
        self.printed = printed;
        Ok(())
    }

    /// Where its SQLite database lives, for `cutover user ...` between a stop and a restart.
    pub fn data_dir(&self) -> &Path {
        self._data.path()
    }

    pub fn token(&self, role: &str) -> &str {
        self.tokens.get(role).map_or("", String::as_str)
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// ChromeDriver driving a headless Chromium; both stop on drop.
pub struct Browser {
    driver: Child,
    pub client: Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> anyhow::Result<Browser> {
        Browser::start_with(&[]).await
    }

    /// A browser with extra Chromium flags (`--enable-precise-memory-info`).
    pub async fn start_with(extra: &[&str]) -> anyhow::Result<Browser> {
        Browser::launch(extra, None).await
    }

    /// A phone: Chromium's mobile emulation at `width` x `height` CSS pixels (a touch screen
    /// that honours the page's viewport meta, as a stakeholder's phone does).
    pub async fn start_phone(width: u32, height: u32) -> anyhow::Result<Browser> {
        Browser::start_screen(width, height, true).await
    }

    /// A screen of exactly `width` x `height` CSS pixels: a phone (`mobile`: touch, the
    /// viewport meta honoured) or a wall display (pixel ratio 1).
    pub async fn start_screen(width: u32, height: u32, mobile: bool) -> anyhow::Result<Browser> {
        let metrics = serde_json::json!({
            "deviceMetrics": {
                "width": width,
                "height": height,
                "pixelRatio": if mobile { 2.0 } else { 1.0 },
                "mobile": mobile,
                "touch": mobile,
            },
        });
        Browser::launch(&[], Some(metrics)).await
    }

    async fn launch(extra: &[&str], mobile: Option<serde_json::Value>) -> anyhow::Result<Browser> {
        // Two TLS backends are linked (ring via reqwest, aws-lc via fantoccini); pick one.
        // Only plain loopback HTTP is ever spoken.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let port = free_port()?;
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start chromedriver (./x test installs it)")?;
        let profile = tempfile::tempdir()?;
        let mut args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1280,900",
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .map(str::to_string)
        .collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let mut options = serde_json::json!({ "binary": "/usr/bin/chromium", "args": args });
        if let Some(mobile) = mobile {
            options["mobileEmulation"] = mobile;
        }
        let caps = serde_json::json!({ "goog:chromeOptions": options });
        let caps = match caps {
            serde_json::Value::Object(map) => map,
            _ => bail!("capabilities must be an object"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            let attempt = ClientBuilder::rustls()?
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await;
            match attempt {
                Ok(client) => break client,
                Err(e) if Instant::now() > deadline => bail!("chromedriver did not start: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        Ok(Browser {
            driver,
            client,
            _profile: profile,
        })
    }

    /// Opens `url`, trying again (three times, a moment apart) when the request to
    /// ChromeDriver fails in transport: a dropped connection to the driver under load is not
    /// the app's failure, and a navigation is safe to repeat. Anything the driver answers is
    /// returned as it is.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        use fantoccini::error::CmdError;
        let mut tries = 0;
        loop {
            match self.client.goto(url).await {
                Err(CmdError::Failed(_) | CmdError::FailedC(_) | CmdError::Lost(_))
                    if tries < 3 =>
                {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                other => return Ok(other?),
            }
        }
    }

    /// Runs `source` in every page this browser opens from now on, before the page's own
    /// scripts (Chrome DevTools' `Page.addScriptToEvaluateOnNewDocument`): how a test puts
    /// itself between the app and a browser API, e.g. to lose an event on the way.
    pub async fn before_every_page(&self, source: &str) -> anyhow::Result<()> {
        self.cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            serde_json::json!({ "source": source }),
        )
        .await?;
        Ok(())
    }

    /// Sends a Chrome DevTools command (e.g. `Network.emulateNetworkConditions`) through
    /// ChromeDriver; returns its answer.
    pub async fn cdp(
        &self,
        cmd: &'static str,
        params: serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        Ok(self.client.issue_cmd(Cdp { cmd, params }).await?)
    }

    /// Text of the element with `data-testid`, or None if it is not on the page (yet).
    pub async fn text(&self, testid: &str) -> Option<String> {
        let element = self
            .client
            .find(Locator::Css(&format!("[data-testid='{testid}']")))
            .await
            .ok()?;
        element.text().await.ok()
    }

    /// Waits until `check` accepts the element's text; returns that text.
    pub async fn wait_text(
        &self,
        testid: &str,
        timeout: Duration,
        check: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.text(testid).await;
            if let Some(t) = text.as_ref().filter(|t| check(t)) {
                return Ok(t.clone());
            }
            if Instant::now() > deadline {
                let page = match self.client.find(Locator::Css("body")).await {
                    Ok(body) => body.text().await.unwrap_or_default(),
                    Err(_) => String::new(),
                };
                bail!(
                    "[data-testid={testid}] still shows {text:?} after {timeout:?}; the page reads: {page:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Fills the element with `data-testid` with `text`.
    pub async fn fill(&self, testid: &str, text: &str) -> anyhow::Result<()> {
        let css = format!("[data-testid='{testid}']");
        self.client
            .wait()
            .for_element(Locator::Css(&css))
            .await?
            .send_keys(text)
            .await?;
        Ok(())
    }

    /// Clicks the element with `data-testid`.
    pub async fn click(&self, testid: &str) -> anyhow::Result<()> {
        let css = format!("[data-testid='{testid}']");
        self.client
            .wait()
            .for_element(Locator::Css(&css))
            .await?
            .click()
            .await?;
        Ok(())
    }

    /// Opens `url` and signs in with `token` through the sign-in form, as a person would.
    pub async fn sign_in(&self, url: &str, token: &str) -> anyhow::Result<()> {
        self.goto(url).await?;
        self.fill("token-input", token).await?;
        self.click("sign-in").await?;
        Ok(())
    }

    /// Saves a PNG screenshot under the test output dir.
    pub async fn screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let png = self.client.screenshot().await?;
        let path = output_dir().join(format!("{name}.png"));
        std::fs::write(&path, png)?;
        Ok(path)
    }

    /// Ends the browser session; dropping then stops ChromeDriver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        // A test that failed never closed its session: Chromium outlives ChromeDriver and
        // would keep rendering (and taking CPU from the next tests). Its processes carry this
        // browser's own profile directory on their command line.
        let _ = Command::new("pkill")
            .arg("-f")
            .arg(self._profile.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Browser {
    /// Whether an element with `data-testid` is on the page now.
    pub async fn has(&self, testid: &str) -> bool {
        self.client
            .find(Locator::Css(&format!("[data-testid='{testid}']")))
            .await
            .is_ok()
    }
}

/// Text an element must show, for [`Browser::watch_text`].
#[derive(Debug, Clone, Copy)]
pub enum Shows<'a> {
    /// Exactly this text (trimmed).
    Is(&'a str),
    /// Text starting with this.
    StartsWith(&'a str),
}

/// Notes, inside the page, the page's clock when the element first shows the text: a
/// MutationObserver runs right after the DOM changes, so no ChromeDriver round trip is counted.
const WATCH_TEXT: &str = r#"
const [id, exact, text] = arguments;
const seen = (window.__cutoverSeen ??= {});
delete seen[id];
const look = () => {
  const el = document.querySelector(`[data-testid='${id}']`);
  const t = el ? el.innerText.trim() : null;
  if (t !== null && (exact ? t === text : t.startsWith(text))) {
    seen[id] = Date.now();
    return true;
  }
  return false;
};
if (!look()) {
  const observer = new MutationObserver(() => { if (look()) observer.disconnect(); });
  observer.observe(document.documentElement,
    { subtree: true, childList: true, characterData: true, attributes: true });
}
"#;

/// Notes, inside the page, the page's clock when the element matching a selector is next
/// clicked (in the capture phase, before the page's own handlers).
const WATCH_CLICK: &str = r#"
const [css] = arguments;
const clicks = (window.__cutoverClicks ??= {});
delete clicks[css];
const note = (e) => {
  if (e.target instanceof Element && e.target.closest(css)) {
    clicks[css] = Date.now();
    document.removeEventListener("click", note, true);
  }
};
document.addEventListener("click", note, true);
"#;

impl Browser {
    /// From now on, notes inside the page when the element with `data-testid` shows `shows`;
    /// read it with [`Browser::text_seen_at`]. For latency claims: the time is taken in the page
    /// at the change, not when a poll through ChromeDriver happens to see it.
    pub async fn watch_text(&self, testid: &str, shows: Shows<'_>) -> anyhow::Result<()> {
        let (exact, text) = match shows {
            Shows::Is(t) => (true, t),
            Shows::StartsWith(t) => (false, t),
        };
        self.client
            .execute(WATCH_TEXT, vec![testid.into(), exact.into(), text.into()])
            .await?;
        Ok(())
    }

    /// From now on, notes inside the page when the element matching `css` is next clicked;
    /// read it with [`Browser::clicked_at`].
    pub async fn watch_click(&self, css: &str) -> anyhow::Result<()> {
        self.client.execute(WATCH_CLICK, vec![css.into()]).await?;
        Ok(())
    }

    /// Waits up to `timeout` (a guard, not the claim) until what [`Browser::watch_text`]
    /// watches has shown; returns the page's clock (ms since the epoch) when it did.
    pub async fn text_seen_at(&self, testid: &str, timeout: Duration) -> anyhow::Result<i64> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self
                .client
                .execute(
                    "return (window.__cutoverSeen || {})[arguments[0]] ?? null;",
                    vec![testid.into()],
                )
                .await?;
            if let Some(at) = seen.as_f64() {
                return Ok(at as i64);
            }
            if Instant::now() > deadline {
                bail!(
                    "[data-testid={testid}] never showed the text watched for in {timeout:?}; it shows {:?}",
                    self.text(testid).await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The page's clock (ms since the epoch) when what [`Browser::watch_click`] watches was
    /// clicked.
    pub async fn clicked_at(&self, css: &str) -> anyhow::Result<i64> {
        let at = self
            .client
            .execute(
                "return (window.__cutoverClicks || {})[arguments[0]] ?? null;",
                vec![css.into()],
            )
            .await?;
        at.as_f64()
            .map(|at| at as i64)
            .with_context(|| format!("{css} was not clicked since it was watched"))
    }
}

/// A Chrome DevTools command sent through ChromeDriver.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: serde_json::Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = serde_json::json!({ "cmd": self.cmd, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}

/// The watch behind [`FIRST_CHART`]: from the page's first moment, looks at every animation
/// frame for the latency chart's line pixels and keeps when the first frame that shows them
/// is laid out in `window.__cutoverFirstChart`. The pixels are read back only once the app has
/// drawn (`data-draw-ms`): a readback costs milliseconds of the page's own time.
macro_rules! first_chart_watch {
    () => {
        r#"
(() => {
  if (window.__cutoverChartWatch) return;
  window.__cutoverChartWatch = true;
  const seen = () => {
    const c = document.querySelector("[data-testid='chart-latency_ms']");
    // Reading pixels back costs milliseconds a frame: only once the app says it drew.
    if (!c || !c.dataset.drawMs || !c.width || !c.height) return false;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) {
      if (Math.abs(d[i] - 56) < 24 && Math.abs(d[i + 1] - 189) < 24 && Math.abs(d[i + 2] - 248) < 24) n++;
    }
    return n >= 12;
  };
  const poll = () => {
    if (seen()) {
      // This frame shows the line: lay it out now and take the time, so the figure counts
      // the frame's own rendering (but not the work the page queues after it) and this
      // last check's cost.
      document.body.getBoundingClientRect();
      window.__cutoverFirstChart = performance.now();
    } else {
      requestAnimationFrame(poll);
    }
  };
  requestAnimationFrame(poll);
})();
"#
    };
}

/// For [`Browser::before_every_page`]: watches each page from its start for the first frame
/// with the latency chart's line, so [`FIRST_CHART`] reports when it was drawn, not when
/// WebDriver got around to asking (after the load event, tens of milliseconds later).
pub const FIRST_CHART_WATCH: &str = first_chart_watch!();

/// For `execute_async`: navigation start to the first frame with latency line pixels, and to
/// DOMContentLoaded (the benches' first-chart figure). Exact when [`FIRST_CHART_WATCH`] runs
/// in every page; otherwise the watch starts with this script and the figure is a bound.
pub const FIRST_CHART: &str = concat!(
    "const done = arguments[arguments.length - 1];",
    first_chart_watch!(),
    r#"
const wait = () => {
  if (window.__cutoverFirstChart !== undefined) {
    const nav = performance.getEntriesByType('navigation')[0];
    done([window.__cutoverFirstChart, nav.domContentLoadedEventEnd]);
  } else {
    requestAnimationFrame(wait);
  }
};
wait();
"#
);

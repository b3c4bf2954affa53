//! The costs of a live screen, each against a baseline measured in the same run, on the real
//! binary (`CUTOVER_BIN`, a release build under `./x bench`) serving `cutover demo --fresh`
//! with its simulated traffic. The server runs on the first core from its start (so its
//! runtime has one worker, as on a machine of one core) and this client on the second, when
//! `taskset` can (the machine has two).
//!
//! - stream bytes per idle viewer per second, against the same stream sending whole ticks
//!   (the first tick's size, once a second);
//! - server memory per open stream at 1,000 and 10,000 streams, against an idle keep-alive
//!   connection's;
//! - one action (a checklist item ticked) to 1,000 and 10,000 streams, p50/p99, against the
//!   floor: its update event's bytes written to as many loopback sockets by one bare thread
//!   on the server's core (the kernel's share, which no server can avoid);
//! - the app's bytes on the wire (wasm + JS as served with `Accept-Encoding: br`), against
//!   their raw size;
//! - a share link to the first chart drawn, on loopback and under Chromium's 4G emulation (9
//!   Mbps, 85 ms round trip), against the navigation's DOMContentLoaded.
//!
//! Each figure is printed as a `ROW |` line that `./x bench` gathers into one table.
//!
//! Run: `./x bench` (all of issue 18's table), or after a build,
//! `CUTOVER_BIN=target/release/cutover cargo bench -p cutover-e2e --bench live`
//! (`LIVE_BENCH=share,memory` for some parts alone: `bytes`, `memory`, `fan-out`, `app`,
//! `share`).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use cutover_e2e::{Browser, Demo, FIRST_CHART, FIRST_CHART_WATCH};

/// One line of the table: what, the figure, its baseline, the ratio, the goal.
fn row(measure: &str, value: &str, baseline: &str, ratio: f64, goal: &str) {
    println!("ROW | {measure} | {value} | {baseline} | {ratio:.3}x | {goal}");
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Pins `pid` (every thread) to `cpu`; says so if it cannot.
fn pin(pid: u32, cpu: usize) {
    let pinned = std::process::Command::new("taskset")
        .args(["-a", "-cp", &cpu.to_string(), &pid.to_string()])
        .output()
        .is_ok_and(|o| o.status.success());
    if !pinned {
        println!("(could not pin process {pid} to cpu {cpu}: figures are unpinned)");
    }
}

/// CPU time `pid` has used so far, in user space and in the kernel, in ms.
fn cpu_ms(pid: u32) -> anyhow::Result<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // After the command's name in parentheses: utime and stime are the 12th and 13th fields.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("no command name")?
        .1
        .split_whitespace()
        .collect();
    // Linux counts in clock ticks of 10 ms (USER_HZ is 100 wherever this runs).
    Ok((
        fields[11].parse::<f64>()? * 10.0,
        fields[12].parse::<f64>()? * 10.0,
    ))
}

/// Resident memory of `pid`, in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")
}

/// A connection from `source` (a loopback address of its own: the server allows a quarter
/// of its connections and an eighth of its streams per peer address) with `request` sent.
async fn connect(addr: SocketAddr, source: Ipv4Addr, request: &str) -> anyhow::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    let mut stream = socket.connect(addr).await?;
    stream.write_all(request.as_bytes()).await?;
    Ok(stream)
}

/// The loopback source address of connection `i`: 1,000 to an address (the server takes
/// at most an eighth of its streams from one address).
fn source(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 1 + (i / 1_000) as u8, 1)
}

/// Waits until memory stops growing (it settles within a few seconds), then reads it.
async fn settled_rss(pid: u32) -> anyhow::Result<u64> {
    let mut last = rss_kib(pid)?;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = rss_kib(pid)?;
        if now.abs_diff(last) < 256 {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

/// Reads `stream` to its end: counts bytes, and reports each `"version":N` it sees (the state
/// event of the Nth change) with the moment it arrived. Scans bytes in place: the client
/// shares a core with nothing but itself, and must not be what is measured.
fn read_stream(
    mut stream: TcpStream,
    bytes: Arc<AtomicUsize>,
    versions: Option<tokio::sync::mpsc::UnboundedSender<(u64, Instant)>>,
    ready: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<()> {
    const TAIL: usize = 32;
    tokio::spawn(async move {
        // The last bytes of the previous read stay in front, so a marker split across two
        // reads is still found.
        let mut buf = vec![0u8; TAIL + 16 * 1024];
        let mut kept = 0;
        let mut started = false;
        // Versions only grow on a stream: one seen again in the kept bytes is not news.
        let mut newest = 0u64;
        loop {
            let n = match stream.read(&mut buf[kept..]).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let at = Instant::now();
            bytes.fetch_add(n, Ordering::Relaxed);
            let text = &buf[..kept + n];
            if !started && find(text, b"event: tick").is_some() {
                started = true;
                ready.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(versions) = &versions {
                let mut rest = text;
                while let Some(i) = find(rest, b"\"version\":") {
                    rest = &rest[i + 10..];
                    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                    // A number cut off at the end of the read is read whole next time.
                    if digits < rest.len()
                        && let Ok(v) = std::str::from_utf8(&rest[..digits]).unwrap_or("").parse()
                        && v > newest
                    {
                        newest = v;
                        let _ = versions.send((v, at));
                    }
                }
            }
            let end = kept + n;
            kept = end.min(TAIL);
            buf.copy_within(end - kept..end, 0);
        }
    })
}

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let first = needle[0];
    let mut from = 0;
    while let Some(i) = hay[from..].iter().position(|&b| b == first) {
        let at = from + i;
        if hay[at..].starts_with(needle) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Readers of open streams; they stop (and close their connections) when this is dropped.
struct Readers(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Readers {
    fn drop(&mut self) {
        for reader in &self.0 {
            reader.abort();
        }
    }
}

fn stream_request(token: &str) -> String {
    format!(
        "GET /api/rollouts/spiralogic/stream HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
}

/// Reads `stream` until the first whole event of `kind` has come: its size in bytes.
async fn event_size(stream: &mut TcpStream, kind: &str) -> anyhow::Result<usize> {
    let marker = format!("event: {kind}");
    let mut buf = vec![0u8; 256 * 1024];
    let mut text = String::new();
    loop {
        if let Some(at) = text.find(&marker)
            && let Some(end) = text[at..].find("\n\n")
        {
            return Ok(end + 2);
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .with_context(|| format!("no {kind} event within 10 s"))??;
        if n == 0 {
            bail!("the stream ended");
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

/// Bytes per second one idle viewer is sent, against whole ticks.
async fn stream_bytes(addr: SocketAddr, token: &str) -> anyhow::Result<()> {
    let mut stream = connect(addr, Ipv4Addr::LOCALHOST, &stream_request(token)).await?;
    // After the response head and the state, the first tick is whole.
    let whole_tick = event_size(&mut stream, "tick").await?;
    let mut buf = vec![0u8; 256 * 1024];
    let started = Instant::now();
    let mut sent = 0usize;
    let (mut deltas, mut wholes) = (0, 0);
    while started.elapsed() < Duration::from_secs(20) {
        let Ok(read) = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await
        else {
            continue;
        };
        let n = read?;
        if n == 0 {
            bail!("the stream ended");
        }
        let text = String::from_utf8_lossy(&buf[..n]);
        deltas += text.matches("event: delta").count();
        wholes += text.matches("event: tick").count();
        sent += n;
    }
    let per_second = sent as f64 / started.elapsed().as_secs_f64();
    println!(
        "stream over 20 s: {deltas} deltas, {wholes} whole ticks, a whole tick {whole_tick} B"
    );
    row(
        "stream bytes per idle viewer",
        &format!("{:.2} KB/s", per_second / 1000.0),
        &format!("whole ticks {:.1} KB/s", whole_tick as f64 / 1000.0),
        per_second / whole_tick as f64,
        "<= 2 KB/s",
    );
    Ok(())
}

/// Opens `n` idle streams (or plain keep-alive connections) and returns the server's memory
/// growth per connection, in KiB. They close when this returns.
async fn memory_per(
    pid: u32,
    addr: SocketAddr,
    n: usize,
    request: &str,
    streams: bool,
) -> anyhow::Result<f64> {
    let before = settled_rss(pid).await?;
    let mut held = Vec::with_capacity(n);
    let mut readers = Readers(Vec::with_capacity(n));
    let ready = Arc::new(AtomicUsize::new(0));
    for i in 0..n {
        let stream = connect(addr, source(i), request).await?;
        if streams {
            let bytes = Arc::new(AtomicUsize::new(0));
            readers
                .0
                .push(read_stream(stream, bytes, None, ready.clone()));
        } else {
            held.push(stream);
        }
    }
    if streams {
        let deadline = Instant::now() + Duration::from_secs(60);
        while ready.load(Ordering::Relaxed) < n {
            if Instant::now() > deadline {
                bail!("{} of {n} streams started", ready.load(Ordering::Relaxed));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let after = settled_rss(pid).await?;
    drop((held, readers));
    // Give the server a moment to close them before the next figure.
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(after.saturating_sub(before) as f64 / n as f64)
}

/// Opens `n` connections to `addr` with `request` sent and reads each until it ends; returns
/// once every one has had its first tick, with the `(version, when)` each reader sees.
async fn watch_versions(
    addr: SocketAddr,
    n: usize,
    request: &str,
) -> anyhow::Result<(
    Readers,
    tokio::sync::mpsc::UnboundedReceiver<(u64, Instant)>,
)> {
    let (tx, seen) = tokio::sync::mpsc::unbounded_channel();
    let ready = Arc::new(AtomicUsize::new(0));
    let mut readers = Readers(Vec::with_capacity(n));
    for i in 0..n {
        let stream = connect(addr, source(i), request).await?;
        let bytes = Arc::new(AtomicUsize::new(0));
        readers
            .0
            .push(read_stream(stream, bytes, Some(tx.clone()), ready.clone()));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while ready.load(Ordering::Relaxed) < n {
        if Instant::now() > deadline {
            bail!("{} of {n} readers started", ready.load(Ordering::Relaxed));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((readers, seen))
}

/// One action to `n` open streams: when each sees the new state, p50 and p99.
async fn fan_out(
    http: &reqwest::Client,
    url: &str,
    addr: SocketAddr,
    viewer: &str,
    lead: &str,
    n: usize,
    pid: u32,
) -> anyhow::Result<(Duration, Duration)> {
    let (readers, mut seen) = watch_versions(addr, n, &stream_request(viewer)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // What the streams cost the server with no action at all: each second's delta to every one.
    let ((user, system), started) = (cpu_ms(pid)?, Instant::now());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (user_now, system_now) = cpu_ms(pid)?;
    let share = |ms: f64| ms / started.elapsed().as_secs_f64() / 10.0;
    println!(
        "{n} idle streams: the server busy {:.0}% of its core ({:.0}% in the kernel), a delta a second to each",
        share(user_now - user + system_now - system),
        share(system_now - system),
    );
    while seen.try_recv().is_ok() {}
    let mut latencies = Vec::new();
    for round in 0..6 {
        let item = format!("{url}/api/rollouts/spiralogic/checklists/preflight/items/migration");
        let sent_at = Instant::now();
        let response = http
            .post(&item)
            .bearer_auth(lead)
            .json(&serde_json::json!({ "checked": round % 2 == 0 }))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("ticking a checklist item: {}", response.status());
        }
        let body: serde_json::Value = response.json().await?;
        let version = body["state"]["version"]
            .as_u64()
            .context("no state version in the answer")?;
        let mut arrived = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while arrived < n && Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_secs(5), seen.recv()).await {
                Ok(Some((v, at))) if v == version => {
                    latencies.push(at.saturating_duration_since(sent_at));
                    arrived += 1;
                }
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        if arrived < n {
            bail!("round {round}: {arrived} of {n} streams saw version {version}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(readers);
    tokio::time::sleep(Duration::from_secs(2)).await;
    latencies.sort();
    Ok((percentile(&latencies, 0.5), percentile(&latencies, 0.99)))
}

/// The floor under one action's fan-out on this machine: an event of `size` bytes written to
/// `n` loopback sockets by one bare thread on the server's core, read by the same readers as
/// the server's streams. When each reader sees it, p50 and p99 over six rounds, from the
/// moment the writer is told. The writer is this binary again (`floor_writer`): a process of
/// its own, so each side has its own limit of open files.
async fn floor(n: usize, size: usize) -> anyhow::Result<(Duration, Duration)> {
    use std::io::{BufRead, Write};
    let mut writer = std::process::Command::new(std::env::current_exe()?)
        .env(FLOOR_WRITER, format!("{n},{size}"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    pin(writer.id(), 0);
    let mut said = std::io::BufReader::new(writer.stdout.take().context("no stdout")?);
    let mut port = String::new();
    said.read_line(&mut port)?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port.trim().parse::<u16>()?));
    let mut go = writer.stdin.take().context("no stdin")?;
    let (readers, mut seen) = watch_versions(addr, n, "").await?;
    let mut latencies = Vec::new();
    for version in 1..=6 {
        let sent_at = Instant::now();
        writeln!(go, "{version}")?;
        go.flush()?;
        let mut arrived = 0;
        while arrived < n {
            match tokio::time::timeout(Duration::from_secs(10), seen.recv()).await {
                Ok(Some((v, at))) if v == version => {
                    latencies.push(at.saturating_duration_since(sent_at));
                    arrived += 1;
                }
                Ok(Some(_)) => {}
                _ => bail!("floor round {version}: {arrived} of {n} readers saw it"),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(go);
    let status = writer.wait()?;
    if !status.success() {
        bail!("the floor's writer failed: {status}");
    }
    drop(readers);
    latencies.sort();
    Ok((percentile(&latencies, 0.5), percentile(&latencies, 0.99)))
}

/// Set (to `n,size`) in the floor's writer process.
const FLOOR_WRITER: &str = "CUTOVER_FLOOR_WRITER";

/// The floor's writer: accepts `n` connections, sends each a first tick, then for each round
/// number read from stdin writes one event of `size` bytes to every one, as fast as it can.
fn floor_writer(spec: &str) -> anyhow::Result<()> {
    use std::io::{BufRead, Write};
    let (n, size) = spec.split_once(',').context("n,size")?;
    let (n, size): (usize, usize) = (n.parse()?, size.parse()?);
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    println!("{}", listener.local_addr()?.port());
    std::io::stdout().flush()?;
    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n {
        let (mut socket, _) = listener.accept()?;
        socket.set_nodelay(true)?;
        // Each reader counts itself ready on its first tick.
        socket.write_all(b"event: tick\ndata: {}\n\n")?;
        sockets.push(socket);
    }
    for version in std::io::stdin().lock().lines() {
        let version = version?;
        let mut event = format!("event: update\ndata: {{\"version\":{version},\"pad\":\"");
        let pad = size.saturating_sub(event.len() + 4);
        event.extend(std::iter::repeat_n('x', pad));
        event.push_str("\"}\n\n");
        for socket in &mut sockets {
            socket.write_all(event.as_bytes())?;
        }
    }
    Ok(())
}

/// The bytes of the update event one action sends each viewer (the state without its plan).
async fn update_size(
    http: &reqwest::Client,
    url: &str,
    addr: SocketAddr,
    viewer: &str,
    lead: &str,
) -> anyhow::Result<usize> {
    let mut stream = connect(addr, Ipv4Addr::LOCALHOST, &stream_request(viewer)).await?;
    let item = format!("{url}/api/rollouts/spiralogic/checklists/preflight/items/migration");
    tick_item(http, &item, lead, true).await?;
    let size = event_size(&mut stream, "update").await?;
    // Unticked again: the fan-out's rounds start from the state they expect.
    tick_item(http, &item, lead, false).await?;
    Ok(size)
}

async fn tick_item(
    http: &reqwest::Client,
    item: &str,
    lead: &str,
    checked: bool,
) -> anyhow::Result<()> {
    let answer = http
        .post(item)
        .bearer_auth(lead)
        .json(&serde_json::json!({ "checked": checked }))
        .send()
        .await?;
    if !answer.status().is_success() {
        bail!("ticking a checklist item: {}", answer.status());
    }
    Ok(())
}

async fn health_trips(http: &reqwest::Client, url: &str) -> anyhow::Result<Vec<Duration>> {
    let mut trips = Vec::new();
    for _ in 0..200 {
        let t0 = Instant::now();
        http.get(format!("{url}/health"))
            .send()
            .await?
            .bytes()
            .await?;
        trips.push(t0.elapsed());
    }
    trips.sort();
    Ok(trips)
}

/// The wasm and JS as the server sends them to a browser that takes brotli.
async fn app_bytes(http: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let index = http.get(format!("{url}/")).send().await?.text().await?;
    let (mut raw, mut wire) = (0usize, 0usize);
    for asset in index
        .split('"')
        .filter(|s| s.ends_with(".wasm") || s.ends_with(".js"))
        .map(str::to_string)
        .collect::<std::collections::BTreeSet<_>>()
    {
        let path = format!("{url}/{}", asset.trim_start_matches('/'));
        let plain = http.get(&path).send().await?.bytes().await?.len();
        let sent = http
            .get(&path)
            .header("accept-encoding", "br")
            .send()
            .await?;
        let encoding = sent
            .headers()
            .get("content-encoding")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_string();
        let compressed = sent.bytes().await?.len();
        println!("{asset}: {plain} B raw, {compressed} B as {encoding}");
        raw += plain;
        wire += compressed;
    }
    row(
        "app transfer (wasm + js)",
        &format!("{:.0} KB on the wire", wire as f64 / 1000.0),
        &format!("{:.0} KB raw", raw as f64 / 1000.0),
        wire as f64 / raw as f64,
        "<= 150 KB",
    );
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A stakeholder opens the share link: first chart drawn, on loopback then on 4G.
async fn share_link(demo: &Demo) -> anyhow::Result<()> {
    let link = demo.token("stakeholder").to_string();
    let browser = Browser::start().await?;
    browser.before_every_page(FIRST_CHART_WATCH).await?;
    browser.client.goto(&link).await?;
    browser
        .wait_text("rollout-title", Duration::from_secs(20), |t| !t.is_empty())
        .await?;
    let page = browser.client.current_url().await?.to_string();
    // Emulated conditions apply once the network domain is on.
    browser.cdp("Network.enable", serde_json::json!({})).await?;
    for (name, conditions) in [
        ("loopback", None),
        (
            "4G (9 Mbps, 85 ms RTT)",
            Some(serde_json::json!({
                "offline": false,
                "latency": 85,
                "downloadThroughput": 9_000_000 / 8,
                "uploadThroughput": 9_000_000 / 8,
            })),
        ),
    ] {
        if let Some(conditions) = conditions {
            browser
                .cdp("Network.emulateNetworkConditions", conditions)
                .await?;
        }
        let (mut chart, mut dcl) = (Vec::new(), Vec::new());
        for _ in 0..9 {
            // A first visit: nothing cached.
            browser
                .cdp("Network.clearBrowserCache", serde_json::json!({}))
                .await?;
            browser.client.goto(&page).await?;
            let found = browser.client.execute_async(FIRST_CHART, vec![]).await?;
            chart.push(found[0].as_f64().unwrap_or(f64::NAN));
            dcl.push(found[1].as_f64().unwrap_or(f64::NAN));
        }
        // Where the time of the last load went: each request's start and end, each chart's
        // draw, the app's own steps (`cutover:` marks).
        for (what, script) in [
            (
                "requests",
                "return performance.getEntriesByType('resource').map(e => \
                 `${e.name.split('/').slice(3).join('/').slice(0, 40)} ${Math.round(e.startTime)}-${Math.round(e.responseEnd)} ms`);",
            ),
            (
                "chart draws",
                "return [...document.querySelectorAll('canvas[data-draw-ms]')].map(c => c.dataset.drawMs + ' ms');",
            ),
            (
                "steps",
                "return performance.getEntriesByType('mark').map(m => `${m.name.replace('cutover:', '')} ${Math.round(m.startTime)} ms`);",
            ),
        ] {
            let found = browser.client.execute(script, vec![]).await?;
            println!("{name}, the last load's {what}: {found}");
        }
        // A load with no long frame at all has nothing to report: the observer would never
        // call back, so after a second the answer is none.
        let frames = browser
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1]; let said = false; \
                 const say = frames => { if (!said) { said = true; done(frames); } }; \
                 setTimeout(() => say([]), 1000); \
                 new PerformanceObserver(l => say(l.getEntries().map(f => \
                 `${Math.round(f.startTime)}+${Math.round(f.duration)} render@${Math.round(f.renderStart)} layout@${Math.round(f.styleAndLayoutStart)} ` + \
                 f.scripts.map(s => `[${s.invoker} ${Math.round(s.startTime)}+${Math.round(s.duration)}]`).join('')))) \
                 .observe({type: 'long-animation-frame', buffered: true});",
                vec![],
            )
            .await?;
        println!("{name}, long frames: {frames}");
        let mut each: Vec<String> = chart.iter().map(|ms| format!("{ms:.0}")).collect();
        each.sort_by_key(|ms| ms.parse::<u32>().unwrap_or(u32::MAX));
        println!(
            "{name}, first chart in each of 9 loads (ms): {}",
            each.join(" ")
        );
        let (chart, dcl) = (median(chart), median(dcl));
        row(
            &format!("share link to first chart, {name}"),
            &format!("{chart:.0} ms"),
            &format!("DOMContentLoaded {dcl:.0} ms"),
            chart / dcl,
            if name == "loopback" {
                "<= 250 ms"
            } else {
                "(no goal)"
            },
        );
    }
    browser.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Ok(spec) = std::env::var(FLOOR_WRITER) {
        return floor_writer(&spec);
    }
    // Given one core from the start, the server's runtime has one worker, as on a machine of
    // one core; pinned after it started, two workers would take turns on that core.
    let demo = Demo::start_on_cpu(0)?;
    let pid = demo.pid();
    pin(std::process::id(), 1);
    let addr: SocketAddr = demo.url.trim_start_matches("http://").parse()?;
    let http = reqwest::Client::new();
    // `LIVE_BENCH=share,memory`: only those parts (all of them take minutes).
    let only = std::env::var("LIVE_BENCH").unwrap_or_default();
    let run = |part: &str| only.is_empty() || only.split(',').any(|p| p.trim() == part);
    let viewer = demo.token("viewer").to_string();
    let lead = demo.token("lead").to_string();
    // Let the simulated traffic fill the charts.
    tokio::time::sleep(Duration::from_secs(10)).await;

    if run("bytes") {
        stream_bytes(addr, &viewer).await?;
    }

    let idle = "GET /health HTTP/1.1\r\nHost: bench\r\n\r\n";
    for n in [1_000, 10_000].into_iter().filter(|_| run("memory")) {
        let connection = memory_per(pid, addr, n, idle, false).await?;
        let stream = memory_per(pid, addr, n, &stream_request(&viewer), true).await?;
        row(
            &format!("server memory per open stream, {n} streams"),
            &format!("{stream:.1} KiB"),
            &format!("idle connection {connection:.1} KiB"),
            stream / connection.max(0.1),
            "<= 10 KiB",
        );
    }

    if run("fan-out") {
        let trips = health_trips(&http, &demo.url).await?;
        println!(
            "a loopback GET /health: p50 {}, p99 {}",
            ms(percentile(&trips, 0.5)),
            ms(percentile(&trips, 0.99))
        );
        let size = update_size(&http, &demo.url, addr, &viewer, &lead).await?;
        println!("one action's update event: {size} B to each viewer");
        for n in [1_000, 10_000] {
            // The same bytes to as many sockets from one bare thread on the server's core:
            // what the kernel's loopback costs before the server does anything.
            let (f50, f99) = floor(n, size).await?;
            let (p50, p99) = fan_out(&http, &demo.url, addr, &viewer, &lead, n, pid).await?;
            for (q, server, bare, goal) in [
                ("p50", p50, f50, ""),
                ("p99", p99, f99, if n == 10_000 { "<= 100 ms" } else { "" }),
            ] {
                row(
                    &format!("one action to {n} streams, {q}"),
                    &ms(server),
                    &format!("bare writes from one core {}", ms(bare)),
                    server.as_secs_f64() / bare.as_secs_f64(),
                    goal,
                );
            }
        }
    }

    if run("app") {
        app_bytes(&http, &demo.url).await?;
    }
    if run("share") {
        share_link(&demo).await?;
    }
    Ok(())
}

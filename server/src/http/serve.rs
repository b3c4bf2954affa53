//! The accept loop: HTTP/1.1 connections with a header-read timeout, a global and a per-peer
//! cap sized to the file-descriptor limit (a trusted proxy, which carries everyone, has no
//! per-peer cap; IPv6 peers count by their /64), the stream admission sized from the same
//! capacity, and a drain on shutdown.

use std::future::Future;

use tokio::net::TcpListener;

use crate::AppState;
use crate::http::admission::{Edge, Options};
use crate::http::peer::{Peer, address_key};
use crate::http::router::app;

/// Most connections open at once; past it a new connection is closed at accept. Lowered at
/// start to fit the file-descriptor limit the server could get, so accept never fails for
/// want of descriptors (which once stalled every request, a kill included, for 45 s).
pub const MAX_CONNECTIONS: usize = 16_384;
/// Most connections from one address, as a share of the capacity: one client cannot take
/// every slot.
pub const PEER_SHARE: usize = 4;
/// How long a client may take to send a request's headers, counted from the connection's
/// first byte or from the end of the previous response: a silent, slow or idle client cannot
/// hold a connection longer.
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long open requests may take to finish after shutdown begins.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Open connections per peer address.
type Peers = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>;

/// One connection's place: its share of the global cap and of its peer's, given back on drop.
struct Slot {
    _global: tokio::sync::OwnedSemaphorePermit,
    peers: Peers,
    peer: std::net::IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut peers = crate::clock::lock(&self.peers);
        if let Some(n) = peers.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                peers.remove(&self.peer);
            }
        }
    }
}

/// Serves `state` on `listener` until `shutdown` resolves, then ends every live stream and
/// drains open connections (for at most 10 s). HTTP/1.1 only: its header-read timeout covers
/// a connection that sends nothing at all, which protocol detection for HTTP/2 would not
/// (browsers speak HTTP/2 only over TLS, which a proxy in front terminates).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, Options::default(), shutdown).await
}

/// `serve` with the edge's settings: trusted proxies, stream limits and lifetime.
pub async fn serve_with(
    listener: TcpListener,
    state: AppState,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let capacity = options
        .max_connections
        .map_or_else(connection_capacity, |n| n.max(16));
    let per_peer = (capacity / PEER_SHARE).max(1);
    let edge = std::sync::Arc::new(Edge::new(&options, capacity));
    let limits = edge.admission.limits();
    tracing::info!(
        capacity,
        per_peer,
        streams = limits.streams,
        streams_per_sign_in = limits.per_sign_in,
        streams_per_share = limits.per_share,
        streams_per_address = limits.per_address,
        "connection limits"
    );
    let router = app(state.clone(), edge.clone());
    let mut refused = Refusals::default();
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(capacity));
    let peers = Peers::default();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // A reset before accept, or out of descriptors: wait a moment, go on.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let limit = if edge.trusted_proxies.trusts(peer.ip()) {
            capacity
        } else {
            per_peer
        };
        let Some(slot) = take_slot(&slots, &peers, peer.ip(), limit) else {
            refused.count(peer.ip());
            continue;
        };
        let _ = stream.set_nodelay(true);
        // Each request knows the connection's peer (for the per-address stream limit).
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            router.clone(),
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(Peer(peer));
                request
            },
        ));
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("connection ended: {e}");
            }
            drop(slot);
        });
    }
    drop(listener);
    // Live streams never end by themselves: tell them to, then let requests finish.
    state.close();
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {DRAIN:?}; closing them");
    }
    // What the channels took or were told last is not lost to the stop.
    crate::runtime::outboxes::flush(&state).await;
    Ok(())
}

/// Connections closed at accept, logged as a count at most every 10 s: a flood of them must
/// not also flood the log.
#[derive(Default)]
struct Refusals {
    since_logged: u64,
    last_peer: Option<std::net::IpAddr>,
    logged_at: Option<std::time::Instant>,
}

impl Refusals {
    fn count(&mut self, peer: std::net::IpAddr) {
        self.since_logged += 1;
        self.last_peer = Some(peer);
        let due = self
            .logged_at
            .is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(10));
        if due {
            tracing::warn!(
                refused = self.since_logged,
                last_peer = ?self.last_peer,
                "connection limit reached: new connections closed at accept"
            );
            self.since_logged = 0;
            self.logged_at = Some(std::time::Instant::now());
        }
    }
}

fn take_slot(
    slots: &std::sync::Arc<tokio::sync::Semaphore>,
    peers: &Peers,
    peer: std::net::IpAddr,
    limit: usize,
) -> Option<Slot> {
    let peer = address_key(peer);
    let global = slots.clone().try_acquire_owned().ok()?;
    let mut open = crate::clock::lock(peers);
    let n = open.entry(peer).or_default();
    if *n >= limit {
        return None;
    }
    *n += 1;
    Some(Slot {
        _global: global,
        peers: peers.clone(),
        peer,
    })
}

/// Raises the soft limit on open files towards the hard limit and returns how many
/// connections fit in what it got (a few hundred descriptors kept for files and the database).
fn connection_capacity() -> usize {
    const RESERVED: u64 = 256;
    let wanted = MAX_CONNECTIONS as u64 + RESERVED;
    let got = match rlimit::increase_nofile_limit(wanted) {
        Ok(got) => got,
        Err(e) => {
            tracing::warn!("cannot raise the open-file limit: {e}");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    };
    let capacity = usize::try_from(got.saturating_sub(RESERVED))
        .unwrap_or(MAX_CONNECTIONS)
        .clamp(16, MAX_CONNECTIONS);
    if capacity < MAX_CONNECTIONS {
        tracing::warn!("open-file limit {got}: at most {capacity} connections; raise `ulimit -n`");
    }
    capacity
}

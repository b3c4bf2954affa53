//! The accept loop: HTTP/1.1 connections with a header-read timeout, a global and a per-peer
//! cap sized to the file-descriptor limit, and a drain on shutdown.

use std::future::Future;

use tokio::net::TcpListener;

use crate::AppState;
use crate::http::router::app;

/// Most connections open at once; past it a new connection is closed at accept. Lowered at
/// start to fit the file-descriptor limit the server could get, so accept never fails for
/// want of descriptors (which once stalled every request, a kill included, for 45 s).
pub const MAX_CONNECTIONS: usize = 16_384;
/// Most connections from one address: one client cannot take every slot.
pub const MAX_CONNECTIONS_PER_PEER: usize = 4_096;
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
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let capacity = connection_capacity();
    let router = app(state.clone());
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
        let Some(slot) = take_slot(&slots, &peers, peer.ip()) else {
            tracing::warn!(peer = %peer.ip(), "connection limit reached: closing a new connection");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
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
    Ok(())
}

fn take_slot(
    slots: &std::sync::Arc<tokio::sync::Semaphore>,
    peers: &Peers,
    peer: std::net::IpAddr,
) -> Option<Slot> {
    let global = slots.clone().try_acquire_owned().ok()?;
    let mut open = crate::clock::lock(peers);
    let n = open.entry(peer).or_default();
    if *n >= MAX_CONNECTIONS_PER_PEER {
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

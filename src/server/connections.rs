//! The accept loop and what it protects: a cap on open connections derived from the process's
//! open-file limit, a deadline for a request's headers, an idle keep-alive deadline, and
//! shedding. A slow or silent client can hold a connection, never the whole process: at the
//! cap, the connection that has waited longest without starting a request is closed to admit
//! the new one, so the listener keeps accepting and a probe always gets in.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Descriptors kept back from the open-file limit for everything that is not a client
/// connection: backend pools, data files, logs, the runtime's own. An eighth of the limit,
/// at least 64, at most 1024.
fn reserve(open_files: u64) -> u64 {
    (open_files / 8).clamp(64, 1024).min(open_files / 2)
}

/// The derived default never goes above this: past it memory, not descriptors, runs out first
/// (each open connection holds buffers and a task).
const DEFAULT_CAP_CEILING: u64 = 4096;

/// How long connections may wait, and how many may be open at once.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// From accepting a connection, or from the first byte of a later request, until its
    /// headers are complete.
    pub header_read_timeout: Duration,
    /// Between requests on a keep-alive connection.
    pub idle_timeout: Duration,
    /// Open client connections at most.
    pub max_connections: usize,
}

impl ConnectionLimits {
    /// Raises the soft open-file limit to the hard one, then derives the cap from it unless
    /// `max_connections` is given; a cap the limit cannot hold is lowered to what it can.
    pub fn resolve(
        header_read_timeout: Duration,
        idle_timeout: Duration,
        max_connections: Option<usize>,
    ) -> ConnectionLimits {
        let open_files = match crate::sys::raise_open_file_limit() {
            Ok(limit) => limit,
            Err(error) => {
                tracing::warn!(%error, "cannot read the open-file limit; assuming 1024");
                1024
            }
        };
        let fits = open_files.saturating_sub(reserve(open_files)).max(1);
        let cap = match max_connections {
            Some(wanted) if wanted as u64 > fits => {
                tracing::warn!(
                    wanted,
                    open_files,
                    max_connections = fits,
                    "--max-connections is above what the open-file limit holds; lowered"
                );
                fits
            }
            Some(wanted) => wanted.max(1) as u64,
            None => fits.min(DEFAULT_CAP_CEILING),
        };
        tracing::info!(open_files, max_connections = cap, "connection limits");
        ConnectionLimits {
            header_read_timeout,
            idle_timeout,
            max_connections: usize::try_from(cap).unwrap_or(usize::MAX),
        }
    }
}

/// Accepts until `stop` is cancelled, then asks every open connection to finish its request
/// and close. Returns the registry, whose [`Registry::all_closed`] says when they have.
pub async fn accept_until(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    stop: CancellationToken,
) -> Arc<Registry> {
    let registry = Arc::new(Registry::new());
    let mut last_warning: Option<Instant> = None;
    loop {
        registry.sheds_settled().await;
        let accepted = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                match registry.admit(limits.max_connections) {
                    Some(conn) => {
                        tokio::spawn(serve_connection(
                            stream,
                            conn,
                            registry.clone(),
                            router.clone(),
                            limits,
                            stop.clone(),
                        ));
                    }
                    None => {
                        // Every open connection is in the middle of a request: refusing
                        // this one keeps the descriptors for them.
                        metrics::counter!("http_connections_refused_total").increment(1);
                        drop(stream);
                    }
                }
            }
            Err(error) if out_of_resources(&error) => {
                // Out of descriptors or memory despite the cap (backends use descriptors
                // too): never stop accepting. Free a descriptor if a connection can give one
                // up, and give the runtime a moment.
                let shed = registry.shed_one();
                if last_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(5)) {
                    tracing::warn!(%error, shed, "accept failed");
                    last_warning = Some(Instant::now());
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                }
            }
            Err(error) => {
                // A connection reset before it was accepted, and the like: that one only.
                tracing::debug!(%error, "accept failed");
            }
        }
    }
    // The listener closes here: new connections are refused from now on.
    registry
}

fn out_of_resources(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Why a connection was closed by the server rather than by its client.
#[derive(Debug, Clone, Copy)]
enum Closed {
    HeaderTimeout,
    IdleTimeout,
    Shed,
}

impl Closed {
    fn label(self) -> &'static str {
        match self {
            Closed::HeaderTimeout => "header_timeout",
            Closed::IdleTimeout => "idle_timeout",
            Closed::Shed => "shed",
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    conn: Arc<Conn>,
    registry: Arc<Registry>,
    router: Router,
    limits: ConnectionLimits,
    stop: CancellationToken,
) {
    let _registered = Registered {
        registry,
        conn: conn.clone(),
    };
    let tracked = conn.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let in_flight = tracked.request_started();
        let router = router.clone();
        // Boxed so the connection is Unpin and can hand its socket back when done.
        Box::pin(async move {
            let response = router.oneshot(request.map(Body::new)).await;
            drop(in_flight);
            response
        })
    });
    let io = TokioIo::new(Watched {
        stream,
        conn: conn.clone(),
    });
    // No hyper timer: its header-read timeout also runs between keep-alive requests, so
    // both deadlines are kept here instead (see `Conn::expired`).
    let mut connection = http1::Builder::new().serve_connection(io, service);
    let mut finishing = false;
    loop {
        tokio::select! {
            result = std::future::poll_fn(|cx| connection.poll_without_shutdown(cx)) => {
                match result {
                    Ok(()) => linger_close(connection.into_parts().io.into_inner().stream).await,
                    Err(error) => tracing::debug!(%error, "connection ended with an error"),
                }
                return;
            }
            closed = conn.expired(&limits) => {
                metrics::counter!("http_connections_closed_total", "reason" => closed.label())
                    .increment(1);
                return;
            }
            _ = stop.cancelled(), if !finishing => {
                // Finish the request in progress, if any, then close; idle ones close now.
                Pin::new(&mut connection).graceful_shutdown();
                finishing = true;
            }
        }
    }
}

/// How long a closing connection keeps reading what the client still sends.
const LINGER: Duration = Duration::from_secs(2);

/// Closing a socket that still holds unread request bytes (a body refused with 413 before it
/// was read) makes the kernel answer with a reset, which can destroy the response just
/// written. So: stop writing, then read and discard what still arrives for a moment, and only
/// then close (the "lingering close" of web servers).
async fn linger_close(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut discard = [0u8; 16 * 1024];
    let _ = tokio::time::timeout(LINGER, async {
        while let Ok(n) = stream.read(&mut discard).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// "Not set" for [`Conn::head_started`].
const NONE: u64 = u64::MAX;

/// What the accept loop and the deadline watcher know of one connection. Times are
/// milliseconds since the registry was created.
struct Conn {
    id: u64,
    epoch: Instant,
    /// Any byte received, ever: connections that never sent one are shed first.
    sent_anything: AtomicBool,
    /// Requests whose handler is running; such a connection is never shed nor timed out here
    /// (the request timeout covers it).
    in_flight: AtomicU32,
    /// When the headers now awaited started: the accept for a new connection, the first
    /// byte of the next request on a kept-alive one; `NONE` while idle or in a request.
    head_started: AtomicU64,
    /// The last byte read or written, or the last request's end.
    last_active: AtomicU64,
    /// Chosen by the accept loop to make room.
    shed: AtomicBool,
    changed: Notify,
}

impl Conn {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn received(&self) {
        let now = self.now();
        self.last_active.store(now, Ordering::Relaxed);
        self.sent_anything.store(true, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_started.load(Ordering::Relaxed) == NONE
        {
            // The next request begins: its headers now have a deadline.
            self.head_started.store(now, Ordering::Relaxed);
            self.changed.notify_one();
        }
    }

    fn sent(&self) {
        self.last_active.store(self.now(), Ordering::Relaxed);
    }

    fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_started.store(NONE, Ordering::Relaxed);
        self.sent();
        self.changed.notify_one();
        InFlight(self.clone())
    }

    /// Resolves when the connection should be closed: headers too slow, idle too long, or
    /// shed. Never while a request is being handled.
    async fn expired(&self, limits: &ConnectionLimits) -> Closed {
        loop {
            if self.shed.load(Ordering::Relaxed) {
                return Closed::Shed;
            }
            if self.in_flight.load(Ordering::Relaxed) > 0 {
                self.changed.notified().await;
                continue;
            }
            let (deadline, reason) = match self.head_started.load(Ordering::Relaxed) {
                NONE => (
                    self.last_active.load(Ordering::Relaxed) + millis(limits.idle_timeout),
                    Closed::IdleTimeout,
                ),
                started => (
                    started + millis(limits.header_read_timeout),
                    Closed::HeaderTimeout,
                ),
            };
            if self.now() >= deadline {
                return reason;
            }
            // Activity only moves deadlines later; what moves one earlier notifies.
            let at = self.epoch + Duration::from_millis(deadline);
            tokio::select! {
                _ = tokio::time::sleep_until(at) => {}
                _ = self.changed.notified() => {}
            }
        }
    }

    /// Lower sorts first when choosing what to shed, `None` when it must not be shed:
    /// never sent a byte (oldest first), then headers still arriving (oldest first), then
    /// idle between requests (least recently active first).
    fn shed_rank(&self) -> Option<(u8, u64)> {
        if self.shed.load(Ordering::Relaxed) || self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let head_started = self.head_started.load(Ordering::Relaxed);
        Some(if !self.sent_anything.load(Ordering::Relaxed) {
            (0, self.id)
        } else if head_started != NONE {
            (1, head_started)
        } else {
            (2, self.last_active.load(Ordering::Relaxed))
        })
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX / 2)
}

/// A request being handled; dropping it (response ready, or the request abandoned) makes the
/// connection idle again.
struct InFlight(Arc<Conn>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.sent();
        self.0.changed.notify_one();
    }
}

/// Connections told to close whose descriptors are not yet freed, at most, before the accept
/// loop waits for them: in a burst it could otherwise outrun them into the reserve.
const MAX_PENDING_SHEDS: usize = 8;

/// The open connections, in the order they were accepted.
pub struct Registry {
    epoch: Instant,
    state: Mutex<RegistryState>,
    closed: Notify,
    shed_closed: Notify,
}

#[derive(Default)]
struct RegistryState {
    next_id: u64,
    open: BTreeMap<u64, Arc<Conn>>,
    /// Of `open`, those already told to close: they no longer count against the cap.
    shedding: usize,
}

impl Registry {
    fn new() -> Registry {
        Registry {
            epoch: Instant::now(),
            state: Mutex::new(RegistryState::default()),
            closed: Notify::new(),
            shed_closed: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, RegistryState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new connection, shedding one if the cap is reached; `None` when every
    /// open connection is busy with a request.
    fn admit(&self, cap: usize) -> Option<Arc<Conn>> {
        let mut state = self.state();
        if state.open.len() - state.shedding >= cap && !shed_locked(&mut state) {
            return None;
        }
        let id = state.next_id;
        state.next_id += 1;
        let now = self.epoch.elapsed().as_millis() as u64;
        let conn = Arc::new(Conn {
            id,
            epoch: self.epoch,
            sent_anything: AtomicBool::new(false),
            in_flight: AtomicU32::new(0),
            head_started: AtomicU64::new(now),
            last_active: AtomicU64::new(now),
            shed: AtomicBool::new(false),
            changed: Notify::new(),
        });
        state.open.insert(id, conn.clone());
        metrics::gauge!("http_connections_open").set((state.open.len() - state.shedding) as f64);
        Some(conn)
    }

    fn shed_one(&self) -> bool {
        shed_locked(&mut self.state())
    }

    fn remove(&self, conn: &Conn) {
        let mut state = self.state();
        if state.open.remove(&conn.id).is_some() && conn.shed.load(Ordering::Relaxed) {
            state.shedding -= 1;
            self.shed_closed.notify_waiters();
        }
        metrics::gauge!("http_connections_open").set((state.open.len() - state.shedding) as f64);
        if state.open.is_empty() {
            self.closed.notify_waiters();
        }
    }

    /// Waits (50 ms at most: accepting must go on) until few shed connections are still
    /// holding their descriptors.
    async fn sheds_settled(&self) {
        let settled = async {
            loop {
                let closed = self.shed_closed.notified();
                tokio::pin!(closed);
                closed.as_mut().enable();
                if self.state().shedding < MAX_PENDING_SHEDS {
                    return;
                }
                closed.await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_millis(50), settled).await;
    }

    /// Waits until every connection has closed.
    pub async fn all_closed(&self) {
        loop {
            let closed = self.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if self.state().open.is_empty() {
                return;
            }
            closed.await;
        }
    }
}

/// Marks the connection that can best give up its place; false when none can.
fn shed_locked(state: &mut RegistryState) -> bool {
    let victim = state
        .open
        .values()
        .filter_map(|conn| conn.shed_rank().map(|rank| (rank, conn)))
        .min_by_key(|(rank, _)| *rank)
        .map(|(_, conn)| conn.clone());
    match victim {
        Some(conn) => {
            conn.shed.store(true, Ordering::Relaxed);
            conn.changed.notify_one();
            state.shedding += 1;
            true
        }
        None => false,
    }
}

/// Removes the connection from the registry however its task ends.
struct Registered {
    registry: Arc<Registry>,
    conn: Arc<Conn>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.remove(&self.conn);
    }
}

/// The client's socket, reporting reads and writes to its [`Conn`].
struct Watched {
    stream: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.stream).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.conn.received();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = ready!(Pin::new(&mut self.stream).poll_write(cx, buf))?;
        self.conn.sent();
        Poll::Ready(Ok(written))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = ready!(Pin::new(&mut self.stream).poll_write_vectored(cx, bufs))?;
        self.conn.sent();
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_leaves_most_descriptors_to_connections() {
        assert_eq!(1024 - reserve(1024), 896);
        assert_eq!(256 - reserve(256), 192);
        assert_eq!(100 - reserve(100), 50);
        assert_eq!(reserve(1 << 20), 1024);
    }

    fn registry_with(cap: usize, n: usize) -> (Registry, Vec<Arc<Conn>>) {
        let registry = Registry::new();
        let conns = (0..n).map(|_| registry.admit(cap).unwrap()).collect();
        (registry, conns)
    }

    #[tokio::test]
    async fn at_the_cap_the_oldest_silent_connection_makes_room() {
        let (registry, conns) = registry_with(3, 3);
        conns[0].received();
        let newest = registry.admit(3).expect("room is made");
        assert!(!conns[0].shed.load(Ordering::Relaxed), "it sent something");
        assert!(conns[1].shed.load(Ordering::Relaxed), "oldest silent one");
        assert!(!conns[2].shed.load(Ordering::Relaxed));
        assert!(!newest.shed.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn a_connection_in_a_request_is_never_shed() {
        let (registry, conns) = registry_with(2, 2);
        let _a = conns[0].request_started();
        let _b = conns[1].request_started();
        assert!(registry.admit(2).is_none());
        drop(_b);
        assert!(registry.admit(2).is_some());
        assert!(conns[1].shed.load(Ordering::Relaxed));
    }
}

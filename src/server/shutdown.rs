//! Graceful shutdown. On SIGTERM: readiness fails at once, the server keeps serving for the
//! drain delay (so the Service stops routing here first), then stops accepting and lets
//! in-flight requests finish. Ctrl-C skips the drain delay: a person is waiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use tokio_util::sync::CancellationToken;

use super::connections::{self, ConnectionLimits};
use super::signals::{Shutdown, Signal};

/// Shared shutdown state: `draining` flips first, `stopped` is cancelled when the server
/// stops accepting work.
#[derive(Clone, Default)]
pub struct Lifecycle {
    draining: Arc<AtomicBool>,
    stopped: CancellationToken,
}

impl Lifecycle {
    pub fn new() -> Lifecycle {
        Lifecycle::default()
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Cancelled once the server stops accepting new requests.
    pub fn stopped(&self) -> CancellationToken {
        self.stopped.clone()
    }
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    lifecycle: Lifecycle,
    limits: ConnectionLimits,
    drain_delay: Duration,
    shutdown_timeout: Duration,
) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    let drain = lifecycle.clone();
    let stop_accepting = stop.clone();
    tokio::spawn(async move {
        let signal = Shutdown::from_signals().requested().await;
        drain.start_draining();
        tracing::info!(?signal, "shutdown requested; readiness now fails");
        if matches!(signal, Signal::Terminate) && !drain_delay.is_zero() {
            tokio::time::sleep(drain_delay).await;
        }
        tracing::info!("no longer accepting connections; finishing in-flight requests");
        drain.stopped().cancel();
        stop_accepting.cancel();
    });
    let connections = connections::accept_until(listener, router, limits, stop).await;
    tokio::select! {
        _ = connections.all_closed() => {}
        _ = tokio::time::sleep(shutdown_timeout) => {
            tracing::warn!("in-flight requests did not finish within the shutdown timeout");
        }
    }
    tracing::info!("stopped");
    Ok(())
}

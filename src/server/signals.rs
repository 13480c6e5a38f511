//! The process's one owner of SIGTERM and SIGINT. Handlers are installed once, on first use;
//! servers, workers and demos all watch the same [`Shutdown`] and decide themselves what a
//! signal means for them (drain and finish, stop claiming, clean up and exit).

use std::sync::{Arc, OnceLock};

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: what Kubernetes sends; servers drain before they stop.
    Terminate,
    /// SIGINT (Ctrl-C): a person is waiting; no drain delay.
    Interrupt,
}

/// A shutdown request shared by everything in the process: a cancellation token plus which
/// signal fired first.
#[derive(Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    signal: Arc<OnceLock<Signal>>,
}

impl Shutdown {
    /// A request nobody has made yet; [`Shutdown::request`] makes it.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// The process-wide shutdown, fed by SIGTERM and SIGINT. Must first be called inside the
    /// Tokio runtime; later calls return the same request.
    pub fn from_signals() -> Shutdown {
        static PROCESS: OnceLock<Shutdown> = OnceLock::new();
        PROCESS
            .get_or_init(|| {
                let shutdown = Shutdown::new();
                let mut terminate =
                    signal(SignalKind::terminate()).expect("a SIGTERM handler can be installed");
                let mut interrupt =
                    signal(SignalKind::interrupt()).expect("a SIGINT handler can be installed");
                let request = shutdown.clone();
                tokio::spawn(async move {
                    // Every signal after the first is absorbed: shutdown is already under way.
                    loop {
                        let signal = tokio::select! {
                            _ = terminate.recv() => Signal::Terminate,
                            _ = interrupt.recv() => Signal::Interrupt,
                        };
                        request.request(signal);
                    }
                });
                shutdown
            })
            .clone()
    }

    /// Asks everything watching to stop. The first signal is the one remembered.
    pub fn request(&self, signal: Signal) {
        let _ = self.signal.set(signal);
        self.token.cancel();
    }

    /// Which signal was received, if any yet.
    pub fn signal(&self) -> Option<Signal> {
        self.signal.get().copied()
    }

    pub fn is_requested(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Waits for the request and says which signal made it.
    pub async fn requested(&self) -> Signal {
        self.token.cancelled().await;
        self.signal().unwrap_or(Signal::Terminate)
    }

    /// The underlying token, for code that only needs "stop now".
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_signal_is_remembered_and_every_clone_sees_it() {
        let shutdown = Shutdown::new();
        let watcher = shutdown.clone();
        assert!(!watcher.is_requested());
        shutdown.request(Signal::Interrupt);
        shutdown.request(Signal::Terminate);
        assert_eq!(watcher.requested().await, Signal::Interrupt);
        assert!(watcher.token().is_cancelled());
    }
}

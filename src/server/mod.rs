//! What every service shares: listening and graceful shutdown, identity, probes, metrics, logs,
//! security headers, the JSON error type, and the backend layer (`postgres`, `redis`: flags,
//! pools and clients, error classification, migrations). A service binds with
//! [`App::builder`], builds its state and routes, says how it is ready, and serves.

pub mod backend;
mod connections;
mod error;
mod identity;
mod layers;
pub mod logging;
pub mod metrics;
pub mod migrations;
pub mod pg_pool;
pub mod postgres;
mod probes;
pub mod redis;
mod shutdown;
pub mod signals;

pub use backend::BackendError;
pub use connections::ConnectionLimits;
pub use error::{ApiError, ApiJson, ApiPath, ApiQuery, method_not_allowed, openapi_document};
pub use identity::Identity;
use probes::ReadyCheck;
pub use shutdown::Lifecycle;
pub use signals::{Shutdown, Signal};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;

/// Flags every HTTP service accepts. Flattened into each service's own `Config`.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// Address and port to listen on, e.g. 127.0.0.1:9000 (takes precedence over PORT)
    #[arg(long, env = "LISTEN_ADDR", value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,

    /// Port to listen on, on all interfaces (used when --listen is not given)
    #[arg(long, env = "PORT")]
    pub port: Option<u16>,

    /// This replica's name, sent in the X-Served-By header (default: the hostname)
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,

    /// Log format: one JSON object per line, or pretty lines for humans
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = logging::LogFormat::Json)]
    pub log_format: logging::LogFormat,

    /// After SIGTERM: how long to keep serving with readiness failing, so load balancers
    /// stop sending traffic before the listener closes
    #[arg(long, env = "DRAIN_DELAY_MS", default_value_t = 1000)]
    pub drain_delay_ms: u64,

    /// After the drain delay: how long in-flight requests get to finish
    #[arg(long, env = "SHUTDOWN_TIMEOUT_MS", default_value_t = 20_000)]
    pub shutdown_timeout_ms: u64,

    /// Longest time one request may take before it is answered 408
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    pub request_timeout_ms: u64,

    /// How long a client gets to send a request's headers, counted from connecting (or, on a
    /// kept-alive connection, from the request's first byte); slower connections are closed
    #[arg(long, env = "HEADER_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_read_timeout_ms: u64,

    /// How long a kept-alive connection may wait for its next request before it is closed
    #[arg(long, env = "IDLE_TIMEOUT_MS", default_value_t = 60_000)]
    pub idle_timeout_ms: u64,

    /// Open client connections at most; at the cap the longest-waiting connection with no
    /// request in progress is closed to admit a new one (default: the open-file limit, raised
    /// to its hard limit at start-up, minus a reserve of an eighth for backends and files; at
    /// most 4096)
    #[arg(long, env = "MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
}

impl ServerArgs {
    /// The address to bind: `--listen`, else `0.0.0.0:PORT`, else `0.0.0.0:<default_port>`.
    pub fn bind_addr(&self, default_port: u16) -> SocketAddr {
        self.listen
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], self.port.unwrap_or(default_port))))
    }

    pub fn identity(&self) -> Identity {
        Identity::resolve(self.pod_name.as_deref())
    }

    /// Raises the open-file limit and derives the connection cap from it (see
    /// [`ConnectionLimits::resolve`]).
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits::resolve(
            Duration::from_millis(self.header_read_timeout_ms),
            Duration::from_millis(self.idle_timeout_ms),
            self.max_connections,
        )
    }
}

/// How a service says whether it can serve: `Err(reason)` while its backend is unusable.
/// `/readyz` calls it; the store of each service implements it.
pub trait Readiness: Send + Sync + 'static {
    fn check(&self) -> impl Future<Output = Result<(), String>> + Send;
}

/// A listener bound and a lifecycle created, before the service builds its state and routes:
/// background tasks get the lifecycle's stop token, and port 0 works in tests.
pub struct AppBuilder {
    listener: tokio::net::TcpListener,
    lifecycle: Lifecycle,
    identity: Identity,
    args: ServerArgs,
    limits: ConnectionLimits,
    ready: Option<ReadyCheck>,
}

impl AppBuilder {
    /// This replica's name (`POD_NAME` or the hostname).
    pub fn identity(&self) -> Identity {
        self.identity.clone()
    }

    /// The shutdown state, for background work that must stop with the server.
    pub fn lifecycle(&self) -> Lifecycle {
        self.lifecycle.clone()
    }

    /// What `/readyz` asks; without it the service is ready whenever it is not shutting down.
    pub fn ready(mut self, readiness: impl Readiness) -> AppBuilder {
        let readiness = Arc::new(readiness);
        self.ready = Some(Arc::new(move || {
            let readiness = readiness.clone();
            Box::pin(async move { readiness.check().await })
        }));
        self
    }

    /// Wraps the service's routes with the shared probes, `/metrics`, identity and security
    /// headers, timeouts and request metrics.
    pub fn serve(self, routes: Router) -> App {
        let ready = self
            .ready
            .unwrap_or_else(|| Arc::new(|| Box::pin(async { Ok(()) })));
        let router = routes
            .merge(probes::routes(ready, self.lifecycle.clone()))
            .merge(metrics::routes());
        let router = layers::apply(
            router,
            &self.identity,
            Duration::from_millis(self.args.request_timeout_ms),
        );
        App {
            listener: self.listener,
            router,
            lifecycle: self.lifecycle,
            args: self.args,
            limits: self.limits,
        }
    }
}

/// A bound, not yet serving, HTTP service.
pub struct App {
    listener: tokio::net::TcpListener,
    router: Router,
    lifecycle: Lifecycle,
    args: ServerArgs,
    limits: ConnectionLimits,
}

impl App {
    /// Binds the listener first (so port 0 works) and creates the lifecycle; the service then
    /// builds its state and routes and calls [`AppBuilder::serve`].
    pub async fn builder(args: &ServerArgs, default_port: u16) -> anyhow::Result<AppBuilder> {
        // First, so backends opened while the service builds its state get the raised limit.
        let limits = args.connection_limits();
        let addr = args.bind_addr(default_port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        Ok(AppBuilder {
            listener,
            lifecycle: Lifecycle::new(),
            identity: args.identity(),
            args: args.clone(),
            limits,
            ready: None,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The shutdown state, for services that run background work alongside the server.
    pub fn lifecycle(&self) -> Lifecycle {
        self.lifecycle.clone()
    }

    /// Serves until SIGTERM or Ctrl-C, then shuts down gracefully (see [`shutdown`]).
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let local = self.listener.local_addr()?;
        tracing::info!(%local, "listening");
        shutdown::serve(
            self.listener,
            self.router,
            self.lifecycle,
            self.limits,
            Duration::from_millis(self.args.drain_delay_ms),
            Duration::from_millis(self.args.shutdown_timeout_ms),
        )
        .await
    }
}

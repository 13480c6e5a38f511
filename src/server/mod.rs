//! What every service shares: listening and graceful shutdown, identity, probes, metrics, logs,
//! security headers and the JSON error type. A service builds its own routes and a readiness
//! check, and hands both to [`App::bind`].

mod error;
mod identity;
mod layers;
pub mod logging;
pub mod metrics;
mod probes;
pub mod schema;
mod shutdown;
pub mod signals;

pub use error::{ApiError, ApiJson, ApiQuery};
pub use identity::Identity;
pub use probes::ReadyCheck;
pub use shutdown::Lifecycle;
pub use signals::{Shutdown, Signal};

use std::net::SocketAddr;
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
}

/// A bound, not yet serving, HTTP service.
pub struct App {
    listener: tokio::net::TcpListener,
    router: Router,
    lifecycle: Lifecycle,
    args: ServerArgs,
}

impl App {
    /// Binds the listener first (so port 0 works), then wraps the service's routes with the
    /// shared probes, `/metrics`, identity and security headers, timeouts and request metrics.
    pub async fn bind(
        args: &ServerArgs,
        default_port: u16,
        identity: Identity,
        routes: Router,
        ready: ReadyCheck,
    ) -> anyhow::Result<App> {
        logging::init(args.log_format);
        let addr = args.bind_addr(default_port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let lifecycle = Lifecycle::new();
        let router = routes
            .merge(probes::routes(ready, lifecycle.clone()))
            .merge(metrics::routes());
        let router = layers::apply(
            router,
            &identity,
            Duration::from_millis(args.request_timeout_ms),
        );
        Ok(App {
            listener,
            router,
            lifecycle,
            args: args.clone(),
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
            Duration::from_millis(self.args.drain_delay_ms),
            Duration::from_millis(self.args.shutdown_timeout_ms),
        )
        .await
    }
}

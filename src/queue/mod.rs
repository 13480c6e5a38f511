//! The task queue of seed 001, Section 3: a producer API (`statelab queue`) and a worker fleet
//! (`statelab worker`) over a durable queue in PostgreSQL (default) or Redis.
//!
//! Delivery is at least once: a task is claimed with a lease, renewed while it runs; a worker
//! that dies loses its lease and another worker runs the task again. Every claim increments
//! the task's attempt number and acknowledgements are fenced by it, so a stale worker can never
//! overwrite a newer attempt's result. Failed attempts are retried with exponential backoff
//! and jitter up to `max_attempts`, then dead-lettered (inspectable, re-queueable).

pub mod backend;
pub mod config;
pub mod model;
pub mod routes;
pub mod tasks;
pub mod worker;

use std::sync::Arc;

pub use config::{BackendArgs, Config, WorkerConfig};

use crate::server::App;
use tasks::Registry;

/// Default port of the producer API (the seeds' API port).
pub const DEFAULT_PORT: u16 = 8000;

/// Builds the producer API with the built-in task types.
pub async fn build(config: Config) -> anyhow::Result<App> {
    build_with(config, Registry::builtin()).await
}

/// Builds the producer API; `registry` decides which task types and payloads it accepts.
pub async fn build_with(config: Config, registry: Registry) -> anyhow::Result<App> {
    let app = App::builder(&config.server, DEFAULT_PORT).await?;
    // The schema keeper stops when the server stops accepting requests.
    let backend = config.backend.open(app.lifecycle().stopped())?;
    tracing::info!(
        backend = backend.kind(),
        target = %config.backend.target(),
        "queue producer starting"
    );
    let state = routes::AppState {
        backend: backend.clone(),
        registry: Arc::new(registry),
        identity: app.identity(),
    };
    Ok(app.ready(backend).serve(routes::router(state)))
}

/// `statelab queue`: serves the producer API until SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    build(config).await?.run_until_stopped().await
}

/// `statelab worker`: runs tasks until SIGTERM.
pub async fn run_worker(config: WorkerConfig) -> anyhow::Result<()> {
    worker::run(config).await
}

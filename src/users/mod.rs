//! `statelab users`: the users API of Lab 06, Section 1. A stateless JSON API (a Deployment in
//! Kubernetes) in front of PostgreSQL (a StatefulSet reached at `postgres-0.postgres-headless`).
//!
//! Startup never waits for the database: the pool connects lazily, a background task creates
//! the schema with migrations and retries with backoff, and until both work every endpoint
//! answers 503 quickly and `/readyz` fails. When the database comes back the API recovers by
//! itself.

mod config;
mod routes;
mod store;
mod validate;

pub use config::Config;
pub use routes::{DEFAULT_LIMIT, MAX_BODY_BYTES, MAX_LIMIT, OPENAPI};
pub use store::{MIGRATIONS_TABLE, User};
pub use validate::{EMAIL_MAX_LEN, NAME_MAX_CHARS};

use std::sync::Arc;

use futures::FutureExt;

use crate::server::{App, ReadyCheck};

/// The seed's port.
pub const DEFAULT_PORT: u16 = 8000;

/// Config -> pool and schema task -> router -> bound listener.
pub async fn build(config: Config) -> anyhow::Result<App> {
    let options = config.connect_options()?;
    let store = store::Store::new(
        options,
        config.db_pool_size,
        config.acquire_timeout(),
        config.query_timeout(),
    );
    let host: Arc<str> = config.display_host().into();

    let ready_store = store.clone();
    let ready: ReadyCheck = Arc::new(move || {
        let store = ready_store.clone();
        async move { store.check().await.map_err(|(_, reason)| reason) }.boxed()
    });

    let state = routes::AppState {
        store: store.clone(),
        host,
    };
    let app = App::bind(
        &config.server,
        DEFAULT_PORT,
        config.server.identity(),
        routes::router(state),
        ready,
    )
    .await?;
    tracing::info!(
        database = %config.database_target(),
        pool_size = config.db_pool_size,
        acquire_timeout_ms = config.db_acquire_timeout_ms,
        "users API configured; the schema is created in the background"
    );
    metrics::gauge!("users_schema_ready").set(0.0);
    tokio::spawn(store.keep_schema(app.lifecycle().stopped()));
    Ok(app)
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    build(config).await?.run_until_stopped().await
}

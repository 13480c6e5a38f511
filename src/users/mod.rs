//! `statelab users`: the users API of Lab 06, Section 1. A stateless JSON API (a Deployment in
//! Kubernetes) in front of PostgreSQL (a StatefulSet reached at `postgres-0.postgres-headless`).
//!
//! Startup never waits for the database: the pool connects lazily, a background task creates
//! the schema with migrations and retries with backoff, and until both work every endpoint
//! answers 503 quickly and `/readyz` fails. When the database comes back the API recovers by
//! itself.

mod config;
mod routes;
pub(crate) mod store;
mod validate;

pub use config::Config;
pub use routes::{DEFAULT_LIMIT, MAX_BODY_BYTES, MAX_LIMIT, OPENAPI};
pub use store::{MIGRATIONS_TABLE, User};
pub use validate::{EMAIL_MAX_LEN, NAME_MAX_CHARS};

use crate::server::App;

/// The seed's port.
pub const DEFAULT_PORT: u16 = 8000;

/// Config -> listener and lifecycle -> pool and schema task -> router.
pub async fn build(config: Config) -> anyhow::Result<App> {
    // Every users query has one good plan, a primary-key index scan, whatever its parameters.
    // Left to choose, PostgreSQL plans a page again at every request (a `LIMIT $2` of unknown
    // size makes its generic plan look costly), a third of its CPU per page.
    let database = config.database.connect_lazy_with(
        "statelab-users",
        &[("plan_cache_mode", "force_generic_plan")],
    )?;
    let app = App::builder(&config.server, DEFAULT_PORT).await?;
    let store = store::Store::new(database, app.lifecycle().stopped());
    tracing::info!(
        database = %config.database.target(),
        pool_size = config.database.db_pool_size,
        "users API configured; the schema is created in the background"
    );
    let state = routes::AppState {
        store: store.clone(),
        host: config.database.display_host().into(),
    };
    Ok(app.ready(store).serve(routes::router(state)))
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    build(config).await?.run_until_stopped().await
}

//! `statelab cache`: a JSON cache API over Redis (seed 001, Section 2). The API is stateless
//! and runs as a Deployment; Redis, with AOF persistence, is the StatefulSet behind it.
//!
//! Redis being down never stops the API from starting or answering: the connection is made
//! lazily and re-made by itself, requests get a 503 with the reason within `--redis-timeout-ms`,
//! and readiness fails until Redis answers again.

mod config;
mod routes;
mod store;

pub use config::{Config, DEFAULT_PORT, MAX_TTL_SECONDS};
pub use routes::KEY_PUNCTUATION;

use std::sync::Arc;

use futures::FutureExt;

use crate::server::{App, ReadyCheck};
use store::Store;

/// Config -> Redis connection manager (lazy) -> router -> bound listener; starts the background
/// Redis check, which ends when the server stops.
pub async fn build(config: Config) -> anyhow::Result<App> {
    let (info, target) = config.validate()?;
    let store = Store::new(
        info,
        target,
        config.key_prefix.clone(),
        config.redis_timeout(),
    )?;
    let ready_store = store.clone();
    let ready: ReadyCheck = Arc::new(move || {
        let store = ready_store.clone();
        async move { store.ping().await.map_err(|e| e.to_string()) }.boxed()
    });
    let state = routes::AppState {
        store: store.clone(),
        max_key_length: config.max_key_length,
        max_value_bytes: config.max_value_bytes,
        max_page_size: config.max_page_size,
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
        redis = %store.target().display,
        prefix = store.prefix(),
        "cache API configured"
    );
    tokio::spawn(store.monitor(app.lifecycle().stopped()));
    Ok(app)
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    build(config).await?.run_until_stopped().await
}

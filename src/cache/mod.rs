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

use crate::server::App;
use store::Store;

/// Config -> listener and lifecycle -> Redis client (lazy) -> router; starts the background
/// Redis check, which ends when the server stops.
pub async fn build(config: Config) -> anyhow::Result<App> {
    config.validate()?;
    let store = Store::new(config.redis.connect_lazy()?, &config.key_prefix);
    let app = App::builder(&config.server, DEFAULT_PORT).await?;
    tokio::spawn(store.clone().monitor(app.lifecycle().stopped()));
    tracing::info!(
        redis = %store.target().display,
        prefix = store.prefix(),
        "cache API configured"
    );
    let state = routes::AppState {
        store: store.clone(),
        max_key_length: config.max_key_length,
        max_value_bytes: config.max_value_bytes,
        max_page_size: config.max_page_size,
    };
    Ok(app.ready(store).serve(routes::router(state)))
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    build(config).await?.run_until_stopped().await
}

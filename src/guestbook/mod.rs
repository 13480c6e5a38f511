//! `statelab guestbook`: seed 000's guestbook. One SQLite file by default (the anti-pattern
//! that fails with "database is locked" when several replicas share it), PostgreSQL as the fix.

pub mod config;
mod routes;
pub mod store;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;

pub use config::Config;
use routes::Guestbook;
use store::Store;
use store::postgres::PgStore;
use store::sqlite::{SqliteSettings, SqliteStore};

use crate::server::{self, App, ReadyCheck};

pub const DEFAULT_PORT: u16 = 8000;

pub async fn build(config: Config) -> anyhow::Result<App> {
    server::logging::init(config.server.log_format);
    let identity = config.server.identity();
    let store = open_store(&config).await?;
    tracing::info!(backend = store.backend(), replica = identity.name(), "guestbook starting");
    let app = Arc::new(Guestbook {
        store,
        identity: identity.clone(),
        page_size: config.page_size,
    });
    let ready_app = app.clone();
    let ready: ReadyCheck = Arc::new(move || {
        let app = ready_app.clone();
        Box::pin(async move { app.store.check().await.map_err(|e| e.to_string()) })
    });
    let routes = Router::new()
        .route("/", get(routes::page).post(routes::sign))
        .route("/api/messages", get(routes::list_messages).post(routes::post_message))
        .route("/health", get(routes::health))
        .route("/static/guestbook.css", get(routes::stylesheet))
        .layer(DefaultBodyLimit::max(validate::BODY_LIMIT_BYTES))
        .with_state(app);
    App::bind(&config.server, DEFAULT_PORT, identity, routes, ready).await
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    build(config).await?.run_until_stopped().await
}

async fn open_store(config: &Config) -> anyhow::Result<Store> {
    match config.database.as_deref() {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => Ok(
            Store::Postgres(PgStore::connect(url, config.pool_size, config.secret.clone())?),
        ),
        database => {
            let path = match database {
                Some(db) if !db.is_empty() => store::sqlite::path_from(db),
                _ => config.data_dir.join("database.db"),
            };
            std::fs::create_dir_all(&config.data_dir)?;
            let settings = SqliteSettings {
                path,
                begin: config.sqlite_begin,
                busy_timeout: Duration::from_millis(config.sqlite_busy_timeout_ms),
                journal_mode: config.sqlite_journal_mode,
            };
            Ok(Store::Sqlite(SqliteStore::open(settings, config.secret.as_deref()).await?))
        }
    }
}

//! `statelab guestbook`: seed 000's guestbook. One SQLite file by default (the anti-pattern
//! that fails with "database is locked" when several replicas share it), PostgreSQL as the fix.

pub mod config;
mod routes;
pub mod store;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

pub use config::Config;
use routes::Guestbook;
use store::Store;
use store::postgres::PgStore;
use store::sqlite::{SqliteSettings, SqliteStore};

use tokio_util::sync::CancellationToken;

use crate::server::App;

pub const DEFAULT_PORT: u16 = 8000;

pub async fn build(config: Config) -> anyhow::Result<App> {
    let app = App::builder(&config.server, DEFAULT_PORT).await?;
    let identity = app.identity();
    let store = Arc::new(open_store(&config, app.lifecycle().stopped()).await?);
    tracing::info!(
        backend = store.backend(),
        replica = identity.name(),
        "guestbook starting"
    );
    let guestbook = Arc::new(Guestbook {
        store: store.clone(),
        identity,
        page_size: config.page_size,
        last_page: Default::default(),
    });
    Ok(app.ready(store).serve(routes::router(guestbook)))
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    build(config).await?.run_until_stopped().await
}

/// PostgreSQL when DATABASE_URL or DB_HOST names it; otherwise the SQLite file.
async fn open_store(config: &Config, stop: CancellationToken) -> anyhow::Result<Store> {
    if config.database.is_set() && config.sqlite_url().is_none() {
        let database = config.database.connect_lazy("statelab-guestbook")?;
        return Ok(Store::Postgres(PgStore::new(
            database,
            config.secret.clone(),
            stop,
        )));
    }
    let path = match config.sqlite_url() {
        Some(url) => store::sqlite::path_from(url),
        None => config.data_dir.join("database.db"),
    };
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| unwritable(&config.data_dir, e.into()))?;
    let settings = SqliteSettings {
        path,
        begin: config.sqlite_begin,
        busy_timeout: Duration::from_millis(config.sqlite_busy_timeout_ms),
        journal_mode: config.sqlite_journal_mode,
    };
    let store = SqliteStore::open(settings, config.secret.as_deref())
        .await
        .map_err(|e| unwritable(&config.data_dir, e))?;
    Ok(Store::Sqlite(store))
}

/// SQLite's own "unable to open database file" does not say why. The usual reason is a data
/// directory this user cannot write, e.g. one a person created and mounted into a container
/// that runs as another UID (seed 000's `docker run -v $(pwd)/data:/data`).
fn unwritable(dir: &std::path::Path, error: anyhow::Error) -> anyhow::Error {
    let (uid, gid) = crate::sys::effective_ids();
    let writable = tempfile::tempfile_in(dir).is_ok();
    if writable {
        return error;
    }
    error.context(format!(
        "the data directory {} is not writable by this process (UID {uid}, GID {gid}); give \
         it to that user, or run as its owner (with Docker: --user \"$(id -u):$(id -g)\")",
        dir.display()
    ))
}

//! `statelab counter`: the per-pod counter of seed 003 and the visit counters of seeds 002 and
//! 004. State is a small file per counter on the replica's own volume, updated under an
//! exclusive file lock with a temp-file + fsync + rename write, so increments from several
//! processes on one volume are never lost and a crash never leaves a torn file.

mod config;
mod init;
mod routes;
mod settings;
pub mod store;
mod writer;

pub use config::{Config, FilesArgs, InitArgs, SecretString};

use std::sync::Arc;

use anyhow::Context;

use crate::server::{self, Readiness};
use routes::AppState;
use settings::Settings;
use store::CounterFile;
use writer::Writer;

/// Seed 003's port.
pub const DEFAULT_PORT: u16 = 8080;

/// `statelab counter [OPTIONS]` serves; `statelab counter init` prepares the data directory.
#[derive(clap::Args, Debug, Clone)]
pub struct CounterCommand {
    #[command(subcommand)]
    pub action: Option<CounterAction>,

    #[command(flatten)]
    pub config: Config,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum CounterAction {
    /// Create the counter files when absent, as seed 003's init container does; never
    /// overwrites an existing value
    Init(InitArgs),
}

/// Runs the server, or `init` when asked.
pub async fn main(command: CounterCommand) -> anyhow::Result<()> {
    match command.action {
        Some(CounterAction::Init(args)) => {
            tokio::task::spawn_blocking(move || init::run(&args)).await?
        }
        None => run(command.config).await,
    }
}

pub async fn build(config: Config) -> anyhow::Result<server::App> {
    let app = server::App::builder(&config.server, DEFAULT_PORT).await?;
    let identity = app.identity();
    // Seed 003's start-up lines, word for word, so a student finds them in `kubectl logs`.
    tracing::info!(
        pod = identity.name(),
        "Starting counter app on pod: {}",
        identity.name()
    );
    let settings = Arc::new(Settings::load(&config)?);
    let dir = config.files.data_dir.clone();
    let counter_file = CounterFile::new(&dir, config.files.counter_file.as_str());
    let visits_file = CounterFile::new(&dir, config.files.visits_file.as_str());
    // A directory that cannot be created now is reported by readiness, which retries.
    match std::fs::create_dir_all(&dir) {
        Ok(()) => {
            let files = [
                (&counter_file, "Counter file", "Initial count"),
                (&visits_file, "Visits file", "Initial visits"),
            ];
            for (file, file_label, value_label) in files {
                match file.remove_stale_temp_files() {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(file = %file.path().display(), removed = n,
                        "removed temporary files left by an interrupted write"),
                    Err(error) => tracing::warn!(%error, "cannot clean temporary files"),
                }
                match file.read() {
                    Ok(value) => {
                        let path = file.path().display().to_string();
                        tracing::info!(file = %path, "{file_label}: {path}");
                        tracing::info!(file = %path, value, "{value_label}: {value}");
                    }
                    Err(error) => tracing::error!(%error, "counter file unusable; not ready"),
                }
            }
        }
        Err(error) => tracing::error!(dir = %dir.display(), %error,
            "cannot create the data directory; not ready until it can be"),
    }
    let state = AppState {
        identity: identity.clone(),
        counter: Writer::start(counter_file).context("cannot start the counter writer")?,
        visits: Writer::start(visits_file).context("cannot start the visits writer")?,
        settings,
        lifecycle: app.lifecycle(),
    };
    Ok(app.ready(state.clone()).serve(routes::router(state)))
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    build(config).await?.run_until_stopped().await
}

impl Readiness for AppState {
    async fn check(&self) -> Result<(), String> {
        self.check_files().await
    }
}

//! The command line: one subcommand per service and tool.

use std::process::ExitCode;

use crate::server::logging::LogFormat;
use clap::{Parser, Subcommand};

/// The lessons of stateful workloads on Kubernetes, runnable and measurable.
///
/// Configuration comes from flags, then environment variables, then a `.env` file in the
/// working directory, then defaults.
#[derive(Parser)]
#[command(name = "statelab", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Seed 000's guestbook: SQLite file by default (breaks when scaled), PostgreSQL as the fix
    Guestbook(crate::guestbook::Config),
    /// Check Kubernetes manifests for the mistakes stateful workloads suffer from
    Lint(crate::lint::LintArgs),
    /// Per-pod counter and visit counter whose state is a file on the pod's own volume
    /// (seeds 002, 003, 004); `counter init` prepares the data directory
    Counter(Box<crate::counter::CounterCommand>),
    /// The lessons as one local command each, with real replicas on loopback ports
    #[command(subcommand)]
    Demo(crate::demo::DemoCommand),
    /// JSON cache API over Redis with AOF persistence (seed 001, Section 2)
    Cache(crate::cache::Config),
    /// Task queue producer API (seed 001, Section 3): POST /tasks, GET /tasks/{id}, /stats
    Queue(crate::queue::Config),
    /// Task queue worker: claims tasks with a lease, runs them, retries with backoff
    Worker(crate::queue::WorkerConfig),
    /// JSON users API on PostgreSQL (Lab 06, Section 1)
    Users(crate::users::Config),
    /// Concurrent HTTP load against one or more replicas, with an audit of what was stored
    Load(crate::load::Args),
    /// Run the seeds' experiments on the labs deployed in a real cluster, and score them
    Verify(crate::verify::VerifyArgs),
}

impl Command {
    /// Services log as their flags say; the tools print their own output and log nothing.
    fn log_format(&self) -> Option<LogFormat> {
        match self {
            Command::Guestbook(c) => Some(c.server.log_format),
            Command::Counter(c) => Some(c.config.server.log_format),
            Command::Cache(c) => Some(c.server.log_format),
            Command::Queue(c) => Some(c.server.log_format),
            Command::Worker(c) => Some(c.server.log_format),
            Command::Users(c) => Some(c.server.log_format),
            Command::Lint(_) | Command::Demo(_) | Command::Load(_) | Command::Verify(_) => None,
        }
    }
}

/// The whole program: parse the command line, run the subcommand, say why it failed.
///
/// Here in the library rather than in `main.rs`, so that every subcommand's code is compiled
/// once, in this crate: code the binary instantiated itself was compiled a second time there.
pub fn main() -> ExitCode {
    // `.env` never overrides a variable that is already set: flag > env > .env > default.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    if let Some(format) = cli.command.log_format() {
        crate::server::logging::init(format);
    }
    let runtime = tokio::runtime::Runtime::new().expect("the async runtime starts");
    let result: anyhow::Result<ExitCode> = runtime.block_on(async move {
        match cli.command {
            Command::Guestbook(c) => crate::guestbook::run(c).await.map(|()| ExitCode::SUCCESS),
            Command::Lint(args) => Ok(crate::lint::run(args)),
            Command::Counter(c) => crate::counter::main(*c).await.map(|()| ExitCode::SUCCESS),
            Command::Demo(c) => crate::demo::run(c).await,
            Command::Cache(c) => crate::cache::run(c).await.map(|()| ExitCode::SUCCESS),
            Command::Queue(c) => crate::queue::run(c).await.map(|()| ExitCode::SUCCESS),
            Command::Worker(c) => crate::queue::run_worker(c)
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::Users(c) => crate::users::run(c).await.map(|()| ExitCode::SUCCESS),
            Command::Load(c) => crate::load::run(c).await,
            Command::Verify(args) => Ok(crate::verify::run(args).await),
        }
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("statelab: {error:#}");
            ExitCode::FAILURE
        }
    }
}

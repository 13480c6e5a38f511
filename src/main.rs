use std::process::ExitCode;

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
    Guestbook(statelab::guestbook::Config),
    /// Concurrent HTTP load against one or more replicas, with an audit of what was stored
    Load(statelab::load::Args),
    /// Local multi-replica demonstrations of the lessons
    #[command(subcommand)]
    Demo(statelab::demo::DemoCommand),
}

fn main() -> ExitCode {
    // `.env` never overrides a variable that is already set: flag > env > .env > default.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("the async runtime starts");
    let result: anyhow::Result<ExitCode> = runtime.block_on(async move {
        match cli.command {
            Command::Guestbook(c) => statelab::guestbook::run(c).await.map(|()| ExitCode::SUCCESS),
            Command::Load(c) => statelab::load::run(c).await,
            Command::Demo(c) => statelab::demo::run(c).await,
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

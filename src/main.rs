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
    /// JSON users API on PostgreSQL (Lab 06, Section 1)
    Users(statelab::users::Config),
}

fn main() -> ExitCode {
    // `.env` never overrides a variable that is already set: flag > env > .env > default.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("the async runtime starts");
    let result: anyhow::Result<ExitCode> = runtime.block_on(async move {
        match cli.command {
            Command::Users(c) => statelab::users::run(c).await.map(|()| ExitCode::SUCCESS),
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

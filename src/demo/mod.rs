//! `statelab demo ...`: the lessons reproduced locally with real child processes.

pub mod scaling;

use std::process::ExitCode;

#[derive(clap::Subcommand, Debug, Clone)]
pub enum DemoCommand {
    /// Seed 000's lesson as one table: the guestbook at 1, 2 and 3 replicas sharing one
    /// SQLite file, the "busy timeout" workaround, and PostgreSQL
    Scaling(scaling::Args),
}

pub async fn run(cmd: DemoCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DemoCommand::Scaling(args) => scaling::run(args).await,
    }
}

//! `statelab demo …`: each lesson as one local command. The demos start real child processes
//! of this executable on free loopback ports and stop them by PID when done or interrupted.

mod identity;
mod local_replica;
mod persistence;
pub mod scaling;

use std::process::ExitCode;

#[derive(clap::Subcommand, Debug)]
pub enum DemoCommand {
    /// Seed 000's lesson as one table: the guestbook at 1, 2 and 3 replicas sharing one
    /// SQLite file, the "busy timeout" workaround, and PostgreSQL
    Scaling(scaling::Args),
    /// A counter replica killed with kill -9 and restarted on the same directory keeps its
    /// count (also after `counter init` runs again)
    Persistence(persistence::Args),
    /// Two counter replicas with their own directories: separate counts, each response naming
    /// its replica
    Identity(identity::Args),
    /// The task queue under faults: enqueue, kill -9 a worker mid-task, restart the backend,
    /// and a table showing every task finished
    Queue(crate::queue::demo::DemoQueueArgs),
}

pub async fn run(command: DemoCommand) -> anyhow::Result<ExitCode> {
    let demo = async move {
        match command {
            DemoCommand::Scaling(args) => scaling::run(args).await,
            DemoCommand::Persistence(args) => persistence::run(args).await,
            DemoCommand::Identity(args) => identity::run(args).await,
            DemoCommand::Queue(args) => crate::queue::demo::run(args)
                .await
                .map(|()| ExitCode::SUCCESS),
        }
    };
    // Dropping the demo on Ctrl-C or SIGTERM drops its replicas, which kills them by PID.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = demo => result,
        _ = tokio::signal::ctrl_c() => interrupted(),
        _ = term.recv() => interrupted(),
    }
}

fn interrupted() -> anyhow::Result<ExitCode> {
    eprintln!("interrupted: every replica this demo started has been stopped");
    Ok(ExitCode::from(130))
}

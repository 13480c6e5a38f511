//! `statelab demo …`: each lesson as one local command. The demos start real child processes
//! (of this executable, and private backends) through [`process`] and [`backends`], which the
//! integration tests use too, and stop them by PID when done or interrupted.

pub mod backends;
mod identity;
mod local_replica;
mod persistence;
pub mod poll;
pub mod process;
pub mod queue;
pub mod scaling;

use std::future::Future;
use std::process::ExitCode;

use crate::server::signals::Shutdown;

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
    Queue(queue::DemoQueueArgs),
}

/// Runs one demo. SIGINT and SIGTERM reach it through the process's one [`Shutdown`]; the
/// demo stops what it started, drops what it created, and only then returns.
pub async fn run(command: DemoCommand) -> anyhow::Result<ExitCode> {
    let shutdown = Shutdown::from_signals();
    let result = match command {
        DemoCommand::Scaling(args) => scaling::run(args, shutdown.clone()).await,
        DemoCommand::Persistence(args) => persistence::run(args, &shutdown).await,
        DemoCommand::Identity(args) => identity::run(args, &shutdown).await,
        DemoCommand::Queue(args) => queue::run(args, &shutdown)
            .await
            .map(|()| ExitCode::SUCCESS),
    };
    if shutdown.is_requested() {
        eprintln!("interrupted: every replica this demo started has been stopped");
        return Ok(ExitCode::from(crate::load::EXIT_INTERRUPTED));
    }
    result
}

/// Runs `steps` until they end or a shutdown is requested. For demos whose every child is a
/// [`process::Process`] owned by `steps` or by the caller: dropping the steps stops those
/// children by PID before this returns (the drop is synchronous), so nothing is left behind.
async fn until_shutdown<T>(
    shutdown: &Shutdown,
    steps: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::select! {
        result = steps => result,
        signal = shutdown.requested() => anyhow::bail!("interrupted by {signal:?}"),
    }
}

//! Flags (and their environment variables) for `statelab queue` and `statelab worker`.

use anyhow::{bail, ensure};
use tokio_util::sync::CancellationToken;

use super::backend::Backend;
use super::backend::postgres::PgBackend;
use super::backend::redis::RedisBackend;
use super::model::Retention;
use crate::server::ServerArgs;
use crate::server::postgres::PostgresArgs;
use crate::server::redis::RedisArgs;

/// Prefix of every Redis key the queue uses, unless QUEUE_REDIS_PREFIX says otherwise.
pub const DEFAULT_REDIS_PREFIX: &str = "statelab:queue:";

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// PostgreSQL if a database is configured, else Redis if a Redis server is configured
    Auto,
    Postgres,
    Redis,
}

/// Where the queue lives: PostgreSQL (default) or Redis. The connection flags are the ones
/// every service shares; the queue's own defaults (database `queue`, 6 connections) are set
/// on [`Config`] and [`WorkerConfig`].
#[derive(clap::Args, Debug, Clone)]
pub struct BackendArgs {
    /// Which backend to use
    #[arg(long, env = "QUEUE_BACKEND", value_enum, default_value_t = BackendKind::Auto)]
    pub backend: BackendKind,

    #[command(flatten)]
    pub postgres: PostgresArgs,

    #[command(flatten)]
    pub redis: RedisArgs,

    /// Prefix of every Redis key the queue uses
    #[arg(long, env = "QUEUE_REDIS_PREFIX", default_value = DEFAULT_REDIS_PREFIX)]
    pub redis_prefix: String,
}

impl BackendArgs {
    /// Which backend the flags select.
    pub fn kind(&self) -> anyhow::Result<BackendKind> {
        Ok(match self.backend {
            BackendKind::Auto if self.postgres.is_set() => BackendKind::Postgres,
            BackendKind::Auto if self.redis.is_set() => BackendKind::Redis,
            BackendKind::Auto => bail!(
                "no queue backend configured: set --database-url/DATABASE_URL (or DB_HOST) for \
                 PostgreSQL, or --redis-url/REDIS_URL (or REDIS_HOST) for Redis"
            ),
            other => other,
        })
    }

    /// Where the queue lives, for logs: never with a password.
    pub fn target(&self) -> String {
        match self.kind() {
            Ok(BackendKind::Redis) => match self.redis.connection_info() {
                Ok((_, target)) => format!("redis://{}", target.display),
                Err(_) => "(invalid Redis settings)".to_owned(),
            },
            Ok(_) => self.postgres.target(),
            Err(_) => "(none)".to_owned(),
        }
    }

    /// Builds the configured backend. It connects lazily: a backend that is down makes the
    /// service not ready, never stops it from starting. The PostgreSQL schema is kept in
    /// place until `stop`.
    pub fn open(&self, stop: CancellationToken) -> anyhow::Result<Backend> {
        match self.kind()? {
            BackendKind::Postgres => {
                ensure!(
                    self.postgres.is_set(),
                    "--backend postgres needs --database-url/DATABASE_URL or DB_HOST"
                );
                let db = self.postgres.connect_lazy("statelab-queue")?;
                Ok(Backend::Postgres(PgBackend::new(db, stop)))
            }
            BackendKind::Redis => {
                ensure!(
                    self.redis.is_set(),
                    "--backend redis needs --redis-url/REDIS_URL or REDIS_HOST"
                );
                Ok(Backend::Redis(RedisBackend::new(
                    &self.redis,
                    &self.redis_prefix,
                )?))
            }
            BackendKind::Auto => unreachable!("resolved by kind()"),
        }
    }
}

/// `statelab queue`: the producer API.
#[derive(clap::Args, Debug, Clone)]
#[command(
    mut_arg("db_name", |a| a.default_value("queue")),
    mut_arg("db_pool_size", |a| a.default_value("6")),
    // A batch of 1000 or a claim takes milliseconds; 2 s leaves room for a loaded Redis
    // while a frozen one still gets a 503 soon. Readiness waits 500 ms at most.
    mut_arg("redis_timeout_ms", |a| a.default_value("2000"))
)]
pub struct Config {
    #[command(flatten)]
    pub server: ServerArgs,

    #[command(flatten)]
    pub backend: BackendArgs,
}

/// `statelab worker`: claims and runs tasks.
#[derive(clap::Args, Debug, Clone)]
#[command(
    mut_arg("db_name", |a| a.default_value("queue")),
    mut_arg("db_pool_size", |a| a.default_value("6")),
    // A batch of 1000 or a claim takes milliseconds; 2 s leaves room for a loaded Redis
    // while a frozen one still gets a 503 soon. Readiness waits 500 ms at most.
    mut_arg("redis_timeout_ms", |a| a.default_value("2000"))
)]
pub struct WorkerConfig {
    /// Probes and metrics are served only when --listen (LISTEN_ADDR) is given, so several
    /// workers can run side by side on one machine with no flags
    #[command(flatten)]
    pub server: ServerArgs,

    #[command(flatten)]
    pub backend: BackendArgs,

    /// Tasks run at once (and leases held) by this process. The default suits many short or
    /// waiting tasks on a small machine; a killed worker's tasks (at most this many) run again
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,

    /// Most tasks claimed in one round trip (fewer, fuller commits: the backend's fsync is
    /// what limits throughput)
    #[arg(long, env = "WORKER_BATCH_SIZE", default_value_t = 128,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub batch_size: u32,

    /// Lease (visibility timeout): a task whose worker stops renewing it for this long is
    /// given to another worker. Renewed every third of it while the task runs
    #[arg(long, env = "WORKER_LEASE_MS", default_value_t = 15_000,
          value_parser = clap::value_parser!(u64).range(300..=3_600_000))]
    pub lease_ms: u64,

    /// When idle, look for work at least this often (new work also wakes workers at once)
    #[arg(long, env = "WORKER_POLL_INTERVAL_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub poll_interval_ms: u64,

    /// After SIGTERM: how long running tasks get to finish before they are released back to
    /// the queue (keep it below the pod's terminationGracePeriodSeconds)
    #[arg(long, env = "WORKER_SHUTDOWN_GRACE_MS", default_value_t = 20_000)]
    pub shutdown_grace_ms: u64,

    /// Retry backoff: base * 2^(attempt-1), at most --backoff-max-ms, times a random factor
    /// between 0.5 and 1 (jitter)
    #[arg(long, env = "WORKER_BACKOFF_BASE_MS", default_value_t = 1000)]
    pub backoff_base_ms: u64,

    /// Longest retry backoff
    #[arg(long, env = "WORKER_BACKOFF_MAX_MS", default_value_t = 300_000)]
    pub backoff_max_ms: u64,

    /// A task running longer than this fails its attempt
    #[arg(long, env = "WORKER_TASK_TIMEOUT_MS", default_value_t = 600_000)]
    pub task_timeout_ms: u64,

    /// How long finished tasks stay queryable before they are pruned
    #[arg(long, env = "QUEUE_RETENTION_SECS", default_value_t = 86_400)]
    pub retention_secs: u64,

    /// How long dead tasks stay in the dead letter before they are pruned
    #[arg(long, env = "QUEUE_DEAD_RETENTION_SECS", default_value_t = 7 * 86_400)]
    pub dead_retention_secs: u64,

    /// How often this worker requeues tasks with expired leases and prunes old tasks
    #[arg(long, env = "WORKER_MAINTENANCE_INTERVAL_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(50..=600_000))]
    pub maintenance_interval_ms: u64,

    /// This worker's name on the tasks it claims (default: POD_NAME or hostname, plus the PID)
    #[arg(long, env = "WORKER_ID")]
    pub worker_id: Option<String>,
}

impl WorkerConfig {
    pub fn retention(&self) -> Retention {
        Retention {
            done_secs: self.retention_secs,
            dead_secs: self.dead_retention_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: WorkerConfig,
    }

    fn parse(args: &[&str]) -> BackendArgs {
        let mut all = vec!["worker"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all)
            .expect("arguments parse")
            .config
            .backend
    }

    #[test]
    fn queue_defaults_apply_to_the_shared_flags() {
        let args = parse(&["--db-host", "postgres-0.postgres-headless"]);
        assert_eq!(args.postgres.db_name, "queue");
        assert_eq!(args.postgres.db_pool_size, 6);
        assert_eq!(args.redis.redis_timeout_ms, 2000);
        assert_eq!(args.kind().unwrap(), BackendKind::Postgres);
        assert_eq!(
            args.target(),
            "postgres://postgres@postgres-0.postgres-headless:5432/queue"
        );
    }

    #[test]
    fn the_old_flag_names_still_work_and_auto_picks_what_is_configured() {
        let args = parse(&[
            "--database",
            "postgres://q:pw-1@db/tasks",
            "--pool-size",
            "3",
        ]);
        assert_eq!(args.postgres.db_pool_size, 3);
        assert_eq!(args.kind().unwrap(), BackendKind::Postgres);
        assert!(!args.target().contains("pw-1"));

        let args = parse(&[
            "--redis",
            "redis://:pw-2@cache:6380/1",
            "--redis-prefix",
            "x:",
        ]);
        assert_eq!(args.kind().unwrap(), BackendKind::Redis);
        assert_eq!(args.target(), "redis://cache:6380");
        assert_eq!(args.redis_prefix, "x:");

        let args = parse(&["--redis-host", "redis-0", "--redis-password", "pw-3"]);
        assert_eq!(args.kind().unwrap(), BackendKind::Redis);
        assert!(!args.target().contains("pw-3"));
    }
}

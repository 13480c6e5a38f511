//! Flags (and their environment variables) for `statelab queue` and `statelab worker`.

use std::sync::Arc;

use anyhow::{Context, bail};
use sqlx::postgres::PgConnectOptions;

use super::backend::Backend;
use super::backend::postgres::PgBackend;
use super::backend::redis::RedisBackend;
use super::model::Retention;
use crate::server::ServerArgs;

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// PostgreSQL if a database is configured, else Redis if a Redis server is configured
    Auto,
    Postgres,
    Redis,
}

/// Where the queue lives: PostgreSQL (default) or Redis.
#[derive(clap::Args, Debug, Clone)]
pub struct BackendArgs {
    /// Which backend to use
    #[arg(long, env = "QUEUE_BACKEND", value_enum, default_value_t = BackendKind::Auto)]
    pub backend: BackendKind,

    /// PostgreSQL URL, e.g. postgres://queue:secret@postgres-0.postgres-headless:5432/queue.
    /// Without it, DB_HOST/DB_PORT/DB_NAME/DB_USER/DB_PASSWORD are used when DB_HOST is set
    #[arg(long, env = "DATABASE_URL")]
    pub database: Option<String>,

    /// PostgreSQL host (used when no --database URL is given)
    #[arg(long, env = "DB_HOST")]
    pub db_host: Option<String>,

    /// PostgreSQL port
    #[arg(long, env = "DB_PORT", default_value_t = 5432)]
    pub db_port: u16,

    /// PostgreSQL database name
    #[arg(long, env = "DB_NAME", default_value = "queue")]
    pub db_name: String,

    /// PostgreSQL user
    #[arg(long, env = "DB_USER", default_value = "postgres")]
    pub db_user: String,

    /// PostgreSQL password
    #[arg(long, env = "DB_PASSWORD", hide_env_values = true)]
    pub db_password: Option<String>,

    /// PostgreSQL connections per process
    #[arg(long, env = "DB_POOL_SIZE", default_value_t = 6)]
    pub pool_size: u32,

    /// Redis URL, e.g. redis://redis-0.redis-headless:6379/0 or redis+unix:///path/redis.sock.
    /// Without it, REDIS_HOST/REDIS_PORT are used when REDIS_HOST is set
    #[arg(long, env = "REDIS_URL")]
    pub redis: Option<String>,

    /// Redis host (used when no --redis URL is given)
    #[arg(long, env = "REDIS_HOST")]
    pub redis_host: Option<String>,

    /// Redis port
    #[arg(long, env = "REDIS_PORT", default_value_t = 6379)]
    pub redis_port: u16,

    /// Redis password
    #[arg(long, env = "REDIS_PASSWORD", hide_env_values = true)]
    pub redis_password: Option<String>,

    /// Prefix of every Redis key the queue uses
    #[arg(long, env = "QUEUE_REDIS_PREFIX", default_value = "statelab:queue:")]
    pub redis_prefix: String,
}

impl BackendArgs {
    fn postgres_options(&self) -> anyhow::Result<Option<PgConnectOptions>> {
        if let Some(url) = &self.database {
            let options: PgConnectOptions = url.parse().map_err(|e| {
                anyhow::anyhow!("invalid PostgreSQL URL in --database/DATABASE_URL: {e}")
            })?;
            return Ok(Some(options.application_name("statelab-queue")));
        }
        let Some(host) = &self.db_host else {
            return Ok(None);
        };
        let mut options = PgConnectOptions::new()
            .host(host)
            .port(self.db_port)
            .database(&self.db_name)
            .username(&self.db_user)
            .application_name("statelab-queue");
        if let Some(password) = &self.db_password {
            options = options.password(password);
        }
        Ok(Some(options))
    }

    fn redis_url(&self) -> Option<String> {
        if let Some(url) = &self.redis {
            return Some(url.clone());
        }
        let host = self.redis_host.as_ref()?;
        Some(match &self.redis_password {
            Some(password) => format!("redis://:{password}@{host}:{}/0", self.redis_port),
            None => format!("redis://{host}:{}/0", self.redis_port),
        })
    }

    /// Builds the configured backend. It connects lazily: a backend that is down makes the
    /// service not ready, never stops it from starting.
    pub fn open(&self) -> anyhow::Result<Arc<dyn Backend>> {
        let postgres = self.postgres_options()?;
        let redis = self.redis_url();
        let kind = match self.backend {
            BackendKind::Auto if postgres.is_some() => BackendKind::Postgres,
            BackendKind::Auto if redis.is_some() => BackendKind::Redis,
            BackendKind::Auto => bail!(
                "no queue backend configured: set --database/DATABASE_URL (or DB_HOST) for PostgreSQL, \
                 or --redis/REDIS_URL (or REDIS_HOST) for Redis"
            ),
            other => other,
        };
        match kind {
            BackendKind::Postgres => {
                let options = postgres
                    .context("--backend postgres needs --database/DATABASE_URL or DB_HOST")?;
                Ok(Arc::new(PgBackend::connect(options, self.pool_size)))
            }
            BackendKind::Redis => {
                let url = redis.context("--backend redis needs --redis/REDIS_URL or REDIS_HOST")?;
                open_redis(&url, &self.redis_prefix)
            }
            BackendKind::Auto => unreachable!("resolved above"),
        }
    }
}

fn open_redis(url: &str, prefix: &str) -> anyhow::Result<Arc<dyn Backend>> {
    Ok(Arc::new(RedisBackend::connect(url, prefix)?))
}

/// `statelab queue`: the producer API.
#[derive(clap::Args, Debug, Clone)]
pub struct Config {
    #[command(flatten)]
    pub server: ServerArgs,

    #[command(flatten)]
    pub backend: BackendArgs,
}

/// `statelab worker`: claims and runs tasks.
#[derive(clap::Args, Debug, Clone)]
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

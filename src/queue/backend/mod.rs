//! Where tasks live: PostgreSQL (the default) or Redis. Both give the same guarantees: a
//! claimed task carries a lease (visibility timeout) that the worker extends while it works; a
//! task whose lease runs out goes back to the queue; every claim increments the task's attempt
//! number, and only the current attempt may complete, fail, extend or release it (fencing), so
//! a stale acknowledgement never overwrites a newer attempt's result. Time always comes from
//! the backend's clock, never the workers'.

pub mod postgres;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

use backon::ExponentialBuilder;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use crate::server::BackendError;
use crate::server::Readiness;
use crate::server::postgres::PostgresArgs;
use crate::server::redis::RedisArgs;

use super::model::{
    Claimed, Completion, Enqueued, FailOutcome, Failure, Lease, Maintenance, NewTask, Retention,
    RetryOutcome, Stats, TaskState, TaskView,
};
use postgres::PgBackend;
use redis::RedisBackend;

/// The queue's storage, as producers and workers use it.
#[derive(Clone)]
pub enum Backend {
    Postgres(PgBackend),
    Redis(RedisBackend),
}

/// Calls the same method on whichever backend this is.
macro_rules! each {
    ($self:ident, $b:ident => $call:expr) => {
        match $self {
            Backend::Postgres($b) => $call,
            Backend::Redis($b) => $call,
        }
    };
}

impl Backend {
    /// Opens the backend a URL names (`postgres://`, `redis://`, `redis+unix://`, ...) with a
    /// small pool and the default key prefix: for tools and tests that look at tasks directly.
    /// The PostgreSQL schema keeper runs until the runtime ends.
    pub fn from_url(url: &str) -> anyhow::Result<Backend> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let args = PostgresArgs {
                url: Some(url.to_owned()),
                db_host: None,
                db_port: 5432,
                db_name: "queue".to_owned(),
                db_user: "postgres".to_owned(),
                db_password: None,
                db_sslmode: "prefer".to_owned(),
                db_pool_size: 4,
                db_acquire_timeout_ms: 1500,
                db_query_timeout_ms: 5000,
            };
            let db = args.connect_lazy("statelab-queue")?;
            Ok(Backend::Postgres(PgBackend::new(
                db,
                CancellationToken::new(),
            )))
        } else {
            let args = RedisArgs {
                url: Some(url.to_owned()),
                redis_host: None,
                redis_port: 6379,
                redis_password: None,
                redis_db: 0,
                redis_timeout_ms: 1000,
            };
            Ok(Backend::Redis(RedisBackend::new(
                &args,
                super::config::DEFAULT_REDIS_PREFIX,
            )?))
        }
    }

    /// "postgres" or "redis".
    pub fn kind(&self) -> &'static str {
        match self {
            Backend::Postgres(_) => "postgres",
            Backend::Redis(_) => "redis",
        }
    }

    /// Reachable, and the schema (if any) in place; `Err` says why not.
    pub async fn check(&self) -> Result<(), String> {
        each!(self, b => b.check().await)
    }

    /// Stores tasks (in order), honouring idempotency keys, and wakes idle workers.
    pub async fn enqueue(&self, tasks: &[NewTask]) -> Result<Vec<Enqueued>, BackendError> {
        each!(self, b => b.enqueue(tasks).await)
    }

    pub async fn get(&self, id: i64) -> Result<Option<TaskView>, BackendError> {
        each!(self, b => b.get(id).await)
    }

    /// Up to `limit` tasks in `state`, most recent first (queued: next to run first).
    pub async fn list(&self, state: TaskState, limit: u32) -> Result<Vec<TaskView>, BackendError> {
        each!(self, b => b.list(state, limit).await)
    }

    /// Moves a dead task back to the queue with a fresh attempt budget.
    pub async fn retry(&self, id: i64) -> Result<RetryOutcome, BackendError> {
        each!(self, b => b.retry(id).await)
    }

    pub async fn stats(&self) -> Result<Stats, BackendError> {
        each!(self, b => b.stats().await)
    }

    /// Claims up to `max` runnable tasks (highest priority, then oldest) with a lease.
    pub async fn claim(
        &self,
        worker: &str,
        max: u32,
        lease: Duration,
    ) -> Result<Vec<Claimed>, BackendError> {
        each!(self, b => b.claim(worker, max, lease).await)
    }

    /// Extends the leases still held by these attempts; returns the ones still held.
    pub async fn extend(
        &self,
        leases: &[Lease],
        lease: Duration,
    ) -> Result<Vec<Lease>, BackendError> {
        each!(self, b => b.extend(leases, lease).await)
    }

    /// Marks tasks done. Per item: `true` if accepted, `false` if fenced (stale attempt).
    pub async fn complete(&self, done: &[Completion]) -> Result<Vec<bool>, BackendError> {
        each!(self, b => b.complete(done).await)
    }

    /// Records failed attempts: retry after the backoff, or dead when out of attempts.
    pub async fn fail(&self, failures: &[Failure]) -> Result<Vec<FailOutcome>, BackendError> {
        each!(self, b => b.fail(failures).await)
    }

    /// Gives tasks back without using up an attempt (a worker shutting down). Returns how
    /// many were released.
    pub async fn release(&self, leases: &[Lease]) -> Result<u64, BackendError> {
        each!(self, b => b.release(leases).await)
    }

    /// Requeues tasks whose lease ran out and prunes finished tasks past their retention, a
    /// small batch at a time.
    pub async fn maintain(&self, retention: Retention) -> Result<Maintenance, BackendError> {
        each!(self, b => b.maintain(retention).await)
    }

    /// Runs until `stop`, calling `wake.notify_one()` whenever new work is announced
    /// (PostgreSQL LISTEN/NOTIFY, Redis pub/sub). Reconnects by itself.
    pub async fn listen(self, wake: Arc<Notify>, stop: CancellationToken) {
        each!(self, b => b.listen(wake, stop).await)
    }
}

impl Readiness for Backend {
    async fn check(&self) -> Result<(), String> {
        Backend::check(self).await
    }
}

/// Backoff for reconnecting the wake-up channel: 100 ms doubling to 5 s, jittered, forever
/// (the caller stops it).
pub(crate) fn reconnect_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
}

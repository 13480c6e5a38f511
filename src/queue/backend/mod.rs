//! Where tasks live. One small trait, two implementations: PostgreSQL (the default) and Redis.
//! Both give the same guarantees: a claimed task carries a lease (visibility timeout) that the
//! worker extends while it works; a task whose lease runs out goes back to the queue; every
//! claim increments the task's attempt number, and only the current attempt may complete,
//! fail, extend or release it (fencing), so a stale acknowledgement never overwrites a newer
//! attempt's result. Time always comes from the backend's clock, never the workers'.

pub mod postgres;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::model::{
    Claimed, Completion, Enqueued, FailOutcome, Failure, Lease, Maintenance, NewTask, Retention,
    RetryOutcome, Stats, TaskState, TaskView,
};

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The backend cannot be reached (or is starting, or its schema is not in place yet).
    #[error("{0}")]
    Unavailable(String),
    /// Anything else: a bug or an unexpected answer.
    #[error("{0}")]
    Internal(String),
}

pub type BackendResult<'a, T> = BoxFuture<'a, Result<T, BackendError>>;

/// The queue's storage, as producers and workers use it.
pub trait Backend: Send + Sync + 'static {
    /// "postgres" or "redis".
    fn kind(&self) -> &'static str;

    /// Reachable, and the schema (if any) in place.
    fn check(&self) -> BackendResult<'_, ()>;

    /// Stores tasks (in order), honouring idempotency keys, and wakes idle workers.
    fn enqueue<'a>(&'a self, tasks: &'a [NewTask]) -> BackendResult<'a, Vec<Enqueued>>;

    fn get(&self, id: i64) -> BackendResult<'_, Option<TaskView>>;

    /// Up to `limit` tasks in `state`, most recent first (queued: next to run first).
    fn list(&self, state: TaskState, limit: u32) -> BackendResult<'_, Vec<TaskView>>;

    /// Moves a dead task back to the queue with a fresh attempt budget.
    fn retry(&self, id: i64) -> BackendResult<'_, RetryOutcome>;

    fn stats(&self) -> BackendResult<'_, Stats>;

    /// Claims up to `max` runnable tasks (highest priority, then oldest) with a lease.
    fn claim<'a>(
        &'a self,
        worker: &'a str,
        max: u32,
        lease: Duration,
    ) -> BackendResult<'a, Vec<Claimed>>;

    /// Extends the leases still held by these attempts; returns the ones still held.
    fn extend<'a>(&'a self, leases: &'a [Lease], lease: Duration) -> BackendResult<'a, Vec<Lease>>;

    /// Marks tasks done. Per item: `true` if accepted, `false` if fenced (stale attempt).
    fn complete<'a>(&'a self, done: &'a [Completion]) -> BackendResult<'a, Vec<bool>>;

    /// Records failed attempts: retry after the backoff, or dead when out of attempts.
    fn fail<'a>(&'a self, failures: &'a [Failure]) -> BackendResult<'a, Vec<FailOutcome>>;

    /// Gives tasks back without using up an attempt (a worker shutting down). Returns how
    /// many were released.
    fn release<'a>(&'a self, leases: &'a [Lease]) -> BackendResult<'a, u64>;

    /// Requeues tasks whose lease ran out and prunes finished tasks past their retention, a
    /// small batch at a time.
    fn maintain(&self, retention: Retention) -> BackendResult<'_, Maintenance>;

    /// Runs until `stop`, calling `wake.notify_one()` whenever new work is announced
    /// (PostgreSQL LISTEN/NOTIFY, Redis pub/sub). Reconnects by itself.
    fn listen(&self, wake: Arc<Notify>, stop: CancellationToken) -> BoxFuture<'static, ()>;
}

/// Exponential backoff for reconnect loops: 100 ms doubling to 5 s.
pub(crate) fn next_delay(delay: Duration) -> Duration {
    (delay * 2).min(Duration::from_secs(5))
}

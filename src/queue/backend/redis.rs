//! Redis backend: the same lease, fencing, retry and dead-letter semantics as PostgreSQL, each
//! state change one Lua script (atomic on the server, so a task is never between two places).
//!
//! Claiming pops ids from per-priority ready lists and records the lease in a sorted set
//! (`leases`, scored by expiry) in the same script: the reliable-queue pattern, with a lease
//! instead of a per-worker processing list, so a dead worker's tasks come back by time alone.
//! Delays and retry backoffs wait in sorted sets scored by run time. Idle workers wake on a
//! pub/sub channel. Durability is Redis's: run it with `appendonly yes` (AOF); with
//! `appendfsync everysec` a crash of the Redis host can lose up to about a second of changes,
//! a clean restart loses nothing. Needs Redis 6.2 or later, standalone (not Cluster).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Backend, BackendError, BackendResult, next_delay};
use crate::queue::model::{
    Claimed, Completion, Counts, Enqueued, FailOutcome, Failure, Lease, Maintenance, NewTask,
    Retention, RetryOutcome, Stats, TaskState, TaskView,
};

const PRELUDE: &str = include_str!("lua/prelude.lua");
/// Tasks promoted, reaped or pruned per maintenance call (per kind).
const MAINTENANCE_BATCH: u32 = 500;

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}\n{body}"))
}

static ENQUEUE: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/enqueue.lua")));
static CLAIM: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/claim.lua")));
static EXTEND: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/extend.lua")));
static COMPLETE: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/complete.lua")));
static FAIL: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/fail.lua")));
static RELEASE: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/release.lua")));
static RETRY: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/retry.lua")));
static MAINTAIN: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/maintain.lua")));
static STATS: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/stats.lua")));

pub struct RedisBackend {
    client: Client,
    connection: ConnectionManager,
    prefix: String,
}

impl RedisBackend {
    /// Connects lazily: nothing is sent until the first command.
    pub fn connect(url: &str, prefix: &str) -> anyhow::Result<RedisBackend> {
        let client = Client::open(url)
            .map_err(|e| anyhow::anyhow!("invalid Redis URL in --redis/REDIS_URL: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| anyhow::anyhow!("cannot set up the Redis connection: {e}"))?;
        Ok(RedisBackend {
            client,
            connection,
            prefix: prefix.to_owned(),
        })
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    async fn enqueue_impl(&self, tasks: &[NewTask]) -> Result<Vec<Enqueued>, BackendError> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = ENQUEUE.prepare_invoke();
        invocation.arg(&self.prefix).arg(tasks.len());
        for task in tasks {
            invocation
                .arg(&task.kind)
                .arg(&task.payload_json)
                .arg(task.delay_ms)
                .arg(task.max_attempts)
                .arg(task.priority)
                .arg(task.idempotency_key.as_deref().unwrap_or(""));
        }
        let rows: Vec<(i64, i64, String)> = invocation
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(classify)?;
        Ok(rows
            .into_iter()
            .map(|(id, created, state)| Enqueued {
                id,
                state: TaskState::parse(&state).unwrap_or(TaskState::Queued),
                duplicate: created == 0,
            })
            .collect())
    }

    async fn get_impl(&self, id: i64) -> Result<Option<TaskView>, BackendError> {
        let fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.key(&format!("task:{id}")))
            .query_async(&mut self.connection.clone())
            .await
            .map_err(classify)?;
        if fields.is_empty() {
            return Ok(None);
        }
        view(id, fields).map(Some)
    }

    async fn get_many(&self, ids: &[i64]) -> Result<Vec<TaskView>, BackendError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HGETALL").arg(self.key(&format!("task:{id}")));
        }
        let all: Vec<HashMap<String, String>> = pipe
            .query_async(&mut self.connection.clone())
            .await
            .map_err(classify)?;
        let mut out = Vec::with_capacity(ids.len());
        for (id, fields) in ids.iter().zip(all) {
            if !fields.is_empty() {
                out.push(view(*id, fields)?);
            }
        }
        Ok(out)
    }

    async fn list_impl(&self, state: TaskState, limit: u32) -> Result<Vec<TaskView>, BackendError> {
        let mut conn = self.connection.clone();
        let limit = limit as isize;
        let ids: Vec<i64> = match state {
            TaskState::Done | TaskState::Dead => redis::cmd("ZRANGE")
                .arg(self.key(state.as_str()))
                .arg("+inf")
                .arg("-inf")
                .arg("BYSCORE")
                .arg("REV")
                .arg("LIMIT")
                .arg(0)
                .arg(limit)
                .query_async(&mut conn)
                .await
                .map_err(classify)?,
            TaskState::Running => redis::cmd("ZRANGE")
                .arg(self.key("leases"))
                .arg(0)
                .arg(limit - 1)
                .query_async(&mut conn)
                .await
                .map_err(classify)?,
            TaskState::Queued | TaskState::Failed => {
                // In claim order: ready lists by priority (oldest at the tail), then schedules.
                let mut pipe = redis::pipe();
                for prio in (0..=9).rev() {
                    pipe.cmd("LRANGE")
                        .arg(self.key(&format!("ready:{prio}")))
                        .arg(-limit)
                        .arg(-1);
                }
                pipe.cmd("ZRANGE")
                    .arg(self.key("retry"))
                    .arg(0)
                    .arg(limit - 1);
                pipe.cmd("ZRANGE")
                    .arg(self.key("delayed"))
                    .arg(0)
                    .arg(limit - 1);
                let groups: Vec<Vec<i64>> = pipe.query_async(&mut conn).await.map_err(classify)?;
                let mut ids = Vec::new();
                for (i, mut group) in groups.into_iter().enumerate() {
                    if i < 10 {
                        group.reverse();
                    }
                    ids.extend(group);
                }
                ids
            }
        };
        let mut tasks = self.get_many(&ids).await?;
        tasks.retain(|t| t.state == state);
        tasks.truncate(limit as usize);
        Ok(tasks)
    }

    async fn retry_impl(&self, id: i64) -> Result<RetryOutcome, BackendError> {
        let found: String = RETRY
            .prepare_invoke()
            .arg(&self.prefix)
            .arg(id)
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(classify)?;
        match found.as_str() {
            "missing" => Ok(RetryOutcome::NotFound),
            "dead" => match self.get_impl(id).await? {
                Some(task) => Ok(RetryOutcome::Requeued(Box::new(task))),
                None => Ok(RetryOutcome::NotFound),
            },
            other => Ok(RetryOutcome::NotDead(
                TaskState::parse(other).unwrap_or(TaskState::Queued),
            )),
        }
    }

    async fn stats_impl(&self) -> Result<Stats, BackendError> {
        let v: Vec<i64> = STATS
            .prepare_invoke()
            .arg(&self.prefix)
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(classify)?;
        let [queued, running, done, failed, dead, scheduled, age, recent] = v[..] else {
            return Err(BackendError::Internal("unexpected stats reply".into()));
        };
        Ok(Stats {
            backend: "redis",
            counts: Counts {
                queued,
                running,
                done,
                failed,
                dead,
            },
            scheduled,
            oldest_queued_age_ms: age.max(0),
            done_last_minute: recent,
            throughput_per_second: recent as f64 / 60.0,
        })
    }

    async fn claim_impl(
        &self,
        worker: &str,
        max: u32,
        lease: Duration,
    ) -> Result<Vec<Claimed>, BackendError> {
        let rows: Vec<(i64, String, String, i32, i32, i32)> = CLAIM
            .prepare_invoke()
            .arg(&self.prefix)
            .arg(worker)
            .arg(max)
            .arg(lease.as_millis() as u64)
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(classify)?;
        rows.into_iter()
            .map(
                |(id, kind, payload, attempt, attempt_in_budget, max_attempts)| {
                    let payload = serde_json::from_str(&payload).map_err(|e| {
                        BackendError::Internal(format!("task {id} has an unreadable payload: {e}"))
                    })?;
                    Ok(Claimed {
                        id,
                        kind,
                        payload,
                        attempt,
                        attempt_in_budget,
                        max_attempts,
                    })
                },
            )
            .collect()
    }

    async fn extend_impl(
        &self,
        leases: &[Lease],
        lease: Duration,
    ) -> Result<Vec<Lease>, BackendError> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = EXTEND.prepare_invoke();
        invocation.arg(&self.prefix).arg(lease.as_millis() as u64);
        for l in leases {
            invocation.arg(l.id).arg(l.attempt);
        }
        let held: Vec<i64> = invocation
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(classify)?;
        let held: std::collections::HashSet<i64> = held.into_iter().collect();
        Ok(leases
            .iter()
            .copied()
            .filter(|l| held.contains(&l.id))
            .collect())
    }

    async fn complete_impl(&self, done: &[Completion]) -> Result<Vec<bool>, BackendError> {
        if done.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = COMPLETE.prepare_invoke();
        invocation.arg(&self.prefix);
        for c in done {
            invocation
                .arg(c.lease.id)
                .arg(c.lease.attempt)
                .arg(c.result.to_string());
        }
        let accepted: Vec<i64> = invocation
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(classify)?;
        Ok(accepted.into_iter().map(|a| a == 1).collect())
    }

    async fn fail_impl(&self, failures: &[Failure]) -> Result<Vec<FailOutcome>, BackendError> {
        if failures.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = FAIL.prepare_invoke();
        invocation.arg(&self.prefix);
        for f in failures {
            invocation
                .arg(f.lease.id)
                .arg(f.lease.attempt)
                .arg(&f.error)
                .arg(f.backoff_ms);
        }
        let outcomes: Vec<String> = invocation
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(classify)?;
        Ok(outcomes
            .iter()
            .map(|o| match o.as_str() {
                "dead" => FailOutcome::Dead,
                "failed" => FailOutcome::Retrying,
                _ => FailOutcome::Fenced,
            })
            .collect())
    }

    async fn release_impl(&self, leases: &[Lease]) -> Result<u64, BackendError> {
        if leases.is_empty() {
            return Ok(0);
        }
        let mut invocation = RELEASE.prepare_invoke();
        invocation.arg(&self.prefix);
        for l in leases {
            invocation.arg(l.id).arg(l.attempt);
        }
        invocation
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(classify)
    }

    async fn maintain_impl(&self, retention: Retention) -> Result<Maintenance, BackendError> {
        let (requeued, dead, pruned): (u64, u64, u64) = MAINTAIN
            .prepare_invoke()
            .arg(&self.prefix)
            .arg(retention.done_secs.saturating_mul(1000))
            .arg(retention.dead_secs.saturating_mul(1000))
            .arg(MAINTENANCE_BATCH)
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(classify)?;
        Ok(Maintenance {
            requeued,
            dead,
            pruned,
        })
    }
}

impl Backend for RedisBackend {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn check(&self) -> BackendResult<'_, ()> {
        Box::pin(async move {
            let _: String = redis::cmd("PING")
                .query_async(&mut self.connection.clone())
                .await
                .map_err(classify)?;
            Ok(())
        })
    }

    fn enqueue<'a>(&'a self, tasks: &'a [NewTask]) -> BackendResult<'a, Vec<Enqueued>> {
        Box::pin(self.enqueue_impl(tasks))
    }

    fn get(&self, id: i64) -> BackendResult<'_, Option<TaskView>> {
        Box::pin(self.get_impl(id))
    }

    fn list(&self, state: TaskState, limit: u32) -> BackendResult<'_, Vec<TaskView>> {
        Box::pin(self.list_impl(state, limit))
    }

    fn retry(&self, id: i64) -> BackendResult<'_, RetryOutcome> {
        Box::pin(self.retry_impl(id))
    }

    fn stats(&self) -> BackendResult<'_, Stats> {
        Box::pin(self.stats_impl())
    }

    fn claim<'a>(
        &'a self,
        worker: &'a str,
        max: u32,
        lease: Duration,
    ) -> BackendResult<'a, Vec<Claimed>> {
        Box::pin(self.claim_impl(worker, max, lease))
    }

    fn extend<'a>(&'a self, leases: &'a [Lease], lease: Duration) -> BackendResult<'a, Vec<Lease>> {
        Box::pin(self.extend_impl(leases, lease))
    }

    fn complete<'a>(&'a self, done: &'a [Completion]) -> BackendResult<'a, Vec<bool>> {
        Box::pin(self.complete_impl(done))
    }

    fn fail<'a>(&'a self, failures: &'a [Failure]) -> BackendResult<'a, Vec<FailOutcome>> {
        Box::pin(self.fail_impl(failures))
    }

    fn release<'a>(&'a self, leases: &'a [Lease]) -> BackendResult<'a, u64> {
        Box::pin(self.release_impl(leases))
    }

    fn maintain(&self, retention: Retention) -> BackendResult<'_, Maintenance> {
        Box::pin(self.maintain_impl(retention))
    }

    fn listen(&self, wake: Arc<Notify>, stop: CancellationToken) -> BoxFuture<'static, ()> {
        let client = self.client.clone();
        let channel = self.key("wake");
        Box::pin(async move {
            let mut delay = Duration::from_millis(100);
            while !stop.is_cancelled() {
                let connected = async {
                    let mut pubsub = client.get_async_pubsub().await?;
                    pubsub.subscribe(&channel).await?;
                    Ok::<_, redis::RedisError>(pubsub)
                };
                let pubsub = tokio::select! {
                    _ = stop.cancelled() => return,
                    result = tokio::time::timeout(Duration::from_secs(5), connected) => result,
                };
                let mut pubsub = match pubsub {
                    Ok(Ok(pubsub)) => pubsub,
                    Ok(Err(error)) => {
                        tracing::debug!(%error, "Redis subscription failed; polling meanwhile");
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(delay) => {}
                        }
                        delay = next_delay(delay);
                        continue;
                    }
                    Err(_) => continue,
                };
                delay = Duration::from_millis(100);
                wake.notify_one();
                let mut messages = pubsub.on_message();
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        message = messages.next() => match message {
                            Some(_) => wake.notify_one(),
                            None => {
                                tracing::debug!("Redis subscription lost; reconnecting");
                                break;
                            }
                        }
                    }
                }
            }
        })
    }
}

fn ms_to_time(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn view(id: i64, mut f: HashMap<String, String>) -> Result<TaskView, BackendError> {
    let bad = |what: &str| BackendError::Internal(format!("task {id}: unreadable field {what}"));
    let int = |f: &HashMap<String, String>, k: &str| -> Result<i64, BackendError> {
        f.get(k)
            .and_then(|v| v.parse::<f64>().ok())
            .map(|v| v as i64)
            .ok_or_else(|| bad(k))
    };
    let time = |f: &HashMap<String, String>, k: &str| -> Option<OffsetDateTime> {
        f.get(k)
            .and_then(|v| v.parse::<f64>().ok())
            .map(|v| ms_to_time(v as i64))
    };
    let json = |text: Option<String>| -> Option<Value> {
        text.map(|t| serde_json::from_str(&t).unwrap_or(Value::String(t)))
    };
    let state = f
        .get("state")
        .and_then(|s| TaskState::parse(s))
        .ok_or_else(|| bad("state"))?;
    // Counters start absent (0) to keep enqueueing cheap.
    let attempts = int(&f, "attempts").unwrap_or(0) as i32;
    let attempt_base = int(&f, "attempt_base").unwrap_or(0) as i32;
    let max_attempts = int(&f, "max_attempts")? as i32;
    Ok(TaskView {
        id,
        kind: f.remove("type").ok_or_else(|| bad("type"))?,
        payload: json(f.remove("payload")).unwrap_or(Value::Null),
        state,
        priority: int(&f, "priority")? as i16,
        attempts,
        max_attempts,
        attempts_left: (max_attempts - (attempts - attempt_base)).max(0),
        requeued: int(&f, "requeued").unwrap_or(0) as i32,
        idempotency_key: f.remove("idempotency_key"),
        last_error: f.remove("last_error"),
        result: json(f.remove("result")),
        worker: f.remove("worker"),
        lease_until: if state == TaskState::Running {
            time(&f, "lease_until")
        } else {
            None
        },
        run_at: time(&f, "run_at").ok_or_else(|| bad("run_at"))?,
        created_at: time(&f, "created_at").ok_or_else(|| bad("created_at"))?,
        started_at: time(&f, "started_at"),
        finished_at: time(&f, "finished_at"),
        updated_at: time(&f, "updated_at")
            .or_else(|| time(&f, "created_at"))
            .ok_or_else(|| bad("updated_at"))?,
    })
}

/// Connection trouble, timeouts and a loading or read-only server are `Unavailable`; the rest
/// (script errors, unexpected replies) is `Internal`.
fn classify(error: redis::RedisError) -> BackendError {
    let transient_server = matches!(
        error.code(),
        Some("LOADING" | "MASTERDOWN" | "READONLY" | "TRYAGAIN" | "BUSY")
    );
    let internal = !transient_server
        && (error.code().is_some()
            || matches!(
                error.kind(),
                redis::ErrorKind::UnexpectedReturnType | redis::ErrorKind::Parse
            ));
    if internal {
        BackendError::Internal(format!("Redis error: {error}"))
    } else {
        BackendError::Unavailable(format!("Redis unavailable: {error}"))
    }
}

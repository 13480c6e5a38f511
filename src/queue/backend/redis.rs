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

use backon::Retryable;
use futures::StreamExt;
use redis::{FromRedisValue, Script, ScriptInvocation};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{BackendError, reconnect_backoff};
use crate::queue::model::{
    Claimed, Completion, Counts, Enqueued, FailOutcome, Failure, Lease, Maintenance, NewTask,
    Retention, RetryOutcome, Stats, TaskState, TaskView,
};
use crate::server::redis::{Redis, RedisArgs};

const PRELUDE: &str = include_str!("lua/prelude.lua");
/// Longest wait for Redis in a readiness check, whatever REDIS_TIMEOUT_MS is: a probe must
/// answer well within its own timeout (Kubernetes' default is 1 s).
pub const READY_TIMEOUT: Duration = Duration::from_millis(500);
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

/// Reads and idempotent writes go through [`Redis::run`] (one retry after a reconnect);
/// scripts whose second run would answer differently (enqueue, claim, acknowledgements) go
/// through [`Redis::run_once`].
#[derive(Clone)]
pub struct RedisBackend {
    redis: Redis,
    /// Pub/sub needs a connection of its own, outside the shared multiplexed one.
    pubsub: redis::Client,
    prefix: String,
}

impl RedisBackend {
    /// Connects lazily: nothing is sent until the first command.
    pub fn new(args: &RedisArgs, prefix: &str) -> anyhow::Result<RedisBackend> {
        let redis = args.connect_lazy()?;
        let (info, _) = args.connection_info()?;
        Ok(RedisBackend {
            redis,
            pubsub: redis::Client::open(info)?,
            prefix: prefix.to_owned(),
        })
    }

    /// Readiness: can Redis take a write right now? A tiny expiring write answers that
    /// exactly: it fails as an enqueue would (out of memory, a read-only replica) and never
    /// waits longer than [`READY_TIMEOUT`], so a frozen Redis is reported at once.
    pub async fn check(&self) -> Result<(), String> {
        let limit = READY_TIMEOUT.min(self.redis.timeout());
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key("ready")).arg(1).arg("PX").arg(60_000);
        match tokio::time::timeout(limit, self.query::<()>(&cmd)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) if error.code() == Some("OOM") => Err(format!(
                "{error}: new tasks are refused (507) until workers finish and prune tasks, \
                 keys are deleted, or maxmemory is raised"
            )),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!(
                "Redis at {} did not answer within {} ms",
                self.redis.target().display,
                limit.as_millis()
            )),
        }
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    /// A script that is safe to run twice: retried once after a reconnect.
    async fn script<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, BackendError> {
        self.redis
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await
    }

    /// A script whose second run would answer differently: sent at most once.
    async fn script_once<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, BackendError> {
        let mut conn = self.redis.connection();
        self.redis
            .run_once(invocation.invoke_async(&mut conn))
            .await
    }

    async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, BackendError> {
        self.redis
            .run(|mut conn| async move { cmd.query_async(&mut conn).await })
            .await
    }

    async fn query_pipe<T: FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, BackendError> {
        self.redis
            .run(|mut conn| async move { pipe.query_async(&mut conn).await })
            .await
    }

    pub async fn enqueue(&self, tasks: &[NewTask]) -> Result<Vec<Enqueued>, BackendError> {
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
        let rows: Vec<(i64, i64, String)> = self.script_once(&invocation).await?;
        Ok(rows
            .into_iter()
            .map(|(id, created, state)| Enqueued {
                id,
                state: TaskState::parse(&state).unwrap_or(TaskState::Queued),
                duplicate: created == 0,
            })
            .collect())
    }

    pub async fn get(&self, id: i64) -> Result<Option<TaskView>, BackendError> {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(self.key(&format!("task:{id}")));
        let fields: HashMap<String, String> = self.query(&cmd).await?;
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
        let all: Vec<HashMap<String, String>> = self.query_pipe(&pipe).await?;
        let mut out = Vec::with_capacity(ids.len());
        for (id, fields) in ids.iter().zip(all) {
            if !fields.is_empty() {
                out.push(view(*id, fields)?);
            }
        }
        Ok(out)
    }

    pub async fn list(&self, state: TaskState, limit: u32) -> Result<Vec<TaskView>, BackendError> {
        let limit = limit as isize;
        let ids: Vec<i64> = match state {
            TaskState::Done | TaskState::Dead => {
                let mut cmd = redis::cmd("ZRANGE");
                cmd.arg(self.key(state.as_str()))
                    .arg("+inf")
                    .arg("-inf")
                    .arg("BYSCORE")
                    .arg("REV")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit);
                self.query(&cmd).await?
            }
            TaskState::Running => {
                let mut cmd = redis::cmd("ZRANGE");
                cmd.arg(self.key("leases")).arg(0).arg(limit - 1);
                self.query(&cmd).await?
            }
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
                let groups: Vec<Vec<i64>> = self.query_pipe(&pipe).await?;
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

    pub async fn retry(&self, id: i64) -> Result<RetryOutcome, BackendError> {
        let mut invocation = RETRY.prepare_invoke();
        invocation.arg(&self.prefix).arg(id);
        let found: String = self.script_once(&invocation).await?;
        match found.as_str() {
            "missing" => Ok(RetryOutcome::NotFound),
            "dead" => match self.get(id).await? {
                Some(task) => Ok(RetryOutcome::Requeued(Box::new(task))),
                None => Ok(RetryOutcome::NotFound),
            },
            other => Ok(RetryOutcome::NotDead(
                TaskState::parse(other).unwrap_or(TaskState::Queued),
            )),
        }
    }

    pub async fn stats(&self) -> Result<Stats, BackendError> {
        let mut invocation = STATS.prepare_invoke();
        invocation.arg(&self.prefix);
        let v: Vec<i64> = self.script(&invocation).await?;
        let [queued, running, done, failed, dead, scheduled, age, recent] = v[..] else {
            return Err(BackendError::other("unexpected stats reply"));
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

    pub async fn claim(
        &self,
        worker: &str,
        max: u32,
        lease: Duration,
    ) -> Result<Vec<Claimed>, BackendError> {
        let mut invocation = CLAIM.prepare_invoke();
        invocation
            .arg(&self.prefix)
            .arg(worker)
            .arg(max)
            .arg(lease.as_millis() as u64);
        let rows: Vec<(i64, String, String, i32, i32, i32)> = self.script_once(&invocation).await?;
        rows.into_iter()
            .map(
                |(id, kind, payload, attempt, attempt_in_budget, max_attempts)| {
                    let payload = serde_json::from_str(&payload).map_err(|e| {
                        BackendError::other(format!("task {id} has an unreadable payload: {e}"))
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

    pub async fn extend(
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
        let held: Vec<i64> = self.script(&invocation).await?;
        let held: std::collections::HashSet<i64> = held.into_iter().collect();
        Ok(leases
            .iter()
            .copied()
            .filter(|l| held.contains(&l.id))
            .collect())
    }

    pub async fn complete(&self, done: &[Completion]) -> Result<Vec<bool>, BackendError> {
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
        let accepted: Vec<i64> = self.script_once(&invocation).await?;
        Ok(accepted.into_iter().map(|a| a == 1).collect())
    }

    pub async fn fail(&self, failures: &[Failure]) -> Result<Vec<FailOutcome>, BackendError> {
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
        let outcomes: Vec<String> = self.script_once(&invocation).await?;
        Ok(outcomes
            .iter()
            .map(|o| match o.as_str() {
                "dead" => FailOutcome::Dead,
                "failed" => FailOutcome::Retrying,
                _ => FailOutcome::Fenced,
            })
            .collect())
    }

    pub async fn release(&self, leases: &[Lease]) -> Result<u64, BackendError> {
        if leases.is_empty() {
            return Ok(0);
        }
        let mut invocation = RELEASE.prepare_invoke();
        invocation.arg(&self.prefix);
        for l in leases {
            invocation.arg(l.id).arg(l.attempt);
        }
        self.script_once(&invocation).await
    }

    pub async fn maintain(&self, retention: Retention) -> Result<Maintenance, BackendError> {
        let mut invocation = MAINTAIN.prepare_invoke();
        invocation
            .arg(&self.prefix)
            .arg(retention.done_secs.saturating_mul(1000))
            .arg(retention.dead_secs.saturating_mul(1000))
            .arg(MAINTENANCE_BATCH);
        let (requeued, dead, pruned): (u64, u64, u64) = self.script(&invocation).await?;
        Ok(Maintenance {
            requeued,
            dead,
            pruned,
        })
    }
}

impl RedisBackend {
    /// Runs until `stop`, waking a worker on every message on the wake-up channel;
    /// resubscribes with backoff, and the worker polls meanwhile.
    pub async fn listen(self, wake: Arc<Notify>, stop: CancellationToken) {
        let channel = self.key("wake");
        let timeout = self.redis.timeout().max(Duration::from_secs(5));
        while !stop.is_cancelled() {
            let subscribe = || async {
                let connected = async {
                    let mut pubsub = self.pubsub.get_async_pubsub().await?;
                    pubsub.subscribe(&channel).await?;
                    Ok::<_, redis::RedisError>(pubsub)
                };
                match tokio::time::timeout(timeout, connected).await {
                    Ok(result) => result.map_err(|e| self.redis.classify(&e)),
                    Err(_) => Err(BackendError::unavailable(
                        "Redis did not accept the subscription in time",
                    )),
                }
            };
            let subscribed = subscribe
                .retry(reconnect_backoff())
                .sleep(tokio::time::sleep)
                .notify(|error, delay| {
                    tracing::debug!(%error, retry_in_ms = delay.as_millis() as u64,
                        "Redis subscription failed; polling meanwhile");
                });
            let mut pubsub = tokio::select! {
                _ = stop.cancelled() => return,
                result = subscribed => match result {
                    Ok(pubsub) => pubsub,
                    // Unreachable with an unbounded retry; polling still finds the work.
                    Err(_) => return,
                },
            };
            // Whatever was announced while we were not listening: look once.
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
    }
}

fn ms_to_time(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn view(id: i64, mut f: HashMap<String, String>) -> Result<TaskView, BackendError> {
    let bad = |what: &str| BackendError::other(format!("task {id}: unreadable field {what}"));
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

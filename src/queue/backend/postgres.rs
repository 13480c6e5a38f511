//! PostgreSQL backend: one table, `FOR UPDATE SKIP LOCKED` claims in batches, a lease column,
//! LISTEN/NOTIFY wake-ups, attempt-number fencing, retention pruning in small batches.
//!
//! The pool connects lazily and the schema is applied in the background with backoff, so the
//! producer and the workers start (not ready) when the database comes up second.

use std::sync::Arc;
use std::time::Duration;

use backon::Retryable;
use serde_json::Value;
use sqlx::postgres::PgListener;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{BackendError, reconnect_backoff};
use crate::queue::model::{
    Claimed, Completion, Counts, Enqueued, FailOutcome, Failure, Lease, Maintenance, NewTask,
    Retention, RetryOutcome, Stats, TaskState, TaskView,
};
use crate::server::migrations::{self, Embedded, embed_migrations};
use crate::server::postgres::{Postgres, Schema};

const CHANNEL: &str = "statelab_queue";
/// Cheap, and touches the queue's table, so a database replaced by an empty one is noticed.
const READY_PROBE: &str = "SELECT 1 FROM queue_tasks LIMIT 1";
/// Rows deleted per pruning statement, and statements per maintenance pass.
const PRUNE_BATCH: i64 = 500;
const PRUNE_ROUNDS: usize = 8;
const REAP_BATCH: i64 = 500;

macro_rules! task_columns {
    () => {
        "id, kind, payload, state, priority, attempts, attempt_base, max_attempts, requeued, \
         idempotency_key, last_error, result, worker, lease_until, run_at, created_at, \
         started_at, finished_at, updated_at"
    };
}

pub const MIGRATIONS: &[Embedded] = embed_migrations!("migrations/queue", ["0001_tasks.sql"]);

#[derive(Clone)]
pub struct PgBackend {
    db: Postgres,
    schema: Arc<Schema>,
}

impl PgBackend {
    /// Uses a lazily connecting pool and keeps the schema in place in the background until
    /// `stop`.
    pub fn new(db: Postgres, stop: CancellationToken) -> PgBackend {
        let migrator = migrations::migrator(MIGRATIONS, "_sqlx_migrations_queue");
        let schema = Schema::keep("queue", &db, migrator, stop);
        PgBackend { db, schema }
    }

    /// One statement under the schema keeper's rules (see `Schema::run`).
    async fn run<T>(
        &self,
        work: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, BackendError> {
        self.schema.run(&self.db, work).await
    }

    pub async fn check(&self) -> Result<(), String> {
        self.schema.check(&self.db, READY_PROBE).await
    }

    pub async fn enqueue(&self, tasks: &[NewTask]) -> Result<Vec<Enqueued>, BackendError> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let kinds: Vec<&str> = tasks.iter().map(|t| t.kind.as_str()).collect();
        let payloads: Vec<&str> = tasks.iter().map(|t| t.payload_json.as_str()).collect();
        let delays: Vec<i64> = tasks.iter().map(|t| t.delay_ms as i64).collect();
        let max_attempts: Vec<i32> = tasks.iter().map(|t| t.max_attempts).collect();
        let priorities: Vec<i16> = tasks.iter().map(|t| t.priority).collect();
        let keys: Vec<Option<&str>> = tasks.iter().map(|t| t.idempotency_key.as_deref()).collect();
        // Ids are drawn before the insert so each input row knows its own; a key already
        // taken (by an older task or earlier in this batch) resolves to that task instead.
        let rows: Vec<(i64, Option<i64>, bool, Option<String>)> = self.run(sqlx::query_as(
            "WITH input AS ( \
                 SELECT nextval('queue_tasks_id_seq') AS id, i.* \
                 FROM unnest($1::text[], $2::text[], $3::bigint[], $4::int[], $5::smallint[], $6::text[]) \
                      WITH ORDINALITY AS i(kind, payload, delay_ms, max_attempts, priority, idempotency_key, ord) \
             ), ins AS ( \
                 INSERT INTO queue_tasks (id, kind, payload, run_at, max_attempts, priority, idempotency_key) \
                 SELECT id, kind, payload::jsonb, now() + delay_ms * interval '1 millisecond', \
                        max_attempts, priority, idempotency_key \
                 FROM input ORDER BY ord \
                 ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
                 RETURNING id, idempotency_key \
             ) \
             SELECT input.ord, COALESCE(ins.id, first.id, existing.id) AS id, \
                    ins.id IS NOT NULL AS created, existing.state \
             FROM input \
             LEFT JOIN ins ON ins.id = input.id \
             LEFT JOIN ins AS first ON ins.id IS NULL AND first.idempotency_key = input.idempotency_key \
             LEFT JOIN queue_tasks AS existing ON ins.id IS NULL AND first.id IS NULL \
                  AND existing.idempotency_key = input.idempotency_key \
             ORDER BY input.ord",
        )
        .bind(&kinds)
        .bind(&payloads)
        .bind(&delays)
        .bind(&max_attempts)
        .bind(&priorities)
        .bind(&keys)
        .fetch_all(self.db.pool()))
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for ((_, id, created, state), task) in rows.into_iter().zip(tasks) {
            let enqueued = match (id, created) {
                (Some(id), true) => Enqueued {
                    id,
                    state: TaskState::Queued,
                    duplicate: false,
                },
                (Some(id), false) => Enqueued {
                    id,
                    state: state
                        .as_deref()
                        .and_then(TaskState::parse)
                        .unwrap_or(TaskState::Queued),
                    duplicate: true,
                },
                // The key's task was committed by a concurrent request after this statement
                // took its snapshot: look it up now.
                (None, _) => {
                    let key = task.idempotency_key.as_deref().unwrap_or_default();
                    let (id, state): (i64, String) = self
                        .run(
                            sqlx::query_as(
                                "SELECT id, state FROM queue_tasks WHERE idempotency_key = $1",
                            )
                            .bind(key)
                            .fetch_one(self.db.pool()),
                        )
                        .await?;
                    Enqueued {
                        id,
                        state: TaskState::parse(&state).unwrap_or(TaskState::Queued),
                        duplicate: true,
                    }
                }
            };
            out.push(enqueued);
        }
        Ok(out)
    }

    pub async fn get(&self, id: i64) -> Result<Option<TaskView>, BackendError> {
        let row: Option<TaskRow> = self
            .run(
                sqlx::query_as(concat!(
                    "SELECT ",
                    task_columns!(),
                    " FROM queue_tasks WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(self.db.pool()),
            )
            .await?;
        row.map(TaskRow::into_view).transpose()
    }

    pub async fn list(&self, state: TaskState, limit: u32) -> Result<Vec<TaskView>, BackendError> {
        let sql = match state {
            TaskState::Queued => concat!(
                "SELECT ",
                task_columns!(),
                " FROM queue_tasks WHERE state = 'queued' \
                 ORDER BY run_at > now(), priority DESC, run_at, id LIMIT $1"
            ),
            TaskState::Failed => concat!(
                "SELECT ",
                task_columns!(),
                " FROM queue_tasks WHERE state = 'failed' \
                 ORDER BY run_at > now(), priority DESC, run_at, id LIMIT $1"
            ),
            TaskState::Running => concat!(
                "SELECT ",
                task_columns!(),
                " FROM queue_tasks WHERE state = 'running' ORDER BY lease_until LIMIT $1"
            ),
            TaskState::Done => concat!(
                "SELECT ",
                task_columns!(),
                " FROM queue_tasks WHERE state = 'done' ORDER BY finished_at DESC LIMIT $1"
            ),
            TaskState::Dead => concat!(
                "SELECT ",
                task_columns!(),
                " FROM queue_tasks WHERE state = 'dead' ORDER BY finished_at DESC LIMIT $1"
            ),
        };
        let rows: Vec<TaskRow> = self
            .run(
                sqlx::query_as(sql)
                    .bind(i64::from(limit))
                    .fetch_all(self.db.pool()),
            )
            .await?;
        rows.into_iter().map(TaskRow::into_view).collect()
    }

    pub async fn retry(&self, id: i64) -> Result<RetryOutcome, BackendError> {
        let row: Option<TaskRow> = self
            .run(
                sqlx::query_as(concat!(
                    "UPDATE queue_tasks SET state = 'queued', attempt_base = attempts, \
             requeued = requeued + 1, run_at = now(), finished_at = NULL, lease_until = NULL, \
             updated_at = now() WHERE id = $1 AND state = 'dead' RETURNING ",
                    task_columns!()
                ))
                .bind(id)
                .fetch_optional(self.db.pool()),
            )
            .await?;
        match row {
            Some(row) => {
                self.notify().await;
                Ok(RetryOutcome::Requeued(Box::new(row.into_view()?)))
            }
            None => match self.get(id).await? {
                Some(task) => Ok(RetryOutcome::NotDead(task.state)),
                None => Ok(RetryOutcome::NotFound),
            },
        }
    }

    async fn notify(&self) {
        let notify = sqlx::query("SELECT pg_notify('statelab_queue', '')").execute(self.db.pool());
        if let Err(error) = self.db.bounded(notify).await {
            tracing::debug!(%error, "could not notify workers");
        }
    }

    pub async fn stats(&self) -> Result<Stats, BackendError> {
        let rows: Vec<(String, i64)> = self
            .run(
                sqlx::query_as("SELECT state, count(*) FROM queue_tasks GROUP BY state")
                    .fetch_all(self.db.pool()),
            )
            .await?;
        let mut counts = Counts::default();
        for (state, n) in rows {
            if let Some(state) = TaskState::parse(&state) {
                counts.set(state, n);
            }
        }
        let (scheduled, oldest_ms, done_last_minute): (i64, Option<f64>, i64) = self.run(sqlx::query_as(
            "SELECT \
               (SELECT count(*) FROM queue_tasks WHERE state IN ('queued', 'failed') AND run_at > now()), \
               (SELECT (extract(epoch FROM now() - min(run_at)) * 1000)::float8 FROM queue_tasks \
                  WHERE state IN ('queued', 'failed') AND run_at <= now()), \
               (SELECT count(*) FROM queue_tasks WHERE state = 'done' \
                  AND finished_at > now() - interval '60 seconds')",
        )
        .fetch_one(self.db.pool()))
        .await?;
        Ok(Stats {
            backend: "postgres",
            counts,
            scheduled,
            oldest_queued_age_ms: oldest_ms.unwrap_or(0.0).max(0.0) as i64,
            done_last_minute,
            throughput_per_second: done_last_minute as f64 / 60.0,
        })
    }

    pub async fn claim(
        &self,
        worker: &str,
        max: u32,
        lease: Duration,
    ) -> Result<Vec<Claimed>, BackendError> {
        let rows: Vec<(i64, String, Value, i32, i32, i32)> = self.run(sqlx::query_as(
            "WITH picked AS ( \
                 SELECT id FROM queue_tasks \
                 WHERE state IN ('queued', 'failed') AND run_at <= now() \
                 ORDER BY priority DESC, run_at, id \
                 LIMIT $1 \
                 FOR UPDATE SKIP LOCKED \
             ) \
             UPDATE queue_tasks t SET state = 'running', attempts = t.attempts + 1, worker = $2, \
                 lease_until = now() + $3 * interval '1 millisecond', started_at = now(), updated_at = now() \
             FROM picked WHERE t.id = picked.id \
             RETURNING t.id, t.kind, t.payload, t.attempts, t.attempts - t.attempt_base, t.max_attempts",
        )
        .bind(i64::from(max))
        .bind(worker)
        .bind(lease.as_millis() as i64)
        .fetch_all(self.db.pool()))
        .await?;
        let mut claimed: Vec<Claimed> = rows
            .into_iter()
            .map(
                |(id, kind, payload, attempt, attempt_in_budget, max_attempts)| Claimed {
                    id,
                    kind,
                    payload,
                    attempt,
                    attempt_in_budget,
                    max_attempts,
                },
            )
            .collect();
        claimed.sort_by_key(|c| c.id);
        Ok(claimed)
    }

    pub async fn extend(
        &self,
        leases: &[Lease],
        lease: Duration,
    ) -> Result<Vec<Lease>, BackendError> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, attempts) = split(leases);
        let rows: Vec<(i64, i32)> = self
            .run(
                sqlx::query_as(
                    "WITH held AS ( \
                 SELECT t.id FROM queue_tasks t \
                 JOIN unnest($1::bigint[], $2::int[]) AS u(id, attempt) ON t.id = u.id \
                 WHERE t.attempts = u.attempt AND t.state = 'running' \
                 ORDER BY t.id FOR UPDATE OF t \
             ) \
             UPDATE queue_tasks t SET lease_until = now() + $3 * interval '1 millisecond' \
             FROM held WHERE t.id = held.id \
             RETURNING t.id, t.attempts",
                )
                .bind(&ids)
                .bind(&attempts)
                .bind(lease.as_millis() as i64)
                .fetch_all(self.db.pool()),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, attempt)| Lease { id, attempt })
            .collect())
    }

    pub async fn complete(&self, done: &[Completion]) -> Result<Vec<bool>, BackendError> {
        if done.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = done.iter().map(|c| c.lease.id).collect();
        let attempts: Vec<i32> = done.iter().map(|c| c.lease.attempt).collect();
        let results: Vec<String> = done.iter().map(|c| c.result.to_string()).collect();
        // Fenced: only the attempt that holds the task may finish it. Rows are locked in id
        // order, like every multi-row update here, so concurrent batches never deadlock.
        let accepted: Vec<(i64,)> = self.run(sqlx::query_as(
            "WITH u AS (SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[]) AS u(id, attempt, result)), \
             held AS ( \
                 SELECT t.id, u.result FROM queue_tasks t JOIN u ON t.id = u.id \
                 WHERE t.attempts = u.attempt AND t.state = 'running' \
                 ORDER BY t.id FOR UPDATE OF t \
             ) \
             UPDATE queue_tasks t SET state = 'done', result = held.result::jsonb, finished_at = now(), \
                 lease_until = NULL, updated_at = now() \
             FROM held WHERE t.id = held.id \
             RETURNING t.id",
        )
        .bind(&ids)
        .bind(&attempts)
        .bind(&results)
        .fetch_all(self.db.pool()))
        .await?;
        let accepted: std::collections::HashSet<i64> =
            accepted.into_iter().map(|(id,)| id).collect();
        Ok(done
            .iter()
            .map(|c| accepted.contains(&c.lease.id))
            .collect())
    }

    pub async fn fail(&self, failures: &[Failure]) -> Result<Vec<FailOutcome>, BackendError> {
        if failures.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = failures.iter().map(|f| f.lease.id).collect();
        let attempts: Vec<i32> = failures.iter().map(|f| f.lease.attempt).collect();
        let errors: Vec<&str> = failures.iter().map(|f| f.error.as_str()).collect();
        let backoffs: Vec<i64> = failures.iter().map(|f| f.backoff_ms as i64).collect();
        let rows: Vec<(i64, String)> = self.run(sqlx::query_as(
            "WITH held AS ( \
                 SELECT t.id, u.error, u.backoff_ms FROM queue_tasks t \
                 JOIN unnest($1::bigint[], $2::int[], $3::text[], $4::bigint[]) AS u(id, attempt, error, backoff_ms) \
                   ON t.id = u.id \
                 WHERE t.attempts = u.attempt AND t.state = 'running' \
                 ORDER BY t.id FOR UPDATE OF t \
             ) \
             UPDATE queue_tasks t SET \
                 state = CASE WHEN t.attempts - t.attempt_base >= t.max_attempts THEN 'dead' ELSE 'failed' END, \
                 finished_at = CASE WHEN t.attempts - t.attempt_base >= t.max_attempts THEN now() END, \
                 run_at = CASE WHEN t.attempts - t.attempt_base >= t.max_attempts THEN t.run_at \
                               ELSE now() + u.backoff_ms * interval '1 millisecond' END, \
                 last_error = u.error, lease_until = NULL, updated_at = now() \
             FROM held AS u WHERE t.id = u.id \
             RETURNING t.id, t.state",
        )
        .bind(&ids)
        .bind(&attempts)
        .bind(&errors)
        .bind(&backoffs)
        .fetch_all(self.db.pool()))
        .await?;
        let states: std::collections::HashMap<i64, String> = rows.into_iter().collect();
        Ok(failures
            .iter()
            .map(|f| match states.get(&f.lease.id).map(String::as_str) {
                Some("dead") => FailOutcome::Dead,
                Some(_) => FailOutcome::Retrying,
                None => FailOutcome::Fenced,
            })
            .collect())
    }

    pub async fn release(&self, leases: &[Lease]) -> Result<u64, BackendError> {
        if leases.is_empty() {
            return Ok(0);
        }
        let (ids, attempts) = split(leases);
        let result = self
            .run(
                sqlx::query(
                    "WITH held AS ( \
                 SELECT t.id FROM queue_tasks t \
                 JOIN unnest($1::bigint[], $2::int[]) AS u(id, attempt) ON t.id = u.id \
                 WHERE t.attempts = u.attempt AND t.state = 'running' \
                 ORDER BY t.id FOR UPDATE OF t \
             ) \
             UPDATE queue_tasks t SET state = 'queued', attempt_base = t.attempt_base + 1, \
                 lease_until = NULL, run_at = now(), updated_at = now() \
             FROM held WHERE t.id = held.id",
                )
                .bind(&ids)
                .bind(&attempts)
                .execute(self.db.pool()),
            )
            .await?;
        if result.rows_affected() > 0 {
            self.notify().await;
        }
        Ok(result.rows_affected())
    }

    pub async fn maintain(&self, retention: Retention) -> Result<Maintenance, BackendError> {
        let mut report = Maintenance::default();
        // Leases that ran out: the worker died or lost the database. Back to the queue, or
        // dead if that was the last attempt. SKIP LOCKED: several workers do this at once.
        let reaped: Vec<(String,)> = self.run(sqlx::query_as(
            "WITH expired AS ( \
                 SELECT id FROM queue_tasks WHERE state = 'running' AND lease_until < now() \
                 ORDER BY lease_until LIMIT $1 FOR UPDATE SKIP LOCKED \
             ) \
             UPDATE queue_tasks t SET \
                 state = CASE WHEN t.attempts - t.attempt_base >= t.max_attempts THEN 'dead' ELSE 'queued' END, \
                 finished_at = CASE WHEN t.attempts - t.attempt_base >= t.max_attempts THEN now() END, \
                 last_error = 'lease expired: worker ' || COALESCE(t.worker, '?') || \
                              ' stopped renewing it during attempt ' || t.attempts, \
                 lease_until = NULL, run_at = now(), updated_at = now() \
             FROM expired WHERE t.id = expired.id \
             RETURNING t.state",
        )
        .bind(REAP_BATCH)
        .fetch_all(self.db.pool()))
        .await?;
        for (state,) in &reaped {
            if state == "dead" {
                report.dead += 1;
            } else {
                report.requeued += 1;
            }
        }
        if report.requeued > 0 {
            self.notify().await;
        }
        for (state, secs) in [("done", retention.done_secs), ("dead", retention.dead_secs)] {
            for _ in 0..PRUNE_ROUNDS {
                let sql = if state == "done" {
                    "WITH old AS ( \
                         SELECT id FROM queue_tasks WHERE state = 'done' \
                           AND finished_at < now() - $1 * interval '1 second' \
                         ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
                     DELETE FROM queue_tasks t USING old WHERE t.id = old.id"
                } else {
                    "WITH old AS ( \
                         SELECT id FROM queue_tasks WHERE state = 'dead' \
                           AND finished_at < now() - $1 * interval '1 second' \
                         ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
                     DELETE FROM queue_tasks t USING old WHERE t.id = old.id"
                };
                let deleted = self
                    .run(
                        sqlx::query(sql)
                            .bind(secs as i64)
                            .bind(PRUNE_BATCH)
                            .execute(self.db.pool()),
                    )
                    .await?
                    .rows_affected();
                report.pruned += deleted;
                if (deleted as i64) < PRUNE_BATCH {
                    break;
                }
            }
        }
        Ok(report)
    }
}

fn split(leases: &[Lease]) -> (Vec<i64>, Vec<i32>) {
    leases.iter().map(|l| (l.id, l.attempt)).unzip()
}

impl PgBackend {
    /// Runs until `stop`, waking a worker on every NOTIFY; reconnects with backoff, and the
    /// worker polls meanwhile.
    pub async fn listen(self, wake: Arc<Notify>, stop: CancellationToken) {
        let pool = self.db.listener_pool();
        while !stop.is_cancelled() {
            let connect = || async {
                let mut listener = PgListener::connect_with(&pool).await?;
                listener.listen(CHANNEL).await?;
                Ok::<_, sqlx::Error>(listener)
            };
            let connected = connect
                .retry(reconnect_backoff())
                .sleep(tokio::time::sleep)
                .notify(|error, delay| {
                    tracing::debug!(%error, retry_in_ms = delay.as_millis() as u64,
                        "LISTEN connection failed; polling meanwhile");
                });
            let mut listener = tokio::select! {
                _ = stop.cancelled() => return,
                result = connected => match result {
                    Ok(listener) => listener,
                    // Unreachable with an unbounded retry; polling still finds the work.
                    Err(_) => return,
                },
            };
            // Whatever was announced while we were not listening: look once.
            wake.notify_one();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    received = listener.try_recv() => match received {
                        Ok(Some(_)) => wake.notify_one(),
                        Ok(None) => {
                            tracing::debug!("LISTEN connection lost; reconnecting");
                            break;
                        }
                        Err(error) => {
                            tracing::debug!(%error, "LISTEN connection failed; reconnecting");
                            break;
                        }
                    }
                }
            }
        }
    }
}

struct TaskRow {
    id: i64,
    kind: String,
    payload: Value,
    state: String,
    priority: i16,
    attempts: i32,
    attempt_base: i32,
    max_attempts: i32,
    requeued: i32,
    idempotency_key: Option<String>,
    last_error: Option<String>,
    result: Option<Value>,
    worker: Option<String>,
    lease_until: Option<OffsetDateTime>,
    run_at: OffsetDateTime,
    created_at: OffsetDateTime,
    started_at: Option<OffsetDateTime>,
    finished_at: Option<OffsetDateTime>,
    updated_at: OffsetDateTime,
}

/// Columns by name (sqlx's derive would do the same; written out, it needs no macro crate).
impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for TaskRow {
    fn from_row(row: &'r sqlx::postgres::PgRow) -> Result<TaskRow, sqlx::Error> {
        use sqlx::Row;
        Ok(TaskRow {
            id: row.try_get("id")?,
            kind: row.try_get("kind")?,
            payload: row.try_get("payload")?,
            state: row.try_get("state")?,
            priority: row.try_get("priority")?,
            attempts: row.try_get("attempts")?,
            attempt_base: row.try_get("attempt_base")?,
            max_attempts: row.try_get("max_attempts")?,
            requeued: row.try_get("requeued")?,
            idempotency_key: row.try_get("idempotency_key")?,
            last_error: row.try_get("last_error")?,
            result: row.try_get("result")?,
            worker: row.try_get("worker")?,
            lease_until: row.try_get("lease_until")?,
            run_at: row.try_get("run_at")?,
            created_at: row.try_get("created_at")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

impl TaskRow {
    fn into_view(self) -> Result<TaskView, BackendError> {
        let state = TaskState::parse(&self.state)
            .ok_or_else(|| BackendError::other(format!("unknown task state {:?}", self.state)))?;
        Ok(TaskView {
            id: self.id,
            kind: self.kind,
            payload: self.payload,
            state,
            priority: self.priority,
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            attempts_left: (self.max_attempts - (self.attempts - self.attempt_base)).max(0),
            requeued: self.requeued,
            idempotency_key: self.idempotency_key,
            last_error: self.last_error,
            result: self.result,
            worker: self.worker,
            lease_until: self.lease_until,
            run_at: self.run_at,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            updated_at: self.updated_at,
        })
    }
}

//! What a task is, what a producer may ask for, and the limits on it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::tasks::Registry;

/// Most tasks one `POST /tasks/batch` may carry.
pub const MAX_BATCH: usize = 1000;
/// Largest payload, as serialized JSON.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Largest request body (a full batch of small tasks fits easily).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
pub const MAX_TYPE_LEN: usize = 64;
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 200;
/// Longest delay a task may ask for: 7 days.
pub const MAX_DELAY_MS: u64 = 7 * 24 * 3600 * 1000;
pub const MAX_ATTEMPTS_LIMIT: i32 = 100;
pub const DEFAULT_MAX_ATTEMPTS: i32 = 5;
pub const MIN_PRIORITY: i16 = 0;
pub const MAX_PRIORITY: i16 = 9;
/// Longest error text kept on a task.
pub const MAX_ERROR_LEN: usize = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Waiting to run (possibly delayed until `run_at`).
    Queued,
    /// Claimed by a worker, whose lease runs until `lease_until`.
    Running,
    /// Finished successfully; kept for the retention period.
    Done,
    /// The last attempt failed; it runs again at `run_at` (backoff).
    Failed,
    /// Failed `max_attempts` times: the dead letter. Re-queue with `POST /tasks/{id}/retry`.
    Dead,
}

impl TaskState {
    pub const ALL: [TaskState; 5] = [
        TaskState::Queued,
        TaskState::Running,
        TaskState::Done,
        TaskState::Failed,
        TaskState::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Done => "done",
            TaskState::Failed => "failed",
            TaskState::Dead => "dead",
        }
    }

    pub fn parse(text: &str) -> Option<TaskState> {
        TaskState::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of `POST /tasks` (and each element of `POST /tasks/batch`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskRequest {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub payload: Value,
    #[serde(default)]
    pub delay_ms: Option<u64>,
    #[serde(default)]
    pub max_attempts: Option<i32>,
    #[serde(default)]
    pub priority: Option<i16>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// A validated task, ready to store.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub kind: String,
    pub payload: Value,
    /// `payload` serialized once, for the backends.
    pub payload_json: String,
    pub delay_ms: u64,
    pub max_attempts: i32,
    pub priority: i16,
    pub idempotency_key: Option<String>,
}

impl TaskRequest {
    /// Checks every field against the limits and the task type's own payload rules.
    pub fn validate(self, registry: &Registry) -> Result<NewTask, String> {
        let kind = self.kind.trim().to_owned();
        if kind.is_empty() || kind.len() > MAX_TYPE_LEN {
            return Err(format!("type must be 1 to {MAX_TYPE_LEN} characters"));
        }
        let Some(handler) = registry.get(&kind) else {
            return Err(format!(
                "unknown task type {kind:?}; known types: {}",
                registry.names().join(", ")
            ));
        };
        handler
            .validate(&self.payload)
            .map_err(|e| format!("invalid payload for type {kind:?}: {e}"))?;
        let payload_json = serde_json::to_string(&self.payload).map_err(|e| e.to_string())?;
        if payload_json.len() > MAX_PAYLOAD_BYTES {
            return Err(format!(
                "payload is {} bytes; the limit is {MAX_PAYLOAD_BYTES}",
                payload_json.len()
            ));
        }
        let delay_ms = self.delay_ms.unwrap_or(0);
        if delay_ms > MAX_DELAY_MS {
            return Err(format!("delay_ms must be at most {MAX_DELAY_MS} (7 days)"));
        }
        let max_attempts = self.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
        if !(1..=MAX_ATTEMPTS_LIMIT).contains(&max_attempts) {
            return Err(format!(
                "max_attempts must be between 1 and {MAX_ATTEMPTS_LIMIT}"
            ));
        }
        let priority = self.priority.unwrap_or(MIN_PRIORITY);
        if !(MIN_PRIORITY..=MAX_PRIORITY).contains(&priority) {
            return Err(format!(
                "priority must be between {MIN_PRIORITY} (lowest, the default) and {MAX_PRIORITY}"
            ));
        }
        let idempotency_key = match self.idempotency_key {
            None => None,
            Some(key) if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN => {
                return Err(format!(
                    "idempotency_key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} bytes"
                ));
            }
            Some(key) if key.chars().any(char::is_control) => {
                return Err("idempotency_key must not contain control characters".into());
            }
            Some(key) => Some(key),
        };
        Ok(NewTask {
            kind,
            payload: self.payload,
            payload_json,
            delay_ms,
            max_attempts,
            priority,
            idempotency_key,
        })
    }
}

/// Everything `GET /tasks/{id}` shows.
#[derive(Debug, Clone, Serialize)]
pub struct TaskView {
    pub id: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub payload: Value,
    pub state: TaskState,
    pub priority: i16,
    /// How many times a worker has claimed this task (the fencing token of the current attempt).
    pub attempts: i32,
    pub max_attempts: i32,
    /// Attempts left before the task goes dead (counting from the last manual retry).
    pub attempts_left: i32,
    /// How many times the task was re-queued from the dead letter by `POST /tasks/{id}/retry`.
    pub requeued: i32,
    pub idempotency_key: Option<String>,
    pub last_error: Option<String>,
    pub result: Option<Value>,
    /// The worker holding (or that last held) the lease.
    pub worker: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub lease_until: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub run_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// What one enqueue produced: a new task, or the one an idempotency key already names.
#[derive(Debug, Clone, Serialize)]
pub struct Enqueued {
    pub id: i64,
    pub state: TaskState,
    /// True when the idempotency key already named a task, which is returned instead.
    pub duplicate: bool,
}

/// A task a worker has claimed, with the attempt number that fences its acknowledgement.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub kind: String,
    pub payload: Value,
    pub attempt: i32,
    /// Attempt number within the current retry budget (1 = first try since enqueue or retry).
    pub attempt_in_budget: i32,
    pub max_attempts: i32,
}

impl Claimed {
    pub fn lease(&self) -> Lease {
        Lease {
            id: self.id,
            attempt: self.attempt,
        }
    }
}

/// Identifies one attempt: only the holder of the current attempt may extend, complete,
/// fail or release the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lease {
    pub id: i64,
    pub attempt: i32,
}

#[derive(Debug, Clone)]
pub struct Completion {
    pub lease: Lease,
    pub result: Value,
}

#[derive(Debug, Clone)]
pub struct Failure {
    pub lease: Lease,
    pub error: String,
    /// When to try again, if attempts are left (the worker computes backoff with jitter).
    pub backoff_ms: u64,
}

/// What became of a failure report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Scheduled for another attempt after the backoff.
    Retrying,
    /// Out of attempts: dead-lettered.
    Dead,
    /// A stale attempt: another attempt owns the task now; nothing was changed.
    Fenced,
}

pub enum RetryOutcome {
    Requeued(Box<TaskView>),
    NotDead(TaskState),
    NotFound,
}

/// `GET /stats`.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub backend: &'static str,
    pub counts: Counts,
    /// Queued tasks whose `run_at` is still in the future (delays and backoffs), included in `queued` or `failed`.
    pub scheduled: i64,
    /// How long the longest-waiting runnable task has been runnable, in milliseconds (0: none waiting).
    pub oldest_queued_age_ms: i64,
    /// Tasks finished successfully in the last 60 seconds.
    pub done_last_minute: i64,
    /// `done_last_minute / 60`.
    pub throughput_per_second: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub queued: i64,
    pub running: i64,
    pub done: i64,
    pub failed: i64,
    pub dead: i64,
}

impl Counts {
    pub fn set(&mut self, state: TaskState, n: i64) {
        match state {
            TaskState::Queued => self.queued = n,
            TaskState::Running => self.running = n,
            TaskState::Done => self.done = n,
            TaskState::Failed => self.failed = n,
            TaskState::Dead => self.dead = n,
        }
    }
}

/// How long finished tasks stay queryable before maintenance prunes them.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub done_secs: u64,
    pub dead_secs: u64,
}

/// What one maintenance pass did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Maintenance {
    /// Tasks whose lease ran out (worker gone) that went back to the queue.
    pub requeued: u64,
    /// Tasks whose lease ran out on their last attempt.
    pub dead: u64,
    /// Finished tasks deleted after the retention period.
    pub pruned: u64,
}

/// Cuts an error text to the stored limit, on a character boundary.
pub fn clip_error(mut text: String) -> String {
    if text.len() > MAX_ERROR_LEN {
        let mut end = MAX_ERROR_LEN;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

//! What a task is, what a producer may ask for, and the limits on it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use time::OffsetDateTime;

use super::tasks::Registry;

/// Most tasks one `POST /tasks/batch` may carry.
pub const MAX_BATCH: usize = 1000;
/// Largest payload, as serialized JSON.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Largest request body (a full batch of small tasks fits easily).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
pub const MAX_TYPE_LEN: usize = 64;
/// Longest idempotency key, in characters.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 200;
/// Smallest and largest number a payload may hold: the 64-bit integer range (i64 and u64),
/// the numbers both backends give back exactly.
pub const MIN_PAYLOAD_NUMBER: i64 = i64::MIN;
pub const MAX_PAYLOAD_NUMBER: u64 = u64::MAX;
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
    /// Kept as sent until validated: the text is checked for numbers that would not survive
    /// parsing exactly.
    #[serde(default)]
    pub payload: Option<Box<RawValue>>,
    #[serde(default, deserialize_with = "whole_number")]
    pub delay_ms: Option<u64>,
    #[serde(default, deserialize_with = "whole_number")]
    pub max_attempts: Option<i32>,
    #[serde(default, deserialize_with = "whole_number")]
    pub priority: Option<i16>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// A whole number, also when written with a fraction or exponent (`2.0`, `1e3`): JSON
/// does not tell them apart, and neither does the API document.
fn whole_number<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i128>,
{
    use serde::de::Error;
    let Some(value) = Option::<Value>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let whole = match &value {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 1.8e19)
                    .map(|f| f as i128)
            }),
        _ => None,
    };
    let whole =
        whole.ok_or_else(|| D::Error::custom(format!("expected a whole number, got {value}")))?;
    T::try_from(whole)
        .map(Some)
        .map_err(|_| D::Error::custom(format!("{whole} is out of range")))
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

/// Why a task was refused, and which field is at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
}

impl Invalid {
    fn new(field: &'static str, message: impl Into<String>) -> Invalid {
        Invalid {
            field,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl TaskRequest {
    /// Checks every field against the limits and the task type's own payload rules.
    pub fn validate(self, registry: &Registry) -> Result<NewTask, Invalid> {
        // Exact names: what the API document lists, no trimming.
        let kind = self.kind;
        if kind.is_empty() || kind.len() > MAX_TYPE_LEN {
            return Err(Invalid::new(
                "type",
                format!("type must be 1 to {MAX_TYPE_LEN} characters"),
            ));
        }
        let Some(handler) = registry.get(&kind) else {
            return Err(Invalid::new(
                "type",
                format!(
                    "unknown task type {kind:?}; known types: {}",
                    registry.names().join(", ")
                ),
            ));
        };
        let raw = self.payload.as_deref().map_or("null", RawValue::get);
        let payload = payload_value(raw).map_err(|e| Invalid::new("payload", e))?;
        handler.validate(&payload).map_err(|e| {
            Invalid::new("payload", format!("invalid payload for type {kind:?}: {e}"))
        })?;
        let payload_json =
            serde_json::to_string(&payload).map_err(|e| Invalid::new("payload", e.to_string()))?;
        if payload_json.len() > MAX_PAYLOAD_BYTES {
            return Err(Invalid::new(
                "payload",
                format!(
                    "payload is {} bytes; the limit is {MAX_PAYLOAD_BYTES}",
                    payload_json.len()
                ),
            ));
        }
        let delay_ms = self.delay_ms.unwrap_or(0);
        if delay_ms > MAX_DELAY_MS {
            return Err(Invalid::new(
                "delay_ms",
                format!("delay_ms must be at most {MAX_DELAY_MS} (7 days)"),
            ));
        }
        let max_attempts = self.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
        if !(1..=MAX_ATTEMPTS_LIMIT).contains(&max_attempts) {
            return Err(Invalid::new(
                "max_attempts",
                format!("max_attempts must be between 1 and {MAX_ATTEMPTS_LIMIT}"),
            ));
        }
        let priority = self.priority.unwrap_or(MIN_PRIORITY);
        if !(MIN_PRIORITY..=MAX_PRIORITY).contains(&priority) {
            return Err(Invalid::new(
                "priority",
                format!(
                    "priority must be between {MIN_PRIORITY} (lowest, the default) and {MAX_PRIORITY}"
                ),
            ));
        }
        let idempotency_key = match self.idempotency_key {
            None => None,
            Some(key) if key.is_empty() || key.chars().count() > MAX_IDEMPOTENCY_KEY_LEN => {
                return Err(Invalid::new(
                    "idempotency_key",
                    format!("idempotency_key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters"),
                ));
            }
            Some(key) if key.chars().any(char::is_control) => {
                return Err(Invalid::new(
                    "idempotency_key",
                    "idempotency_key must not contain control characters",
                ));
            }
            Some(key) => Some(key),
        };
        Ok(NewTask {
            kind,
            payload,
            payload_json,
            delay_ms,
            max_attempts,
            priority,
            idempotency_key,
        })
    }
}

/// Parses a payload so that both backends store and give back exactly what was sent, or says
/// why it cannot be: a number outside the 64-bit integer range (it would come back as a
/// rounded float), or a U+0000 character (PostgreSQL's jsonb cannot hold it).
pub fn payload_value(raw: &str) -> Result<Value, String> {
    if let Some(number) = out_of_range_number(raw) {
        return Err(format!(
            "payload holds the number {number}, outside {MIN_PAYLOAD_NUMBER} to \
             {MAX_PAYLOAD_NUMBER}; send numbers this large as strings"
        ));
    }
    let value: Value = serde_json::from_str(raw).map_err(|e| format!("payload: {e}"))?;
    if let Some(path) = nul_path(&value, &mut String::new()) {
        return Err(format!(
            "payload holds the character U+0000 at {path:?}; it cannot be stored \
             (encode binary data, e.g. as base64)"
        ));
    }
    Ok(value)
}

/// The first number token in valid JSON text whose value lies outside the 64-bit integer
/// range: integers must parse as i64 or u64 (else serde_json would round them to a float);
/// floats must lie within the same bounds, so the documented range is the whole rule.
fn out_of_range_number(raw: &str) -> Option<&str> {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\\' => i += 2,
                        b'"' => {
                            i += 1;
                            break;
                        }
                        _ => i += 1,
                    }
                }
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                let token = &raw[start..i];
                let fits = if token.contains(['.', 'e', 'E']) {
                    // -2^63 <= v < 2^64, the range of i64 and u64 together.
                    token.parse::<f64>().is_ok_and(|v| {
                        (-9_223_372_036_854_775_808.0..18_446_744_073_709_551_616.0).contains(&v)
                    })
                } else {
                    token.parse::<i64>().is_ok() || token.parse::<u64>().is_ok()
                };
                if !fits {
                    return Some(token);
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// The JSON pointer of the first string or key holding U+0000.
fn nul_path(value: &Value, at: &mut String) -> Option<String> {
    let escape = |key: &str| key.replace('~', "~0").replace('/', "~1");
    match value {
        Value::String(s) if s.contains('\0') => Some(at.clone()),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let len = at.len();
            at.push_str(&format!("/{i}"));
            let found = nul_path(item, at);
            at.truncate(len);
            found
        }),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            let len = at.len();
            at.push('/');
            at.push_str(&escape(key));
            let found = if key.contains('\0') {
                Some(at.clone())
            } else {
                nul_path(item, at)
            };
            at.truncate(len);
            found
        }),
        _ => None,
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

/// Cuts an error text to the stored limit, on a character boundary, without U+0000 (which
/// PostgreSQL's text cannot hold).
pub fn clip_error(mut text: String) -> String {
    if text.contains('\0') {
        text = text.replace('\0', "\u{fffd}");
    }
    if text.len() > MAX_ERROR_LEN {
        let mut end = MAX_ERROR_LEN;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_outside_the_64_bit_range_are_found_wherever_they_are() {
        for ok in [
            r#"{"n": 18446744073709551615, "m": -9223372036854775808}"#,
            r#"[1.5, -2e18, 1e19, 0, "99999999999999999999999"]"#,
            r#"{"99999999999999999999": "key\" 1e400 \\", "x": null}"#,
        ] {
            assert_eq!(out_of_range_number(ok), None, "{ok}");
            assert!(payload_value(ok).is_ok(), "{ok}");
        }
        for (bad, token) in [
            (r#"{"n": 18446744073709551616}"#, "18446744073709551616"),
            (r#"[-9223372036854775809]"#, "-9223372036854775809"),
            (r#"{"a": [1, {"b": 1e20}]}"#, "1e20"),
            (r#"1e400"#, "1e400"),
            (r#"-9.3e18"#, "-9.3e18"),
        ] {
            assert_eq!(out_of_range_number(bad), Some(token), "{bad}");
            assert!(payload_value(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_nul_character_is_named_by_its_path() {
        let error = payload_value(r#"{"a": [1, "x\u0000y"]}"#).unwrap_err();
        assert!(error.contains("\"/a/1\""), "{error}");
        let error = payload_value(r#"{"a/b": {"k\u0000": 1}}"#).unwrap_err();
        assert!(error.contains("/a~1b/k"), "{error}");
        assert!(payload_value(r#"{"a": "\\u0000 is fine as text"}"#).is_ok());
    }
}

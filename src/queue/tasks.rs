//! Task types: what a worker does with a task of a given `type`. Each type is a
//! [`TaskHandler`]; a [`Registry`] maps names to handlers. The producer uses the same registry
//! to reject unknown types and bad payloads with a 422 before anything is stored.
//!
//! Built in, for demos and tests: `sleep`, `fail`, `echo`, `cpu`. To add your own, implement
//! [`TaskHandler`], register it, and start the worker with [`super::worker::run_with`].

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Value, json};

/// What a handler gets: the task and which attempt this is.
#[derive(Debug, Clone)]
pub struct TaskContext {
    pub id: i64,
    /// The attempt number (1 for the first claim). Also the fencing token.
    pub attempt: i32,
    /// The attempt within the current retry budget (1 = first since enqueue or manual retry).
    pub attempt_in_budget: i32,
    pub payload: Value,
}

/// One task type.
pub trait TaskHandler: Send + Sync + 'static {
    /// The `type` producers use.
    fn name(&self) -> &'static str;

    /// Checked by the producer before enqueueing; an error becomes a 422.
    fn validate(&self, _payload: &Value) -> Result<(), String> {
        Ok(())
    }

    /// Does the work. `Ok(result)` completes the task (the result is stored on it);
    /// `Err(message)` fails this attempt (retried with backoff until `max_attempts`).
    fn run(&self, ctx: TaskContext) -> BoxFuture<'static, Result<Value, String>>;
}

#[derive(Clone)]
pub struct Registry {
    handlers: BTreeMap<&'static str, Arc<dyn TaskHandler>>,
}

impl Registry {
    pub fn empty() -> Registry {
        Registry {
            handlers: BTreeMap::new(),
        }
    }

    /// `sleep`, `fail`, `echo` and `cpu`.
    pub fn builtin() -> Registry {
        Registry::empty()
            .with(Sleep)
            .with(Fail)
            .with(Echo)
            .with(Cpu)
    }

    pub fn with(mut self, handler: impl TaskHandler) -> Registry {
        self.handlers.insert(handler.name(), Arc::new(handler));
        self
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn TaskHandler>> {
        self.handlers.get(name).cloned()
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.handlers.keys().copied().collect()
    }
}

fn optional_u64(payload: &Value, field: &str, max: u64) -> Result<Option<u64>, String> {
    match payload.get(field) {
        None | Some(Value::Null) => Ok(None),
        // 5.0 is the whole number 5, as JSON Schema (and the API document) sees it.
        Some(value) => match value.as_u64().or_else(|| {
            value
                .as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= max as f64)
                .map(|f| f as u64)
        }) {
            Some(n) if n <= max => Ok(Some(n)),
            _ => Err(format!("{field} must be an integer from 0 to {max}")),
        },
    }
}

fn object_or_null(payload: &Value) -> Result<(), String> {
    if payload.is_object() || payload.is_null() {
        Ok(())
    } else {
        Err("payload must be a JSON object".into())
    }
}

/// `sleep`: waits `{"ms": N}` milliseconds (at most 10 minutes), then succeeds.
pub struct Sleep;

const MAX_SLEEP_MS: u64 = 600_000;

impl TaskHandler for Sleep {
    fn name(&self) -> &'static str {
        "sleep"
    }

    fn validate(&self, payload: &Value) -> Result<(), String> {
        object_or_null(payload)?;
        optional_u64(payload, "ms", MAX_SLEEP_MS)?.ok_or("ms is required")?;
        Ok(())
    }

    fn run(&self, ctx: TaskContext) -> BoxFuture<'static, Result<Value, String>> {
        Box::pin(async move {
            let ms = optional_u64(&ctx.payload, "ms", MAX_SLEEP_MS)?.unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(json!({"slept_ms": ms}))
        })
    }
}

/// `fail`: fails its first `{"times": N}` attempts (default 1), then succeeds. With
/// `times >= max_attempts` it ends in the dead letter; a manual retry then gives it more
/// attempts, and it succeeds once more than N attempts have been made in all.
pub struct Fail;

impl TaskHandler for Fail {
    fn name(&self) -> &'static str {
        "fail"
    }

    fn validate(&self, payload: &Value) -> Result<(), String> {
        object_or_null(payload)?;
        optional_u64(payload, "times", 1000)?;
        Ok(())
    }

    fn run(&self, ctx: TaskContext) -> BoxFuture<'static, Result<Value, String>> {
        Box::pin(async move {
            let times = optional_u64(&ctx.payload, "times", 1000)?.unwrap_or(1);
            if (ctx.attempt.max(0) as u64) <= times {
                Err(format!("planned failure {} of {times}", ctx.attempt))
            } else {
                Ok(json!({"failed_before_success": times}))
            }
        })
    }
}

/// `echo`: a no-op that returns its payload.
pub struct Echo;

impl TaskHandler for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn run(&self, ctx: TaskContext) -> BoxFuture<'static, Result<Value, String>> {
        Box::pin(async move { Ok(ctx.payload) })
    }
}

/// `cpu`: a short hash loop of `{"iterations": N}` rounds (default 100,000, at most
/// 50,000,000), on the blocking pool so it never stalls other tasks.
pub struct Cpu;

const MAX_CPU_ITERATIONS: u64 = 50_000_000;

impl TaskHandler for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn validate(&self, payload: &Value) -> Result<(), String> {
        object_or_null(payload)?;
        optional_u64(payload, "iterations", MAX_CPU_ITERATIONS)?;
        Ok(())
    }

    fn run(&self, ctx: TaskContext) -> BoxFuture<'static, Result<Value, String>> {
        Box::pin(async move {
            let iterations =
                optional_u64(&ctx.payload, "iterations", MAX_CPU_ITERATIONS)?.unwrap_or(100_000);
            let seed = ctx.id;
            let digest = tokio::task::spawn_blocking(move || {
                let mut value = seed as u64;
                for round in 0..iterations {
                    let mut hasher = DefaultHasher::new();
                    (value, round).hash(&mut hasher);
                    value = hasher.finish();
                }
                value
            })
            .await
            .map_err(|e| format!("hash loop stopped: {e}"))?;
            Ok(json!({"iterations": iterations, "digest": format!("{digest:016x}")}))
        })
    }
}

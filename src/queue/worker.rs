//! `statelab worker`: claims tasks in batches, runs them concurrently, renews their leases
//! while they run, acknowledges results in batches, and shuts down gracefully on SIGTERM:
//! stop claiming, let running tasks finish within the grace period, release the rest.
//!
//! ```text
//!   claim loop ──(task + permit)──▶ handler tasks ──(outcome)──▶ acker ──▶ backend
//!        ▲                                 │                       (complete/fail in batches)
//!        └── wake-ups (NOTIFY / pub/sub)   └─ in-flight table ◀── heartbeat (extend leases)
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use rand::Rng;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

use super::backend::{Backend, BackendError};
use super::config::WorkerConfig;
use super::model::{Claimed, Completion, FailOutcome, Failure, Lease, clip_error};
use super::tasks::{Registry, TaskContext};
use crate::server::{App, Readiness, Shutdown};

/// Exponential backoff with jitter for attempt `n` (1-based, within the retry budget):
/// `min(max, base * 2^(n-1))`, scaled by a random factor in [0.5, 1].
pub fn backoff_ms(attempt_in_budget: i32, base_ms: u64, max_ms: u64) -> u64 {
    let exponent = attempt_in_budget.clamp(1, 40) as u32 - 1;
    let ceiling = base_ms
        .saturating_mul(1u64.checked_shl(exponent).unwrap_or(u64::MAX))
        .min(max_ms);
    let factor: f64 = rand::rng().random_range(0.5..=1.0);
    (ceiling as f64 * factor) as u64
}

enum Outcome {
    Done(Completion),
    Failed(Failure),
}

/// An outcome on its way to the backend, with the concurrency slot it still occupies: a slot
/// is freed only once the outcome is stored, so a worker never holds more than
/// `--concurrency` leases (which bounds the redeliveries a `kill -9` can cause).
struct Pending {
    outcome: Outcome,
    slot: tokio::sync::OwnedSemaphorePermit,
}

struct InFlight {
    attempt: i32,
    /// Set while the handler runs; cleared once its outcome is on its way to the acker.
    abort: Option<AbortHandle>,
}

type InFlightTable = Arc<Mutex<HashMap<i64, InFlight>>>;

/// How long a busy worker waits for more free slots before claiming a small batch.
const GATHER: Duration = Duration::from_millis(3);

/// Runs a worker with the built-in task types until SIGTERM.
pub async fn run(config: WorkerConfig) -> anyhow::Result<()> {
    run_with(config, Registry::builtin()).await
}

/// Runs a worker with your own task types until SIGTERM (or Ctrl-C).
pub async fn run_with(config: WorkerConfig, registry: Registry) -> anyhow::Result<()> {
    run_until(config, registry, Shutdown::from_signals().token()).await
}

/// Backoff while the backend refuses claims or acknowledgements: doubling up to 5 s,
/// jittered so a fleet of workers does not retry in lockstep, until it answers again.
fn backend_backoff(first: Duration) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(first)
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
}

/// The worker's `/readyz`: not while it stops claiming, nor while its backend is unusable.
struct WorkerReadiness {
    backend: Backend,
    stop: CancellationToken,
}

impl Readiness for WorkerReadiness {
    async fn check(&self) -> Result<(), String> {
        if self.stop.is_cancelled() {
            return Err("shutting down".to_owned());
        }
        self.backend.check().await
    }
}

/// Runs a worker until `stop` is cancelled, then shuts down gracefully.
pub async fn run_until(
    config: WorkerConfig,
    registry: Registry,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    // The schema keeper runs until this worker is done, acknowledgements included.
    let keeper = CancellationToken::new();
    let _stop_keeper = keeper.clone().drop_guard();
    let backend = config.backend.open(keeper)?;
    let identity = config.server.identity();
    let worker_id = config
        .worker_id
        .clone()
        .unwrap_or_else(|| format!("{}-{}", identity.name(), std::process::id()));

    // The HTTP server (probes, metrics) only with --listen.
    let server = if config.server.listen.is_some() {
        let app = App::builder(&config.server, 0)
            .await?
            .ready(WorkerReadiness {
                backend: backend.clone(),
                stop: stop.clone(),
            })
            .serve(axum::Router::new());
        Some(tokio::spawn(app.run_until_stopped()))
    } else {
        None
    };
    tracing::info!(
        worker = %worker_id,
        backend = backend.kind(),
        target = %config.backend.target(),
        concurrency = config.concurrency,
        batch_size = config.batch_size,
        lease_ms = config.lease_ms,
        "worker started"
    );

    let worker = Worker {
        backend,
        registry: Arc::new(registry),
        id: worker_id,
        lease: Duration::from_millis(config.lease_ms),
        config,
        in_flight: Arc::new(Mutex::new(HashMap::new())),
    };
    worker.run(stop).await;

    if let Some(server) = server {
        // The server stops on the same signal, after its drain delay.
        match tokio::time::timeout(Duration::from_secs(30), server).await {
            Ok(Ok(result)) => result?,
            Ok(Err(error)) => tracing::warn!(%error, "HTTP server task failed"),
            Err(_) => tracing::warn!("HTTP server did not stop in time"),
        }
    }
    Ok(())
}

struct Worker {
    backend: Backend,
    registry: Arc<Registry>,
    id: String,
    lease: Duration,
    config: WorkerConfig,
    in_flight: InFlightTable,
}

impl Worker {
    async fn run(self, stop: CancellationToken) {
        let worker = Arc::new(self);
        let concurrency = worker.config.concurrency as usize;
        let slots = Arc::new(Semaphore::new(concurrency));
        let wake = Arc::new(Notify::new());
        // Background loops that outlive the claim loop until shutdown is complete.
        let background = CancellationToken::new();
        let listener = tokio::spawn(
            worker
                .backend
                .clone()
                .listen(wake.clone(), background.clone()),
        );
        let heartbeat = tokio::spawn(worker.clone().heartbeat_loop(background.clone()));
        let maintenance = tokio::spawn(worker.clone().maintenance_loop(background.clone()));
        let (ack_tx, ack_rx) = mpsc::channel::<Pending>(concurrency * 4);
        let acker = tokio::spawn(worker.clone().ack_loop(ack_rx));

        worker
            .claim_loop(&stop, &slots, &wake, ack_tx.clone())
            .await;

        // Shutdown: no more claims. Running tasks get the grace period to finish.
        let grace = Duration::from_millis(worker.config.shutdown_grace_ms);
        let running = worker.in_flight.lock().unwrap().len();
        tracing::info!(
            running,
            grace_ms = grace.as_millis() as u64,
            "stopping: no new claims; finishing running tasks"
        );
        let all_idle = tokio::time::timeout(grace, slots.acquire_many(concurrency as u32)).await;
        if all_idle.is_err() {
            worker.release_unfinished().await;
        }
        drop(ack_tx);
        // Outcomes already produced are acknowledged (bounded: if the backend is gone, the
        // leases run out and the tasks are redelivered; nothing is lost).
        if tokio::time::timeout(Duration::from_secs(10), acker)
            .await
            .is_err()
        {
            tracing::warn!(
                "could not acknowledge every finished task before exiting; their leases will run out and they will run again"
            );
        }
        background.cancel();
        let _ = tokio::join!(listener, heartbeat, maintenance);
        tracing::info!("worker stopped");
    }

    async fn claim_loop(
        self: &Arc<Self>,
        stop: &CancellationToken,
        slots: &Arc<Semaphore>,
        wake: &Arc<Notify>,
        ack_tx: mpsc::Sender<Pending>,
    ) {
        let batch = self.config.batch_size as usize;
        let poll = Duration::from_millis(self.config.poll_interval_ms);
        let mut backlog = false;
        loop {
            let first = tokio::select! {
                _ = stop.cancelled() => return,
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
            };
            let mut permits = vec![first];
            while permits.len() < batch {
                match slots.clone().try_acquire_owned() {
                    Ok(permit) => permits.push(permit),
                    Err(_) => break,
                }
            }
            // With a backlog (the last claim came back full), wait a moment for more free
            // slots rather than claiming a handful: fewer, fuller round trips.
            if backlog && permits.len() < batch / 2 {
                let gather = tokio::time::sleep(GATHER);
                tokio::pin!(gather);
                while permits.len() < batch {
                    tokio::select! {
                        _ = &mut gather => break,
                        permit = slots.clone().acquire_owned() => match permit {
                            Ok(permit) => permits.push(permit),
                            Err(_) => break,
                        },
                    }
                }
            }
            let wanted = permits.len() as u32;
            // Retried while the backend is down. A claim in flight is never abandoned (its
            // tasks would sit leased to nobody); stopping ends the wait between attempts.
            let claim = || async {
                if stop.is_cancelled() {
                    return Ok(None);
                }
                self.backend
                    .claim(&self.id, wanted, self.lease)
                    .await
                    .map(Some)
            };
            let claimed = claim
                .retry(backend_backoff(Duration::from_millis(100)))
                .sleep({
                    let stop = stop.clone();
                    move |delay| {
                        let stop = stop.clone();
                        async move {
                            tokio::select! {
                                _ = stop.cancelled() => {}
                                _ = tokio::time::sleep(delay) => {}
                            }
                        }
                    }
                })
                .notify(|error: &BackendError, delay| {
                    metrics::counter!("queue_claim_errors_total").increment(1);
                    tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "claim failed");
                })
                .await;
            match claimed {
                Ok(None) | Err(_) => return,
                Ok(Some(tasks)) => {
                    let got = tasks.len();
                    backlog = got as u32 == wanted;
                    if got > 0 {
                        metrics::counter!("queue_tasks_claimed_total").increment(got as u64);
                    }
                    for task in tasks {
                        let permit = permits.pop().expect("one permit per claimed task");
                        self.spawn_task(task, permit, ack_tx.clone());
                    }
                    drop(permits);
                    if got == 0 {
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = wake.notified() => {}
                            _ = tokio::time::sleep(poll) => {}
                        }
                    }
                }
            }
        }
    }

    fn spawn_task(
        self: &Arc<Self>,
        task: Claimed,
        permit: tokio::sync::OwnedSemaphorePermit,
        ack_tx: mpsc::Sender<Pending>,
    ) {
        let lease = task.lease();
        let worker = self.clone();
        // The table lock is held while spawning, so the entry (with its abort handle) exists
        // before the handler can finish and mark it as acknowledged.
        let mut table = self.in_flight.lock().unwrap();
        let handle = tokio::spawn(async move {
            let outcome = worker.execute(task).await;
            if let Some(entry) = worker.in_flight.lock().unwrap().get_mut(&lease.id) {
                entry.abort = None;
            }
            let _ = ack_tx
                .send(Pending {
                    outcome,
                    slot: permit,
                })
                .await;
        });
        table.insert(
            lease.id,
            InFlight {
                attempt: lease.attempt,
                abort: Some(handle.abort_handle()),
            },
        );
    }

    async fn execute(&self, task: Claimed) -> Outcome {
        let lease = task.lease();
        let started = std::time::Instant::now();
        let kind = task.kind.clone();
        let result = match self.registry.get(&task.kind) {
            None => Err(format!(
                "unknown task type {:?} (this worker knows: {})",
                task.kind,
                self.registry.names().join(", ")
            )),
            Some(handler) => {
                let ctx = TaskContext {
                    id: task.id,
                    attempt: task.attempt,
                    attempt_in_budget: task.attempt_in_budget,
                    payload: task.payload,
                };
                let timeout = Duration::from_millis(self.config.task_timeout_ms);
                // A panicking handler fails its attempt instead of taking the worker down.
                let run = tokio::spawn(handler.run(ctx));
                let abort = run.abort_handle();
                match tokio::time::timeout(timeout, run).await {
                    Ok(Ok(result)) => result,
                    Ok(Err(join)) => Err(format!("task panicked: {join}")),
                    Err(_) => {
                        abort.abort();
                        Err(format!("task timed out after {} ms", timeout.as_millis()))
                    }
                }
            }
        };
        metrics::histogram!("queue_task_duration_seconds", "type" => kind.clone())
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(result) => Outcome::Done(Completion { lease, result }),
            Err(error) => {
                tracing::info!(task = lease.id, attempt = lease.attempt, r#type = %kind, %error, "task attempt failed");
                Outcome::Failed(Failure {
                    lease,
                    error: clip_error(error),
                    backoff_ms: backoff_ms(
                        task.attempt_in_budget,
                        self.config.backoff_base_ms,
                        self.config.backoff_max_ms,
                    ),
                })
            }
        }
    }

    /// Acknowledges outcomes in batches; retries while the backend is down.
    async fn ack_loop(self: Arc<Self>, mut rx: mpsc::Receiver<Pending>) {
        const MAX_ACK_BATCH: usize = 1000;
        let mut buffer = Vec::with_capacity(MAX_ACK_BATCH);
        while rx.recv_many(&mut buffer, MAX_ACK_BATCH).await > 0 {
            let mut done = Vec::new();
            let mut failed = Vec::new();
            let mut slots = Vec::with_capacity(buffer.len());
            for pending in buffer.drain(..) {
                slots.push(pending.slot);
                match pending.outcome {
                    Outcome::Done(c) => done.push(c),
                    Outcome::Failed(f) => failed.push(f),
                }
            }
            let acknowledge = || self.acknowledge(&done, &failed);
            let acknowledged = acknowledge
                .retry(backend_backoff(Duration::from_millis(50)))
                .sleep(tokio::time::sleep)
                .notify(|error, delay| {
                    metrics::counter!("queue_ack_errors_total").increment(1);
                    tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "acknowledgement failed; retrying");
                })
                .await;
            if let Err(error) = acknowledged {
                // Unreachable with an unbounded retry; the leases run out and the tasks run
                // again.
                tracing::error!(%error, "acknowledgement given up");
            }
            // Freed together, so the claim loop sees them all at once and claims a full batch.
            let mut slots = slots.into_iter();
            if let Some(mut freed) = slots.next() {
                for slot in slots {
                    freed.merge(slot);
                }
                drop(freed);
            }
        }
    }

    async fn acknowledge(
        &self,
        done: &[Completion],
        failed: &[Failure],
    ) -> Result<(), BackendError> {
        if !done.is_empty() {
            let accepted = self.backend.complete(done).await?;
            let fenced = accepted.iter().filter(|a| !**a).count();
            metrics::counter!("queue_tasks_completed_total")
                .increment((done.len() - fenced) as u64);
            if fenced > 0 {
                metrics::counter!("queue_acks_fenced_total").increment(fenced as u64);
                tracing::warn!(
                    fenced,
                    "stale completions ignored: another attempt owns those tasks"
                );
            }
            self.forget(done.iter().map(|c| c.lease));
        }
        if !failed.is_empty() {
            let outcomes = self.backend.fail(failed).await?;
            for outcome in &outcomes {
                match outcome {
                    FailOutcome::Retrying => {
                        metrics::counter!("queue_tasks_retried_total").increment(1)
                    }
                    FailOutcome::Dead => metrics::counter!("queue_tasks_dead_total").increment(1),
                    FailOutcome::Fenced => {
                        metrics::counter!("queue_acks_fenced_total").increment(1)
                    }
                }
            }
            self.forget(failed.iter().map(|f| f.lease));
        }
        Ok(())
    }

    fn forget(&self, leases: impl Iterator<Item = Lease>) {
        let mut table = self.in_flight.lock().unwrap();
        for lease in leases {
            if table
                .get(&lease.id)
                .is_some_and(|e| e.attempt == lease.attempt)
            {
                table.remove(&lease.id);
            }
        }
    }

    /// Renews the leases of every task this worker holds, every third of the lease.
    async fn heartbeat_loop(self: Arc<Self>, stop: CancellationToken) {
        let every = self.lease / 3;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let leases: Vec<Lease> = self
                .in_flight
                .lock()
                .unwrap()
                .iter()
                .map(|(id, e)| Lease {
                    id: *id,
                    attempt: e.attempt,
                })
                .collect();
            if leases.is_empty() {
                continue;
            }
            match self.backend.extend(&leases, self.lease).await {
                Ok(held) => {
                    if held.len() < leases.len() {
                        let held: std::collections::HashSet<Lease> = held.into_iter().collect();
                        let table = self.in_flight.lock().unwrap();
                        // Still ours in the table but not renewed: another attempt took over.
                        let lost = leases
                            .iter()
                            .filter(|l| !held.contains(l))
                            .filter(|l| table.get(&l.id).is_some_and(|e| e.attempt == l.attempt))
                            .count();
                        if lost > 0 {
                            metrics::counter!("queue_leases_lost_total").increment(lost as u64);
                            tracing::warn!(
                                lost,
                                "leases lost: those tasks were given to another worker; our results for them will be ignored"
                            );
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "could not renew leases"),
            }
        }
    }

    async fn maintenance_loop(self: Arc<Self>, stop: CancellationToken) {
        let every = Duration::from_millis(self.config.maintenance_interval_ms);
        let retention = self.config.retention();
        loop {
            // Jitter, so a fleet of workers does not run maintenance in lockstep.
            let pause = every.mul_f64(rand::rng().random_range(0.75..=1.25));
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
            match self.backend.maintain(retention).await {
                Ok(report) => {
                    if report.requeued > 0 || report.dead > 0 {
                        metrics::counter!("queue_leases_expired_total")
                            .increment(report.requeued + report.dead);
                        tracing::info!(
                            requeued = report.requeued,
                            dead = report.dead,
                            "expired leases handled"
                        );
                    }
                    if report.pruned > 0 {
                        metrics::counter!("queue_tasks_pruned_total").increment(report.pruned);
                        tracing::debug!(pruned = report.pruned, "finished tasks pruned");
                    }
                }
                Err(error) => tracing::debug!(%error, "maintenance skipped"),
            }
        }
    }

    /// After the grace period: stop the tasks still running and hand them back.
    async fn release_unfinished(&self) {
        let leases: Vec<Lease> = {
            let mut table = self.in_flight.lock().unwrap();
            let unfinished: Vec<(i64, i32)> = table
                .iter_mut()
                .filter_map(|(id, e)| {
                    e.abort.take().map(|abort| {
                        abort.abort();
                        (*id, e.attempt)
                    })
                })
                .collect();
            for (id, _) in &unfinished {
                table.remove(id);
            }
            unfinished
                .into_iter()
                .map(|(id, attempt)| Lease { id, attempt })
                .collect()
        };
        if leases.is_empty() {
            return;
        }
        match self.backend.release(&leases).await {
            Ok(released) => tracing::info!(released, "released unfinished tasks back to the queue"),
            Err(error) => {
                tracing::warn!(%error, count = leases.len(), "could not release unfinished tasks; their leases will run out and they will run again")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::backoff_ms;

    #[test]
    fn backoff_doubles_per_attempt_with_jitter_and_stops_at_the_cap() {
        for attempt in 1..=6u32 {
            let ceiling = 100 * 2u64.pow(attempt - 1);
            let samples: Vec<u64> = (0..200)
                .map(|_| backoff_ms(attempt as i32, 100, 10_000))
                .collect();
            assert!(
                samples.iter().all(|b| (ceiling / 2..=ceiling).contains(b)),
                "attempt {attempt}: {samples:?}"
            );
            assert!(
                samples.iter().any(|b| *b != samples[0]),
                "jitter varies the delay"
            );
        }
        for attempt in [8, 30, 1000, i32::MAX] {
            let b = backoff_ms(attempt, 100, 10_000);
            assert!((5_000..=10_000).contains(&b), "attempt {attempt}: {b}");
        }
        assert_eq!(backoff_ms(0, 0, 10_000), 0);
    }
}

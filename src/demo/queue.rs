//! `statelab demo queue`: the lab's two experiments on one machine, in about a minute.
//! Starts a private backend (PostgreSQL cluster or redis-server with AOF) in a temp dir, the
//! producer API and several worker processes, enqueues tasks, `kill -9`s a worker in the middle
//! of its tasks, restarts the backend, and prints a table showing that every task finished.
//! Needs `redis-server`, or PostgreSQL's `initdb` and `postgres`, installed locally.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::backends::{Durability, Postgres, Redis};
use super::poll;
use super::process::{Logs, Process, Spec};
use crate::queue::backend::Backend;
use crate::queue::model::TaskState;
use crate::server::signals::Shutdown;
use crate::sys::Signal;

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoBackend {
    Postgres,
    Redis,
}

/// Shows, locally, that the queue loses nothing when workers die and the backend restarts.
#[derive(clap::Args, Debug, Clone)]
pub struct DemoQueueArgs {
    /// Which backend to start privately for the demo
    #[arg(long, env = "DEMO_QUEUE_BACKEND", value_enum, default_value_t = DemoBackend::Postgres)]
    pub backend: DemoBackend,

    /// How many tasks to enqueue (one in ten sleeps, so the kill lands mid-task)
    #[arg(long, env = "DEMO_QUEUE_TASKS", default_value_t = 2000,
          value_parser = clap::value_parser!(u32).range(10..=100_000))]
    pub tasks: u32,

    /// How many worker processes
    #[arg(long, env = "DEMO_QUEUE_WORKERS", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(2..=16))]
    pub workers: u32,

    /// Worker lease in milliseconds: how soon a killed worker's tasks come back
    #[arg(long, env = "DEMO_QUEUE_LEASE_MS", default_value_t = 3000)]
    pub lease_ms: u64,
}

/// The backend the demo owns, so it can restart it.
enum PrivateBackend {
    Postgres(Postgres),
    /// With AOF on
    Redis(Redis),
}

impl PrivateBackend {
    fn start(kind: DemoBackend) -> anyhow::Result<PrivateBackend> {
        Ok(match kind {
            DemoBackend::Postgres => {
                PrivateBackend::Postgres(Postgres::start(Durability::Durable)?)
            }
            DemoBackend::Redis => PrivateBackend::Redis(Redis::start(true)?),
        })
    }

    /// The way a pod deletion stops it: SIGTERM for Redis (writes its AOF), a fast shutdown
    /// (SIGINT) for PostgreSQL; then start again on the same files.
    async fn restart(&mut self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        match self {
            PrivateBackend::Postgres(postgres) => postgres.stop(),
            PrivateBackend::Redis(redis) => redis.stop(),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        match self {
            PrivateBackend::Postgres(postgres) => postgres.start_again()?,
            PrivateBackend::Redis(redis) => redis.start_again()?,
        }
        Ok(started.elapsed())
    }

    fn env(&self) -> (&'static str, String) {
        match self {
            PrivateBackend::Postgres(postgres) => ("DATABASE_URL", postgres.url("postgres")),
            PrivateBackend::Redis(redis) => ("REDIS_URL", redis.url()),
        }
    }

    fn open(&self) -> anyhow::Result<Backend> {
        Backend::from_url(&self.env().1)
    }

    fn path(&self) -> &Path {
        match self {
            PrivateBackend::Postgres(postgres) => postgres.socket_dir(),
            PrivateBackend::Redis(redis) => redis.data_dir(),
        }
    }
}

/// `statelab ARGS` with the backend's URL; stopped with SIGTERM when dropped.
fn spawn_statelab(args: &[String], env: &(&'static str, String)) -> anyhow::Result<Process> {
    Spec::this_executable()?
        .name(args.first().map_or("statelab", String::as_str))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("LISTEN_ADDR")
        .env_remove("PORT")
        .env(env.0, &env.1)
        .env("RUST_LOG", "error")
        .logs(Logs::Discard)
        .stop_on_drop(Signal::Terminate, Duration::from_secs(10))
        .spawn()
}

/// The producer API on port 0; returns once it answers /readyz.
async fn start_producer(env: &(&'static str, String)) -> anyhow::Result<(Process, String)> {
    let producer = Spec::this_executable()?
        .name("queue")
        .args(["queue", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env(env.0, &env.1)
        // Errors, and the server's own lines (among them "listening", with the port).
        .env("RUST_LOG", "error,statelab::server=info")
        .stop_on_drop(Signal::Terminate, Duration::from_secs(10))
        .spawn()?;
    let port = producer.wait_port(Duration::from_secs(30)).await?;
    let api = format!("http://127.0.0.1:{port}");
    producer
        .wait_http_ok(&format!("{api}/readyz"), Duration::from_secs(30))
        .await
        .context("the producer API did not become ready")?;
    Ok((producer, api))
}

async fn stats(http: &reqwest::Client, api: &str) -> Option<Value> {
    let response = http.get(format!("{api}/stats")).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

fn count(stats: &Value, state: &str) -> i64 {
    stats["counts"][state].as_i64().unwrap_or(0)
}

/// The processes the demo started besides the backend.
#[derive(Default)]
struct Fleet {
    producer: Option<Process>,
    workers: Vec<Process>,
}

pub async fn run(args: DemoQueueArgs, shutdown: &Shutdown) -> anyhow::Result<()> {
    let name = match args.backend {
        DemoBackend::Postgres => "PostgreSQL",
        DemoBackend::Redis => "Redis (AOF on)",
    };
    let mut backend = PrivateBackend::start(args.backend)?;
    println!(
        "1. started a private {name} in {}",
        backend.path().display()
    );
    let mut fleet = Fleet::default();
    let result = super::until_shutdown(shutdown, demo(&args, name, &mut backend, &mut fleet)).await;
    // Workers and producer first (SIGTERM, each waited for), then the backend, then its files.
    for worker in &mut fleet.workers {
        let _ = worker.signal(Signal::Terminate);
    }
    drop(fleet);
    drop(backend);
    result
}

async fn demo(
    args: &DemoQueueArgs,
    name: &str,
    backend: &mut PrivateBackend,
    fleet: &mut Fleet,
) -> anyhow::Result<()> {
    let env = backend.env();
    let (producer, api) = start_producer(&env).await?;
    fleet.producer = Some(producer);
    let worker_args: Vec<String> = [
        "worker",
        "--lease-ms",
        &args.lease_ms.to_string(),
        "--poll-interval-ms",
        "200",
        "--maintenance-interval-ms",
        "500",
        "--concurrency",
        "16",
        "--batch-size",
        "16",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for _ in 0..args.workers {
        fleet.workers.push(spawn_statelab(&worker_args, &env)?);
    }
    let workers = &mut fleet.workers;
    let http = reqwest::Client::new();
    let pids: Vec<String> = workers.iter().map(|w| w.pid().to_string()).collect();
    println!(
        "2. producer API on {api}; {} workers (pids {})",
        workers.len(),
        pids.join(", ")
    );

    // Enqueue: every tenth task sleeps 300 ms, the rest are no-ops.
    let mut ids = Vec::with_capacity(args.tasks as usize);
    let total = args.tasks as usize;
    let mut n = 0usize;
    while n < total {
        let size = (total - n).min(1000);
        let batch: Vec<Value> = (n..n + size)
            .map(|i| {
                if i % 10 == 0 {
                    json!({"type": "sleep", "payload": {"ms": 300}, "max_attempts": 20})
                } else {
                    json!({"type": "echo", "payload": {"n": i}, "max_attempts": 20})
                }
            })
            .collect();
        let response: Value = http
            .post(format!("{api}/tasks/batch"))
            .json(&batch)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        for task in response["tasks"].as_array().into_iter().flatten() {
            ids.push(task["id"].as_i64().unwrap_or(0));
        }
        n += size;
    }
    println!("3. enqueued {} tasks (one in ten sleeps 300 ms)", ids.len());

    // kill -9 one worker while it holds tasks.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let running = stats(&http, &api)
        .await
        .map(|s| count(&s, "running"))
        .unwrap_or(0);
    let victim_pid = workers[0].pid();
    workers[0].kill();
    workers[0] = spawn_statelab(&worker_args, &env)?;
    println!(
        "4. kill -9 worker {victim_pid} (the fleet held {running} running tasks); started a replacement (pid {}). \
         Its tasks come back when their {} ms lease runs out",
        workers[0].pid(),
        args.lease_ms
    );

    // Restart the backend mid-run.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = stats(&http, &api).await;
    let took = backend.restart().await?;
    println!(
        "5. restarted the backend on the same files in {} ms (done before: {}); producer and workers reconnect by themselves",
        took.as_millis(),
        before.map(|s| count(&s, "done")).unwrap_or(0)
    );

    let started = Instant::now();
    let last = poll::until(Duration::from_secs(180), || async {
        let s = stats(&http, &api).await?;
        let finished = count(&s, "done") + count(&s, "dead");
        (finished >= total as i64).then_some(s)
    })
    .await
    .context("not every task finished within 3 minutes")?;
    println!(
        "6. every task finished {:.1} s after the restart\n",
        started.elapsed().as_secs_f64()
    );

    // Audit every task directly in the backend.
    let store = backend.open()?;
    poll::until(Duration::from_secs(30), || async {
        store.check().await.ok()
    })
    .await
    .context("cannot read the backend for the audit")?;
    let (mut done, mut missing, mut reran, mut extra) = (0u64, 0u64, 0u64, 0u64);
    let mut max_attempts = 0;
    for id in &ids {
        match store.get(*id).await? {
            Some(task) if task.state == TaskState::Done => {
                done += 1;
                if task.attempts > 1 {
                    reran += 1;
                    extra += (task.attempts - 1) as u64;
                }
                max_attempts = max_attempts.max(task.attempts);
            }
            Some(_) => {}
            None => missing += 1,
        }
    }
    let rows = [
        ("backend", name.to_owned()),
        ("tasks enqueued (201)", ids.len().to_string()),
        ("done", done.to_string()),
        ("lost", (ids.len() as u64 - done).to_string()),
        ("missing from the backend", missing.to_string()),
        ("dead", count(&last, "dead").to_string()),
        (
            "ran more than once",
            format!("{reran} ({extra} extra attempts)"),
        ),
        ("most attempts for one task", max_attempts.to_string()),
    ];
    println!("| {:<28} | {:<28} |", "what", "value");
    println!("|{}|{}|", "-".repeat(30), "-".repeat(30));
    for (what, value) in rows {
        println!("| {what:<28} | {value:<28} |");
    }
    println!(
        "\nEvery acknowledged task finished, though a worker died mid-task and the backend restarted: \
         the killed worker's tasks ran again after their lease expired (at least once, fenced by attempt number)."
    );
    if done as usize != ids.len() {
        bail!("{} tasks did not finish", ids.len() as u64 - done);
    }
    Ok(())
}

//! `statelab demo queue`: the lab's two experiments on one machine, in about a minute.
//! Starts a private backend (PostgreSQL cluster or redis-server with AOF) in a temp dir, the
//! producer API and several worker processes, enqueues tasks, `kill -9`s a worker in the middle
//! of its tasks, restarts the backend, and prints a table showing that every task finished.
//! Needs `redis-server`, or PostgreSQL's `initdb` and `postgres`, installed locally.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::backend::Backend;
use super::model::TaskState;

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

/// A child process stopped (by its PID) when dropped.
struct Proc {
    child: Option<Child>,
}

impl Proc {
    fn new(child: Child) -> Proc {
        Proc { child: Some(child) }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    fn signal(&mut self, signal: i32) {
        if let Some(child) = self.child.take() {
            let mut child = child;
            // SAFETY: kill(2) on the PID of our own child, not yet reaped.
            unsafe {
                libc::kill(child.id() as i32, signal);
            }
            let _ = child.wait();
        }
    }

    fn kill(&mut self) {
        self.signal(libc::SIGKILL);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.signal(libc::SIGTERM);
    }
}

fn find_program(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = entries.flatten().map(|e| e.path().join("bin")).collect();
        versions.sort();
        dirs.extend(versions.into_iter().rev());
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// The backend the demo owns, so it can restart it.
struct PrivateBackend {
    kind: DemoBackend,
    dir: tempfile::TempDir,
    process: Option<Proc>,
    /// When running as root, PostgreSQL runs as the `postgres` user.
    owner: Option<(u32, u32)>,
}

impl PrivateBackend {
    fn start(kind: DemoBackend) -> anyhow::Result<PrivateBackend> {
        let dir = tempfile::Builder::new()
            .prefix("statelab-demo-queue")
            .tempdir()?;
        let mut backend = PrivateBackend {
            kind,
            dir,
            process: None,
            owner: None,
        };
        if kind == DemoBackend::Postgres {
            backend.init_postgres()?;
        }
        backend.spawn()?;
        Ok(backend)
    }

    fn init_postgres(&mut self) -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let initdb = find_program("initdb")
            .context("`initdb` not found: install PostgreSQL (apt-get install postgresql)")?;
        // SAFETY: getuid/getpwnam are plain libc calls; the record is read at once.
        self.owner = unsafe {
            if libc::getuid() == 0 {
                let name = std::ffi::CString::new("postgres")?;
                let record = libc::getpwnam(name.as_ptr());
                if record.is_null() {
                    bail!("running as root needs a `postgres` system user to start PostgreSQL");
                }
                Some(((*record).pw_uid, (*record).pw_gid))
            } else {
                None
            }
        };
        std::fs::set_permissions(self.dir.path(), std::fs::Permissions::from_mode(0o700))?;
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(self.dir.path(), Some(uid), Some(gid))?;
        }
        let mut command = Command::new(initdb);
        command
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some((uid, gid)) = self.owner {
            command.uid(uid).gid(gid);
        }
        let output = command.output().context("initdb runs")?;
        if !output.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(())
    }

    fn socket(&self) -> PathBuf {
        match self.kind {
            DemoBackend::Postgres => self.dir.path().join(".s.PGSQL.5432"),
            DemoBackend::Redis => self.dir.path().join("redis.sock"),
        }
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let _ = std::fs::remove_file(self.socket());
        let child = match self.kind {
            DemoBackend::Redis => {
                let program = find_program("redis-server")
                    .context("`redis-server` not found: apt-get install redis-server")?;
                Command::new(program)
                    .args(["--port", "0", "--unixsocket"])
                    .arg(self.socket())
                    .args(["--unixsocketperm", "700", "--dir"])
                    .arg(self.dir.path())
                    .args([
                        "--save",
                        "",
                        "--appendonly",
                        "yes",
                        "--appendfsync",
                        "everysec",
                    ])
                    .args(["--daemonize", "no", "--logfile", "redis.log"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()?
            }
            DemoBackend::Postgres => {
                let program = find_program("postgres")
                    .context("`postgres` not found: apt-get install postgresql")?;
                let mut command = Command::new(program);
                command
                    .arg("-D")
                    .arg(self.dir.path().join("data"))
                    .arg("-k")
                    .arg(self.dir.path())
                    .args(["-c", "listen_addresses=", "-c", "max_connections=100"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                if let Some((uid, gid)) = self.owner {
                    command.uid(uid).gid(gid);
                }
                command.spawn()?
            }
        };
        self.process = Some(Proc::new(child));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.socket().exists() {
            if Instant::now() > deadline {
                bail!("the backend did not open {:?}", self.socket());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(200));
        Ok(())
    }

    /// The way a pod deletion stops it: SIGTERM for Redis (writes its AOF), a fast shutdown
    /// (SIGINT) for PostgreSQL; then start again on the same files.
    fn restart(&mut self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        if let Some(mut process) = self.process.take() {
            process.signal(match self.kind {
                DemoBackend::Redis => libc::SIGTERM,
                DemoBackend::Postgres => libc::SIGINT,
            });
        }
        std::thread::sleep(Duration::from_millis(500));
        self.spawn()?;
        Ok(started.elapsed())
    }

    fn env(&self) -> (&'static str, String) {
        match self.kind {
            DemoBackend::Postgres => (
                "DATABASE_URL",
                format!(
                    "postgres://postgres@localhost/postgres?host={}",
                    self.dir.path().display()
                ),
            ),
            DemoBackend::Redis => (
                "REDIS_URL",
                format!("redis+unix://{}", self.socket().display()),
            ),
        }
    }

    fn open(&self) -> anyhow::Result<Backend> {
        Backend::from_url(&self.env().1)
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn spawn_statelab(args: &[String], env: &(&'static str, String)) -> anyhow::Result<Proc> {
    let exe = std::env::current_exe().context("cannot find the statelab binary")?;
    let child = Command::new(exe)
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("LISTEN_ADDR")
        .env_remove("PORT")
        .env(env.0, &env.1)
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(Proc::new(child))
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

pub async fn run(args: DemoQueueArgs) -> anyhow::Result<()> {
    let name = match args.backend {
        DemoBackend::Postgres => "PostgreSQL",
        DemoBackend::Redis => "Redis (AOF on)",
    };
    let mut backend = PrivateBackend::start(args.backend)?;
    let env = backend.env();
    println!(
        "1. started a private {name} in {}",
        backend.path().display()
    );

    let port = free_port()?;
    let api = format!("http://127.0.0.1:{port}");
    let _producer = spawn_statelab(
        &[
            "queue".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
        ],
        &env,
    )?;
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
    let mut workers = Vec::new();
    for _ in 0..args.workers {
        workers.push(spawn_statelab(&worker_args, &env)?);
    }
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{api}/readyz")).send().await
            && r.status().is_success()
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("the producer API did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
    let took = backend.restart()?;
    println!(
        "5. restarted the backend on the same files in {} ms (done before: {}); producer and workers reconnect by themselves",
        took.as_millis(),
        before.map(|s| count(&s, "done")).unwrap_or(0)
    );

    let started = Instant::now();
    let last = loop {
        if let Some(s) = stats(&http, &api).await {
            let finished = count(&s, "done") + count(&s, "dead");
            if finished >= total as i64 {
                break s;
            }
        }
        if started.elapsed() > Duration::from_secs(180) {
            bail!("not every task finished within 3 minutes");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!(
        "6. every task finished {:.1} s after the restart\n",
        started.elapsed().as_secs_f64()
    );

    // Audit every task directly in the backend.
    let store = backend.open()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.check().await.is_err() {
        if Instant::now() > deadline {
            bail!("cannot read the backend for the audit");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
    for mut worker in workers {
        worker.signal(libc::SIGTERM);
    }
    if done as usize != ids.len() {
        bail!("{} tasks did not finish", ids.len() as u64 - done);
    }
    Ok(())
}

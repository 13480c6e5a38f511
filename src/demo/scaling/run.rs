//! One setup, one row: start its guestbook replicas, send the writes, read back what was
//! stored, stop the replicas.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::plan::{Setup, Storage, begin_name};
use super::{Ctx, ReplicaFigures, Row};
use crate::demo::process::{Logs, Process, Spec};
use crate::load::progress::ProgressMode;
use crate::load::{self, Limit, Pick, Plan, Report, RequestTemplate};
use crate::sys::Signal;

const START_TIMEOUT: Duration = Duration::from_secs(30);
/// SIGTERM lets a replica finish its in-flight requests; SIGKILL after this.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// One running guestbook replica.
struct Replica {
    name: String,
    port: u16,
    process: Process,
}

impl Replica {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Starts `statelab guestbook` on port 0 in `dir` and waits until it answers /readyz.
async fn start_replica(
    name: String,
    storage: &[String],
    database_url: Option<&str>,
    dir: &Path,
) -> anyhow::Result<Replica> {
    let mut spec = Spec::this_executable()?
        .name(&name)
        .arg("guestbook")
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(["--drain-delay-ms", "0", "--pod-name", &name])
        .args(storage)
        // Its own working directory: no stray `.env` is read from elsewhere.
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .env_remove("DATABASE_URL")
        .env_remove("DB_POOL_SIZE")
        .env_remove("REQUEST_TIMEOUT_MS")
        .env_remove("SHUTDOWN_TIMEOUT_MS")
        .logs(Logs::File(dir.join(format!("{name}.log"))));
    // The URL may hold a password: it goes in DATABASE_URL, not on the command line where
    // `ps` shows it.
    if let Some(url) = database_url {
        spec = spec.env("DATABASE_URL", url);
    }
    let process = spec.spawn()?;
    let port = process.wait_port(START_TIMEOUT).await?;
    process
        .wait_http_ok(&format!("http://127.0.0.1:{port}/readyz"), START_TIMEOUT)
        .await?;
    Ok(Replica {
        name,
        port,
        process,
    })
}

/// Stops every replica (SIGTERM, SIGKILL after a grace period) and reaps it.
async fn stop_all(replicas: &mut [Replica]) {
    let stops = replicas
        .iter_mut()
        .map(|r| r.process.stop(Signal::Terminate, STOP_GRACE));
    futures::future::join_all(stops).await;
}

fn signal_name(ctx: &Ctx<'_>) -> &'static str {
    match ctx.shutdown.signal() {
        Some(crate::server::signals::Signal::Interrupt) => "SIGINT",
        _ => "SIGTERM",
    }
}

fn interrupted(ctx: &Ctx<'_>) -> anyhow::Error {
    anyhow::anyhow!("{}: the demo was interrupted", signal_name(ctx))
}

/// Starts the replicas of one setup, sends the writes, audits, stops the replicas. Returns
/// only once every replica it started is stopped, also when interrupted.
pub async fn run_setup(
    ctx: &Ctx<'_>,
    setup: &Setup,
    database_url: Option<String>,
) -> anyhow::Result<Row> {
    if ctx.shutdown.is_requested() {
        return Err(interrupted(ctx));
    }
    let dir = ctx.workdir.join(setup.slug());
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir_text = dir
        .to_str()
        .context("the temporary directory's path is not UTF-8")?;
    let mut storage = vec!["--data-dir".to_owned(), dir_text.to_owned()];
    match (setup.storage, &database_url) {
        (
            Storage::Sqlite {
                begin,
                busy_timeout_ms,
            },
            _,
        ) => storage.extend([
            "--database".into(),
            format!("{dir_text}/database.db"),
            "--sqlite-begin".into(),
            begin_name(begin).into(),
            "--sqlite-busy-timeout-ms".into(),
            busy_timeout_ms.to_string(),
            "--sqlite-journal-mode".into(),
            "delete".into(),
        ]),
        (Storage::Postgres, Some(_)) => {}
        (Storage::Postgres, None) => bail!("a PostgreSQL setup needs a database URL"),
    }
    let starting = Instant::now();
    let launches = (0..setup.replicas).map(|i| {
        start_replica(
            format!("guestbook-{i}"),
            &storage,
            database_url.as_deref(),
            &dir,
        )
    });
    // A signal during start-up drops the starts, and with them (by PID) every replica.
    let started = tokio::select! {
        started = futures::future::join_all(launches) => started,
        _ = ctx.shutdown.requested() => return Err(interrupted(ctx)),
    };
    let mut replicas = Vec::new();
    let mut failure = None;
    for result in started {
        match result {
            Ok(replica) => replicas.push(replica),
            Err(error) => failure = Some(error),
        }
    }
    let pids: Vec<u32> = replicas.iter().map(|r| r.process.pid()).collect();
    if let Some(error) = failure {
        stop_all(&mut replicas).await;
        return Err(error.context(format!("{}: a replica did not start", setup.label())));
    }
    ctx.say(format!(
        "{} × {}: replicas up in {:.1} s (pids {pids:?}); sending {} writes",
        setup.label(),
        setup.replicas,
        starting.elapsed().as_secs_f64(),
        ctx.args.writes
    ));
    let report = send_writes(ctx, setup, &replicas).await;
    if ctx.shutdown.is_requested() {
        eprintln!(
            "{}: stopping {} replica process(es) {pids:?}",
            signal_name(ctx),
            pids.len()
        );
    }
    stop_all(&mut replicas).await;
    if ctx.shutdown.is_requested() {
        return Err(interrupted(ctx));
    }
    let row = row(setup, &report?, &replicas);
    ctx.say(format!(
        "  {} ok, {} lock errors, {} other errors, {} stored, {} lost, {} phantom ({:.1} s)",
        row.ok, row.lock_errors, row.other_errors, row.stored, row.lost, row.phantom, row.elapsed_s
    ));
    Ok(row)
}

/// The write load, round-robin over the replicas, then the audit; a shutdown request stops
/// the sending.
async fn send_writes(ctx: &Ctx<'_>, setup: &Setup, replicas: &[Replica]) -> anyhow::Result<Report> {
    let targets: Vec<String> = replicas.iter().map(Replica::url).collect();
    let path = "/api/messages";
    let request = RequestTemplate::new(
        Some("POST"),
        path,
        Some(r#"{"name":"demo-{run}-{n}","message":"scaling demo write {n} (run {run})"}"#),
        None,
        &[],
        &format!("{}-{}", ctx.run_id, setup.slug()),
    )?;
    let plan = Plan {
        targets: targets.clone(),
        pick: Pick::RoundRobin,
        limit: Limit::Count(ctx.args.writes),
        concurrency: ctx.args.concurrency as usize,
        keep_alive: false,
        request,
        // Generous: a write may wait the whole busy timeout and still succeed.
        timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(5),
        audit_key: Some("name".into()),
    };
    load::run_plan(
        plan,
        path,
        Some((targets[0].as_str(), path)),
        ProgressMode::Off,
        ctx.shutdown.token(),
    )
    .await
}

fn row(setup: &Setup, report: &Report, replicas: &[Replica]) -> Row {
    let c = &report.counts;
    let audit = report.audit.clone().unwrap_or_default();
    let ok = c.ok + c.redirect;
    let latency = report.ok_latency_ms;
    let per_replica = replicas
        .iter()
        .map(|r| {
            let figures = report.replicas.iter().find(|f| f.replica == r.name);
            ReplicaFigures {
                replica: r.name.clone(),
                pid: r.process.pid(),
                sent: figures.map_or(0, |f| f.sent),
                ok: figures.map_or(0, |f| f.counts.ok + f.counts.redirect),
                lock_errors: figures.map_or(0, |f| f.counts.lock_error),
            }
        })
        .collect();
    Row {
        backend: setup.backend(),
        begin: setup.begin(),
        replicas: setup.replicas,
        busy_timeout_ms: setup.busy_timeout_ms(),
        sent: report.sent,
        ok,
        lock_errors: c.lock_error,
        other_errors: c.other_errors(),
        lock_error_pct: load::stats::round2(load::report::percent(c.lock_error, report.sent)),
        stored: audit.stored,
        lost: audit.lost,
        phantom: audit.phantom,
        p50_ms: latency.map(|l| l.p50),
        p99_ms: latency.map(|l| l.p99),
        max_ms: latency.map(|l| l.max),
        ok_per_s: load::stats::round2(ok as f64 / report.elapsed_s.max(1e-3)),
        elapsed_s: report.elapsed_s,
        pids: replicas.iter().map(|r| r.process.pid()).collect(),
        per_replica,
    }
}

//! `statelab demo scaling`: seed 000's lesson as one command. The guestbook runs as 1, 2 and
//! 3 real local replicas sharing one SQLite file, then with `BEGIN IMMEDIATE` and a busy
//! timeout, then on PostgreSQL; the same write load hits every setup, and an audit reads back
//! what was stored. The table, a few sentences on what it shows, and optionally an HTML
//! report and JSON.

mod html;
pub mod replicas;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::guestbook::config::SqliteBegin;
use crate::load::progress::ProgressMode;
use crate::load::{self, Limit, Pick, Plan, Report, RequestTemplate};
use replicas::{Launch, Supervisor};

/// PostgreSQL tried when no --postgres URL is given.
pub const LOCAL_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Runs the guestbook as 1, 2 and 3 local replicas sharing one SQLite file, then with
/// BEGIN IMMEDIATE and a busy timeout, then on PostgreSQL (1 and 3 replicas), sends the same
/// writes to each setup and reads back what was stored.
///
/// Every replica is a real child process of this program on a free loopback port. All of
/// them are stopped at the end, on errors and on Ctrl-C; the temporary directory is removed
/// unless --keep is given. Exit status: 0, 3 when a write was lost or a rejected write
/// stored, 130 after Ctrl-C, 1 on errors.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Writes sent to each setup
    #[arg(long, env = "DEMO_WRITES", default_value_t = 400,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub writes: u64,

    /// Writes in flight at once (each on its own connection)
    #[arg(long, env = "DEMO_CONCURRENCY", default_value_t = 24,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub concurrency: u32,

    /// Replica counts of the SQLite rows; the BEGIN IMMEDIATE row uses the largest, the
    /// PostgreSQL rows the smallest and the largest
    #[arg(long, env = "DEMO_REPLICAS", value_delimiter = ',', default_value = "1,2,3",
          value_parser = clap::value_parser!(u16).range(1..=32))]
    pub replicas: Vec<u16>,

    /// Busy timeout of the BEGIN IMMEDIATE setup, in milliseconds
    #[arg(long, env = "DEMO_BUSY_TIMEOUT_MS", default_value_t = 5000)]
    pub busy_timeout_ms: u64,

    /// PostgreSQL server for the PostgreSQL rows (a fresh database is created for each row
    /// and dropped after it). Default: postgres://postgres@127.0.0.1:5432/postgres when it
    /// answers; skipped with a note when unreachable
    #[arg(
        long,
        env = "DEMO_POSTGRES_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub postgres: Option<String>,

    /// Skip the PostgreSQL rows
    #[arg(long, env = "DEMO_NO_POSTGRES", conflicts_with = "postgres")]
    pub no_postgres: bool,

    /// Also write a self-contained HTML report (table and chart) to FILE
    #[arg(long, env = "DEMO_HTML", value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// Print the rows as JSON on stdout instead of the table
    #[arg(long, env = "DEMO_JSON")]
    pub json: bool,

    /// Keep the temporary directory (SQLite files and each replica's log)
    #[arg(long, env = "DEMO_KEEP")]
    pub keep: bool,

    /// Create the temporary directory under DIR (default: the system's temporary directory)
    #[arg(long, env = "DEMO_TMPDIR", value_name = "DIR")]
    pub tmp_dir: Option<PathBuf>,

    /// No progress lines on stderr
    #[arg(short, long, env = "DEMO_QUIET")]
    pub quiet: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Backend {
    Sqlite {
        begin: SqliteBegin,
        busy_timeout_ms: u64,
    },
    Postgres,
}

#[derive(Debug, Clone)]
struct Setup {
    backend: Backend,
    replicas: usize,
}

impl Setup {
    fn slug(&self) -> String {
        match &self.backend {
            Backend::Sqlite { begin, .. } => {
                format!("sqlite-{}-{}", begin_name(*begin), self.replicas)
            }
            Backend::Postgres => format!("postgres-{}", self.replicas),
        }
    }

    fn label(&self) -> String {
        match &self.backend {
            Backend::Sqlite {
                begin: SqliteBegin::Deferred,
                ..
            } => "SQLite file, BEGIN".into(),
            Backend::Sqlite {
                begin: SqliteBegin::Immediate,
                busy_timeout_ms,
            } => format!("SQLite file, IMMEDIATE + {busy_timeout_ms} ms wait"),
            Backend::Postgres => "PostgreSQL".into(),
        }
    }
}

fn begin_name(begin: SqliteBegin) -> &'static str {
    match begin {
        SqliteBegin::Deferred => "deferred",
        SqliteBegin::Immediate => "immediate",
    }
}

/// What one replica answered in one setup.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaFigures {
    pub replica: String,
    pub pid: u32,
    pub sent: u64,
    pub ok: u64,
    pub lock_errors: u64,
}

/// One setup's result: one row of the table, one object of `--json`'s `rows`.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// "sqlite" or "postgres"
    pub backend: &'static str,
    /// How SQLite write transactions began: "deferred" or "immediate" (PostgreSQL rows:
    /// "deferred", the flag's default, which PostgreSQL ignores)
    pub begin: &'static str,
    pub replicas: usize,
    /// SQLite's busy timeout in this setup (null for PostgreSQL)
    pub busy_timeout_ms: Option<u64>,
    /// Writes sent
    pub sent: u64,
    /// Writes acknowledged (201)
    pub ok: u64,
    /// 503 "database is locked"
    pub lock_errors: u64,
    /// Any other failure (other status, timeout, connection error)
    pub other_errors: u64,
    pub lock_error_pct: f64,
    /// Writes of this setup found in storage afterwards
    pub stored: u64,
    /// Acknowledged but not stored
    pub lost: u64,
    /// Rejected but stored
    pub phantom: u64,
    /// Latency of acknowledged writes
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Acknowledged writes per second of load
    pub ok_per_s: f64,
    pub elapsed_s: f64,
    /// The replicas' process ids (all stopped by the time the row is printed)
    pub pids: Vec<u32>,
    pub per_replica: Vec<ReplicaFigures>,
}

/// Everything `--json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    pub writes_per_setup: u64,
    pub concurrency: u32,
    pub rows: Vec<Row>,
    /// One-line notes, e.g. why PostgreSQL rows were skipped
    pub notes: Vec<String>,
    /// What the rows show, in sentences
    pub summary: Vec<String>,
    pub elapsed_s: f64,
    /// The kept temporary directory (with --keep)
    pub kept_dir: Option<PathBuf>,
}

/// PostgreSQL databases created and not dropped yet, so an interrupted demo drops them too.
#[derive(Clone, Default)]
struct Databases {
    created: Arc<Mutex<Vec<(String, String)>>>,
}

impl Databases {
    fn add(&self, admin_url: &str, name: &str) {
        self.lock().push((admin_url.to_owned(), name.to_owned()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, String)>> {
        self.created.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn drop_all(&self) -> Vec<String> {
        let pending: Vec<_> = std::mem::take(&mut *self.lock());
        let mut failures = Vec::new();
        for (admin, name) in pending {
            if let Err(error) = drop_database(&admin, &name).await {
                failures.push(format!("could not drop database {name}: {error:#}"));
            }
        }
        failures
    }
}

struct Run<'a> {
    args: &'a Args,
    supervisor: Supervisor,
    databases: Databases,
    workdir: &'a Path,
    run_id: String,
    /// Cancelled on SIGINT/SIGTERM: the load in progress stops sending
    stop: CancellationToken,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Handlers first: from here on a Ctrl-C or SIGTERM stops the children in order.
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut builder = tempfile::Builder::new();
    builder.prefix("statelab-demo-");
    let workdir = match &args.tmp_dir {
        Some(dir) => builder.tempdir_in(dir),
        None => builder.tempdir(),
    }
    .context("cannot create a temporary directory")?;
    let supervisor = Supervisor::new();
    let databases = Databases::default();
    let ctx = Run {
        args: &args,
        supervisor: supervisor.clone(),
        databases: databases.clone(),
        workdir: workdir.path(),
        run_id: load::template::new_run_id(),
        stop: CancellationToken::new(),
    };
    let stop = ctx.stop.clone();
    enum End {
        Done(anyhow::Result<DemoReport>),
        Signal(&'static str, u8),
    }
    let end = tokio::select! {
        result = demo(&ctx) => End::Done(result),
        _ = interrupt.recv() => End::Signal("SIGINT", load::EXIT_INTERRUPTED),
        _ = terminate.recv() => End::Signal("SIGTERM", 143),
    };
    drop(ctx);
    if let End::Signal(name, _) = &end {
        stop.cancel();
        let pids = supervisor.pids();
        eprintln!(
            "{name}: stopping {} replica process(es) {pids:?}",
            pids.len()
        );
    }
    supervisor.kill_all().await;
    for failure in databases.drop_all().await {
        eprintln!("{failure}");
    }
    let kept = if args.keep {
        let path = workdir.keep();
        eprintln!("kept {}", path.display());
        Some(path)
    } else {
        drop(workdir);
        None
    };
    match end {
        End::Signal(_, code) => Ok(ExitCode::from(code)),
        End::Done(Err(error)) => Err(error),
        End::Done(Ok(mut report)) => {
            report.kept_dir = kept;
            output(&args, &report)
        }
    }
}

fn output(args: &Args, report: &DemoReport) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.html {
        let page = html::render(report)?;
        std::fs::write(path, page).with_context(|| format!("cannot write {}", path.display()))?;
        if !args.quiet {
            eprintln!("wrote {}", path.display());
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", text(report));
    }
    let broken = report.rows.iter().any(|r| r.lost > 0 || r.phantom > 0);
    Ok(if broken {
        ExitCode::from(load::EXIT_AUDIT_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

fn say(ctx: &Run<'_>, line: impl AsRef<str>) {
    if !ctx.args.quiet {
        eprintln!("{}", line.as_ref());
    }
}

async fn demo(ctx: &Run<'_>) -> anyhow::Result<DemoReport> {
    let started = Instant::now();
    let args = ctx.args;
    say(
        ctx,
        format!(
            "statelab demo scaling: {} writes per setup, {} at a time, in {}",
            args.writes,
            args.concurrency,
            ctx.workdir.display()
        ),
    );
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let sqlite = |begin, replicas, busy_timeout_ms| Setup {
        backend: Backend::Sqlite {
            begin,
            busy_timeout_ms,
        },
        replicas,
    };
    let mut counts: Vec<usize> = args.replicas.iter().map(|&n| usize::from(n)).collect();
    counts.sort_unstable();
    counts.dedup();
    let (Some(&fewest), Some(&most)) = (counts.first(), counts.last()) else {
        bail!("--replicas needs at least one replica count");
    };
    // The deferred rows keep the guestbook's default busy timeout: it cannot help them.
    let mut setups: Vec<Setup> = counts
        .iter()
        .map(|&n| sqlite(SqliteBegin::Deferred, n, 5000))
        .collect();
    setups.push(sqlite(SqliteBegin::Immediate, most, args.busy_timeout_ms));
    for setup in setups {
        rows.push(run_setup(ctx, &setup, None).await?);
    }
    let mut pg_counts = vec![fewest, most];
    pg_counts.dedup();
    match postgres_server(args).await {
        Ok(Some(admin)) => {
            for replicas in pg_counts {
                let setup = Setup {
                    backend: Backend::Postgres,
                    replicas,
                };
                let name = format!("statelab_demo_{}_{}", ctx.run_id, replicas);
                create_database(&admin, &name).await?;
                ctx.databases.add(&admin, &name);
                let row = run_setup(ctx, &setup, Some(database_url(&admin, &name)?)).await;
                for failure in ctx.databases.drop_all().await {
                    notes.push(failure);
                }
                rows.push(row?);
            }
        }
        Ok(None) => notes.push("PostgreSQL rows skipped (--no-postgres).".to_owned()),
        Err(reason) => {
            let note = format!("PostgreSQL rows skipped: {reason}");
            say(ctx, &note);
            notes.push(note);
        }
    }
    let summary = summary(&rows);
    Ok(DemoReport {
        writes_per_setup: args.writes,
        concurrency: args.concurrency,
        rows,
        notes,
        summary,
        elapsed_s: load::stats::round2(started.elapsed().as_secs_f64()),
        kept_dir: None,
    })
}

/// Starts the replicas of one setup, sends the writes, audits, stops the replicas.
async fn run_setup(
    ctx: &Run<'_>,
    setup: &Setup,
    database_url: Option<String>,
) -> anyhow::Result<Row> {
    let dir = ctx.workdir.join(setup.slug());
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir_text = dir
        .to_str()
        .context("the temporary directory's path is not UTF-8")?;
    let mut database_env = None;
    let storage: Vec<String> = match (&setup.backend, database_url) {
        (
            Backend::Sqlite {
                begin,
                busy_timeout_ms,
            },
            _,
        ) => vec![
            "--data-dir".into(),
            dir_text.into(),
            "--database".into(),
            format!("{dir_text}/database.db"),
            "--sqlite-begin".into(),
            begin_name(*begin).into(),
            "--sqlite-busy-timeout-ms".into(),
            busy_timeout_ms.to_string(),
            "--sqlite-journal-mode".into(),
            "delete".into(),
        ],
        // The URL may hold a password: it goes to the replicas in DATABASE_URL, not on
        // their command line where `ps` shows it.
        (Backend::Postgres, Some(url)) => {
            database_env = Some(url);
            vec!["--data-dir".into(), dir_text.into()]
        }
        (Backend::Postgres, None) => bail!("a PostgreSQL setup needs a database URL"),
    };
    let starting = Instant::now();
    let launches = (0..setup.replicas).map(|i| {
        ctx.supervisor.start(Launch {
            name: format!("guestbook-{i}"),
            args: storage.clone(),
            database_url: database_env.clone(),
            dir: &dir,
        })
    });
    let started = futures::future::join_all(launches).await;
    let mut replicas = Vec::new();
    let mut failure = None;
    for result in started {
        match result {
            Ok(replica) => replicas.push(replica),
            Err(error) => failure = Some(error),
        }
    }
    let pids: Vec<u32> = replicas.iter().map(|r| r.pid).collect();
    if let Some(error) = failure {
        ctx.supervisor.stop(&pids).await;
        return Err(error.context(format!("{}: a replica did not start", setup.label())));
    }
    say(
        ctx,
        format!(
            "{} × {}: replicas up in {:.1} s (pids {pids:?}); sending {} writes",
            setup.label(),
            setup.replicas,
            starting.elapsed().as_secs_f64(),
            ctx.args.writes
        ),
    );
    let targets: Vec<String> = replicas.iter().map(|r| r.url()).collect();
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
    let report = load::run_plan(
        plan,
        path,
        Some((targets[0].as_str(), path)),
        ProgressMode::Off,
        ctx.stop.clone(),
    )
    .await;
    ctx.supervisor.stop(&pids).await;
    let report = report?;
    let row = row(setup, &report, &replicas);
    say(
        ctx,
        format!(
            "  {} ok, {} lock errors, {} other errors, {} stored, {} lost, {} phantom ({:.1} s)",
            row.ok,
            row.lock_errors,
            row.other_errors,
            row.stored,
            row.lost,
            row.phantom,
            row.elapsed_s
        ),
    );
    Ok(row)
}

fn row(setup: &Setup, report: &Report, replicas: &[replicas::Replica]) -> Row {
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
                pid: r.pid,
                sent: figures.map_or(0, |f| f.sent),
                ok: figures.map_or(0, |f| f.counts.ok + f.counts.redirect),
                lock_errors: figures.map_or(0, |f| f.counts.lock_error),
            }
        })
        .collect();
    let (backend, begin, busy_timeout_ms) = match &setup.backend {
        Backend::Sqlite {
            begin,
            busy_timeout_ms,
        } => ("sqlite", begin_name(*begin), Some(*busy_timeout_ms)),
        Backend::Postgres => ("postgres", "deferred", None),
    };
    Row {
        backend,
        begin,
        replicas: setup.replicas,
        busy_timeout_ms,
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
        pids: replicas.iter().map(|r| r.pid).collect(),
        per_replica,
    }
}

// ---------- PostgreSQL ----------

/// The server to use, `None` when PostgreSQL is switched off, or why it cannot be used.
async fn postgres_server(args: &Args) -> Result<Option<String>, String> {
    if args.no_postgres {
        return Ok(None);
    }
    let url = args.postgres.as_deref().unwrap_or(LOCAL_POSTGRES);
    let shown = redact(url);
    let options: PgConnectOptions = url
        .parse()
        .map_err(|e| format!("{shown} is not a PostgreSQL URL ({e})"))?;
    match tokio::time::timeout(Duration::from_secs(3), PgConnection::connect_with(&options)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(Some(url.to_owned()))
        }
        Ok(Err(error)) => Err(format!(
            "cannot connect to {shown}: {}",
            one_line(&error.to_string())
        )),
        Err(_) => Err(format!("{shown} did not answer within 3 s")),
    }
}

async fn admin_connection(admin_url: &str) -> anyhow::Result<PgConnection> {
    let options: PgConnectOptions = admin_url.parse().context("invalid PostgreSQL URL")?;
    tokio::time::timeout(Duration::from_secs(5), PgConnection::connect_with(&options))
        .await
        .context("PostgreSQL did not answer within 5 s")?
        .context("cannot connect to PostgreSQL")
}

async fn create_database(admin: &str, name: &str) -> anyhow::Result<()> {
    let mut conn = admin_connection(admin).await?;
    // The name is ours: letters, digits and underscores only.
    let sql = format!("CREATE DATABASE \"{name}\"");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .with_context(|| format!("cannot create database {name}"))?;
    let _ = conn.close().await;
    Ok(())
}

async fn drop_database(admin: &str, name: &str) -> anyhow::Result<()> {
    let mut conn = admin_connection(admin).await?;
    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await?;
    let _ = conn.close().await;
    Ok(())
}

/// The same server URL with another database name (user, password, host and options kept).
fn database_url(admin_url: &str, name: &str) -> anyhow::Result<String> {
    let mut url = reqwest::Url::parse(admin_url).context("the PostgreSQL URL does not parse")?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

/// The URL with its password hidden, for messages.
fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "the given URL".to_owned(),
    }
}

fn one_line(text: &str) -> String {
    text.lines().next().unwrap_or("").trim().to_owned()
}

// ---------- output ----------

fn fmt_ms(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
}

/// The table and the sentences.
pub fn text(report: &DemoReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{} writes per setup, {} in flight, a new connection per write, round-robin over the replicas\n",
        report.writes_per_setup, report.concurrency
    );
    let _ = writeln!(
        out,
        "{:<36} {:>8} {:>6} {:>6} {:>15} {:>6} {:>8} {:>8} {:>8} {:>5} {:>7}",
        "setup",
        "replicas",
        "sent",
        "stored",
        "lock errors",
        "other",
        "p50 ms",
        "p99 ms",
        "writes/s",
        "lost",
        "phantom"
    );
    for row in &report.rows {
        let _ = writeln!(
            out,
            "{:<36} {:>8} {:>6} {:>6} {:>7} ({:>5.1}%) {:>6} {:>8} {:>8} {:>8.0} {:>5} {:>7}",
            row_label(row),
            row.replicas,
            row.sent,
            row.stored,
            row.lock_errors,
            row.lock_error_pct,
            row.other_errors,
            fmt_ms(row.p50_ms),
            fmt_ms(row.p99_ms),
            row.ok_per_s,
            row.lost,
            row.phantom
        );
    }
    let _ = writeln!(
        out,
        "\np50/p99: latency of acknowledged writes; writes/s: acknowledged writes per second; \
         stored, lost, phantom: read back after each run."
    );
    for note in &report.notes {
        let _ = writeln!(out, "{note}");
    }
    out.push('\n');
    for sentence in &report.summary {
        let _ = writeln!(out, "{sentence}");
    }
    if let Some(dir) = &report.kept_dir {
        let _ = writeln!(
            out,
            "\nSQLite files and replica logs kept in {}",
            dir.display()
        );
    }
    out
}

pub fn row_label(row: &Row) -> String {
    match (row.backend, row.begin) {
        ("sqlite", "immediate") => format!(
            "SQLite file, IMMEDIATE + {} ms wait",
            row.busy_timeout_ms.unwrap_or_default()
        ),
        ("sqlite", _) => "SQLite file, BEGIN (deferred)".to_owned(),
        _ => "PostgreSQL".to_owned(),
    }
}

fn find<'a>(rows: &'a [Row], backend: &str, begin: &str, replicas: usize) -> Option<&'a Row> {
    rows.iter().find(|r| {
        r.backend == backend
            && (backend == "postgres" || r.begin == begin)
            && r.replicas == replicas
    })
}

/// A few sentences on what these rows show; every claim is checked against the numbers.
pub fn summary(rows: &[Row]) -> Vec<String> {
    let mut out = Vec::new();
    let one = find(rows, "sqlite", "deferred", 1);
    let shared: Vec<&Row> = rows
        .iter()
        .filter(|r| r.backend == "sqlite" && r.begin == "deferred" && r.replicas > 1)
        .collect();
    if let Some(one) = one {
        if one.lock_errors == 0 {
            out.push(format!(
                "One replica stored {} of {} writes without a single lock error: one process \
                 queues its own writes behind its one SQLite connection.",
                one.stored, one.sent
            ));
        } else {
            out.push(format!(
                "Even one replica answered {} lock errors in this run, which the guestbook's \
                 single writer connection should prevent: something else is writing to the file.",
                one.lock_errors
            ));
        }
    }
    let failing: Vec<&&Row> = shared.iter().filter(|r| r.lock_errors > 0).collect();
    if !failing.is_empty() {
        let parts: Vec<String> = failing
            .iter()
            .map(|r| format!("{:.1}% at {} replicas", r.lock_error_pct, r.replicas))
            .collect();
        out.push(format!(
            "Sharing the file between processes, writes failed with \"database is locked\" \
             ({}): SQLite lets one process write at a time, and a transaction that has already \
             read cannot wait for the lock, so it fails at once; the busy timeout does not help.",
            parts.join(", ")
        ));
    }
    for r in shared.iter().filter(|r| r.lock_errors == 0) {
        out.push(format!(
            "This run saw no lock errors at {} replicas; raise --writes or --concurrency to make \
             the collisions more likely.",
            r.replicas
        ));
    }
    let lost: u64 = rows.iter().map(|r| r.lost).sum();
    let phantom: u64 = rows.iter().map(|r| r.phantom).sum();
    if lost == 0 && phantom == 0 {
        out.push(
            "Reading every row back found nothing lost and nothing phantom: each failure was \
             reported as a 503 and nothing was stored for it, so the problem is loud, not silent \
             (but every one of those users lost their message)."
                .to_owned(),
        );
    } else {
        out.push(format!(
            "Reading the rows back found {lost} acknowledged write(s) missing and {phantom} \
             rejected write(s) stored: the answers and the storage disagree."
        ));
    }
    if let Some(imm) = rows
        .iter()
        .find(|r| r.backend == "sqlite" && r.begin == "immediate")
    {
        let wait = imm.busy_timeout_ms.unwrap_or_default();
        let errors = if imm.lock_errors == 0 {
            format!("took the lock errors away at {} replicas", imm.replicas)
        } else {
            format!(
                "still left {} lock errors ({:.1}%) at {} replicas",
                imm.lock_errors, imm.lock_error_pct, imm.replicas
            )
        };
        let mut sentence = format!("BEGIN IMMEDIATE with a {wait} ms busy timeout {errors}");
        if let (Some(one), Some(p99), Some(p99_one)) = (one, imm.p99_ms, one.and_then(|o| o.p99_ms))
        {
            let _ = write!(
                sentence,
                ", but every write now queues for the one file lock: p99 {p99:.0} ms against \
                 {p99_one:.0} ms with one replica, {:.0} writes/s against {:.0}",
                imm.ok_per_s, one.ok_per_s
            );
            if imm.ok_per_s <= one.ok_per_s * 1.1 {
                sentence.push_str(": more replicas write no faster than one.");
            } else {
                sentence
                    .push_str(" (more write throughput in this run, but all through one lock).");
            }
        } else {
            sentence.push('.');
        }
        out.push(sentence);
    }
    let pg: Vec<&Row> = rows.iter().filter(|r| r.backend == "postgres").collect();
    if !pg.is_empty() {
        let clean = pg
            .iter()
            .all(|r| r.lock_errors == 0 && r.other_errors == 0 && r.lost == 0);
        let figures: Vec<String> = pg
            .iter()
            .map(|r| {
                format!(
                    "{} replica{}: {} of {} stored, p99 {} ms",
                    r.replicas,
                    if r.replicas == 1 { "" } else { "s" },
                    r.stored,
                    r.sent,
                    fmt_ms(r.p99_ms)
                )
            })
            .collect();
        if clean {
            out.push(format!(
                "PostgreSQL ({}) had no errors at all: a database server coordinates many \
                 writers, so the replicas can scale. That is the fix.",
                figures.join("; ")
            ));
        } else {
            out.push(format!(
                "PostgreSQL ({}) reported errors in this run; see the table.",
                figures.join("; ")
            ));
        }
    }
    out
}

//! `statelab demo scaling`: seed 000's lesson as one command. The guestbook runs as 1, 2 and
//! 3 real local replicas sharing one SQLite file, then with `BEGIN IMMEDIATE` and a busy
//! timeout, then on PostgreSQL; the same write load hits every setup, and an audit reads back
//! what was stored. The table, a few sentences on what it shows, and optionally an HTML
//! report and JSON.
//!
//! Files by job: `plan` (which setups), `run` (one setup: replicas, load, audit), `postgres`
//! (the demo's databases), `output` (table, sentences), `html` (the report page).

mod html;
mod output;
mod plan;
mod postgres;
mod run;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use crate::guestbook::config::SqliteBegin;
use crate::load;
use crate::server::signals::Shutdown;
pub use output::{row_label, summary, text};
pub use plan::Backend;
use plan::Setup;

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
    pub backend: Backend,
    /// How SQLite write transactions began: "deferred" or "immediate" (PostgreSQL rows:
    /// "deferred", the flag's default, which PostgreSQL ignores)
    pub begin: SqliteBegin,
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

impl Row {
    /// The setup this row measured.
    pub fn setup(&self) -> Setup {
        Setup::of_row(self)
    }
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

/// What every step of one demo run shares.
struct Ctx<'a> {
    args: &'a Args,
    databases: &'a postgres::Databases,
    workdir: &'a Path,
    run_id: String,
    /// SIGINT/SIGTERM: the load in progress stops sending, no further setup starts
    shutdown: &'a Shutdown,
}

impl Ctx<'_> {
    fn say(&self, line: impl AsRef<str>) {
        if !self.args.quiet {
            eprintln!("{}", line.as_ref());
        }
    }
}

/// Runs the demo; on a shutdown request it stops what runs, and returns only once every
/// replica is stopped and every database it created is dropped.
pub async fn run(args: Args, shutdown: Shutdown) -> anyhow::Result<ExitCode> {
    let mut builder = tempfile::Builder::new();
    builder.prefix("statelab-demo-");
    let workdir = match &args.tmp_dir {
        Some(dir) => builder.tempdir_in(dir),
        None => builder.tempdir(),
    }
    .context("cannot create a temporary directory")?;
    let databases = postgres::Databases::default();
    let ctx = Ctx {
        args: &args,
        databases: &databases,
        workdir: workdir.path(),
        run_id: load::template::new_run_id(),
        shutdown: &shutdown,
    };
    let result = demo(&ctx).await;
    // Each row drops its database; this catches a row that failed before it could.
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
    let mut report = result?;
    report.kept_dir = kept;
    output::write(&args, &report)
}

async fn demo(ctx: &Ctx<'_>) -> anyhow::Result<DemoReport> {
    let started = Instant::now();
    let args = ctx.args;
    ctx.say(format!(
        "statelab demo scaling: {} writes per setup, {} at a time, in {}",
        args.writes,
        args.concurrency,
        ctx.workdir.display()
    ));
    let plan = plan::Plan::from_args(args)?;
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for setup in &plan.sqlite {
        rows.push(run::run_setup(ctx, setup, None).await?);
    }
    match postgres::server(args).await {
        Ok(Some(admin)) => {
            for setup in &plan.postgres {
                let name = format!("statelab_demo_{}_{}", ctx.run_id, setup.replicas);
                let url = ctx.databases.create(&admin, &name).await?;
                let row = run::run_setup(ctx, setup, Some(url)).await;
                notes.extend(ctx.databases.drop_all().await);
                rows.push(row?);
            }
        }
        Ok(None) => notes.push("PostgreSQL rows skipped (--no-postgres).".to_owned()),
        Err(reason) => {
            let note = format!("PostgreSQL rows skipped: {reason}");
            ctx.say(&note);
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

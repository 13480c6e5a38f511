//! `statelab demo persistence`: the StatefulSet lesson of seeds 002 to 004 on one machine. A
//! counter replica keeps its count across `kill -9` and restarts as long as it gets its own
//! data directory back (its PersistentVolumeClaim), including after the init step runs again;
//! a replica started on an empty directory (a pod without its volume) starts from 0.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde::Serialize;

use super::local_replica::{Replica, call, client, count_of, run_init};
use crate::server::signals::Shutdown;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Increments acknowledged before the first restart
    #[arg(long, default_value_t = 20)]
    increments: u64,

    /// Increments acknowledged in the streaming step before the replica is killed with kill -9
    #[arg(long, default_value_t = 200)]
    stream: u64,

    /// Concurrent clients in the streaming step
    #[arg(long, default_value_t = 4)]
    clients: usize,

    /// Print the rows as JSON instead of a table
    #[arg(long)]
    json: bool,

    /// Keep the temporary data directories (their paths are printed)
    #[arg(long)]
    keep: bool,
}

#[derive(Serialize)]
struct Row {
    step: String,
    count: u64,
    expected_min: u64,
    expected_max: u64,
    ok: bool,
    note: String,
}

impl Row {
    fn new(step: &str, count: u64, min: u64, max: u64, note: String) -> Row {
        Row {
            step: step.to_owned(),
            count,
            expected_min: min,
            expected_max: max,
            ok: (min..=max).contains(&count),
            note,
        }
    }

    fn expected(&self) -> String {
        if self.expected_min == self.expected_max {
            self.expected_min.to_string()
        } else {
            format!("{}..{}", self.expected_min, self.expected_max)
        }
    }
}

#[derive(Serialize)]
struct Report {
    demo: &'static str,
    data_dir: String,
    rows: Vec<Row>,
    ok: bool,
    pids: Vec<u32>,
}

/// Runs the demo; a shutdown request stops it, and its replicas (by PID) and temporary
/// directories are gone when this returns.
pub async fn run(args: Args, shutdown: &Shutdown) -> anyhow::Result<ExitCode> {
    super::until_shutdown(shutdown, demo(args)).await
}

async fn demo(args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.clients > 0, "--clients must be at least 1");
    let temp = tempfile::Builder::new()
        .prefix("statelab-demo-persistence-")
        .tempdir()?;
    let dir = temp.path().join("counter-app-0");
    let empty_dir = temp.path().join("counter-app-0-without-volume");
    let client = client();
    let mut rows = Vec::new();
    let mut pids = Vec::new();
    let name = "counter-app-0";
    if !args.json {
        println!("Starting replica {name} on {}", dir.display());
    }

    // 1. Increments on a fresh directory.
    let init_log = run_init(&dir).await?;
    let mut replica = Replica::start(name, &dir).await?;
    pids.extend(replica.pid());
    let mut last = 0;
    for _ in 0..args.increments {
        last = count_of(&call(&client, Method::POST, &replica.url("/increment")).await?)?;
    }
    let n = args.increments;
    rows.push(Row::new(
        &format!("{n} increments acknowledged"),
        read_count(&client, &replica).await?,
        n,
        n,
        format!(
            "last answer said {last}; init: {}",
            first_line(&init_log, &dir)
        ),
    ));

    // 2. kill -9 and restart on the same directory.
    replica.kill9();
    let mut replica = Replica::start(name, &dir).await?;
    pids.extend(replica.pid());
    rows.push(Row::new(
        "kill -9, restart on the same directory",
        read_count(&client, &replica).await?,
        n,
        n,
        "the file on the volume is the state; the process held nothing".into(),
    ));

    // 3. The init container runs again on every pod start: it must not reset anything.
    replica.stop().await;
    let init_log = run_init(&dir).await?;
    let mut replica = Replica::start(name, &dir).await?;
    pids.extend(replica.pid());
    rows.push(Row::new(
        "counter init again, restart",
        read_count(&client, &replica).await?,
        n,
        n,
        format!("init: {}", first_line(&init_log, &dir)),
    ));

    // 4. kill -9 in the middle of a stream of increments.
    let stream = stream_then_kill(&client, &mut replica, args.stream, args.clients).await;
    let replica = Replica::start(name, &dir).await?;
    pids.extend(replica.pid());
    let acked = n + stream.acked;
    rows.push(Row::new(
        "kill -9 during a stream of increments, restart",
        read_count(&client, &replica).await?,
        acked.max(stream.max_value),
        acked + stream.unanswered,
        format!(
            "{} acknowledged before the kill, {} in flight (each may or may not have \
             been applied)",
            stream.acked, stream.unanswered
        ),
    ));
    drop(replica);

    // 5. Contrast: the same replica without its volume.
    let replica = Replica::start(name, &empty_dir).await?;
    pids.extend(replica.pid());
    rows.push(Row::new(
        "restart on an empty directory (no volume)",
        read_count(&client, &replica).await?,
        0,
        0,
        "what a pod that does not get its PersistentVolumeClaim back sees".into(),
    ));
    drop(replica);

    let ok = rows.iter().all(|r| r.ok);
    let report = Report {
        demo: "persistence",
        data_dir: dir.display().to_string(),
        rows,
        ok,
        pids,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    if args.keep {
        let kept = temp.keep();
        if !args.json {
            println!("Data directories kept under {}", kept.display());
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn read_count(client: &reqwest::Client, replica: &Replica) -> anyhow::Result<u64> {
    count_of(&call(client, Method::GET, &replica.url("/count")).await?)
}

/// The first line `counter init` printed, with the directory left out for the table.
fn first_line(text: &str, dir: &std::path::Path) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    line.replace(&format!("{}/", dir.display()), "")
}

struct Stream {
    acked: u64,
    unanswered: u64,
    max_value: u64,
}

/// Clients post increments until `target` are acknowledged; then the replica is killed with
/// kill -9 while they are still sending. Each client stops at its first failed request, so at
/// most one request per client was in flight at the kill.
async fn stream_then_kill(
    client: &reqwest::Client,
    replica: &mut Replica,
    target: u64,
    clients: usize,
) -> Stream {
    let acked = Arc::new(AtomicU64::new(0));
    let unanswered = Arc::new(AtomicU64::new(0));
    let max_value = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let url = replica.url("/increment");
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, url) = (client.clone(), url.clone());
        let (acked, unanswered, max_value, stop) = (
            acked.clone(),
            unanswered.clone(),
            max_value.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                match call(&client, Method::POST, &url).await {
                    Ok(answer) => {
                        acked.fetch_add(1, Ordering::SeqCst);
                        if let Ok(value) = count_of(&answer) {
                            max_value.fetch_max(value, Ordering::SeqCst);
                        }
                    }
                    Err(_) => {
                        unanswered.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                }
            }
        }));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while acked.load(Ordering::SeqCst) < target && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    replica.kill9();
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        let _ = task.await;
    }
    Stream {
        acked: acked.load(Ordering::SeqCst),
        unanswered: unanswered.load(Ordering::SeqCst),
        max_value: max_value.load(Ordering::SeqCst),
    }
}

fn print_table(report: &Report) {
    println!();
    println!("Persistence: one counter replica, its data directory kept across restarts");
    println!();
    println!(
        "{:<48} {:>7} {:>12}  {:<6} note",
        "step", "count", "expected", "result"
    );
    for row in &report.rows {
        println!(
            "{:<48} {:>7} {:>12}  {:<6} {}",
            row.step,
            row.count,
            row.expected(),
            if row.ok { "ok" } else { "WRONG" },
            row.note
        );
    }
    println!();
    if report.ok {
        println!(
            "Every acknowledged increment survived kill -9 and the init step: each update is \
             written to a temporary file, fsynced and renamed over the old one before it is \
             acknowledged. Only the increments in flight at the kill are uncertain, and the \
             count never goes below what was acknowledged. Without its volume the replica \
             starts from 0: the count lives in the file, not in the pod."
        );
    } else {
        println!("Some rows are not what the lesson expects: see the WRONG rows above.");
    }
}

//! `statelab demo scaling` end to end: real replicas, real SQLite file, real PostgreSQL; and
//! every child process and every demo database gone afterwards, also after Ctrl-C (SIGINT),
//! SIGTERM or SIGKILL.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use sqlx::Connection;
use statelab::demo::poll;
use statelab::demo::process::{Process, Spec};
use statelab::sys::Signal;

use crate::support::postgres::PrivateCluster;
use crate::support::{TestDatabase, process::binary};

/// Variables that would change what the demo does.
fn demo_env() -> impl Iterator<Item = String> {
    std::env::vars()
        .map(|(key, _)| key)
        .filter(|key| key.starts_with("DEMO_") || key == "DATABASE_URL")
}

fn demo_command(args: &[&str]) -> Command {
    let mut command = Command::new(binary());
    command
        .args(["demo", "scaling", "--quiet"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for key in demo_env() {
        command.env_remove(key);
    }
    command
}

/// The demo as a supervised child of this test: signalled by PID, killed if the test fails.
fn spawn_demo(args: &[&str]) -> Process {
    let mut spec = Spec::new(binary())
        .name("statelab demo scaling")
        .args(["demo", "scaling", "--quiet"])
        .args(args);
    for key in demo_env() {
        spec = spec.env_remove(key);
    }
    spec.spawn().expect("the demo starts")
}

/// Children of `parent` that are still alive (zombies, already dead, do not count).
fn live_children(parent: u32) -> BTreeSet<u32> {
    let mut pids = BTreeSet::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Some((state, ppid)) = stat(pid)
            && ppid == parent
            && state != 'Z'
        {
            pids.insert(pid);
        }
    }
    pids
}

/// (state, parent pid) of a process, from /proc/PID/stat.
fn stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may contain spaces, so split after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// True when the process is gone or a zombie (dead, waiting to be reaped by init).
fn is_stopped(pid: u32) -> bool {
    stat(pid).is_none_or(|(state, _)| state == 'Z' || state == 'X')
}

/// The PIDs still running after waiting up to `within` for all of them to stop.
fn wait_stopped(pids: &BTreeSet<u32>, within: Duration) -> Vec<u32> {
    let running = || -> Vec<u32> { pids.iter().copied().filter(|p| !is_stopped(*p)).collect() };
    poll::until_blocking(within, || running().is_empty().then_some(()));
    running()
}

fn dir_is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}

fn rows(report: &Value) -> &Vec<Value> {
    report["rows"].as_array().unwrap()
}

fn find<'a>(report: &'a Value, backend: &str, begin: &str, replicas: u64) -> &'a Value {
    rows(report)
        .iter()
        .find(|r| r["backend"] == backend && r["begin"] == begin && r["replicas"] == replicas)
        .unwrap_or_else(|| panic!("no {backend}/{begin}/{replicas} row in {report}"))
}

fn n(row: &Value, key: &str) -> u64 {
    row[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {row}"))
}

#[tokio::test]
async fn the_demo_shows_the_lesson_end_to_end_and_cleans_up() {
    let db = TestDatabase::create().await;
    let tmp = tempfile::tempdir().unwrap();
    let html = tmp.path().join("report.html");
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let args = vec![
        "--writes".to_owned(),
        "150".to_owned(),
        "--concurrency".to_owned(),
        "24".to_owned(),
        "--busy-timeout-ms".to_owned(),
        "15000".to_owned(),
        "--postgres".to_owned(),
        db.url.clone(),
        "--json".to_owned(),
        "--html".to_owned(),
        html.to_str().unwrap().to_owned(),
        "--tmp-dir".to_owned(),
        work.to_str().unwrap().to_owned(),
    ];
    let output = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        demo_command(&args).output().unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}); stderr:\n{stderr}"));
    assert_eq!(output.status.code(), Some(0), "{report}\n{stderr}");

    assert_eq!(rows(&report).len(), 6, "{report}");
    for row in rows(&report) {
        for key in [
            "sent",
            "ok",
            "lock_errors",
            "other_errors",
            "stored",
            "lost",
            "phantom",
        ] {
            n(row, key);
        }
        assert!(
            row["p50_ms"].is_number() && row["p99_ms"].is_number(),
            "{row}"
        );
        assert_eq!(n(row, "sent"), 150);
        assert_eq!(n(row, "other_errors"), 0, "{row}");
        assert_eq!(n(row, "ok") + n(row, "lock_errors"), 150, "{row}");
        assert_eq!(
            n(row, "stored"),
            n(row, "ok"),
            "exactly the acknowledged writes are stored: {row}"
        );
        assert_eq!(n(row, "lost"), 0);
        assert_eq!(n(row, "phantom"), 0);
    }
    assert_eq!(
        n(find(&report, "sqlite", "deferred", 1), "lock_errors"),
        0,
        "one replica never locks"
    );
    assert!(
        n(find(&report, "sqlite", "deferred", 3), "lock_errors") > 0,
        "three replicas collide"
    );
    assert_eq!(
        n(find(&report, "sqlite", "immediate", 3), "lock_errors"),
        0,
        "IMMEDIATE waits instead"
    );
    assert_eq!(
        n(find(&report, "postgres", "deferred", 1), "lock_errors"),
        0
    );
    assert_eq!(
        n(find(&report, "postgres", "deferred", 3), "lock_errors"),
        0
    );
    assert!(report["summary"].as_array().is_some_and(|s| !s.is_empty()));

    // Every replica of every row is stopped, and the temporary files are gone.
    let pids: BTreeSet<u32> = rows(&report)
        .iter()
        .flat_map(|r| {
            r["pids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_u64().unwrap() as u32)
        })
        .collect();
    assert_eq!(pids.len(), 1 + 2 + 3 + 3 + 1 + 3);
    assert!(wait_stopped(&pids, Duration::from_secs(1)).is_empty());
    assert!(dir_is_empty(&work), "the demo left files behind");

    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg") && page.contains("<table"));
    assert!(!page.contains("<script"), "the report has no script");
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http"),
        "the report is self-contained"
    );
}

#[tokio::test]
async fn unreachable_postgres_is_a_note_not_a_failure() {
    // Bound but not listening: the port stays ours, and every connection is refused.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let output = tokio::task::spawn_blocking(move || {
        demo_command(&[
            "--writes",
            "10",
            "--replicas",
            "1",
            "--postgres",
            &url,
            "--json",
        ])
        .output()
        .unwrap()
    })
    .await
    .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(0), "{report}");
    assert_eq!(rows(&report).len(), 2, "SQLite rows only: {report}");
    let notes = report["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0]
            .as_str()
            .unwrap()
            .starts_with("PostgreSQL rows skipped"),
        "{notes:?}"
    );
}

/// Waits until the demo runs `replicas` guestbook children, and returns them.
fn replicas_running(demo: &Process, replicas: usize) -> BTreeSet<u32> {
    let children = poll::until_blocking(Duration::from_secs(60), || {
        if !demo.is_running() {
            panic!("the demo exited early:\n{}", demo.logs());
        }
        Some(live_children(demo.pid())).filter(|c| c.len() == replicas)
    });
    children.unwrap_or_else(|| panic!("the demo never started {replicas} replicas"))
}

/// Starts a long demo and returns it once `replicas` guestbook children are running.
fn start_long_demo(work: &Path, replicas: usize) -> (Process, BTreeSet<u32>) {
    let demo = spawn_demo(&[
        "--writes",
        "1000000",
        "--replicas",
        &replicas.to_string(),
        "--no-postgres",
        "--tmp-dir",
        work.to_str().unwrap(),
    ]);
    let children = replicas_running(&demo, replicas);
    // Give them a moment under load, then interrupt mid-run.
    std::thread::sleep(Duration::from_millis(500));
    (demo, children)
}

/// Interrupts `demo` with `signal` and checks it stopped everything and said so.
fn interrupt(demo: &Process, signal: Signal, children: &BTreeSet<u32>) {
    demo.signal(signal).unwrap();
    let status = demo.wait_exit_blocking(Duration::from_secs(60));
    let logs = demo.logs();
    assert_eq!(status.and_then(|s| s.code()), Some(130), "{logs}");
    assert!(
        logs.contains("interrupted: every replica this demo started has been stopped"),
        "{logs}"
    );
    let running = wait_stopped(children, Duration::from_secs(1));
    assert!(running.is_empty(), "replicas {running:?} outlived the demo");
}

#[test]
fn ctrl_c_stops_every_replica_and_removes_the_files() {
    let work = tempfile::tempdir().unwrap();
    let (demo, children) = start_long_demo(work.path(), 3);
    interrupt(&demo, Signal::Interrupt, &children);
    assert!(
        dir_is_empty(work.path()),
        "the interrupted demo left files behind"
    );
}

#[test]
fn replicas_die_with_the_demo_even_when_it_is_killed() {
    let work = tempfile::tempdir().unwrap();
    let (demo, children) = start_long_demo(work.path(), 2);
    demo.kill();
    let running = wait_stopped(&children, Duration::from_secs(10));
    assert!(
        running.is_empty(),
        "replicas {running:?} outlived a killed demo"
    );
}

/// The databases the demo creates on `admin_url`'s server and has not dropped.
async fn demo_databases(admin_url: &str) -> Vec<String> {
    let mut conn = sqlx::PgConnection::connect(admin_url).await.unwrap();
    sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'statelab_demo_%'")
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

/// A signal while the PostgreSQL rows run: the demo stops its replicas and drops its database
/// before it exits.
async fn interrupted_on_postgres_cleans_up(signal: Signal) {
    let cluster = PrivateCluster::start();
    let admin = cluster.url("postgres");
    let work = tempfile::tempdir().unwrap();
    let demo = spawn_demo(&[
        "--writes",
        "600",
        "--replicas",
        "2",
        "--postgres",
        &admin,
        "--tmp-dir",
        work.path().to_str().unwrap(),
    ]);
    // The PostgreSQL row has begun once its database exists (the SQLite rows come first).
    let found = poll::until(Duration::from_secs(120), || async {
        assert!(
            demo.is_running(),
            "the demo ended before its PostgreSQL row:\n{}",
            demo.logs()
        );
        Some(demo_databases(&admin).await).filter(|d| !d.is_empty())
    })
    .await;
    assert!(found.is_some(), "the demo never created its database");
    let children = tokio::task::block_in_place(|| replicas_running(&demo, 2));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !demo_databases(&admin).await.is_empty() && demo.is_running(),
        "the PostgreSQL row ended before the signal; raise --writes:\n{}",
        demo.logs()
    );
    tokio::task::block_in_place(|| interrupt(&demo, signal, &children));
    assert_eq!(
        demo_databases(&admin).await,
        Vec::<String>::new(),
        "the interrupted demo left its database behind"
    );
    assert!(dir_is_empty(work.path()), "the demo left files behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_the_postgres_rows_drops_the_database_and_stops_every_replica() {
    interrupted_on_postgres_cleans_up(Signal::Terminate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_the_postgres_rows_drops_the_database_too() {
    interrupted_on_postgres_cleans_up(Signal::Interrupt).await;
}

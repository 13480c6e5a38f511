//! `statelab demo scaling` end to end: real replicas, real SQLite file, real PostgreSQL; and
//! every child process gone afterwards, also after Ctrl-C (SIGINT) or SIGKILL.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{TestDatabase, process::binary};

fn demo_command(args: &[&str]) -> Command {
    let mut command = Command::new(binary());
    command
        .args(["demo", "scaling", "--quiet"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars() {
        if key.starts_with("DEMO_") || key == "DATABASE_URL" {
            command.env_remove(key);
        }
    }
    command
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

fn wait_stopped(pids: &BTreeSet<u32>, within: Duration) -> Vec<u32> {
    let deadline = Instant::now() + within;
    loop {
        let running: Vec<u32> = pids.iter().copied().filter(|p| !is_stopped(*p)).collect();
        if running.is_empty() || Instant::now() > deadline {
            return running;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
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
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
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

/// Starts a long demo and returns it once `replicas` guestbook children are running.
fn start_long_demo(work: &Path, replicas: usize) -> (Child, BTreeSet<u32>) {
    let mut demo = demo_command(&[
        "--writes",
        "1000000",
        "--replicas",
        &replicas.to_string(),
        "--no-postgres",
        "--tmp-dir",
        work.to_str().unwrap(),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let children = live_children(demo.id());
        if children.len() == replicas {
            // Give them a moment under load, then interrupt mid-run.
            std::thread::sleep(Duration::from_millis(500));
            return (demo, children);
        }
        if let Some(status) = demo.try_wait().unwrap() {
            panic!("the demo exited early: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "the demo never started {replicas} replicas"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the demo did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ctrl_c_stops_every_replica_and_removes_the_files() {
    let work = tempfile::tempdir().unwrap();
    let (mut demo, children) = start_long_demo(work.path(), 3);
    // SAFETY: kill(2) on the PID of the demo this test started.
    unsafe {
        libc::kill(demo.id() as i32, libc::SIGINT);
    }
    let status = wait_exit(&mut demo, Duration::from_secs(30));
    assert_eq!(status.code(), Some(130));
    let running = wait_stopped(&children, Duration::from_secs(1));
    assert!(running.is_empty(), "replicas {running:?} outlived the demo");
    assert!(
        dir_is_empty(work.path()),
        "the interrupted demo left files behind"
    );
}

#[test]
fn replicas_die_with_the_demo_even_when_it_is_killed() {
    let work = tempfile::tempdir().unwrap();
    let (mut demo, children) = start_long_demo(work.path(), 2);
    demo.kill().unwrap();
    demo.wait().unwrap();
    let running = wait_stopped(&children, Duration::from_secs(10));
    assert!(
        running.is_empty(),
        "replicas {running:?} outlived a killed demo"
    );
}

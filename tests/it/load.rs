//! `statelab load` against real guestbook processes: its counts agree with what the servers
//! counted, and its audit catches rows deleted (LOST) or stored (PHANTOM) behind its back.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

use crate::support::{self, Service, ServiceBuilder, process::binary};

fn sqlite_replica(dir: &Path, name: &str) -> Service {
    ServiceBuilder::new(&["guestbook"])
        .env("DATA_DIR", dir)
        .env("POD_NAME", name)
        .start()
}

/// A `statelab load` command with a clean environment and no progress output.
fn load_command(args: &[&str]) -> Command {
    let mut command = Command::new(binary());
    command
        .arg("load")
        .args(["--progress", "off", "--json"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars() {
        if key.starts_with("LOAD_") {
            command.env_remove(key);
        }
    }
    command
}

fn parse_report(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "load did not print JSON ({e}); status {:?}\nstdout:\n{}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

async fn run_load(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        load_command(&args).output().expect("statelab load runs")
    })
    .await
    .unwrap()
}

/// Prometheus text → value of the series named `name` whose labels include all of `labels`.
async fn metric(service: &Service, name: &str, labels: &[(&str, &str)]) -> u64 {
    let text = support::http()
        .get(service.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut total = 0.0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let Some(rest) = rest.strip_prefix('{') else {
            continue;
        };
        let Some((label_text, value)) = rest.split_once("} ") else {
            continue;
        };
        let found: BTreeMap<&str, &str> = label_text
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k, v.trim_matches('"')))
            .collect();
        if labels.iter().all(|(k, v)| found.get(k) == Some(v)) {
            total += value.trim().parse::<f64>().unwrap();
        }
    }
    total as u64
}

fn count(value: &Value, path: &[&str]) -> u64 {
    let mut v = value;
    for key in path {
        v = &v[*key];
    }
    v.as_u64()
        .unwrap_or_else(|| panic!("{path:?} is not a number in {value}"))
}

#[tokio::test]
async fn counts_per_replica_agree_with_the_servers_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let replicas: Vec<Service> = (0..3)
        .map(|i| sqlite_replica(dir.path(), &format!("guestbook-{i}")))
        .collect();
    for r in &replicas {
        r.wait_ready().await;
    }
    let targets: Vec<String> = replicas.iter().map(|r| r.url("")).collect();
    let output = run_load(vec![
        targets.join(","),
        "-n".into(),
        "300".into(),
        "-c".into(),
        "24".into(),
        "--path".into(),
        "/api/messages".into(),
        "--json-body".into(),
        r#"{"name":"load-{run}-{n}","message":"hello {uuid}"}"#.into(),
        "--audit".into(),
    ])
    .await;
    let report = parse_report(&output);
    assert_eq!(output.status.code(), Some(0), "{report}");
    assert_eq!(count(&report, &["sent"]), 300);
    let ok = count(&report, &["counts", "ok"]);
    let locked = count(&report, &["counts", "lock_error"]);
    assert_eq!(
        ok + locked,
        300,
        "only 201s and lock errors expected: {report}"
    );
    assert!(
        locked > 0,
        "three replicas on one file should collide: {report}"
    );

    // Per replica, by X-Served-By: exactly what each server counted.
    let mut ok_sum = 0;
    for (i, r) in replicas.iter().enumerate() {
        let name = format!("guestbook-{i}");
        let row = report["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["replica"] == name.as_str())
            .unwrap_or_else(|| panic!("no row for {name}: {report}"));
        let created = metric(
            r,
            "http_requests_total",
            &[
                ("method", "POST"),
                ("route", "/api/messages"),
                ("status", "201"),
            ],
        )
        .await;
        let unavailable = metric(
            r,
            "http_requests_total",
            &[
                ("method", "POST"),
                ("route", "/api/messages"),
                ("status", "503"),
            ],
        )
        .await;
        assert_eq!(count(row, &["counts", "ok"]), created, "{name}: 201s");
        assert_eq!(
            count(row, &["counts", "lock_error"]),
            unavailable,
            "{name}: 503s"
        );
        assert_eq!(
            count(row, &["sent"]),
            100,
            "round-robin gives each replica a third"
        );
        assert_eq!(
            metric(r, "guestbook_writes_total", &[("result", "stored")]).await,
            created
        );
        assert_eq!(
            metric(r, "guestbook_writes_total", &[("result", "locked")]).await,
            unavailable
        );
        ok_sum += created;
    }
    assert_eq!(ok_sum, ok);

    let audit = &report["audit"];
    assert_eq!(count(audit, &["acknowledged_stored"]), ok, "{audit}");
    assert_eq!(count(audit, &["lost"]), 0);
    assert_eq!(count(audit, &["phantom"]), 0);
    assert_eq!(count(audit, &["rejected"]), locked);
    assert_eq!(count(audit, &["rows_read"]), ok);

    // Keep-alive GETs for a duration: the server saw exactly as many as the tool counted.
    let before = metric(
        &replicas[0],
        "http_requests_total",
        &[("route", "/healthz"), ("status", "200")],
    )
    .await;
    let output = run_load(vec![
        targets[0].clone(),
        "--keep-alive".into(),
        "--duration".into(),
        "1s".into(),
        "-c".into(),
        "4".into(),
        "--path".into(),
        "/healthz".into(),
    ])
    .await;
    let report = parse_report(&output);
    assert_eq!(output.status.code(), Some(0), "{report}");
    let after = metric(
        &replicas[0],
        "http_requests_total",
        &[("route", "/healthz"), ("status", "200")],
    )
    .await;
    assert!(count(&report, &["sent"]) > 0);
    assert_eq!(count(&report, &["counts", "ok"]), after - before);
    assert_eq!(count(&report, &["sent"]), after - before);
    assert_eq!(report["keep_alive"], true);
}

#[tokio::test]
async fn answers_without_a_server_are_connection_errors() {
    // Bound but not listening: the port stays ours, and every connection is refused.
    let refusing = tokio::net::TcpSocket::new_v4().unwrap();
    refusing.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = refusing.local_addr().unwrap().port();
    let output = run_load(vec![
        format!("http://127.0.0.1:{port}"),
        "-n".into(),
        "20".into(),
        "-c".into(),
        "4".into(),
    ])
    .await;
    let report = parse_report(&output);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(count(&report, &["counts", "connection_error"]), 20);
    assert_eq!(report["replicas"][0]["replica"], "(no answer)");
}

#[tokio::test]
async fn bad_arguments_are_refused_before_any_request() {
    for args in [
        vec!["not a url"],
        vec!["http://127.0.0.1:1", "--path", "no-slash"],
        vec!["http://127.0.0.1:1", "--json-body", "{\"a\": {n}"],
        vec![
            "http://127.0.0.1:1",
            "--json-body",
            "{\"name\":\"same\"}",
            "--audit",
        ],
        vec!["http://127.0.0.1:1", "--audit"],
        vec!["http://127.0.0.1:1", "--duration", "5 weeks"],
    ] {
        let output = load_command(&args).output().unwrap();
        assert_ne!(output.status.code(), Some(0), "{args:?} was accepted");
        assert!(output.stdout.is_empty(), "{args:?} printed a report");
    }
}

async fn open_sqlite(dir: &Path) -> SqliteConnection {
    let options = SqliteConnectOptions::new()
        .filename(dir.join("database.db"))
        .busy_timeout(Duration::from_secs(10));
    SqliteConnection::connect_with(&options).await.unwrap()
}

/// Runs one statement in a `BEGIN IMMEDIATE` transaction (waits for the write lock).
async fn write_behind_its_back(conn: &mut SqliteConnection, sql: &'static str, bind: &str) -> u64 {
    loop {
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.unwrap();
        let result = sqlx::query(sql).bind(bind).execute(&mut *tx).await;
        match result {
            Ok(done) => {
                tx.commit().await.unwrap();
                return done.rows_affected();
            }
            Err(error) => {
                drop(tx);
                assert!(error.to_string().contains("locked"), "{error}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

#[tokio::test]
async fn the_audit_reports_a_row_deleted_behind_its_back_as_lost() {
    let dir = tempfile::tempdir().unwrap();
    let replica = sqlite_replica(dir.path(), "guestbook-0");
    replica.wait_ready().await;
    let target = replica.url("");
    // A fixed duration: the run is surely still going when the row disappears.
    let load = tokio::task::spawn_blocking(move || {
        load_command(&[
            &target,
            "--duration",
            "4s",
            "-c",
            "4",
            "--path",
            "/api/messages",
            "--json-body",
            r#"{"name":"audit-{run}-{n}","message":"write {n}"}"#,
            "--audit",
        ])
        .output()
        .unwrap()
    });
    let mut conn = open_sqlite(dir.path()).await;
    let victim: String = loop {
        let first: Option<String> = sqlx::query_scalar(
            "SELECT name FROM messages WHERE name LIKE 'audit-%' ORDER BY id LIMIT 1",
        )
        .fetch_optional(&mut conn)
        .await
        .unwrap();
        if let Some(name) = first {
            break name;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        write_behind_its_back(&mut conn, "DELETE FROM messages WHERE name = ?", &victim).await,
        1
    );
    drop(conn);

    let output = load.await.unwrap();
    let report = parse_report(&output);
    assert_eq!(
        output.status.code(),
        Some(3),
        "LOST makes the exit status 3: {report}"
    );
    let audit = &report["audit"];
    assert_eq!(count(audit, &["lost"]), 1, "{audit}");
    assert_eq!(audit["lost_examples"], serde_json::json!([victim]));
    assert_eq!(count(audit, &["phantom"]), 0);
    assert_eq!(
        count(audit, &["acknowledged_stored"]),
        count(&report, &["counts", "ok"]) - 1
    );
}

#[tokio::test]
async fn the_audit_reports_a_rejected_write_found_in_storage_as_phantom() {
    let dir = tempfile::tempdir().unwrap();
    let replica = sqlite_replica(dir.path(), "guestbook-0");
    replica.wait_ready().await;
    // A blank message is rejected (422); a row with the name of request 3 is already there.
    let mut conn = open_sqlite(dir.path()).await;
    let inserted = write_behind_its_back(
        &mut conn,
        "INSERT INTO messages (name, message, replica, created_at) VALUES (?, 'x', 'elsewhere', '2024-01-01T00:00:00Z')",
        "phantom-3",
    )
    .await;
    assert_eq!(inserted, 1);
    drop(conn);
    let output = run_load(vec![
        replica.url(""),
        "-n".into(),
        "5".into(),
        "--path".into(),
        "/api/messages".into(),
        "--json-body".into(),
        r#"{"name":"phantom-{n}","message":"   "}"#.into(),
        "--audit".into(),
    ])
    .await;
    let report = parse_report(&output);
    assert_eq!(output.status.code(), Some(3), "{report}");
    assert_eq!(count(&report, &["counts", "client_error"]), 5);
    let audit = &report["audit"];
    assert_eq!(count(audit, &["phantom"]), 1, "{audit}");
    assert_eq!(audit["phantom_examples"], serde_json::json!(["phantom-3"]));
    assert_eq!(count(audit, &["lost"]), 0);
    assert_eq!(count(audit, &["rejected"]), 5);
}

/// A plain TCP server that answers every HTTP request with 200 and counts the connections
/// it accepted: the client side's connection behaviour, observed from the outside.
struct CountingServer {
    port: u16,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl CountingServer {
    fn start() -> CountingServer {
        use std::io::{BufRead, BufReader, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                counter.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut writer = stream;
                    loop {
                        // Read one request head (these requests have no body).
                        let mut close = false;
                        let mut line = String::new();
                        loop {
                            line.clear();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if line.to_ascii_lowercase().starts_with("connection: close") {
                                close = true;
                            }
                            if line == "\r\n" {
                                break;
                            }
                        }
                        let answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-served-by: counter\r\n\r\nok";
                        if writer.write_all(answer.as_bytes()).is_err() || close {
                            return;
                        }
                    }
                });
            }
        });
        CountingServer { port, accepted }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[tokio::test]
async fn a_new_connection_per_request_unless_keep_alive() {
    let server = CountingServer::start();
    let target = format!("http://127.0.0.1:{}", server.port);
    let output = run_load(vec![
        target.clone(),
        "-n".into(),
        "40".into(),
        "-c".into(),
        "4".into(),
    ])
    .await;
    let report = parse_report(&output);
    assert_eq!(count(&report, &["counts", "ok"]), 40, "{report}");
    assert_eq!(server.accepted(), 40, "one connection per request");

    let output = run_load(vec![
        target,
        "-n".into(),
        "40".into(),
        "-c".into(),
        "4".into(),
        "--keep-alive".into(),
    ])
    .await;
    let report = parse_report(&output);
    assert_eq!(count(&report, &["counts", "ok"]), 40, "{report}");
    assert_eq!(
        server.accepted(),
        40 + 4,
        "keep-alive: one connection per worker"
    );
    assert_eq!(report["replicas"][0]["replica"], "counter");
}

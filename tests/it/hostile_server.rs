//! The shared server layer against hostile clients: made-up methods do not grow `/metrics`,
//! slow, silent and idle connections are closed, a flood of silent connections under a
//! 1024 open-file limit still leaves room for `/healthz`, and every error the framework
//! answers itself has the JSON `{"error": ...}` body.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use rand::distr::Uniform;
use reqwest::Method;
use serde_json::Value;
use statelab::demo::process::listening_port;
use statelab::sys::{self, Signal};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{self, Service, ServiceBuilder, TestDatabase, TestRedis};

/// How long a test waits for the server to close a connection. The timeouts under test are
/// a few hundred milliseconds; this only has to be far below the other timeout in play.
const CLOSE_WITHIN: Duration = Duration::from_secs(20);

fn counter(dir: &std::path::Path, flags: &[&str]) -> Service {
    let mut args = vec!["counter", "--data-dir", dir.to_str().unwrap()];
    args.extend_from_slice(flags);
    ServiceBuilder::new(&args).start()
}

async fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the server accepts")
}

/// Reads until the server closes the connection (EOF or reset); panics if it stays open.
async fn wait_closed(stream: &mut TcpStream, what: &str) {
    let mut buffer = [0u8; 4096];
    let closed = tokio::time::timeout(CLOSE_WITHIN, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "{what}: the server kept the connection open"
    );
}

/// One HTTP/1.1 response read off a raw connection: status and body (Content-Length framed).
async fn read_response(stream: &mut TcpStream) -> (u16, String, String) {
    let mut data = Vec::new();
    let mut buffer = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = tokio::time::timeout(CLOSE_WITHIN, stream.read(&mut buffer))
            .await
            .expect("a response arrives")
            .expect("the connection stays readable");
        assert!(
            n > 0,
            "closed before a response: {:?}",
            String::from_utf8_lossy(&data)
        );
        data.extend_from_slice(&buffer[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let status = head[9..12].parse().expect("a status code");
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .expect("a Content-Length");
    while data.len() < head_end + length {
        let n = tokio::time::timeout(CLOSE_WITHIN, stream.read(&mut buffer))
            .await
            .expect("the body arrives")
            .expect("the connection stays readable");
        assert!(n > 0, "closed in the middle of the body");
        data.extend_from_slice(&buffer[..n]);
    }
    let body = String::from_utf8_lossy(&data[head_end..head_end + length]).into_owned();
    (status, head, body)
}

/// Issue: 2,000 requests with 8 KB made-up methods grew `/metrics` to 291 MB. Now every
/// non-standard method is counted as `other`.
#[tokio::test]
async fn made_up_methods_do_not_grow_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let app = counter(dir.path(), &[]);
    app.wait_for("/healthz", Duration::from_secs(30)).await;
    let port = app.port;

    const REQUESTS: usize = 2_000;
    const LENGTH: usize = 8 * 1024;
    let letters = Uniform::new_inclusive(b'A', b'Z').unwrap();
    let methods: Vec<String> = (0..REQUESTS)
        .map(|_| {
            let bytes: Vec<u8> = rand::rng().sample_iter(letters).take(LENGTH).collect();
            String::from_utf8(bytes).unwrap()
        })
        .collect();
    let methods = Arc::new(methods);
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let methods = methods.clone();
        tasks.push(tokio::spawn(async move {
            // One kept-alive connection per worker, as a flooding client would use.
            let mut stream = connect(port).await;
            for method in methods.iter().skip(worker).step_by(8) {
                let request = format!("{method} /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
                stream.write_all(request.as_bytes()).await.unwrap();
                let (status, _, body) = read_response(&mut stream).await;
                assert_eq!(status, 405, "{body}");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }

    let metrics = support::http()
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.len() < 200 * 1024,
        "/metrics is {} bytes after {REQUESTS} made-up methods",
        metrics.len()
    );
    assert!(
        metrics.contains(r#"method="other""#),
        "made-up methods are counted as other:\n{metrics}"
    );
    for method in methods.iter() {
        assert!(
            !metrics.contains(&method[..64]),
            "a made-up method is in /metrics"
        );
    }
}

/// A client that sends half its headers then nothing is closed after the header-read timeout
/// (the idle timeout is far longer, so it is not what closes it), and so is one that sends
/// nothing at all.
#[tokio::test]
async fn half_sent_headers_and_silent_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let app = counter(
        dir.path(),
        &[
            "--header-read-timeout-ms",
            "300",
            "--idle-timeout-ms",
            "600000",
        ],
    );
    app.wait_for("/healthz", Duration::from_secs(30)).await;

    let mut half = connect(app.port).await;
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let mut silent = connect(app.port).await;
    wait_closed(&mut half, "half-sent headers").await;
    wait_closed(&mut silent, "a connection that never sent a byte").await;

    // A kept-alive connection gets the header deadline again for its next request.
    let mut slow_second = connect(app.port).await;
    slow_second
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut slow_second).await.0, 200);
    slow_second.write_all(b"GET /heal").await.unwrap();
    wait_closed(&mut slow_second, "a second request's half-sent headers").await;

    // Complete requests are still served.
    let (status, _, body) = {
        let mut fresh = connect(app.port).await;
        fresh
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        read_response(&mut fresh).await
    };
    assert_eq!((status, body.as_str()), (200, r#"{"status":"alive"}"#));
}

/// Keep-alive works (several requests on one connection), and a kept-alive connection with
/// no next request is closed after the idle timeout.
#[tokio::test]
async fn idle_keep_alive_connections_are_closed_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let app = counter(
        dir.path(),
        &[
            "--idle-timeout-ms",
            "500",
            "--header-read-timeout-ms",
            "600000",
        ],
    );
    app.wait_for("/healthz", Duration::from_secs(30)).await;

    let mut stream = connect(app.port).await;
    for _ in 0..3 {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let (status, head, _) = read_response(&mut stream).await;
        assert_eq!(status, 200);
        assert!(
            !head.to_ascii_lowercase().contains("connection: close"),
            "{head}"
        );
    }
    wait_closed(&mut stream, "an idle kept-alive connection").await;
}

/// The statelab counter started with `limit` as its soft and hard open-file limit (what a
/// container sets), killed and reaped when dropped.
struct LimitedServer {
    child: Child,
    port: u16,
    logs: Arc<Mutex<Vec<String>>>,
}

impl LimitedServer {
    fn start(dir: &std::path::Path, open_files: u64) -> LimitedServer {
        let mut command = Command::new(support::process::binary());
        command
            .args(["counter", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env_remove("MAX_CONNECTIONS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        sys::limit_open_files(&mut command, open_files);
        sys::die_with_parent(&mut command);
        let mut child = command.spawn().expect("statelab starts");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let lines = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(port) = listening_port(&line) {
                    let _ = port_tx.send(port);
                }
                lines.lock().unwrap().push(line);
            }
        });
        let port = port_rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!(
                    "no listening line; log:\n{}",
                    logs.lock().unwrap().join("\n")
                )
            });
        LimitedServer { child, port, logs }
    }

    fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }
}

impl Drop for LimitedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Issue: 300 silent connections under a 256 open-file limit made the whole service,
/// `/healthz` included, unreachable. Now, with the limit at 1024 and 1,500 connections that
/// never send a byte, `/healthz` still answers within 3 s: the oldest silent connections are
/// shed to admit new ones, and the accept loop never runs out of descriptors.
#[tokio::test]
async fn a_flood_of_silent_connections_leaves_room_for_healthz() {
    // This test itself holds 1,500 sockets.
    sys::raise_open_file_limit().expect("the soft open-file limit can be raised");
    let dir = tempfile::tempdir().unwrap();
    let server = LimitedServer::start(dir.path(), 1024);
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", server.port);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !client
        .get(url("/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(
            Instant::now() < deadline,
            "never healthy:\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut flood = Vec::with_capacity(1_500);
    for _ in 0..1_500 {
        flood.push(connect(server.port).await);
    }
    for attempt in 0..3 {
        let started = Instant::now();
        let response = client.get(url("/healthz")).send().await;
        let response = response.unwrap_or_else(|e| {
            panic!(
                "/healthz did not answer within 3 s (probe {attempt}, {:?}): {e}\nlog:\n{}",
                started.elapsed(),
                server.logs()
            )
        });
        assert_eq!(response.status(), 200);
    }

    let metrics = client.get(url("/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    let shed: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"http_connections_closed_total{reason="shed"} "#))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no shed count in /metrics:\n{metrics}"));
    assert!(shed > 0.0, "silent connections were shed to make room");
    let logs = server.logs();
    assert!(
        !logs.contains("Too many open files"),
        "the process ran out of descriptors:\n{logs}"
    );
    drop(flood);
}

/// SIGTERM with a silent and an idle kept-alive connection open: both are closed at once,
/// so the process exits 0 long before the shutdown timeout.
#[tokio::test]
async fn sigterm_closes_silent_and_idle_connections_without_waiting_for_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = counter(dir.path(), &["--shutdown-timeout-ms", "600000"]);
    app.wait_for("/healthz", Duration::from_secs(30)).await;
    let mut silent = connect(app.port).await;
    let mut idle = connect(app.port).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut idle).await.0, 200);

    app.signal(Signal::Terminate);
    wait_closed(&mut silent, "a silent connection at shutdown").await;
    wait_closed(&mut idle, "an idle connection at shutdown").await;
    assert_eq!(app.wait_exit(CLOSE_WITHIN), Some(0), "{}", app.logs());
}

/// A 405 of the shared layer (`DELETE /healthz`) and one of the service's own routes: JSON
/// `{"error": ...}` body, `Allow` kept.
async fn assert_json_405(app: &Service, method: Method, path: &str) {
    let response = support::http()
        .request(method.clone(), app.url(path))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405, "{method} {path}");
    let allow = response
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_owned());
    assert!(
        allow
            .as_deref()
            .is_some_and(|a| a.contains("GET") || a.contains("POST")),
        "{method} {path}: Allow is kept: {allow:?}"
    );
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "application/json"
    );
    let body: Value = response.json().await.unwrap();
    // Services may word their own 405s; the shared layer's is generic.
    let message = body["error"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("method not allowed"),
        "{method} {path}: {body}"
    );
}

async fn assert_405s(app: &Service, method: Method, own_path: &str) {
    app.wait_for("/healthz", Duration::from_secs(60)).await;
    assert_json_405(app, Method::DELETE, "/healthz").await;
    assert_json_405(app, method, own_path).await;
}

#[tokio::test]
async fn method_not_allowed_is_json_in_counter() {
    let dir = tempfile::tempdir().unwrap();
    let app = counter(dir.path(), &[]);
    assert_405s(&app, Method::DELETE, "/count").await;
}

#[tokio::test]
async fn method_not_allowed_is_json_in_guestbook() {
    let dir = tempfile::tempdir().unwrap();
    let app = ServiceBuilder::new(&["guestbook"])
        .env("DATA_DIR", dir.path())
        .start();
    assert_405s(&app, Method::PUT, "/api/messages").await;
}

#[tokio::test]
async fn method_not_allowed_is_json_in_cache() {
    let redis = TestRedis::start(false);
    let app = ServiceBuilder::new(&["cache"])
        .current_dir(redis.data_dir())
        .env("REDIS_URL", redis.url())
        .start();
    assert_405s(&app, Method::PATCH, "/cache/key").await;
}

#[tokio::test]
async fn method_not_allowed_is_json_in_queue_and_worker() {
    let redis = TestRedis::start(false);
    let queue = ServiceBuilder::new(&["queue"])
        .current_dir(redis.data_dir())
        .env("REDIS_URL", redis.url())
        .start();
    assert_405s(&queue, Method::DELETE, "/stats").await;
    let worker = ServiceBuilder::new(&["worker"])
        .current_dir(redis.data_dir())
        .env("REDIS_URL", redis.url())
        .start();
    worker.wait_for("/healthz", Duration::from_secs(60)).await;
    assert_json_405(&worker, Method::DELETE, "/healthz").await;
}

#[tokio::test]
async fn method_not_allowed_is_json_in_users() {
    let db = TestDatabase::create().await;
    let app = ServiceBuilder::new(&["users"])
        .env("DATABASE_URL", &db.url)
        .start();
    assert_405s(&app, Method::PUT, "/users").await;
}

/// The request timeout's 408 (a body that never finishes arriving) has the JSON body too.
#[tokio::test]
async fn request_timeout_is_json() {
    let dir = tempfile::tempdir().unwrap();
    let app = ServiceBuilder::new(&["guestbook", "--request-timeout-ms", "300"])
        .env("DATA_DIR", dir.path())
        .start();
    app.wait_for("/healthz", Duration::from_secs(30)).await;
    let mut stream = connect(app.port).await;
    stream
        .write_all(
            b"POST /api/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"name\": ",
        )
        .await
        .unwrap();
    let (status, head, body) = read_response(&mut stream).await;
    assert_eq!(status, 408, "{head}{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body, serde_json::json!({"error": "request timeout"}));
}

//! `statelab counter`: seed 003's endpoints, per-replica files, no lost increments across
//! processes or crashes, the init step, corrupt files, the visit page, config and secrets, the
//! manifests, and the local demos. Real processes and real files throughout.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

use crate::support::{self, Service, ServiceBuilder};

fn start(dir: &Path, pod_name: &str) -> Service {
    ServiceBuilder::new(&["counter", "--data-dir", dir.to_str().unwrap()])
        .env("POD_NAME", pod_name)
        .start()
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = client.get(url).send().await.expect("request answered");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

async fn post(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = client.post(url).send().await.expect("request answered");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

fn statelab(args: &[&str]) -> std::process::Output {
    Command::new(support::process::binary())
        .args(args)
        .env_remove("DATA_DIR")
        .env_remove("MY_PASS")
        .stdin(Stdio::null())
        .output()
        .expect("statelab runs")
}

/// Seed 003's verification: ready, health, increment x3 -> 3, reset -> 0, and the file.
#[tokio::test]
async fn seed_003_curl_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), "counter-app-0");
    app.wait_ready().await;
    let client = support::http();

    assert_eq!(
        get(&client, &app.url("/ready")).await,
        (200, json!({"status": "ready", "pod_name": "counter-app-0"}))
    );
    assert_eq!(
        get(&client, &app.url("/health")).await,
        (
            200,
            json!({"status": "healthy", "pod_name": "counter-app-0"})
        )
    );
    assert_eq!(
        get(&client, &app.url("/count")).await,
        (200, json!({"count": 0, "pod_name": "counter-app-0"}))
    );
    for expected in 1..=3 {
        assert_eq!(
            post(&client, &app.url("/increment")).await,
            (
                200,
                json!({"count": expected, "pod_name": "counter-app-0", "message": "Counter incremented"})
            )
        );
    }
    assert_eq!(
        get(&client, &app.url("/count")).await,
        (200, json!({"count": 3, "pod_name": "counter-app-0"}))
    );
    let file = dir.path().join("counter.txt");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "3\n");
    assert_eq!(
        post(&client, &app.url("/reset")).await,
        (
            200,
            json!({"count": 0, "pod_name": "counter-app-0", "message": "Counter reset"})
        )
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "0\n");

    // Wrong method and unknown paths are JSON errors, not crashes.
    let response = client.get(app.url("/increment")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 405);
    let (status, body) = get(&client, &app.url("/nope")).await;
    assert_eq!(status, 404);
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn two_replicas_with_their_own_directories_keep_separate_counts() {
    let (dir0, dir1) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let app0 = start(dir0.path(), "counter-app-0");
    let app1 = start(dir1.path(), "counter-app-1");
    app0.wait_ready().await;
    app1.wait_ready().await;
    let client = support::http();
    for _ in 0..3 {
        assert_eq!(post(&client, &app0.url("/increment")).await.0, 200);
    }
    let (_, body) = post(&client, &app1.url("/increment")).await;
    assert_eq!(body["count"], 1);
    assert_eq!(body["pod_name"], "counter-app-1");

    let response = client.get(app0.url("/count")).send().await.unwrap();
    assert_eq!(response.headers()["x-served-by"], "counter-app-0");
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"count": 3, "pod_name": "counter-app-0"})
    );
    assert_eq!(
        get(&client, &app1.url("/count")).await,
        (200, json!({"count": 1, "pod_name": "counter-app-1"}))
    );
}

/// Two processes on one data directory, 1,000 concurrent increments spread over both: none
/// lost, and every answer is a distinct value.
#[tokio::test]
async fn two_processes_on_one_directory_never_lose_an_increment() {
    let dir = tempfile::tempdir().unwrap();
    let apps = [start(dir.path(), "a"), start(dir.path(), "b")];
    for app in &apps {
        app.wait_ready().await;
    }
    let client = support::http();
    let urls: Vec<String> = apps.iter().map(|a| a.url("/increment")).collect();
    let answers: Vec<(u16, Value)> = futures::stream::iter(0..1000)
        .map(|i| {
            let (client, url) = (client.clone(), urls[i % 2].clone());
            async move { post(&client, &url).await }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let mut values = BTreeSet::new();
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        values.insert(body["count"].as_u64().unwrap());
    }
    assert_eq!(values, (1..=1000).collect::<BTreeSet<u64>>());
    for app in &apps {
        assert_eq!(get(&client, &app.url("/count")).await.1["count"], 1000);
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("counter.txt")).unwrap(),
        "1000\n"
    );
}

/// kill -9 in the middle of a stream of increments, then a restart on the same directory: the
/// count is at least what was acknowledged and at most that plus the requests in flight (one
/// per client at most: each client stops at its first failure), and the file parses.
#[tokio::test]
async fn kill_9_during_increments_keeps_every_acknowledged_one() {
    const CLIENTS: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let mut app = start(dir.path(), "counter-app-0");
    app.wait_ready().await;
    let client = support::http();
    let acked = Arc::new(AtomicU64::new(0));
    let in_flight = Arc::new(AtomicU64::new(0));
    let max_value = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (client, url) = (client.clone(), app.url("/increment"));
        let (acked, in_flight, max_value, stop) = (
            acked.clone(),
            in_flight.clone(),
            max_value.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let answer = async {
                    let response = client.post(&url).send().await.ok()?;
                    if !response.status().is_success() {
                        return None;
                    }
                    response.json::<Value>().await.ok()
                }
                .await;
                match answer {
                    Some(body) => {
                        acked.fetch_add(1, Ordering::SeqCst);
                        max_value.fetch_max(body["count"].as_u64().unwrap(), Ordering::SeqCst);
                    }
                    None => {
                        in_flight.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.load(Ordering::SeqCst) < 300 {
        assert!(Instant::now() < deadline, "increments are too slow");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    app.kill();
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.unwrap();
    }
    let (acked, in_flight, max_value) = (
        acked.load(Ordering::SeqCst),
        in_flight.load(Ordering::SeqCst),
        max_value.load(Ordering::SeqCst),
    );
    assert!(in_flight <= CLIENTS as u64);
    assert_eq!(
        max_value,
        acked.max(max_value),
        "answers never exceed what was stored"
    );

    let content = std::fs::read_to_string(dir.path().join("counter.txt")).unwrap();
    let on_disk: u64 = content.trim_end().parse().expect("the file parses");
    assert!(content.ends_with('\n'));

    let app = start(dir.path(), "counter-app-0");
    app.wait_ready().await;
    let count = get(&client, &app.url("/count")).await.1["count"]
        .as_u64()
        .unwrap();
    assert_eq!(count, on_disk);
    assert!(
        count >= acked && count >= max_value && count <= acked + in_flight,
        "count {count}, acknowledged {acked}, in flight {in_flight}, highest answer {max_value}"
    );
    // Temporary files left by the killed writer are cleaned at startup.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn init_creates_missing_files_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();

    let output = statelab(&["counter", "init", "--data-dir", data_arg]);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("Initializing"), "{stdout}");
    for name in ["counter.txt", "visits.txt"] {
        let path = data.join(name);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "0\n");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
    }

    std::fs::write(data.join("counter.txt"), "42").unwrap();
    std::fs::write(data.join("visits.txt"), "7\n").unwrap();
    let output = statelab(&["counter", "init", "--data-dir", data_arg]);
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("already holds 42"));
    assert_eq!(
        std::fs::read_to_string(data.join("counter.txt")).unwrap(),
        "42"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("visits.txt")).unwrap(),
        "7\n"
    );

    // A corrupt file is reported and left alone; init still succeeds so the app can start
    // and report it.
    std::fs::write(data.join("counter.txt"), "garbage").unwrap();
    let output = statelab(&["counter", "init", "--data-dir", data_arg]);
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("corrupt"));
    assert_eq!(
        std::fs::read_to_string(data.join("counter.txt")).unwrap(),
        "garbage"
    );

    // The seed's file names work too.
    let output = statelab(&[
        "counter",
        "init",
        "--data-dir",
        data_arg,
        "--visits-file",
        "visits",
    ]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(std::fs::read_to_string(data.join("visits")).unwrap(), "0\n");
}

/// A corrupt counter file: not ready with a clear error, every update refused, the file byte
/// for byte untouched; fixing the file by hand makes the replica ready again without restart.
#[tokio::test]
async fn corrupt_file_means_not_ready_and_is_never_reset() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("counter.txt");
    let garbage = b"12\x00garbage\n".to_vec();
    std::fs::write(&file, &garbage).unwrap();
    let app = start(dir.path(), "counter-app-0");
    app.wait_for("/health", Duration::from_secs(30)).await;
    let client = support::http();

    let (status, body) = get(&client, &app.url("/ready")).await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "not ready");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("corrupt") && error.contains("counter.txt"),
        "{error}"
    );
    assert_eq!(
        client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );

    for (method, path) in [
        ("GET", "/count"),
        ("POST", "/increment"),
        ("POST", "/reset"),
    ] {
        let request = match method {
            "GET" => client.get(app.url(path)),
            _ => client.post(app.url(path)),
        };
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 503, "{method} {path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["kind"], "corrupt", "{body}");
        assert!(body["error"].as_str().unwrap().contains("corrupt"));
    }
    assert_eq!(get(&client, &app.url("/health")).await.0, 200);
    assert_eq!(
        std::fs::read(&file).unwrap(),
        garbage,
        "the file is untouched"
    );

    std::fs::write(&file, "12\n").unwrap();
    assert_eq!(get(&client, &app.url("/ready")).await.0, 200);
    assert_eq!(post(&client, &app.url("/increment")).await.1["count"], 13);
}

#[tokio::test]
async fn visit_page_counts_visits_and_takes_its_css_from_the_app() {
    let dir = tempfile::tempdir().unwrap();
    let app = ServiceBuilder::new(&[
        "counter",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--visits-file",
        "visits",
    ])
    .env("POD_NAME", "web-app-<0>")
    .start();
    app.wait_ready().await;
    let client = support::http();
    for expected in 1..=2 {
        let response = client.get(app.url("/")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("default-src 'none'"), "{csp}");
        let html = response.text().await.unwrap();
        assert!(
            html.contains(&format!("<p class=\"count\">{expected}</p>")),
            "{html}"
        );
        assert!(html.contains("web-app-&#60;0&#62;") || html.contains("web-app-&lt;0&gt;"));
        assert!(
            !html.contains("<script") && !html.contains("style="),
            "no inline code"
        );
        assert!(html.contains("href=\"/static/counter.css\""));
    }
    // HEAD does not count a visit.
    assert_eq!(
        client.head(app.url("/")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        get(&client, &app.url("/visits")).await,
        (200, json!({"visits": 2, "pod_name": "web-app-<0>"}))
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("visits")).unwrap(),
        "2\n"
    );

    let css = client
        .get(app.url("/static/counter.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), 200);
    assert!(
        css.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    assert!(css.text().await.unwrap().contains(".count"));

    // A corrupt visits file: a visible message and a 503, the file untouched.
    std::fs::write(dir.path().join("visits"), "oops").unwrap();
    let response = client.get(app.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.text().await.unwrap().contains("class=\"error\""));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("visits")).unwrap(),
        "oops"
    );
}

#[tokio::test]
async fn config_lists_keys_and_never_shows_a_secret_value() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"sampleUrl": "https://www.google.com", "featureFlag": true}"#,
    )
    .unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    std::fs::write(secrets.join("database-password"), "vault-value-8472").unwrap();
    std::fs::create_dir(secrets.join("..data")).unwrap();
    let app = ServiceBuilder::new(&[
        "counter",
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
        "--config-file",
        config.to_str().unwrap(),
        "--secrets-dir",
        secrets.to_str().unwrap(),
    ])
    .env("MY_PASS", "SuperSecret123")
    .env("POD_NAME", "counter-app-0")
    .start();
    app.wait_ready().await;
    let client = support::http();
    let response = client.get(app.url("/config")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(
        !text.contains("SuperSecret123") && !text.contains("vault-value-8472"),
        "{text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["pod_name"], "counter-app-0");
    assert_eq!(
        body["config_file"]["keys"],
        json!(["featureFlag", "sampleUrl"])
    );
    assert_eq!(body["config_file"]["values"]["featureFlag"], true);
    assert_eq!(
        body["secrets"],
        json!([
            {"name": "MY_PASS", "source": "environment", "loaded": true},
            {"name": "database-password", "source": "file", "loaded": true},
        ])
    );
    assert_eq!(body["secrets_dir"]["present"], true);
    assert!(!app.logs().contains("SuperSecret123"));
    assert!(!app.logs().contains("vault-value-8472"));

    // --help never prints the secret either.
    let output = Command::new(support::process::binary())
        .args(["counter", "--help"])
        .env("MY_PASS", "SuperSecret123")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("MY_PASS") && !help.contains("SuperSecret123"));
}

#[tokio::test]
async fn a_missing_secrets_dir_is_reported_and_a_bad_config_file_stops_startup() {
    let dir = tempfile::tempdir().unwrap();
    let app = ServiceBuilder::new(&[
        "counter",
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
        "--secrets-dir",
        dir.path().join("absent").to_str().unwrap(),
    ])
    .start();
    app.wait_ready().await;
    let (_, body) = get(&support::http(), &app.url("/config")).await;
    assert_eq!(body["secrets_dir"]["present"], false);
    assert_eq!(
        body["secrets"][0],
        json!({"name": "MY_PASS", "source": "environment", "loaded": false})
    );

    let bad = dir.path().join("config.json");
    std::fs::write(&bad, "[1, 2").unwrap();
    let output = statelab(&[
        "counter",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
        "--config-file",
        bad.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("not valid JSON") && stderr.contains("config.json"),
        "{stderr}"
    );
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("valid YAML"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// The all-in-one file says exactly what the three step-by-step files say.
#[test]
fn task_05_complete_yaml_equals_the_three_files() {
    let dir = repo("deploy/k8s/counter");
    let parts: Vec<Value> = [
        "01-namespace.yaml",
        "02-service.yaml",
        "03-statefulset.yaml",
    ]
    .iter()
    .flat_map(|f| yaml_documents(&dir.join(f)))
    .collect();
    let complete = yaml_documents(&dir.join("task-05-complete.yaml"));
    assert!(parts.len() >= 3);
    assert_eq!(complete, parts);

    // The names seed 003's commands use.
    let find = |kind: &str, name: &str| {
        parts
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{kind} {name} missing"))
            .clone()
    };
    find("Namespace", "task-05");
    let service = find("Service", "counter-service");
    assert_eq!(service["spec"]["clusterIP"], "None");
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);
    let sts = find("StatefulSet", "counter-app");
    assert_eq!(sts["spec"]["replicas"], 2);
    assert_eq!(sts["spec"]["serviceName"], "counter-service");
    let pod = &sts["spec"]["template"]["spec"];
    assert_eq!(pod["initContainers"][0]["name"], "init-counter");
    assert_eq!(pod["initContainers"][0]["args"][0], "counter");
    assert_eq!(pod["initContainers"][0]["args"][1], "init");
    assert_eq!(pod["securityContext"]["runAsUser"], 1000);
    assert_eq!(pod["securityContext"]["fsGroup"], 1000);
    let probe = &pod["containers"][0]["readinessProbe"];
    assert_eq!(probe["httpGet"]["path"], "/ready");
    assert_eq!(probe["initialDelaySeconds"], 5);
    assert_eq!(probe["periodSeconds"], 3);
    assert_eq!(probe["failureThreshold"], 3);
    let claim = &sts["spec"]["volumeClaimTemplates"][0];
    assert_eq!(claim["metadata"]["name"], "counter-data");
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "100Mi");
}

fn alive_statelab(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains("statelab"))
        .unwrap_or(false)
}

#[test]
fn demos_run_end_to_end_and_leave_no_replica_running() {
    let output = statelab(&[
        "demo",
        "persistence",
        "--json",
        "--increments",
        "5",
        "--stream",
        "50",
        "--clients",
        "2",
    ]);
    assert!(output.status.success(), "{output:?}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| r["ok"] == true), "{report}");
    assert_eq!(rows[1]["count"], 5, "kill -9 keeps the count");
    assert_eq!(rows[2]["count"], 5, "init keeps the count");
    assert_eq!(rows[4]["count"], 0, "an empty directory starts from 0");
    let data_dir = report["data_dir"].as_str().unwrap();
    assert!(!Path::new(data_dir).exists(), "temporary files removed");

    let output = statelab(&["demo", "identity", "--json"]);
    assert!(output.status.success(), "{output:?}");
    let identity: Value = serde_json::from_slice(&output.stdout).unwrap();
    let rows = identity["rows"].as_array().unwrap();
    assert_eq!(rows[0]["count"], 3);
    assert_eq!(rows[0]["served_by"], "counter-app-0");
    assert_eq!(rows[1]["count"], 1);
    assert_eq!(rows[1]["pod_name"], "counter-app-1");
    assert_eq!(rows[2]["count"], 3);

    for pid in report["pids"]
        .as_array()
        .unwrap()
        .iter()
        .chain(identity["pids"].as_array().unwrap())
    {
        let pid = pid.as_u64().unwrap() as u32;
        assert!(!alive_statelab(pid), "replica {pid} still running");
    }
}

/// Children of `pid`, from every thread's `children` list.
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

#[test]
fn an_interrupted_demo_stops_its_replicas() {
    let mut demo = Command::new(support::process::binary())
        .args(["demo", "persistence", "--json", "--stream", "100000000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let replicas = loop {
        let found: Vec<u32> = children(demo.id())
            .into_iter()
            .filter(|&p| {
                std::fs::read(format!("/proc/{p}/cmdline"))
                    .map(|c| String::from_utf8_lossy(&c).contains("counter\0--data-dir"))
                    .unwrap_or(false)
            })
            .collect();
        if !found.is_empty() {
            break found;
        }
        assert!(Instant::now() < deadline, "the demo started no replica");
        std::thread::sleep(Duration::from_millis(20));
    };
    // The demo is a child this test started and has not reaped.
    statelab::sys::kill(demo.id(), statelab::sys::Signal::Interrupt).unwrap();
    let status = demo.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    for pid in replicas {
        assert!(!alive_statelab(pid), "replica {pid} left running");
    }
}

/// The documented 1 KiB body limit holds on the POST endpoints, which read no body otherwise:
/// a larger body gets a JSON 413 and changes nothing.
#[tokio::test]
async fn bodies_over_one_kib_are_refused_with_413_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let app = start(dir.path(), "counter-app-0");
    app.wait_ready().await;
    let client = support::http();
    assert_eq!(post(&client, &app.url("/increment")).await.0, 200);

    let small = vec![b'x'; 1024];
    let response = client
        .post(app.url("/increment"))
        .body(small)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "1 KiB is within the limit");

    for path in ["/increment", "/reset"] {
        for size in [1025, 10 * 1024 * 1024] {
            let response = client
                .post(app.url(path))
                .body(vec![b'x'; size])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 413, "{path} with {size} bytes");
            let body: Value = response.json().await.expect("a JSON error");
            assert!(
                body["error"].as_str().unwrap().contains("1024 bytes"),
                "{body}"
            );
        }
        // Without a Content-Length (chunked), the limit holds as the body is read.
        assert_eq!(
            chunked_post_status(app.port, path, 64).await,
            413,
            "{path} chunked"
        );
    }
    let (_, body) = get(&client, &app.url("/count")).await;
    assert_eq!(body["count"], 2, "only the two accepted increments counted");
}

/// POSTs `kib` KiB as a chunked body over a raw connection and returns the status code.
async fn chunked_post_status(port: u16, path: &str, kib: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("400\r\n{}\r\n", "y".repeat(1024));
    for _ in 0..kib {
        // The server may answer and close before the whole body is sent.
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {answer:?}"))
}

/// Seed 003's init container with the seed's fix (`--owner`), running as the app's user on a
/// volume whose root directory belongs to root (as provisioners create them, writable through
/// fsGroup or mode 0777): the files are the app's, the log says "Permissions set:", exit 0.
#[test]
fn init_with_owner_as_the_app_user_on_a_root_owned_volume() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let volume = dir.path().join("volume");
    std::fs::create_dir(&volume).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&volume, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut command = std::process::Command::new(support::process::binary());
    let (uid, gid) = if statelab::sys::is_root() {
        let nobody = statelab::sys::user_by_name("nobody")
            .unwrap()
            .expect("user nobody");
        command.uid(nobody.uid).gid(nobody.gid);
        (nobody.uid, nobody.gid)
    } else {
        statelab::sys::effective_ids()
    };
    let output = command
        .args(["counter", "init", "--data-dir"])
        .arg(&volume)
        .args(["--owner", &format!("{uid}:{gid}")])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("Permissions set:"), "{stdout}");
    let counter = std::fs::metadata(volume.join("counter.txt")).unwrap();
    assert_eq!((counter.uid(), counter.gid()), (uid, gid));
}

//! A local replica: a child process of this executable (`statelab counter …`) listening on a
//! free loopback port, with its own `POD_NAME` and data directory. Dropping it kills it by PID.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

/// Variables that would change what a replica does; the demo sets what it needs by flag.
const CLEARED_ENV: &[&str] = &[
    "LISTEN_ADDR",
    "PORT",
    "DATA_DIR",
    "COUNTER_FILE",
    "VISITS_FILE",
    "CONFIG_FILE",
    "SECRETS_DIR",
    "MY_PASS",
];

pub struct Replica {
    pub name: String,
    pub dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Replica {
    /// Starts `statelab counter` on `dir` and waits until `/ready` answers 200.
    pub async fn start(name: &str, dir: &Path) -> anyhow::Result<Replica> {
        let exe = std::env::current_exe().context("cannot find this executable")?;
        let mut command = Command::new(exe);
        command
            .arg("counter")
            .arg("--data-dir")
            .arg(dir)
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .env("POD_NAME", name)
            .env("DRAIN_DELAY_MS", "0")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group: a terminal's Ctrl-C reaches only the demo, which then
            // stops its replicas itself.
            .process_group(0);
        for key in CLEARED_ENV {
            command.env_remove(key);
        }
        let mut child = command.spawn().context("cannot start a replica")?;
        let stderr = child.stderr.take().context("stderr is piped")?;
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (port_tx, port_rx) = tokio::sync::oneshot::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            let mut port_tx = Some(port_tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(port) = listening_port(&line)
                    && let Some(tx) = port_tx.take()
                {
                    let _ = tx.send(port);
                }
                if let Ok(mut logs) = sink.lock() {
                    logs.push(line);
                }
            }
        });
        let mut replica = Replica {
            name: name.to_owned(),
            dir: dir.to_owned(),
            port: 0,
            child: Some(child),
            logs,
        };
        match tokio::time::timeout(Duration::from_secs(20), port_rx).await {
            Ok(Ok(port)) => replica.port = port,
            _ => bail!(
                "replica {name} did not start listening; its log:\n{}",
                replica.logs()
            ),
        }
        replica.wait_ready(Duration::from_secs(20)).await?;
        Ok(replica)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn logs(&self) -> String {
        self.logs.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    async fn wait_ready(&self, within: Duration) -> anyhow::Result<()> {
        let client = client();
        let deadline = Instant::now() + within;
        loop {
            if let Ok(response) = client.get(self.url("/ready")).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "replica {} did not become ready; its log:\n{}",
                    self.name,
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// `kill -9`: no chance to finish anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait for the graceful exit (SIGKILL after 10 s).
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: kill(2) on the PID of our own child, which has not been reaped yet.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn listening_port(line: &str) -> Option<u16> {
    let value: Value = serde_json::from_str(line).ok()?;
    if value.get("message")?.as_str()? != "listening" {
        return None;
    }
    value
        .get("local")?
        .as_str()?
        .rsplit(':')
        .next()?
        .parse()
        .ok()
}

/// Runs `statelab counter init --data-dir DIR` and returns what it printed.
pub async fn run_init(dir: &Path) -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let mut command = tokio::process::Command::new(exe);
    command
        .args(["counter", "init", "--data-dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for key in CLEARED_ENV {
        command.env_remove(key);
    }
    let output = command.output().await.context("cannot run counter init")?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "counter init failed: {}{}",
            text,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(text)
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("the HTTP client builds")
}

/// A JSON answer and the replica that served it (`X-Served-By`).
pub struct Answer {
    pub body: Value,
    pub served_by: String,
}

pub async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
) -> anyhow::Result<Answer> {
    let response = client.request(method, url).send().await?;
    let status = response.status();
    let served_by = response
        .headers()
        .get("x-served-by")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body: Value = response.json().await?;
    if !status.is_success() {
        bail!("{url} answered {status}: {body}");
    }
    Ok(Answer { body, served_by })
}

pub fn count_of(answer: &Answer) -> anyhow::Result<u64> {
    answer
        .body
        .get("count")
        .and_then(Value::as_u64)
        .with_context(|| format!("no count in {}", answer.body))
}

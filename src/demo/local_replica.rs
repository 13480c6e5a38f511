//! A local replica: a child process of this executable (`statelab counter …`) listening on
//! port 0 (the port it got is read from its log), with its own `POD_NAME` and data directory.
//! Dropping it kills it by PID.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

use super::process::{Process, Spec};
use crate::sys::Signal;

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
    process: Option<Process>,
}

const START_TIMEOUT: Duration = Duration::from_secs(20);

impl Replica {
    /// Starts `statelab counter` on `dir` and waits until `/ready` answers 200.
    pub async fn start(name: &str, dir: &Path) -> anyhow::Result<Replica> {
        let mut spec = Spec::this_executable()?
            .name(format!("replica {name}"))
            .arg("counter")
            .arg("--data-dir")
            .arg(dir)
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .env("POD_NAME", name)
            .env("DRAIN_DELAY_MS", "0")
            .env("RUST_LOG", "info");
        for key in CLEARED_ENV {
            spec = spec.env_remove(key);
        }
        let process = spec.spawn()?;
        let port = process.wait_port(START_TIMEOUT).await?;
        let url = format!("http://127.0.0.1:{port}/ready");
        process.wait_http_ok(&url, START_TIMEOUT).await?;
        Ok(Replica {
            name: name.to_owned(),
            dir: dir.to_owned(),
            port,
            process: Some(process),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Process::pid)
    }

    /// `kill -9`: no chance to finish anything.
    pub fn kill9(&mut self) {
        if let Some(process) = self.process.take() {
            process.kill();
        }
    }

    /// SIGTERM, then wait for the graceful exit (SIGKILL after 10 s).
    pub async fn stop(&mut self) {
        if let Some(process) = self.process.take() {
            process
                .stop(Signal::Terminate, Duration::from_secs(10))
                .await;
        }
    }
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

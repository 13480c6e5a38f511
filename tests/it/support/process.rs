//! Runs the real `statelab` binary as a child process and finds the port it bound from its
//! "listening" log line, so every test can use port 0.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_statelab")
}

pub struct ServiceBuilder {
    command: Command,
}

impl ServiceBuilder {
    pub fn new(args: &[&str]) -> ServiceBuilder {
        let mut command = Command::new(binary());
        command
            .args(args)
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .env("RUST_LOG", "info")
            .env("LOG_FORMAT", "json")
            .env("DRAIN_DELAY_MS", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if !args.iter().any(|a| a.starts_with("--listen")) {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        ServiceBuilder { command }
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<std::path::Path>) -> Self {
        self.command.current_dir(dir);
        self
    }

    /// Starts the process and waits for its listening line (not for readiness).
    pub fn start(mut self) -> Service {
        let mut child = self.command.spawn().expect("statelab binary starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let logs = Arc::new(Mutex::new(Vec::<String>::new()));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(port) = listening_port(&line) {
                    let _ = port_tx.send(port);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let port = match port_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "statelab did not report a listening port; its log:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
        };
        Service {
            child: Some(child),
            port,
            logs,
        }
    }
}

fn listening_port(line: &str) -> Option<u16> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
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

/// A running `statelab` process; killed (by its PID) when dropped.
pub struct Service {
    child: Option<Child>,
    pub port: u16,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Service {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Polls `path` until it answers 200, or panics with the process's log.
    pub async fn wait_for(&self, path: &str, within: Duration) {
        let client = super::http();
        let deadline = Instant::now() + within;
        loop {
            if let Ok(response) = client.get(self.url(path)).send().await
                && response.status().is_success()
            {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{path} did not answer 200 in {within:?}; log:\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn wait_ready(&self) {
        self.wait_for("/readyz", Duration::from_secs(30)).await;
    }

    pub fn signal(&self, signal: i32) {
        if let Some(child) = &self.child {
            // SAFETY: kill(2) on the PID of a child this test started and has not reaped.
            unsafe {
                libc::kill(child.id() as i32, signal);
            }
        }
    }

    /// Waits for the process to exit and returns its exit code (None if killed by a signal).
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let mut child = self.child.take().expect("process still owned");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().expect("wait works") {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("process did not exit in {within:?}; log:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -9`, and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

//! Runs the real `statelab` binary as a child process (through the demos' supervisor) and
//! finds the port it bound from its "listening" log line, so every test can use port 0.

use std::time::Duration;

use statelab::demo::process::{Process, Spec};
use statelab::sys::Signal;

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_statelab")
}

pub struct ServiceBuilder {
    spec: Spec,
}

impl ServiceBuilder {
    pub fn new(args: &[&str]) -> ServiceBuilder {
        let mut spec = Spec::new(binary())
            .name(format!("statelab {}", args.first().copied().unwrap_or("")))
            .args(args)
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .env("RUST_LOG", "info")
            .env("LOG_FORMAT", "json")
            .env("DRAIN_DELAY_MS", "0");
        if !args.iter().any(|a| a.starts_with("--listen")) {
            spec = spec.args(["--listen", "127.0.0.1:0"]);
        }
        ServiceBuilder { spec }
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.spec = self.spec.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: &str) -> Self {
        self.spec = self.spec.env_remove(key);
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<std::path::Path>) -> Self {
        self.spec = self.spec.current_dir(dir);
        self
    }

    /// Starts the process and waits for its listening line (not for readiness).
    pub fn start(self) -> Service {
        let process = self.spec.spawn().expect("statelab binary starts");
        let port = process
            .wait_port_blocking(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{e:#}"));
        Service { process, port }
    }
}

/// A running `statelab` process; killed (by its PID) when dropped.
pub struct Service {
    process: Process,
    pub port: u16,
}

impl Service {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn logs(&self) -> String {
        self.process.logs()
    }

    /// Polls `path` until it answers 200, or panics with the process's log.
    pub async fn wait_for(&self, path: &str, within: Duration) {
        let url = self.url(path);
        if let Err(error) = self.process.wait_http_ok(&url, within).await {
            panic!("{error:#}\nfull log:\n{}", self.logs());
        }
    }

    pub async fn wait_ready(&self) {
        self.wait_for("/readyz", Duration::from_secs(30)).await;
    }

    pub fn signal(&self, signal: Signal) {
        self.process
            .signal(signal)
            .expect("the process can be signalled");
    }

    /// Waits for the process to exit and returns its exit code (None if killed by a signal).
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        match self.process.wait_exit_blocking(within) {
            Some(status) => status.code(),
            None => {
                self.process.kill();
                panic!("process did not exit in {within:?}; log:\n{}", self.logs());
            }
        }
    }

    /// `kill -9`, and reap it.
    pub fn kill(&mut self) {
        self.process.kill();
    }
}

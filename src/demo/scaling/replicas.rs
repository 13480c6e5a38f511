//! Real guestbook replicas as child processes of this binary, and the one place that knows
//! every child still running, so a normal end, an error and Ctrl-C all stop them by PID.
//!
//! Children run in their own process group (a Ctrl-C typed in the terminal reaches only the
//! demo, which then stops them in order) and with `PR_SET_PDEATHSIG`, so even a demo killed
//! with SIGKILL takes its replicas with it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// Every child this demo started and has not reaped yet, by PID.
#[derive(Clone, Default)]
pub struct Supervisor {
    children: Arc<Mutex<HashMap<u32, Child>>>,
}

/// One running replica.
#[derive(Debug, Clone)]
pub struct Replica {
    pub name: String,
    pub pid: u32,
    pub port: u16,
    pub log: PathBuf,
}

impl Replica {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// How to start one guestbook replica.
pub struct Launch<'a> {
    pub name: String,
    /// Arguments after `guestbook` (storage flags)
    pub args: Vec<String>,
    /// `DATABASE_URL` for the replica (kept off its command line); removed when `None`
    pub database_url: Option<String>,
    /// Working directory (no stray `.env` is read from elsewhere) and home of the log file
    pub dir: &'a Path,
}

const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_GRACE: Duration = Duration::from_secs(5);

impl Supervisor {
    pub fn new() -> Supervisor {
        Supervisor::default()
    }

    /// PIDs of the children still running (or exited but not yet reaped).
    pub fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.lock().keys().copied().collect();
        pids.sort_unstable();
        pids
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Child>> {
        self.children
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a replica on a free loopback port and waits until it answers /readyz.
    pub async fn start(&self, launch: Launch<'_>) -> anyhow::Result<Replica> {
        let exe = std::env::current_exe().context("cannot find this program's own path")?;
        let log_path = launch.dir.join(format!("{}.log", launch.name));
        let mut command = Command::new(exe);
        command
            .arg("guestbook")
            .args([
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--drain-delay-ms",
                "0",
            ])
            .args(["--pod-name", &launch.name])
            .args(&launch.args)
            .current_dir(launch.dir)
            .env("RUST_LOG", "info")
            .env_remove("DATABASE_URL")
            .env_remove("DB_POOL_SIZE")
            .env_remove("REQUEST_TIMEOUT_MS")
            .env_remove("SHUTDOWN_TIMEOUT_MS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        if let Some(url) = &launch.database_url {
            command.env("DATABASE_URL", url);
        }
        // SAFETY: prctl is async-signal-safe and touches only the new process.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let log_file = tokio::fs::File::create(&log_path)
            .await
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let (pid, stderr) = {
            let mut children = self.lock();
            let mut child = command
                .spawn()
                .context("cannot start a guestbook replica")?;
            let pid = child.id().context("the replica exited at once")?;
            let stderr = child.stderr.take().context("stderr is piped")?;
            children.insert(pid, child);
            (pid, stderr)
        };
        let (port_tx, port_rx) = tokio::sync::oneshot::channel::<u16>();
        tokio::spawn(copy_log(stderr, log_file, port_tx));
        let port = match tokio::time::timeout(START_TIMEOUT, port_rx).await {
            Ok(Ok(port)) => port,
            _ => {
                self.stop(&[pid]).await;
                bail!(
                    "replica {} did not report a listening port; its log ends with:\n{}",
                    launch.name,
                    tail(&log_path, 15)
                );
            }
        };
        let replica = Replica {
            name: launch.name,
            pid,
            port,
            log: log_path,
        };
        if let Err(error) = self.wait_ready(&replica).await {
            self.stop(&[pid]).await;
            return Err(error);
        }
        Ok(replica)
    }

    async fn wait_ready(&self, replica: &Replica) -> anyhow::Result<()> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .no_proxy()
            .build()?;
        let url = format!("{}/readyz", replica.url());
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(response) = client.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            let exited = self
                .lock()
                .get_mut(&replica.pid)
                .map(|c| matches!(c.try_wait(), Ok(Some(_))))
                .unwrap_or(true);
            if exited || Instant::now() > deadline {
                bail!(
                    "replica {} {}; its log ends with:\n{}",
                    replica.name,
                    if exited {
                        "exited"
                    } else {
                        "never became ready"
                    },
                    tail(&replica.log, 15)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM (graceful: the replicas finish in-flight requests), then SIGKILL after a grace
    /// period; returns once every one of them is reaped.
    pub async fn stop(&self, pids: &[u32]) {
        {
            let children = self.lock();
            for pid in pids {
                if children.contains_key(pid) {
                    signal(*pid, libc::SIGTERM);
                }
            }
        }
        self.reap(pids, STOP_GRACE).await;
    }

    /// SIGKILL to every child, then reap them all. For Ctrl-C and errors.
    pub async fn kill_all(&self) {
        let pids = {
            let mut children = self.lock();
            for child in children.values_mut() {
                let _ = child.start_kill();
            }
            children.keys().copied().collect::<Vec<_>>()
        };
        self.reap(&pids, STOP_GRACE).await;
    }

    /// Waits for `pids` to exit, killing those still alive after `grace`.
    async fn reap(&self, pids: &[u32], grace: Duration) {
        let started = Instant::now();
        let mut killed = false;
        loop {
            let remaining = {
                let mut children = self.lock();
                for pid in pids {
                    if let Some(child) = children.get_mut(pid)
                        && !matches!(child.try_wait(), Ok(None))
                    {
                        children.remove(pid);
                    }
                }
                if !killed && started.elapsed() > grace {
                    for pid in pids {
                        if let Some(child) = children.get_mut(pid) {
                            let _ = child.start_kill();
                        }
                    }
                    killed = true;
                }
                pids.iter().filter(|p| children.contains_key(p)).count()
            };
            if remaining == 0 || started.elapsed() > grace * 3 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Supervisor {
    /// The last handle kills and reaps whatever is left (an error path, a panic).
    fn drop(&mut self) {
        if Arc::strong_count(&self.children) != 1 {
            return;
        }
        let mut children = self.lock();
        for child in children.values_mut() {
            let _ = child.start_kill();
        }
        let deadline = Instant::now() + STOP_GRACE;
        while !children.is_empty() && Instant::now() < deadline {
            children.retain(|_, child| matches!(child.try_wait(), Ok(None)));
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn signal(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) on the PID of a child we started and have not reaped yet.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// Copies the child's log lines to its log file and reports the port of its "listening" line.
async fn copy_log(
    stderr: tokio::process::ChildStderr,
    mut file: tokio::fs::File,
    port_tx: tokio::sync::oneshot::Sender<u16>,
) {
    let mut port_tx = Some(port_tx);
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if port_tx.is_some()
            && let Some(port) = listening_port(&line)
            && let Some(tx) = port_tx.take()
        {
            let _ = tx.send(port);
        }
        let _ = file.write_all(line.as_bytes()).await;
        let _ = file.write_all(b"\n").await;
    }
    let _ = file.flush().await;
}

/// The port in `{"message":"listening","local":"127.0.0.1:PORT"}`.
pub fn listening_port(line: &str) -> Option<u16> {
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

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_port_in_the_listening_line() {
        assert_eq!(
            listening_port(
                r#"{"timestamp":"x","level":"INFO","message":"listening","local":"127.0.0.1:41234"}"#
            ),
            Some(41234)
        );
        assert_eq!(listening_port(r#"{"message":"starting"}"#), None);
        assert_eq!(listening_port("not json"), None);
    }
}

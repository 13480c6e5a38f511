//! Child processes of the demos and of the integration tests: started with a clean, explicit
//! environment, their output captured, their port read from their own "listening" log line
//! (children bind port 0, so no port is ever guessed), signalled by PID, and never left
//! behind: a dropped [`Process`] is stopped and reaped.
//!
//! Every child runs in its own process group (a Ctrl-C typed in the terminal reaches only the
//! parent, which then stops its children in order) and with `PR_SET_PDEATHSIG`, so even a
//! parent killed with SIGKILL takes its children with it. The kernel ties that signal to the
//! spawning thread: spawn from a thread that lives as long as the child should.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, bail};

use super::poll;
use crate::sys::{self, Signal};

/// Where a child's output (stdout and stderr, line by line) goes.
#[derive(Debug, Clone)]
pub enum Logs {
    /// Kept in memory, every line: [`Process::logs`].
    Memory,
    /// Appended to a file; the last lines are also kept for error messages.
    File(PathBuf),
    /// Not read at all (and so no port can be found in it).
    Discard,
}

/// Lines kept in memory when the log goes to a file.
const TAIL_LINES: usize = 40;

/// The port in a statelab server's "listening" line, JSON or `--log-format pretty`.
pub fn listening_port(line: &str) -> Option<u16> {
    let local = match serde_json::from_str::<serde_json::Value>(line) {
        Ok(value) if value.get("message")?.as_str()? == "listening" => {
            value.get("local")?.as_str()?.to_owned()
        }
        Ok(_) => return None,
        // `--log-format pretty`: "… INFO statelab::server: listening local=127.0.0.1:8000".
        Err(_) => line
            .split_once(": listening local=")?
            .1
            .split_whitespace()
            .next()?
            .to_owned(),
    };
    local.rsplit(':').next()?.parse().ok()
}

/// How to start one child.
pub struct Spec {
    name: String,
    command: Command,
    logs: Logs,
    port_from: fn(&str) -> Option<u16>,
    on_drop: Signal,
    drop_grace: Duration,
}

impl Spec {
    /// `program` with no arguments; stdin is closed, the output goes to memory.
    pub fn new(program: impl AsRef<OsStr>) -> Spec {
        let name = Path::new(program.as_ref())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Spec {
            name,
            command: Command::new(program),
            logs: Logs::Memory,
            port_from: listening_port,
            on_drop: Signal::Kill,
            drop_grace: Duration::from_secs(5),
        }
    }

    /// This very executable (a demo starting replicas of statelab's own services).
    pub fn this_executable() -> anyhow::Result<Spec> {
        let exe = std::env::current_exe().context("cannot find this program's own path")?;
        Ok(Spec::new(exe))
    }

    /// The name used in error messages (default: the program's file name).
    pub fn name(mut self, name: impl Into<String>) -> Spec {
        self.name = name.into();
        self
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Spec {
        self.command.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Spec
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command.args(args);
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Spec {
        self.command.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Spec {
        self.command.env_remove(key);
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Spec {
        self.command.current_dir(dir);
        self
    }

    /// Runs the child as this user and group (for a parent running as root).
    pub fn user(mut self, uid: u32, gid: u32) -> Spec {
        self.command.uid(uid).gid(gid);
        self
    }

    pub fn logs(mut self, logs: Logs) -> Spec {
        self.logs = logs;
        self
    }

    /// How to find the port in a line of output (default: [`listening_port`]).
    pub fn port_from(mut self, parse: fn(&str) -> Option<u16>) -> Spec {
        self.port_from = parse;
        self
    }

    /// What a drop sends first (default SIGKILL), and how long it then waits before SIGKILL.
    pub fn stop_on_drop(mut self, signal: Signal, grace: Duration) -> Spec {
        self.on_drop = signal;
        self.drop_grace = grace;
        self
    }

    pub fn spawn(mut self) -> anyhow::Result<Process> {
        let capture = !matches!(self.logs, Logs::Discard);
        let piped = || {
            if capture {
                Stdio::piped()
            } else {
                Stdio::null()
            }
        };
        self.command
            .stdin(Stdio::null())
            .stdout(piped())
            .stderr(piped())
            .process_group(0);
        sys::die_with_parent(&mut self.command);
        let file = match &self.logs {
            Logs::File(path) => Some(Arc::new(Mutex::new(
                File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
            ))),
            _ => None,
        };
        let mut child = self
            .command
            .spawn()
            .with_context(|| format!("cannot start {}", self.name))?;
        let output = Arc::new(Mutex::new(Output {
            lines: VecDeque::new(),
            keep: if file.is_some() {
                TAIL_LINES
            } else {
                usize::MAX
            },
            port: None,
            open: 0,
        }));
        let streams: [Option<Box<dyn Read + Send>>; 2] = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ];
        for stream in streams.into_iter().flatten() {
            output.lock().unwrap_or_else(|p| p.into_inner()).open += 1;
            let (output, file, port_from) = (output.clone(), file.clone(), self.port_from);
            std::thread::spawn(move || copy_lines(stream, &output, file.as_deref(), port_from));
        }
        Ok(Process {
            name: self.name,
            pid: child.id(),
            state: Mutex::new(State {
                child: Some(child),
                status: None,
            }),
            output,
            on_drop: self.on_drop,
            drop_grace: self.drop_grace,
        })
    }
}

struct Output {
    lines: VecDeque<String>,
    keep: usize,
    port: Option<u16>,
    /// Output streams still being read
    open: usize,
}

fn copy_lines(
    stream: Box<dyn Read + Send>,
    output: &Mutex<Output>,
    file: Option<&Mutex<File>>,
    port_from: fn(&str) -> Option<u16>,
) {
    let mut reader = BufReader::new(stream);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        if matches!(reader.read_until(b'\n', &mut buffer), Ok(0) | Err(_)) {
            output.lock().unwrap_or_else(|p| p.into_inner()).open -= 1;
            return;
        }
        let line = String::from_utf8_lossy(&buffer).trim_end().to_owned();
        if let Some(file) = file {
            let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
            let _ = writeln!(file, "{line}");
        }
        let mut output = output.lock().unwrap_or_else(|p| p.into_inner());
        if output.port.is_none() {
            output.port = port_from(&line);
        }
        if output.lines.len() == output.keep {
            output.lines.pop_front();
        }
        output.lines.push_back(line);
    }
}

struct State {
    /// `None` once reaped: from then on its PID may belong to someone else.
    child: Option<Child>,
    status: Option<ExitStatus>,
}

/// A running child. Dropping it stops it (see [`Spec::stop_on_drop`]) and reaps it.
pub struct Process {
    name: String,
    pid: u32,
    state: Mutex<State>,
    output: Arc<Mutex<Output>>,
    on_drop: Signal,
    drop_grace: Duration,
}

impl Process {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The port found in the output so far.
    pub fn port(&self) -> Option<u16> {
        self.output().port
    }

    /// Every line kept so far.
    pub fn logs(&self) -> String {
        let output = self.output();
        output
            .lines
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The last `lines` lines of output.
    pub fn log_tail(&self, lines: usize) -> String {
        let output = self.output();
        let skip = output.lines.len().saturating_sub(lines);
        output
            .lines
            .iter()
            .skip(skip)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn output(&self) -> MutexGuard<'_, Output> {
        self.output.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `signal` unless the child has already been reaped.
    pub fn signal(&self, signal: Signal) -> std::io::Result<()> {
        // Holding the lock: the child cannot be reaped (and its PID reused) meanwhile.
        let state = self.state();
        match state.child {
            Some(_) => sys::kill(self.pid, signal),
            None => Ok(()),
        }
    }

    /// The exit status, once the child has exited (it is reaped then).
    pub fn try_exit(&self) -> Option<ExitStatus> {
        let mut state = self.state();
        if let Some(child) = &mut state.child
            && let Ok(Some(status)) = child.try_wait()
        {
            state.status = Some(status);
            state.child = None;
        }
        state.status
    }

    pub fn is_running(&self) -> bool {
        self.try_exit().is_none()
    }

    /// The last `lines` lines, after giving the output of a child that has exited a moment
    /// to arrive (its last lines are often the reason it exited).
    fn final_words(&self, lines: usize) -> String {
        if self.state().status.is_some() {
            poll::until_blocking(Duration::from_secs(1), || {
                (self.output().open == 0).then_some(())
            });
        }
        self.log_tail(lines)
    }

    fn no_port(&self, what: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "{} {what} before reporting a listening port; its output ends with:\n{}",
            self.name,
            self.final_words(15)
        )
    }

    /// Waits until the child reports its port; fails if it exits first or `within` passes.
    pub async fn wait_port(&self, within: Duration) -> anyhow::Result<u16> {
        let found = poll::until(within, || {
            let seen = self.port_or_exit();
            async move { seen }
        })
        .await;
        self.port_result(found)
    }

    /// [`Process::wait_port`] for code without an async runtime.
    pub fn wait_port_blocking(&self, within: Duration) -> anyhow::Result<u16> {
        let found = poll::until_blocking(within, || self.port_or_exit());
        self.port_result(found)
    }

    fn port_or_exit(&self) -> Option<Option<u16>> {
        match self.port() {
            Some(port) => Some(Some(port)),
            None if self.try_exit().is_some() => Some(None),
            None => None,
        }
    }

    fn port_result(&self, found: Option<Option<u16>>) -> anyhow::Result<u16> {
        match found {
            Some(Some(port)) => Ok(port),
            Some(None) => Err(self.no_port("exited")),
            None => Err(self.no_port("timed out")),
        }
    }

    /// Waits until `url` answers 2xx; fails if the child exits first or `within` passes.
    pub async fn wait_http_ok(&self, url: &str, within: Duration) -> anyhow::Result<()> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .no_proxy()
            .build()?;
        let answered = poll::until(within, || {
            let exited = self.try_exit().is_some();
            let request = client.get(url).send();
            async move {
                if exited {
                    return Some(false);
                }
                match request.await {
                    Ok(response) if response.status().is_success() => Some(true),
                    _ => None,
                }
            }
        })
        .await;
        match answered {
            Some(true) => Ok(()),
            Some(false) => bail!(
                "{} exited before {url} answered; its output ends with:\n{}",
                self.name,
                self.final_words(15)
            ),
            None => bail!(
                "{url} did not answer 2xx within {within:?}; {}'s output ends with:\n{}",
                self.name,
                self.log_tail(15)
            ),
        }
    }

    /// Waits for the child to exit on its own; `None` if it is still running after `within`.
    pub async fn wait_exit(&self, within: Duration) -> Option<ExitStatus> {
        poll::until(within, || {
            let status = self.try_exit();
            async move { status }
        })
        .await
    }

    /// [`Process::wait_exit`] for code without an async runtime.
    pub fn wait_exit_blocking(&self, within: Duration) -> Option<ExitStatus> {
        poll::until_blocking(within, || self.try_exit())
    }

    /// Sends `signal`, waits up to `grace` for the exit, then SIGKILL; returns once reaped.
    pub async fn stop(&self, signal: Signal, grace: Duration) -> Option<ExitStatus> {
        if self.is_running() {
            let _ = self.signal(signal);
            if let Some(status) = self.wait_exit(grace).await {
                return Some(status);
            }
        }
        self.kill()
    }

    /// [`Process::stop`] for code without an async runtime.
    pub fn stop_blocking(&self, signal: Signal, grace: Duration) -> Option<ExitStatus> {
        if self.is_running() {
            let _ = self.signal(signal);
            if let Some(status) = self.wait_exit_blocking(grace) {
                return Some(status);
            }
        }
        self.kill()
    }

    /// `kill -9` and reap: the child gets no chance to finish anything.
    pub fn kill(&self) -> Option<ExitStatus> {
        let child = self.state().child.take();
        if let Some(mut child) = child {
            let _ = child.kill();
            let status = child.wait().ok();
            self.state().status = status;
        }
        self.state().status
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.on_drop == Signal::Kill {
            self.kill();
        } else {
            self.stop_blocking(self.on_drop, self.drop_grace);
        }
    }
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
        assert_eq!(
            listening_port(
                "2026-12-01T21:22:42.758113Z  INFO statelab::server: listening local=127.0.0.1:33317"
            ),
            Some(33317)
        );
    }

    #[test]
    fn reads_the_port_from_the_output_and_stops_by_pid() {
        let child = Spec::new("sh")
            .args([
                "-c",
                r#"echo '{"message":"listening","local":"127.0.0.1:4321"}' >&2; exec sleep 30"#,
            ])
            .spawn()
            .unwrap();
        assert_eq!(
            child.wait_port_blocking(Duration::from_secs(10)).unwrap(),
            4321
        );
        assert!(child.is_running());
        let status = child.stop_blocking(Signal::Terminate, Duration::from_secs(5));
        assert!(status.is_some_and(|s| !s.success()));
        assert!(
            child.signal(Signal::Kill).is_ok(),
            "a reaped child is never signalled"
        );
    }

    #[test]
    fn a_child_that_exits_without_a_port_is_an_error_with_its_output() {
        let child = Spec::new("sh")
            .args(["-c", "echo broken config; exit 3"])
            .spawn()
            .unwrap();
        let error = child
            .wait_port_blocking(Duration::from_secs(10))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("exited") && error.contains("broken config"),
            "{error}"
        );
        assert_eq!(child.try_exit().and_then(|s| s.code()), Some(3));
    }
}

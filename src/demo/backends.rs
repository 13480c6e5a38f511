//! Private, throwaway backends for the demos and the integration tests: a PostgreSQL cluster
//! and a redis-server, each in a temporary directory of its own, reachable only through a
//! Unix socket there, stopped by PID (and the directory removed) when dropped.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

use super::poll;
use super::process::{Process, Spec};
use crate::sys::{self, Signal};

const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_GRACE: Duration = Duration::from_secs(15);

/// `name` on PATH, or among PostgreSQL's server programs (outside PATH on Debian).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = entries.flatten().map(|e| e.path().join("bin")).collect();
        versions.sort();
        dirs.extend(versions.into_iter().rev());
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// [`find_program`], or an error naming the Debian package to install.
pub fn require_program(name: &str, package: &str) -> anyhow::Result<PathBuf> {
    find_program(name).with_context(|| {
        format!(
            "`{name}` is not installed; install the Debian package `{package}` \
             (apt-get install {package})"
        )
    })
}

/// Whether PostgreSQL flushes to disk. Tests trade durability for speed; a demo that
/// restarts its backend keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    Durable,
    NoSync,
}

/// A PostgreSQL cluster made by `initdb` in a temporary directory, listening only on a Unix
/// socket there. PostgreSQL refuses to run as root: a root parent runs it as the `postgres`
/// system user.
pub struct Postgres {
    // Declared first: dropped (fast shutdown) before the directory is removed.
    server: Option<Process>,
    dir: tempfile::TempDir,
    owner: Option<(u32, u32)>,
    durability: Durability,
}

impl Postgres {
    pub fn start(durability: Durability) -> anyhow::Result<Postgres> {
        let initdb = require_program("initdb", "postgresql")?;
        let owner = server_user()?;
        let dir = tempfile::Builder::new().prefix("statelab-pg").tempdir()?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .context("cannot hand the cluster's directory to the postgres user")?;
        }
        let mut spec = Spec::new(initdb)
            .arg("-D")
            .arg(dir.path().join("data"))
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8"]);
        if durability == Durability::NoSync {
            spec = spec.arg("--no-sync");
        }
        if let Some((uid, gid)) = owner {
            spec = spec.user(uid, gid);
        }
        let initdb = spec.spawn()?;
        let status = initdb
            .wait_exit_blocking(Duration::from_secs(120))
            .context("initdb did not finish within 2 minutes")?;
        if !status.success() {
            bail!("initdb failed ({status}):\n{}", initdb.log_tail(20));
        }
        let mut cluster = Postgres {
            server: None,
            dir,
            owner,
            durability,
        };
        cluster.start_again()?;
        Ok(cluster)
    }

    /// The directory holding the socket (`host=` in a URL).
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A URL for `database`, as user `postgres` (trusted, no password) over the socket.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@localhost/{database}?host={}",
            self.socket_dir().display()
        )
    }

    /// The postmaster's PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().map(Process::pid)
    }

    /// Starts the server on the existing data directory and waits until it accepts
    /// connections.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        if self.server.is_some() {
            bail!("PostgreSQL is already running");
        }
        let postgres = require_program("postgres", "postgresql")?;
        let fsync = match self.durability {
            Durability::Durable => "fsync=on",
            Durability::NoSync => "fsync=off",
        };
        let mut spec = Spec::new(postgres)
            .name("postgres")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-k")
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=", "-c", fsync])
            .args(["-c", "max_connections=200", "-c", "shared_buffers=64MB"])
            .stop_on_drop(Signal::Interrupt, STOP_GRACE);
        if let Some((uid, gid)) = self.owner {
            spec = spec.user(uid, gid);
        }
        let server = spec.spawn()?;
        // postmaster.pid's eighth line says "ready" once connections are accepted.
        let pid_file = self.data_dir().join("postmaster.pid");
        let ready = poll::until_blocking(START_TIMEOUT, || {
            if !server.is_running() {
                return Some(false);
            }
            let text = std::fs::read_to_string(&pid_file).ok()?;
            (text.lines().nth(7).map(str::trim) == Some("ready")).then_some(true)
        });
        match ready {
            Some(true) => {
                self.server = Some(server);
                Ok(())
            }
            Some(false) => bail!("postgres exited at start:\n{}", server.log_tail(20)),
            None => bail!(
                "postgres did not accept connections within {START_TIMEOUT:?}:\n{}",
                server.log_tail(20)
            ),
        }
    }

    /// Fast shutdown (SIGINT), as when the database pod goes away; returns once it exited.
    pub fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop_blocking(Signal::Interrupt, STOP_GRACE);
        }
    }

    /// Stops and starts again on the same files.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.start_again()
    }
}

/// Who runs the server: `None` for "this user", the `postgres` user's ids when root.
fn server_user() -> anyhow::Result<Option<(u32, u32)>> {
    if !sys::is_root() {
        return Ok(None);
    }
    match sys::user_by_name("postgres").context("cannot look up the postgres user")? {
        Some(user) => Ok(Some((user.uid, user.gid))),
        None => bail!(
            "running as root needs a `postgres` system user to start PostgreSQL \
             (the Debian package `postgresql` creates it)"
        ),
    }
}

/// A redis-server on a Unix socket in a temporary directory (`--port 0`: no TCP at all),
/// with AOF (`appendfsync everysec`) on or off.
pub struct Redis {
    // Declared first: stopped before the directory is removed.
    server: Option<Process>,
    dir: tempfile::TempDir,
    appendonly: bool,
}

impl Redis {
    pub fn start(appendonly: bool) -> anyhow::Result<Redis> {
        let dir = tempfile::Builder::new()
            .prefix("statelab-redis")
            .tempdir()?;
        let mut redis = Redis {
            server: None,
            dir,
            appendonly,
        };
        redis.start_again()?;
        Ok(redis)
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// A URL the `redis` crate understands.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    /// Where the AOF files and `redis.log` are.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().map(Process::pid)
    }

    /// Starts on the directory (and so the AOF files) already there; returns once it answers
    /// PING.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        if self.server.is_some() {
            bail!("redis-server is already running");
        }
        let program = require_program("redis-server", "redis-server")?;
        let socket = self.socket();
        let _ = std::fs::remove_file(&socket);
        let server = Spec::new(program)
            .args(["--port", "0", "--unixsocket"])
            .arg(&socket)
            .args(["--unixsocketperm", "700", "--dir"])
            .arg(self.dir.path())
            .args(["--save", "", "--daemonize", "no", "--logfile", "redis.log"])
            .args(["--appendonly", if self.appendonly { "yes" } else { "no" }])
            .args(["--appendfsync", "everysec"])
            .stop_on_drop(Signal::Kill, STOP_GRACE)
            .spawn()?;
        let ready = poll::until_blocking(START_TIMEOUT, || {
            if !server.is_running() {
                return Some(false);
            }
            pong(&socket).then_some(true)
        });
        if ready != Some(true) {
            let log =
                std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "redis-server did not answer on {}:\n{}\n{}",
                socket.display(),
                server.log_tail(15),
                tail.join("\n")
            );
        }
        self.server = Some(server);
        Ok(())
    }

    /// The way a pod deletion stops it: SIGTERM (it writes its AOF and exits).
    pub fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop_blocking(Signal::Terminate, STOP_GRACE);
        }
    }

    /// `kill -9`: no chance to flush; AOF with everysec loses at most about a second.
    pub fn kill(&mut self) {
        if let Some(server) = self.server.take() {
            server.kill();
        }
    }

    /// Stops (SIGTERM) and starts again on the same files.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.start_again()
    }
}

/// True once the server answers PING (not while it is still loading its AOF).
fn pong(socket: &Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut answer = [0u8; 7];
    stream.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n"
}

//! A private redis-server per test, on a Unix socket in a temporary directory.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestRedis {
    dir: tempfile::TempDir,
    child: Option<Child>,
    appendonly: bool,
}

impl TestRedis {
    /// Starts redis-server with AOF (`appendfsync everysec`) on or off.
    pub fn start(appendonly: bool) -> TestRedis {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut redis = TestRedis {
            dir,
            child: None,
            appendonly,
        };
        redis.spawn();
        redis
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// A URL the `redis` crate understands.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    fn spawn(&mut self) {
        let program = super::require_program("redis-server", "redis-server");
        let socket = self.socket();
        let _ = std::fs::remove_file(&socket);
        let child = Command::new(program)
            .args(["--port", "0", "--unixsocket"])
            .arg(&socket)
            .args(["--unixsocketperm", "700", "--dir"])
            .arg(self.dir.path())
            .args(["--save", "", "--daemonize", "no", "--logfile", "redis.log"])
            .args(["--appendonly", if self.appendonly { "yes" } else { "no" }])
            .args(["--appendfsync", "everysec"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not open {socket:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server the way a pod deletion does (SIGTERM: it flushes AOF and exits).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child's PID.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            let _ = child.wait();
        }
    }

    /// `kill -9`: no chance to flush; AOF with everysec loses at most about a second.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same directory (and so the same AOF files).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "redis-server is still running");
        self.spawn();
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

//! PostgreSQL for tests. With `TEST_DATABASE_URL` set, each test gets its own database on that
//! server; otherwise each test starts a private throwaway cluster from the system's `initdb`
//! and `postgres` (Unix socket only). Tests that stop and start PostgreSQL always use a
//! private cluster, never a shared server.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::Connection;

/// A database of this test's own; dropped (best effort) when the test ends.
pub struct TestDatabase {
    pub url: String,
    admin_url: String,
    name: String,
    cluster: Option<PrivateCluster>,
}

impl TestDatabase {
    pub async fn create() -> TestDatabase {
        match std::env::var("TEST_DATABASE_URL") {
            Ok(admin_url) if !admin_url.is_empty() => {
                let name = format!("statelab_test_{}", uuid::Uuid::new_v4().simple());
                create_database(&admin_url, &name).await;
                let url = with_database(&admin_url, &name);
                TestDatabase {
                    url,
                    admin_url,
                    name,
                    cluster: None,
                }
            }
            _ => {
                let cluster = PrivateCluster::start();
                let admin_url = cluster.url("postgres");
                let name = "statelab_test".to_owned();
                create_database(&admin_url, &name).await;
                TestDatabase {
                    url: cluster.url(&name),
                    admin_url,
                    name,
                    cluster: Some(cluster),
                }
            }
        }
    }

    /// A second database beside this one (same server), e.g. for a second service.
    pub async fn sibling(&self, suffix: &str) -> String {
        let name = format!("{}_{suffix}", self.name);
        create_database(&self.admin_url, &name).await;
        with_database(&self.admin_url, &name)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.cluster.is_some() {
            return; // the whole cluster goes away with its directory
        }
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

async fn create_database(admin_url: &str, name: &str) {
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to PostgreSQL for tests: {e}"));
    let sql = format!("CREATE DATABASE \"{name}\"");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .expect("CREATE DATABASE works");
}

/// Replaces the database name in a postgres:// URL, keeping any query string.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let authority_end = base[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..authority_end], name);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A PostgreSQL cluster in a temporary directory, listening only on a Unix socket there.
pub struct PrivateCluster {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl PrivateCluster {
    pub fn start() -> PrivateCluster {
        let initdb = super::require_program("initdb", "postgresql");
        let dir = tempfile::Builder::new()
            .prefix("statelab-pg")
            .tempdir()
            .expect("temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let owner = server_user();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown works");
        }
        let data = dir.path().join("data");
        let mut command = Command::new(initdb);
        command
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        as_server_user(&mut command, owner);
        let output = command.output().expect("initdb runs");
        assert!(
            output.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut cluster = PrivateCluster { dir, child: None };
        cluster.start_server();
        cluster
    }

    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@localhost/{database}?host={}",
            self.socket_dir().display()
        )
    }

    fn start_server(&mut self) {
        let postgres = super::require_program("postgres", "postgresql");
        let mut command = Command::new(postgres);
        command
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-k")
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=", "-c", "fsync=off"])
            .args(["-c", "max_connections=200", "-c", "shared_buffers=64MB"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        as_server_user(&mut command, server_user());
        self.child = Some(command.spawn().expect("postgres starts"));
        let socket = self.dir.path().join(".s.PGSQL.5432");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !socket.exists() {
            assert!(
                Instant::now() < deadline,
                "postgres did not open {socket:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    /// Fast shutdown (SIGINT), as when the database pod goes away.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child's PID.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGINT);
            }
            let _ = child.wait();
        }
    }

    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "postgres is still running");
        self.start_server();
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// PostgreSQL refuses to run as root: when the tests run as root, the server runs as the
/// `postgres` system user.
fn server_user() -> Option<(u32, u32)> {
    // SAFETY: getuid and getpwnam are plain libc calls; the returned record is read at once.
    unsafe {
        if libc::getuid() != 0 {
            return None;
        }
        let name = std::ffi::CString::new("postgres").unwrap();
        let record = libc::getpwnam(name.as_ptr());
        if record.is_null() {
            panic!("running as root needs a `postgres` system user to start PostgreSQL");
        }
        Some(((*record).pw_uid, (*record).pw_gid))
    }
}

fn as_server_user(command: &mut Command, owner: Option<(u32, u32)>) {
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid);
    }
}

//! Helpers shared by the integration tests: real `statelab` processes, a real PostgreSQL
//! database and a real redis-server, each stopped by PID when the test ends.

#![allow(dead_code, unused_imports)]

pub mod postgres;
pub mod process;
pub mod redis;

pub use postgres::TestDatabase;
pub use process::{Service, ServiceBuilder};
pub use redis::TestRedis;

/// An HTTP client that opens a new connection per request, as a Service would spread them.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(std::time::Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client builds")
}

/// Fails with a message saying what to install when a program the tests need is missing.
pub fn require_program(name: &str, package: &str) -> std::path::PathBuf {
    find_program(name).unwrap_or_else(|| {
        panic!("`{name}` is not installed; install the Debian package `{package}` (apt-get install {package})")
    })
}

pub fn find_program(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<std::path::PathBuf> = std::env::split_paths(&path).collect();
    // PostgreSQL's server binaries live outside PATH on Debian.
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<_> = entries.flatten().map(|e| e.path().join("bin")).collect();
        versions.sort();
        dirs.extend(versions.into_iter().rev());
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

//! Helpers shared by the integration tests: real `statelab` processes, a real PostgreSQL
//! database and a real redis-server, each stopped by PID when the test ends.

#![allow(dead_code, unused_imports)]

pub mod openapi;
pub mod postgres;
pub mod process;
pub mod redis;

pub use postgres::TestDatabase;
pub use process::{Service, ServiceBuilder};
pub use redis::TestRedis;
use statelab::demo::backends;

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
    backends::require_program(name, package).unwrap_or_else(|e| panic!("{e:#}"))
}

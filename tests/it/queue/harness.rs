//! Backends, processes and HTTP helpers for the queue tests.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use statelab::demo::process::{Logs, Process, Spec};
use statelab::queue::backend::Backend;

use crate::support::postgres::PrivateCluster;
use crate::support::process::binary;
use crate::support::{Service, ServiceBuilder, TestDatabase, TestRedis};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Postgres,
    Redis,
}

enum Inner {
    /// A database on the shared test server (or a private cluster when none is configured),
    /// dropped with the test.
    Database(#[allow(dead_code)] TestDatabase),
    /// A private cluster, for tests that stop and start PostgreSQL.
    Cluster(PrivateCluster),
    Redis(TestRedis),
}

/// The queue's backend for one test.
pub struct Store {
    pub kind: Kind,
    inner: Inner,
    url: String,
}

impl Store {
    pub async fn new(kind: Kind) -> Store {
        match kind {
            Kind::Postgres => {
                let db = TestDatabase::create().await;
                let url = db.url.clone();
                Store {
                    kind,
                    inner: Inner::Database(db),
                    url,
                }
            }
            Kind::Redis => Store::redis(),
        }
    }

    /// A backend this test may stop and start (Redis with AOF on).
    pub async fn restartable(kind: Kind) -> Store {
        match kind {
            Kind::Postgres => {
                let cluster = PrivateCluster::start();
                let url = cluster.url("postgres");
                Store {
                    kind,
                    inner: Inner::Cluster(cluster),
                    url,
                }
            }
            Kind::Redis => Store::redis(),
        }
    }

    fn redis() -> Store {
        let redis = TestRedis::start(true);
        let url = redis.url();
        Store {
            kind: Kind::Redis,
            inner: Inner::Redis(redis),
            url,
        }
    }

    pub fn env_var(&self) -> &'static str {
        match self.kind {
            Kind::Postgres => "DATABASE_URL",
            Kind::Redis => "REDIS_URL",
        }
    }

    /// The backend as a library handle, for looking at tasks directly.
    pub async fn open(&self) -> Backend {
        let backend = Backend::from_url(&self.url).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(error) = backend.check().await {
            assert!(Instant::now() < deadline, "backend not ready: {error}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        backend
    }

    pub fn stop(&mut self) {
        match &mut self.inner {
            Inner::Cluster(cluster) => cluster.stop(),
            Inner::Redis(redis) => redis.stop(),
            Inner::Database(_) => panic!("a shared database is never stopped"),
        }
    }

    pub fn start_again(&mut self) {
        match &mut self.inner {
            Inner::Cluster(cluster) => cluster.start_again(),
            Inner::Redis(redis) => redis.start_again(),
            Inner::Database(_) => panic!("a shared database is never stopped"),
        }
    }

    pub fn producer(&self) -> Service {
        self.producer_with(&[])
    }

    /// The producer with extra environment variables.
    pub fn producer_with(&self, env: &[(&str, &str)]) -> Service {
        let mut builder = ServiceBuilder::new(&["queue"]).env(self.env_var(), &self.url);
        for (key, value) in env {
            builder = builder.env(key, value);
        }
        builder.start()
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The private redis-server (only for Redis stores).
    pub fn redis_server(&self) -> &TestRedis {
        match &self.inner {
            Inner::Redis(redis) => redis,
            _ => panic!("not a Redis store"),
        }
    }

    /// A worker with its probe server (`--listen`), so the test can wait for readiness.
    pub fn worker(&self, flags: &[&str]) -> Service {
        let mut args = vec!["worker"];
        args.extend_from_slice(flags);
        ServiceBuilder::new(&args)
            .env(self.env_var(), &self.url)
            .start()
    }

    /// A worker as `statelab worker` runs with no --listen: no HTTP server at all. Killed by
    /// PID when dropped, so a failing test leaves nothing running.
    pub fn bare_worker(&self, flags: &[&str]) -> Process {
        Spec::new(binary())
            .arg("worker")
            .args(flags)
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .env_remove("LISTEN_ADDR")
            .env_remove("PORT")
            .env(self.env_var(), &self.url)
            .env("RUST_LOG", "warn")
            .logs(Logs::Discard)
            .spawn()
            .expect("statelab worker starts")
    }
}

/// One HTTP client with keep-alive, for the many small requests of these tests.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

pub async fn post(client: &reqwest::Client, url: &str, body: &Value) -> (StatusCode, Value) {
    let response = client
        .post(url)
        .json(body)
        .send()
        .await
        .expect("request sent");
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

pub async fn post_raw(client: &reqwest::Client, url: &str, body: &str) -> (StatusCode, Value) {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("request sent");
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

pub async fn get(client: &reqwest::Client, url: &str) -> (StatusCode, Value) {
    let response = client.get(url).send().await.expect("request sent");
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// Polls `probe` until it returns `Some`, or panics after `within` with `what`.
pub async fn wait_until<T, F, Fut>(within: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET /stats` counts, as (queued, running, done, failed, dead).
pub async fn counts(client: &reqwest::Client, producer: &Service) -> Option<[i64; 5]> {
    let (status, body) = get(client, &producer.url("/stats")).await;
    if status != StatusCode::OK {
        return None;
    }
    let c = &body["counts"];
    Some(["queued", "running", "done", "failed", "dead"].map(|k| c[k].as_i64().unwrap()))
}

//! Redis for every service: one set of flags, one lazily connected client that reconnects by
//! itself, one deadline per operation, and one error classifier.
//!
//! Flags and variables are the seeds' (`REDIS_HOST`, `REDIS_PORT`) plus `REDIS_PASSWORD`,
//! `REDIS_DB`, or one `REDIS_URL`, which then wins. A service sets its own defaults with
//! `#[command(mut_arg("redis_host", |a| a.default_value(…)))]` on its `Config`.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, bail};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo, RedisError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::backend::{BackendError, Kind};

/// Where Redis is. Flattened into each Redis service's `Config`.
#[derive(clap::Args, Clone)]
pub struct RedisArgs {
    /// Whole connection URL, e.g. redis://:password@host:6379/0 or unix:///run/redis.sock;
    /// when set, REDIS_HOST, REDIS_PORT and REDIS_DB are ignored
    #[arg(
        id = "redis_url",
        long = "redis-url",
        visible_alias = "redis",
        env = "REDIS_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub url: Option<String>,

    /// Redis host: the StatefulSet pod's stable DNS name (<pod-name>.<headless-service-name>)
    #[arg(long, env = "REDIS_HOST")]
    pub redis_host: Option<String>,

    /// Redis port
    #[arg(long, env = "REDIS_PORT", default_value_t = 6379)]
    pub redis_port: u16,

    /// Redis password (AUTH), when Redis requires one; also applies to REDIS_URL when the URL
    /// carries none
    #[arg(long, env = "REDIS_PASSWORD", hide_env_values = true)]
    pub redis_password: Option<String>,

    /// Redis logical database number
    #[arg(long, env = "REDIS_DB", default_value_t = 0)]
    pub redis_db: i64,

    /// Longest time one Redis operation may take (connecting included) before it is answered
    /// 503
    #[arg(long, env = "REDIS_TIMEOUT_MS", default_value_t = 1000)]
    pub redis_timeout_ms: u64,
}

impl std::fmt::Debug for RedisArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let target = match self.connection_info() {
            Ok((_, target)) => target.display,
            Err(_) => "(invalid or missing Redis settings)".to_owned(),
        };
        f.debug_struct("RedisArgs")
            .field("target", &target)
            .field("redis_timeout_ms", &self.redis_timeout_ms)
            .finish_non_exhaustive()
    }
}

/// Where a client points, for `/health`, logs and messages (never with the password).
#[derive(Debug, Clone)]
pub struct RedisTarget {
    /// The host name, or the socket path.
    pub host: String,
    /// `host:port`, or the socket path.
    pub display: String,
}

impl RedisArgs {
    /// Whether Redis was given at all (a URL or a host).
    pub fn is_set(&self) -> bool {
        self.url().is_some() || self.host().is_some()
    }

    fn url(&self) -> Option<&str> {
        self.url.as_deref().map(str::trim).filter(|u| !u.is_empty())
    }

    fn host(&self) -> Option<&str> {
        self.redis_host
            .as_deref()
            .map(str::trim)
            .filter(|h| !h.is_empty())
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms.max(1))
    }

    /// Connection settings built field by field, so a password needs no URL escaping. Errors
    /// name the setting at fault and never repeat a password.
    pub fn connection_info(&self) -> anyhow::Result<(ConnectionInfo, RedisTarget)> {
        let info = match self.url() {
            Some(url) => url.into_connection_info().map_err(|e| {
                anyhow::anyhow!(
                    "REDIS_URL is not a valid Redis URL: {}",
                    redact(&e.to_string(), url)
                )
            })?,
            None => {
                let Some(host) = self.host() else {
                    bail!(
                        "no Redis given: set REDIS_URL, or REDIS_HOST to the stable DNS name of \
                         the Redis pod (<pod-name>.<headless-service-name>)"
                    );
                };
                ConnectionAddr::Tcp(host.to_owned(), self.redis_port)
                    .into_connection_info()
                    .context("REDIS_HOST and REDIS_PORT")?
                    .set_redis_settings(redis::RedisConnectionInfo::default().set_db(self.redis_db))
            }
        };
        let mut settings = info.redis_settings().clone();
        if settings.password().is_none()
            && let Some(password) = self.redis_password.as_deref().filter(|p| !p.is_empty())
        {
            settings = settings.set_password(password);
        }
        // TCP_USER_TIMEOUT: if Redis vanishes without closing the connection (its node died),
        // the kernel drops the connection once sent data stays unacknowledged this long, and
        // the client dials again (DNS included, so it finds the new pod's IP).
        let tcp = redis::io::tcp::TcpSettings::default()
            .set_nodelay(true)
            .set_user_timeout(Duration::from_secs(10));
        let info = info.set_redis_settings(settings).set_tcp_settings(tcp);
        let target = match info.addr() {
            ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
                RedisTarget {
                    host: host.clone(),
                    display: format!("{host}:{port}"),
                }
            }
            ConnectionAddr::Unix(path) => RedisTarget {
                host: path.display().to_string(),
                display: path.display().to_string(),
            },
            other => RedisTarget {
                host: other.to_string(),
                display: other.to_string(),
            },
        };
        Ok((info, target))
    }

    /// The client, built without connecting (see [`Redis::lazy`]).
    pub fn connect_lazy(&self) -> anyhow::Result<Redis> {
        let (info, target) = self.connection_info()?;
        Redis::lazy(info, target, self.timeout())
    }
}

/// Redis' URL errors may quote the URL; keep the message, never the password.
fn redact(message: &str, url: &str) -> String {
    match url
        .split_once("://")
        .and_then(|(_, rest)| rest.split(['/', '?']).next())
        .and_then(|authority| authority.rsplit_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
    {
        Some((_, password)) if !password.is_empty() => message.replace(password, "***"),
        _ => message.to_owned(),
    }
}

/// After this many failed checks in a row, the connection manager is replaced by a fresh one,
/// in case it is stuck on a failure it does not retry by itself.
const FAILURES_BEFORE_FRESH_MANAGER: u32 = 5;

/// One multiplexed connection kept by a `ConnectionManager`, which reconnects by itself;
/// every operation runs under a deadline, so a request never waits on a Redis that is gone.
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    manager: RwLock<ConnectionManager>,
    timeout: Duration,
    target: RedisTarget,
}

impl Redis {
    /// Nothing is dialled until the first command: startup never fails or waits because
    /// Redis is down.
    pub fn lazy(
        info: ConnectionInfo,
        target: RedisTarget,
        timeout: Duration,
    ) -> anyhow::Result<Redis> {
        let client = redis::Client::open(info)?;
        let manager = new_manager(&client, timeout)?;
        Ok(Redis {
            inner: Arc::new(Inner {
                client,
                manager: RwLock::new(manager),
                timeout,
                target,
            }),
        })
    }

    pub fn target(&self) -> &RedisTarget {
        &self.inner.target
    }

    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// A handle on the shared connection (cheap: it is multiplexed).
    pub fn connection(&self) -> ConnectionManager {
        self.inner
            .manager
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Runs one idempotent operation under the deadline. A connection-level failure (the old
    /// connection died with a Redis restart) is retried once on the reconnected connection, if
    /// time is left; anything else is reported at once.
    pub async fn run<T, F, Fut>(&self, f: F) -> Result<T, BackendError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let deadline = Instant::now() + self.inner.timeout;
        let mut first = true;
        loop {
            match tokio::time::timeout_at(deadline, f(self.connection())).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(error)) => {
                    if first && is_connection_error(&error) && Instant::now() < deadline {
                        first = false;
                        continue;
                    }
                    return Err(self.classify(&error));
                }
                Err(_elapsed) => return Err(self.timed_out()),
            }
        }
    }

    /// Runs one operation that must not be sent twice (not idempotent) under the deadline.
    pub async fn run_once<T>(
        &self,
        work: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, BackendError> {
        match tokio::time::timeout(self.inner.timeout, work).await {
            Ok(result) => result.map_err(|e| self.classify(&e)),
            Err(_elapsed) => Err(self.timed_out()),
        }
    }

    fn timed_out(&self) -> BackendError {
        BackendError::unavailable(format!(
            "Redis at {} did not answer within {} ms",
            self.inner.target.display,
            self.inner.timeout.as_millis()
        ))
    }

    pub async fn ping(&self) -> Result<(), BackendError> {
        self.run(
            |mut conn| async move { redis::cmd("PING").query_async::<String>(&mut conn).await },
        )
        .await
        .map(|_| ())
    }

    pub fn classify(&self, error: &RedisError) -> BackendError {
        classify(error, &self.inner.target.display)
    }

    /// Checks Redis every second until `stop`: keeps the `gauge` (1 up, 0 down) and the log
    /// honest, and makes the connection manager reconnect while no request is coming in, so the
    /// first request after Redis returns finds a live connection.
    pub async fn monitor(self, gauge: &'static str, stop: CancellationToken) {
        let mut up: Option<bool> = None;
        let mut failures: u32 = 0;
        let mut interval = tokio::time::interval(Duration::from_secs(1));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let redis = self.inner.target.display.clone();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = interval.tick() => {}
            }
            match self.ping().await {
                Ok(()) => {
                    failures = 0;
                    if up != Some(true) {
                        tracing::info!(%redis, "redis connection is up");
                    }
                    up = Some(true);
                    metrics::gauge!(gauge).set(1.0);
                }
                Err(error) => {
                    failures += 1;
                    if up != Some(false) {
                        tracing::warn!(%redis, %error, "redis is unavailable; requests get 503 until it returns");
                    }
                    up = Some(false);
                    metrics::gauge!(gauge).set(0.0);
                    if failures.is_multiple_of(FAILURES_BEFORE_FRESH_MANAGER) {
                        self.fresh_manager();
                    }
                }
            }
        }
    }

    fn fresh_manager(&self) {
        match new_manager(&self.inner.client, self.inner.timeout) {
            Ok(manager) => {
                *self
                    .inner
                    .manager
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = manager;
            }
            Err(error) => tracing::warn!(%error, "cannot set up a new redis connection manager"),
        }
    }
}

/// Reconnection settings: a refused connection fails fast (a couple of quick retries), so a
/// request during an outage gets its 503 quickly instead of waiting out a long backoff; the
/// next command starts a fresh attempt.
fn new_manager(client: &redis::Client, timeout: Duration) -> anyhow::Result<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500))
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    Ok(ConnectionManager::new_lazy_with_config(
        client.clone(),
        config,
    )?)
}

fn is_connection_error(error: &RedisError) -> bool {
    error.is_io_error() || error.is_connection_dropped() || error.is_unrecoverable_error()
}

/// Sorts a Redis failure into what the client should be told. Loading, read-only, busy,
/// refused credentials and every connection failure are "try again later"; `WRONGTYPE` is a
/// conflict with what is stored; `OOM` and any other error reply or unreadable answer are
/// `Other`, with the code kept for services that answer them specially.
pub fn classify(error: &RedisError, at: &str) -> BackendError {
    // A pipeline's failure carries the error of each command; the first one speaks for all.
    let code = error.code().map(str::to_owned).or_else(|| {
        error
            .clone()
            .into_server_errors()
            .and_then(|errors| errors.first().map(|(_, e)| e.code().to_owned()))
    });
    let (kind, message) = match code.as_deref() {
        Some("LOADING") => (
            Kind::Unavailable,
            format!("Redis at {at} is loading its data set from disk; try again shortly"),
        ),
        Some("READONLY") => (
            Kind::Unavailable,
            format!("Redis at {at} is a read-only replica; point REDIS_HOST at the primary"),
        ),
        Some("NOAUTH" | "WRONGPASS") => (
            Kind::Unavailable,
            format!("Redis at {at} rejected the credentials (check REDIS_PASSWORD): {error}"),
        ),
        Some("BUSY" | "MASTERDOWN" | "TRYAGAIN") => {
            (Kind::Unavailable, format!("Redis at {at} is busy: {error}"))
        }
        Some("WRONGTYPE") => (
            Kind::Conflict,
            "the key holds a Redis value of another type; it was not written by this service"
                .to_owned(),
        ),
        Some("OOM") => (
            Kind::Other,
            format!(
                "Redis at {at} is out of memory (maxmemory reached); delete keys or give Redis \
                 more memory"
            ),
        ),
        Some(_) => (
            Kind::Other,
            format!("Redis at {at} answered with an error: {error}"),
        ),
        None => match error.kind() {
            ErrorKind::AuthenticationFailed => (
                Kind::Unavailable,
                format!("Redis at {at} rejected the credentials (check REDIS_PASSWORD): {error}"),
            ),
            ErrorKind::Parse | ErrorKind::UnexpectedReturnType => (
                Kind::Other,
                format!("Redis at {at} gave an answer this service cannot read: {error}"),
            ),
            _ => (
                Kind::Unavailable,
                format!("Redis at {at} is unreachable: {error}"),
            ),
        },
    };
    BackendError::new(kind, code, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        redis: RedisArgs,
    }

    fn parse(args: &[&str]) -> RedisArgs {
        let mut all = vec!["service"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).expect("arguments parse").redis
    }

    #[test]
    fn a_password_with_url_characters_needs_no_escaping() {
        let args = parse(&[
            "--redis-host",
            "redis-0.redis-headless",
            "--redis-password",
            "p@ss:w/rd#1",
        ]);
        let (info, target) = args.connection_info().unwrap();
        assert_eq!(info.redis_settings().password(), Some("p@ss:w/rd#1"));
        assert_eq!(target.display, "redis-0.redis-headless:6379");
        assert!(!format!("{args:?}").contains("p@ss"));
    }

    #[test]
    fn the_url_wins_and_the_old_flag_name_still_works() {
        let args = parse(&[
            "--redis",
            "redis://:pw-9@cachehost:6380/2",
            "--redis-host",
            "ignored",
        ]);
        let (info, target) = args.connection_info().unwrap();
        assert_eq!(target.display, "cachehost:6380");
        assert_eq!(info.redis_settings().db(), 2);
        assert!(!format!("{args:?}").contains("pw-9"));
    }

    #[test]
    fn nothing_given_or_a_bad_url_is_a_clear_error_without_the_password() {
        let args = parse(&[]);
        assert!(!args.is_set());
        let error = format!("{:#}", args.connection_info().unwrap_err());
        assert!(error.contains("REDIS_HOST"), "{error}");
        let args = parse(&["--redis-url", "http://:pw-7@host"]);
        let error = format!("{:#}", args.connection_info().unwrap_err());
        assert!(error.contains("REDIS_URL"), "{error}");
        assert!(!error.contains("pw-7"), "{error}");
    }
}

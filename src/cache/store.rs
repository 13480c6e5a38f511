//! The Redis side: one multiplexed connection kept by a `ConnectionManager`, which reconnects by
//! itself; every operation runs under a deadline so a request never waits on a Redis that is
//! gone; errors are sorted into what the HTTP layer should answer.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, ConnectionInfo, ErrorKind, RedisError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::config::RedisTarget;

/// What a Redis operation can fail with, as the API reports it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis cannot be reached or answered nothing in time: 503.
    #[error("{0}")]
    Unavailable(String),
    /// Redis refuses writes because it reached `maxmemory`: 507.
    #[error("{0}")]
    OutOfMemory(String),
    /// The key holds a Redis type other than a string (written by someone else): 409.
    #[error("{0}")]
    WrongType(String),
    /// Any other error reply from Redis: 502.
    #[error("{0}")]
    Backend(String),
}

/// A value read back, with the time it has left when it expires.
#[derive(Debug)]
pub struct Entry {
    pub value: String,
    pub ttl_seconds: Option<u64>,
}

/// One page of a listing and where the next one starts (`None`: the listing is complete).
#[derive(Debug)]
pub struct Page {
    pub keys: Vec<String>,
    pub next: Option<Cursor>,
}

/// Where a listing continues. `SCAN` answers whole batches; when a batch holds more keys than the
/// page has room for, the page ends inside it and the cursor remembers the batch's start and the
/// last key emitted from it, so the next page scans that batch again and skips what was sent.
/// Keys present during the whole listing are listed at least once, as `SCAN` promises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub scan: u64,
    pub after: Option<Vec<u8>>,
}

impl Cursor {
    pub const START: Cursor = Cursor {
        scan: 0,
        after: None,
    };

    /// Opaque text form: `<scan>` or `<scan>~<hex of the last key>`.
    pub fn encode(&self) -> String {
        match &self.after {
            None => self.scan.to_string(),
            Some(after) => {
                let hex: String = after.iter().map(|b| format!("{b:02x}")).collect();
                format!("{}~{hex}", self.scan)
            }
        }
    }

    pub fn decode(text: &str) -> Option<Cursor> {
        let (scan, after) = match text.split_once('~') {
            None => (text, None),
            Some((scan, hex)) => {
                if hex.is_empty() || hex.len() % 2 != 0 || hex.len() > 4096 {
                    return None;
                }
                let bytes = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                    .collect::<Option<Vec<u8>>>()?;
                (scan, Some(bytes))
            }
        };
        if scan.is_empty() || !scan.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Cursor {
            scan: scan.parse().ok()?,
            after,
        })
    }
}

/// Most `SCAN` calls one page may make, so a sparse prefix in a large keyspace cannot turn one
/// request into a walk over the whole database; the page then ends early with a cursor.
const MAX_SCANS_PER_PAGE: usize = 64;

/// After this many failed health checks in a row, the connection manager is replaced by a fresh
/// one, in case it is stuck on a failure it does not retry by itself.
const FAILURES_BEFORE_FRESH_MANAGER: u32 = 5;

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    manager: RwLock<ConnectionManager>,
    timeout: Duration,
    prefix: String,
    target: RedisTarget,
}

impl Store {
    /// Sets up the connection lazily: nothing is dialled until the first command, so startup
    /// never fails or waits because Redis is down.
    pub fn new(
        info: ConnectionInfo,
        target: RedisTarget,
        prefix: String,
        timeout: Duration,
    ) -> anyhow::Result<Store> {
        let client = redis::Client::open(info)?;
        let manager = new_manager(&client, timeout)?;
        Ok(Store {
            inner: Arc::new(Inner {
                client,
                manager: RwLock::new(manager),
                timeout,
                prefix,
                target,
            }),
        })
    }

    pub fn target(&self) -> &RedisTarget {
        &self.inner.target
    }

    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    fn redis_key(&self, key: &str) -> String {
        format!("{}{key}", self.inner.prefix)
    }

    fn manager(&self) -> ConnectionManager {
        self.inner
            .manager
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Runs one idempotent operation under the deadline. A connection-level failure (the old
    /// connection died with a Redis restart) is retried once on the reconnected connection, if
    /// time is left; anything else is reported at once.
    async fn run<T, F, Fut>(&self, operation: &'static str, f: F) -> Result<T, StoreError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let deadline = Instant::now() + self.inner.timeout;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match tokio::time::timeout_at(deadline, f(self.manager())).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(error)) => {
                    if attempt == 1 && is_connection_error(&error) && Instant::now() < deadline {
                        continue;
                    }
                    let error = self.classify(&error);
                    metrics::counter!("cache_redis_errors_total", "operation" => operation)
                        .increment(1);
                    return Err(error);
                }
                Err(_elapsed) => {
                    metrics::counter!("cache_redis_errors_total", "operation" => operation)
                        .increment(1);
                    return Err(StoreError::Unavailable(format!(
                        "Redis at {} did not answer within {} ms",
                        self.inner.target.display,
                        self.inner.timeout.as_millis()
                    )));
                }
            }
        }
    }

    fn classify(&self, error: &RedisError) -> StoreError {
        let at = &self.inner.target.display;
        let code = error
            .clone()
            .into_server_errors()
            .and_then(|errors| errors.first().map(|(_, e)| e.code().to_owned()));
        match code.as_deref() {
            Some("LOADING") => StoreError::Unavailable(format!(
                "Redis at {at} is loading its data set from disk; try again shortly"
            )),
            Some("READONLY") => StoreError::Unavailable(format!(
                "Redis at {at} is a read-only replica; point REDIS_HOST at the primary"
            )),
            Some("OOM") => StoreError::OutOfMemory(format!(
                "Redis at {at} is out of memory (maxmemory reached); delete keys or give Redis \
                 more memory"
            )),
            Some("NOAUTH" | "WRONGPASS") => StoreError::Unavailable(format!(
                "Redis at {at} rejected the credentials (check REDIS_PASSWORD): {error}"
            )),
            Some("WRONGTYPE") => StoreError::WrongType(
                "the key holds a Redis value that is not a string; it was not written by this API"
                    .to_owned(),
            ),
            Some("BUSY" | "MASTERDOWN" | "TRYAGAIN") => {
                StoreError::Unavailable(format!("Redis at {at} is busy: {error}"))
            }
            Some(_) => {
                StoreError::Backend(format!("Redis at {at} answered with an error: {error}"))
            }
            None => match error.kind() {
                ErrorKind::AuthenticationFailed => StoreError::Unavailable(format!(
                    "Redis at {at} rejected the credentials (check REDIS_PASSWORD): {error}"
                )),
                ErrorKind::Parse | ErrorKind::UnexpectedReturnType => StoreError::Backend(format!(
                    "Redis at {at} gave an answer this API cannot read: {error}"
                )),
                _ => StoreError::Unavailable(format!("Redis at {at} is unreachable: {error}")),
            },
        }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run("ping", |mut conn| async move {
            redis::cmd("PING").query_async::<String>(&mut conn).await
        })
        .await
        .map(|_| ())
    }

    /// `SET key value [EX ttl]`: replaces the value and any previous expiry.
    pub async fn set(&self, key: &str, value: &str, ttl: Option<u64>) -> Result<(), StoreError> {
        let key = self.redis_key(key);
        self.run("set", |mut conn| {
            let key = key.clone();
            async move {
                match ttl {
                    Some(seconds) => conn.set_ex::<_, _, ()>(&key, value, seconds).await,
                    None => conn.set::<_, _, ()>(&key, value).await,
                }
            }
        })
        .await
    }

    /// `GET` and `PTTL` sent together in one round trip: the expiry is read right after the
    /// value. (Not MULTI/EXEC: redis 1.8.1 panics in debug builds when Redis rejects MULTI
    /// itself, e.g. with NOAUTH; and a transaction buys nothing here but a rare, harmless case:
    /// a key deleted between the two reads is shown without its TTL.)
    pub async fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        let key = self.redis_key(key);
        let (value, pttl): (Option<Vec<u8>>, i64) = self
            .run("get", |mut conn| {
                let key = key.clone();
                async move {
                    redis::pipe()
                        .get(&key)
                        .pttl(&key)
                        .query_async(&mut conn)
                        .await
                }
            })
            .await?;
        Ok(value.map(|bytes| Entry {
            value: String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            // PTTL: -1 no expiry, -2 gone; round up so a live key never shows 0.
            ttl_seconds: u64::try_from(pttl).ok().map(|ms| ms.div_ceil(1000)),
        }))
    }

    /// `DEL`: whether the key existed.
    pub async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let key = self.redis_key(key);
        let removed: i64 = self
            .run("delete", |mut conn| {
                let key = key.clone();
                async move { conn.del(&key).await }
            })
            .await?;
        Ok(removed > 0)
    }

    /// One page of keys under the prefix (without it), found with `SCAN`, never `KEYS`.
    pub async fn list(&self, cursor: Cursor, limit: usize) -> Result<Page, StoreError> {
        let pattern = format!("{}*", glob_escape(&self.inner.prefix));
        let prefix_len = self.inner.prefix.len();
        let mut page: Vec<Vec<u8>> = Vec::new();
        let mut scan = cursor.scan;
        let mut after = cursor.after;
        for _ in 0..MAX_SCANS_PER_PAGE {
            let room = limit - page.len();
            let count = room.clamp(10, 1000);
            let (next, mut batch): (u64, Vec<Vec<u8>>) = self
                .run("list", |mut conn| {
                    let pattern = pattern.clone();
                    async move {
                        redis::cmd("SCAN")
                            .arg(scan)
                            .arg("MATCH")
                            .arg(&pattern)
                            .arg("COUNT")
                            .arg(count)
                            .query_async(&mut conn)
                            .await
                    }
                })
                .await?;
            batch.sort_unstable();
            batch.dedup();
            if let Some(after) = after.take() {
                batch.retain(|key| *key > after);
            }
            batch.retain(|key| !page.contains(key));
            if batch.len() > room {
                batch.truncate(room);
                let last = batch.last().cloned();
                page.extend(batch);
                return Ok(self.page(page, prefix_len, Some(Cursor { scan, after: last })));
            }
            page.extend(batch);
            if next == 0 {
                return Ok(self.page(page, prefix_len, None));
            }
            scan = next;
            if page.len() == limit {
                break;
            }
        }
        Ok(self.page(page, prefix_len, Some(Cursor { scan, after: None })))
    }

    fn page(&self, keys: Vec<Vec<u8>>, prefix_len: usize, next: Option<Cursor>) -> Page {
        let mut keys: Vec<String> = keys
            .into_iter()
            .map(|k| String::from_utf8_lossy(k.get(prefix_len..).unwrap_or_default()).into_owned())
            .collect();
        keys.sort_unstable();
        Page { keys, next }
    }

    /// Checks Redis every second until `stop`: keeps the `cache_redis_up` gauge and the log
    /// honest, and makes the connection manager reconnect while no request is coming in, so the
    /// first request after Redis returns finds a live connection.
    pub async fn monitor(self, stop: CancellationToken) {
        let mut up: Option<bool> = None;
        let mut failures: u32 = 0;
        let mut interval = tokio::time::interval(Duration::from_secs(1));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = interval.tick() => {}
            }
            match self.ping().await {
                Ok(()) => {
                    failures = 0;
                    if up != Some(true) {
                        tracing::info!(redis = %self.inner.target.display, "redis connection is up");
                    }
                    up = Some(true);
                    metrics::gauge!("cache_redis_up").set(1.0);
                }
                Err(error) => {
                    failures += 1;
                    if up != Some(false) {
                        tracing::warn!(redis = %self.inner.target.display, %error, "redis is unavailable; requests get 503 until it returns");
                    }
                    up = Some(false);
                    metrics::gauge!("cache_redis_up").set(0.0);
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

/// Escapes the glob characters of `MATCH` so the prefix matches only itself.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        for cursor in [
            Cursor::START,
            Cursor {
                scan: 1234,
                after: Some(b"cache:key".to_vec()),
            },
            Cursor {
                scan: u64::MAX,
                after: Some(vec![0, 255, 16]),
            },
        ] {
            assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        }
    }

    #[test]
    fn bad_cursors_are_refused() {
        for text in [
            "",
            "abc",
            "-1",
            "1~",
            "1~abc",
            "1~zz",
            "~00",
            "99999999999999999999",
        ] {
            assert_eq!(Cursor::decode(text), None, "{text:?}");
        }
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
        assert_eq!(glob_escape("cache:"), "cache:");
    }
}

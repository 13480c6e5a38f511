//! The cache's Redis commands. The connection, its deadlines and the sorting of errors are
//! `server::redis`'s; this file knows keys, values, TTLs and pages.

use std::future::Future;
use std::sync::Arc;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, RedisError};
use tokio_util::sync::CancellationToken;

use crate::server::redis::{Redis, RedisTarget};
use crate::server::{BackendError, Readiness};

/// What a Redis operation can fail with: the shared kinds, plus the cache's one domain case.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis refuses writes because it reached `maxmemory`: 507.
    #[error("{0}")]
    OutOfMemory(String),
    #[error(transparent)]
    Backend(#[from] BackendError),
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

    /// Opaque text form: `<scan>[~<hex of the last key>].<check>`, where `check` is 16 hex
    /// digits of [`cursor_check`] over what precedes the dot. The check is not a secret (any
    /// cursor can only list keys under the prefix); it lets the API tell a cursor it gave out
    /// from a made-up or altered one, and refuse the latter instead of scanning from an
    /// arbitrary place. Every replica computes the same check, so any replica takes any cursor.
    pub fn encode(&self) -> String {
        let body = match &self.after {
            None => self.scan.to_string(),
            Some(after) => {
                let hex: String = after.iter().map(|b| format!("{b:02x}")).collect();
                format!("{}~{hex}", self.scan)
            }
        };
        format!("{body}.{:016x}", cursor_check(&body))
    }

    pub fn decode(text: &str) -> Option<Cursor> {
        let (body, check) = text.rsplit_once('.')?;
        if check.len() != 16 || u64::from_str_radix(check, 16).ok()? != cursor_check(body) {
            return None;
        }
        // Lowercase only, as encode writes it: one text per cursor.
        if check.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        let (scan, after) = match body.split_once('~') {
            None => (body, None),
            Some((scan, hex)) => {
                if hex.is_empty() || hex.len() % 2 != 0 || hex.len() > MAX_CURSOR_KEY_HEX {
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

/// Longest key a cursor carries, in hex digits (keys are at most 1024 bytes plus a 64-byte prefix).
pub const MAX_CURSOR_KEY_HEX: usize = 2 * (1024 + 64);

/// FNV-1a (64 bits) of a fixed tag and the cursor's text: stable across builds and replicas,
/// unlike std's hasher, and short enough to write by hand in any client that wants to.
pub fn cursor_check(body: &str) -> u64 {
    b"statelab-cache-cursor:"
        .iter()
        .chain(body.as_bytes())
        .fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}

/// SET that refuses a key of another type with Redis's own `WRONGTYPE` error.
static SET_STRING: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'none' and kind ~= 'string' then
  return redis.error_reply('WRONGTYPE Operation against a key holding the wrong kind of value')
end
if ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
return redis.status_reply('OK')
",
    )
});

/// Most `SCAN` calls one page may make, so a sparse prefix in a large keyspace cannot turn one
/// request into a walk over the whole database; the page then ends early with a cursor.
const MAX_SCANS_PER_PAGE: usize = 64;

/// The `COUNT` of every `SCAN`. Always the same: a page that ends inside a batch resumes by
/// scanning the same position again and skipping the keys up to the last one it returned, which
/// is right only if the second scan returns the same buckets; another COUNT returns more or fewer
/// (more: keys of the extra buckets sorting before that key were skipped, and lost).
const SCAN_COUNT: usize = 100;

#[derive(Clone)]
pub struct Store {
    redis: Redis,
    prefix: Arc<str>,
}

impl Store {
    pub fn new(redis: Redis, prefix: &str) -> Store {
        Store {
            redis,
            prefix: prefix.into(),
        }
    }

    pub fn target(&self) -> &RedisTarget {
        self.redis.target()
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn redis_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// One idempotent operation under the deadline, counted by name when it fails.
    async fn run<T, F, Fut>(&self, operation: &'static str, f: F) -> Result<T, StoreError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        self.redis.run(f).await.map_err(|error| {
            metrics::counter!("cache_redis_errors_total", "operation" => operation).increment(1);
            match error.code() {
                Some("OOM") => StoreError::OutOfMemory(error.message().to_owned()),
                _ => StoreError::Backend(error),
            }
        })
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        Ok(self.redis.ping().await?)
    }

    /// Checks Redis every second until `stop`, keeping `cache_redis_up` honest.
    pub async fn monitor(self, stop: CancellationToken) {
        self.redis.monitor("cache_redis_up", stop).await
    }

    /// `SET key value [EX ttl]`, refused with `WRONGTYPE` (409) when the key holds another Redis
    /// type: a plain `SET` would silently replace someone else's list or hash. The check and
    /// the write run as one script, so nothing can change the key in between.
    pub async fn set(&self, key: &str, value: &str, ttl: Option<u64>) -> Result<(), StoreError> {
        let key = self.redis_key(key);
        self.run("set", |mut conn| {
            let key = key.clone();
            async move {
                let mut invocation = SET_STRING.key(&key);
                invocation.arg(value);
                if let Some(seconds) = ttl {
                    invocation.arg(seconds);
                }
                invocation.invoke_async::<()>(&mut conn).await
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
        let pattern = format!("{}*", glob_escape(&self.prefix));
        let prefix_len = self.prefix.len();
        let mut page: Vec<Vec<u8>> = Vec::new();
        let mut scan = cursor.scan;
        let mut after = cursor.after;
        for _ in 0..MAX_SCANS_PER_PAGE {
            let room = limit - page.len();
            let count = SCAN_COUNT;
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

impl Readiness for Store {
    async fn check(&self) -> Result<(), String> {
        self.ping().await.map_err(|e| e.to_string())
    }
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
            "0",
            "12345",
            "12345.0000000000000000",
        ] {
            assert_eq!(Cursor::decode(text), None, "{text:?}");
        }
        // A cursor the API gave out, altered in any one character, is refused.
        let given = Cursor {
            scan: 42,
            after: Some(b"cache:k".to_vec()),
        }
        .encode();
        for i in 0..given.len() {
            for replacement in ['0', '7', 'a', 'F', '~', '.'] {
                let mut altered = given.clone().into_bytes();
                if altered[i] == replacement as u8 {
                    continue;
                }
                altered[i] = replacement as u8;
                let altered = String::from_utf8(altered).unwrap();
                assert_eq!(Cursor::decode(&altered), None, "{altered:?}");
            }
        }
    }

    #[test]
    fn the_check_is_fixed_for_every_build() {
        // Replicas of different builds must accept each other's cursors.
        assert_eq!(
            Cursor {
                scan: 0,
                after: None
            }
            .encode(),
            format!("0.{:016x}", cursor_check("0"))
        );
        assert_eq!(cursor_check(""), 0x605e_39bf_4cbf_239f);
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
        assert_eq!(glob_escape("cache:"), "cache:");
    }
}

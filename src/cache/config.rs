use anyhow::bail;

use crate::server::ServerArgs;
use crate::server::redis::RedisArgs;

/// The port the cache API listens on when neither --listen nor PORT is given (as in the seed).
pub const DEFAULT_PORT: u16 = 8000;

/// Longest TTL a caller may ask for: one year.
pub const MAX_TTL_SECONDS: u64 = 365 * 24 * 60 * 60;

/// JSON cache API over Redis (seed 001, Section 2).
///
/// Keys live in Redis under a prefix, so the API never reads, lists or deletes keys it does not
/// own. Redis connection: REDIS_URL if set, otherwise REDIS_HOST, REDIS_PORT, REDIS_PASSWORD and
/// REDIS_DB.
#[derive(clap::Args, Debug, Clone)]
#[command(mut_arg("redis_host", |a| a.default_value("redis-0.redis-headless")))]
pub struct Config {
    #[command(flatten)]
    pub server: ServerArgs,

    #[command(flatten)]
    pub redis: RedisArgs,

    /// Prefix of every Redis key this API writes; the API only ever touches keys under it
    #[arg(long, env = "CACHE_KEY_PREFIX", default_value = "cache:")]
    pub key_prefix: String,

    /// Longest key, in bytes (keys: ASCII letters, digits and - _ . : @)
    #[arg(long, env = "CACHE_MAX_KEY_LENGTH", default_value_t = 128)]
    pub max_key_length: usize,

    /// Largest value, in bytes of UTF-8
    #[arg(long, env = "CACHE_MAX_VALUE_BYTES", default_value_t = 64 * 1024)]
    pub max_value_bytes: usize,

    /// Most keys one page of GET /cache may hold (the `limit` query parameter's ceiling)
    #[arg(long, env = "CACHE_MAX_PAGE_SIZE", default_value_t = 1000)]
    pub max_page_size: usize,
}

impl Config {
    /// Checks the limits; the Redis settings are checked when the client is built.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.redis.redis_timeout_ms == 0 {
            bail!("--redis-timeout-ms must be at least 1");
        }
        if self.max_key_length == 0 || self.max_key_length > 1024 {
            bail!("--max-key-length must be between 1 and 1024");
        }
        if self.max_value_bytes == 0 || self.max_value_bytes > 64 * 1024 * 1024 {
            bail!("--max-value-bytes must be between 1 and 67108864 (64 MiB)");
        }
        if self.max_page_size == 0 || self.max_page_size > 10_000 {
            bail!("--max-page-size must be between 1 and 10000");
        }
        if self.key_prefix.len() > 64 || !self.key_prefix.bytes().all(|b| b.is_ascii_graphic()) {
            bail!("--key-prefix must be at most 64 printable ASCII characters without spaces");
        }
        Ok(())
    }
}

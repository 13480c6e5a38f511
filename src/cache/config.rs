use std::time::Duration;

use anyhow::{Context, bail};
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

use crate::server::ServerArgs;

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
pub struct Config {
    #[command(flatten)]
    pub server: ServerArgs,

    /// Redis URL, e.g. redis://:password@host:6379/0 or redis+unix:///path/to/redis.sock;
    /// takes precedence over REDIS_HOST and REDIS_PORT
    #[arg(long, env = "REDIS_URL", value_name = "URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Redis host: the stable DNS name of the StatefulSet's first pod
    #[arg(long, env = "REDIS_HOST", default_value = "redis-0.redis-headless")]
    pub redis_host: String,

    /// Redis port
    #[arg(long, env = "REDIS_PORT", default_value_t = 6379)]
    pub redis_port: u16,

    /// Redis password (from a Secret); empty means none. Used with REDIS_URL too when the URL
    /// carries no password
    #[arg(long, env = "REDIS_PASSWORD", hide_env_values = true)]
    pub redis_password: Option<String>,

    /// Redis database number
    #[arg(long, env = "REDIS_DB", default_value_t = 0)]
    pub redis_db: i64,

    /// How long one request may wait for Redis (connecting included) before it is answered 503
    #[arg(long, env = "REDIS_TIMEOUT_MS", default_value_t = 1000)]
    pub redis_timeout_ms: u64,

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

/// Where Redis is, without any secret: for logs, errors and `/health`.
#[derive(Debug, Clone)]
pub struct RedisTarget {
    /// The host as `/health` shows it (REDIS_HOST, the URL's host, or the socket path).
    pub host: String,
    /// `host:port` or the socket path, for messages.
    pub display: String,
}

impl Config {
    /// Checks the limits and builds the Redis connection settings.
    pub fn validate(&self) -> anyhow::Result<(ConnectionInfo, RedisTarget)> {
        if self.redis_timeout_ms == 0 {
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
        self.connection_info()
    }

    pub fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms)
    }

    fn connection_info(&self) -> anyhow::Result<(ConnectionInfo, RedisTarget)> {
        let password = self
            .redis_password
            .as_deref()
            .filter(|p| !p.is_empty())
            .map(str::to_owned);
        let url = self
            .redis_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty());
        let info = match url {
            Some(url) => url
                .into_connection_info()
                .map_err(|e| anyhow::anyhow!("REDIS_URL is not a valid Redis URL: {e}"))?,
            None => {
                let host = self.redis_host.trim();
                if host.is_empty() {
                    bail!(
                        "REDIS_HOST is set but empty: set it to the stable DNS name of the Redis \
                         pod (<pod-name>.<headless-service-name>), or unset it"
                    );
                }
                ConnectionAddr::Tcp(host.to_owned(), self.redis_port)
                    .into_connection_info()
                    .context("REDIS_HOST and REDIS_PORT")?
                    .set_redis_settings(redis::RedisConnectionInfo::default().set_db(self.redis_db))
            }
        };
        let mut settings = info.redis_settings().clone();
        if settings.password().is_none()
            && let Some(password) = password
        {
            settings = settings.set_password(password);
        }
        // TCP_USER_TIMEOUT: if Redis vanishes without closing the connection (its node died),
        // the kernel drops the connection once sent data stays unacknowledged this long, and
        // the connection manager dials again (DNS included, so it finds the new pod's IP).
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
}

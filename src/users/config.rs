use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgSslMode};

use crate::server::ServerArgs;

/// The users API of Lab 06, Section 1: a stateless JSON API in front of PostgreSQL.
///
/// The database is given either piece by piece with the lab's variables (DB_HOST, DB_PORT,
/// DB_NAME, DB_USER, DB_PASSWORD) or as one DATABASE_URL, which then takes precedence.
/// A DB_HOST starting with `/` is a directory holding PostgreSQL's Unix socket.
#[derive(clap::Args, Clone)]
pub struct Config {
    #[command(flatten)]
    pub server: ServerArgs,

    /// Whole connection URL, e.g. postgres://user:password@host:5432/db; when set, the DB_*
    /// variables are ignored
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Database host: the StatefulSet pod's stable DNS name
    #[arg(long, env = "DB_HOST", default_value = "postgres-0.postgres-headless")]
    pub db_host: String,

    /// Database port
    #[arg(long, env = "DB_PORT", default_value_t = 5432)]
    pub db_port: u16,

    /// Database name
    #[arg(long, env = "DB_NAME", default_value = "userdb")]
    pub db_name: String,

    /// Database user
    #[arg(long, env = "DB_USER", default_value = "postgres")]
    pub db_user: String,

    /// Database password (prefer the environment or a Secret over this flag: flags show in `ps`)
    #[arg(long, env = "DB_PASSWORD", hide_env_values = true)]
    pub db_password: Option<String>,

    /// TLS to the database: disable, allow, prefer, require, verify-ca or verify-full
    #[arg(long, env = "DB_SSLMODE", default_value = "prefer")]
    pub db_sslmode: String,

    /// Most connections this replica opens to the database
    #[arg(long, env = "DB_POOL_SIZE", default_value_t = 16)]
    pub db_pool_size: u32,

    /// Longest wait for a database connection before a request is answered 503; keeps every
    /// endpoint answering quickly while the database is down
    #[arg(long, env = "DB_ACQUIRE_TIMEOUT_MS", default_value_t = 1500)]
    pub db_acquire_timeout_ms: u64,

    /// Longest time one database operation may take, the wait for a connection included,
    /// before the request is answered 503 (guards against a database that stops answering
    /// without closing its connections)
    #[arg(long, env = "DB_QUERY_TIMEOUT_MS", default_value_t = 5000)]
    pub db_query_timeout_ms: u64,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("server", &self.server)
            .field("database", &self.database_target())
            .field("db_pool_size", &self.db_pool_size)
            .field("db_acquire_timeout_ms", &self.db_acquire_timeout_ms)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Connection options. Errors name the variable at fault but never repeat its value,
    /// which may hold a password.
    pub fn connect_options(&self) -> anyhow::Result<PgConnectOptions> {
        let options = match &self.database_url {
            Some(url) if !url.trim().is_empty() => {
                let url = url.trim();
                anyhow::ensure!(
                    url.starts_with("postgres://") || url.starts_with("postgresql://"),
                    "DATABASE_URL must start with postgres:// or postgresql://"
                );
                PgConnectOptions::from_str(url)
                    .map_err(|e| anyhow::anyhow!("{}", redact_url_error(&e.to_string(), url)))
                    .context("DATABASE_URL is not a valid postgres:// URL")?
            }
            _ => {
                let ssl_mode = PgSslMode::from_str(&self.db_sslmode)
                    .ok()
                    .with_context(|| {
                        format!(
                            "DB_SSLMODE {:?} is not one of disable, allow, prefer, require, \
                             verify-ca, verify-full",
                            self.db_sslmode
                        )
                    })?;
                anyhow::ensure!(!self.db_host.trim().is_empty(), "DB_HOST is empty");
                let mut options = PgConnectOptions::new()
                    .host(self.db_host.trim())
                    .port(self.db_port)
                    .database(&self.db_name)
                    .username(&self.db_user)
                    .ssl_mode(ssl_mode);
                if let Some(password) = self.db_password.as_deref().filter(|p| !p.is_empty()) {
                    options = options.password(password);
                }
                options
            }
        };
        Ok(options.application_name("statelab-users"))
    }

    /// The host shown by `/health`: DB_HOST as given, or the host (or socket directory) of
    /// DATABASE_URL.
    pub fn display_host(&self) -> String {
        match self.connect_options() {
            Ok(options) => match options.get_socket() {
                Some(dir) => dir.display().to_string(),
                None => options.get_host().to_owned(),
            },
            Err(_) => self.db_host.clone(),
        }
    }

    /// `postgres://user@host:port/db`, without the password, for logs.
    pub fn database_target(&self) -> String {
        match self.connect_options() {
            Ok(o) => format!(
                "postgres://{}@{}:{}/{}",
                o.get_username(),
                self.display_host(),
                o.get_port(),
                o.get_database().unwrap_or("")
            ),
            Err(_) => "(invalid database settings)".to_owned(),
        }
    }

    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.db_acquire_timeout_ms.max(1))
    }

    pub fn query_timeout(&self) -> Duration {
        Duration::from_millis(self.db_query_timeout_ms.max(1))
    }
}

/// URL parse errors may quote the URL; keep the message, never the password.
fn redact_url_error(message: &str, url: &str) -> String {
    let mut message = message.to_owned();
    if let Some((_, rest)) = url.split_once("://")
        && let Some(authority) = rest.split(['/', '?']).next()
        && let Some((userinfo, _)) = authority.rsplit_once('@')
        && let Some((_, password)) = userinfo.split_once(':')
        && !password.is_empty()
    {
        message = message.replace(password, "***");
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: Config,
    }

    fn parse(args: &[&str]) -> Config {
        let mut all = vec!["users"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).expect("arguments parse").config
    }

    #[test]
    fn pieces_build_the_options_and_the_target_hides_the_password() {
        let config = parse(&[
            "--db-host",
            "db.example",
            "--db-port",
            "6543",
            "--db-name",
            "shop",
            "--db-user",
            "alice",
            "--db-password",
            "s3cret-pw",
        ]);
        let options = config.connect_options().unwrap();
        assert_eq!(options.get_host(), "db.example");
        assert_eq!(options.get_port(), 6543);
        assert_eq!(options.get_database(), Some("shop"));
        assert_eq!(options.get_username(), "alice");
        let target = config.database_target();
        assert_eq!(target, "postgres://alice@db.example:6543/shop");
        assert!(!format!("{config:?}").contains("s3cret-pw"));
    }

    #[test]
    fn database_url_wins_and_a_socket_directory_is_the_host() {
        let config = parse(&[
            "--database-url",
            "postgres://bob:pw-123@localhost/app?host=/tmp/pgsock",
        ]);
        assert_eq!(config.display_host(), "/tmp/pgsock");
        assert!(!config.database_target().contains("pw-123"));
    }

    #[test]
    fn bad_settings_are_clear_errors_without_the_password() {
        let config = parse(&["--database-url", "mysql://bob:pw-123@localhost/app"]);
        let error = format!("{:#}", config.connect_options().unwrap_err());
        assert!(error.contains("DATABASE_URL"), "{error}");
        assert!(!error.contains("pw-123"), "{error}");

        let config = parse(&["--db-sslmode", "sometimes"]);
        let error = format!("{:#}", config.connect_options().unwrap_err());
        assert!(error.contains("DB_SSLMODE"), "{error}");
    }
}

//! PostgreSQL for every service: one set of flags, one lazily connected pool, one error
//! classifier, and one keeper that puts the schema in place and keeps it there.
//!
//! Flags and variables are the seeds' (`DB_HOST`, `DB_PORT`, `DB_NAME`, `DB_USER`,
//! `DB_PASSWORD`) or one `DATABASE_URL`, which then wins. A service sets its own defaults with
//! `#[command(mut_arg("db_host", |a| a.default_value(…)))]` on its `Config`.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use backon::{ExponentialBuilder, Retryable};
use sqlx::Connection;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::backend::{BackendError, Kind};
use super::pg_pool::Pool;

/// Where the database is and how to use it. Flattened into each PostgreSQL service's `Config`.
#[derive(clap::Args, Clone)]
pub struct PostgresArgs {
    /// Whole connection URL, e.g. postgres://user:password@host:5432/db; when set, the DB_*
    /// variables are ignored
    #[arg(
        id = "database_url",
        long = "database-url",
        visible_alias = "database",
        env = "DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub url: Option<String>,

    /// Database host (a name, an IP, or a directory holding PostgreSQL's Unix socket)
    #[arg(long, env = "DB_HOST")]
    pub db_host: Option<String>,

    /// Database port
    #[arg(long, env = "DB_PORT", default_value_t = 5432)]
    pub db_port: u16,

    /// Database name
    #[arg(long, env = "DB_NAME", default_value = "postgres")]
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
    #[arg(
        long,
        visible_alias = "pool-size",
        env = "DB_POOL_SIZE",
        default_value_t = 16
    )]
    pub db_pool_size: u32,

    /// Longest wait for a database connection before a request is answered 503; keeps every
    /// endpoint answering quickly while the database is down
    #[arg(long, env = "DB_ACQUIRE_TIMEOUT_MS", default_value_t = 1500)]
    pub db_acquire_timeout_ms: u64,

    /// Longest time one database operation may take, the wait for a connection included,
    /// before it is answered 503 (guards against a database that stops answering without
    /// closing its connections)
    #[arg(long, env = "DB_QUERY_TIMEOUT_MS", default_value_t = 5000)]
    pub db_query_timeout_ms: u64,
}

impl std::fmt::Debug for PostgresArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresArgs")
            .field("target", &self.target())
            .field("db_pool_size", &self.db_pool_size)
            .finish_non_exhaustive()
    }
}

impl PostgresArgs {
    /// Whether a database was given at all (a URL or a host).
    pub fn is_set(&self) -> bool {
        self.url().is_some() || self.host().is_some()
    }

    /// DATABASE_URL as given (trimmed), if any.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref().map(str::trim).filter(|u| !u.is_empty())
    }

    fn host(&self) -> Option<&str> {
        self.db_host
            .as_deref()
            .map(str::trim)
            .filter(|h| !h.is_empty())
    }

    /// Connection options, tagged with `application_name` so `pg_stat_activity` shows who is
    /// connected. Errors name the setting at fault but never repeat a password.
    pub fn connect_options(&self, application_name: &str) -> anyhow::Result<PgConnectOptions> {
        let options = match self.url() {
            Some(url) => {
                anyhow::ensure!(
                    url.starts_with("postgres://") || url.starts_with("postgresql://"),
                    "DATABASE_URL must start with postgres:// or postgresql://"
                );
                PgConnectOptions::from_str(url)
                    .map_err(|e| anyhow::anyhow!("{}", redact(&e.to_string(), url)))
                    .context("DATABASE_URL is not a valid postgres:// URL")?
            }
            None => {
                let host = self
                    .host()
                    .context("no database given: set DATABASE_URL or DB_HOST")?;
                let ssl_mode = PgSslMode::from_str(&self.db_sslmode)
                    .ok()
                    .with_context(|| {
                        format!(
                            "DB_SSLMODE {:?} is not one of disable, allow, prefer, require, \
                         verify-ca, verify-full",
                            self.db_sslmode
                        )
                    })?;
                let mut options = PgConnectOptions::new()
                    .host(host)
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
        Ok(options.application_name(application_name))
    }

    /// The host as a person would name it: DB_HOST, the URL's host, or its socket directory.
    pub fn display_host(&self) -> String {
        match self.connect_options("statelab") {
            Ok(options) => match options.get_socket() {
                Some(dir) => dir.display().to_string(),
                None => options.get_host().to_owned(),
            },
            Err(_) => self.host().unwrap_or("").to_owned(),
        }
    }

    /// `postgres://user@host:port/db`, never with the password: for logs and `Debug`.
    pub fn target(&self) -> String {
        match self.connect_options("statelab") {
            Ok(o) => format!(
                "postgres://{}@{}:{}/{}",
                o.get_username(),
                self.display_host(),
                o.get_port(),
                o.get_database().unwrap_or("")
            ),
            Err(_) => "(invalid or missing database settings)".to_owned(),
        }
    }

    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.db_acquire_timeout_ms.max(1))
    }

    /// Never shorter than the acquire timeout: that wait is part of every query.
    pub fn query_timeout(&self) -> Duration {
        Duration::from_millis(self.db_query_timeout_ms.max(1)).max(self.acquire_timeout())
    }

    /// The pool, built without connecting (see [`Postgres::lazy`]).
    pub fn connect_lazy(&self, application_name: &str) -> anyhow::Result<Postgres> {
        self.connect_lazy_with(application_name, &[])
    }

    /// The same, with server settings (`SET name = value`) in force on every connection.
    pub fn connect_lazy_with(
        &self,
        application_name: &str,
        settings: &[(&str, &str)],
    ) -> anyhow::Result<Postgres> {
        let options = self
            .connect_options(application_name)?
            .options(settings.iter().copied());
        Ok(Postgres::lazy(
            options,
            self.db_pool_size,
            self.acquire_timeout(),
            self.query_timeout(),
        ))
    }
}

/// URL parse errors may quote the URL; keep the message, never the password.
fn redact(message: &str, url: &str) -> String {
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

/// A lazily connected pool and the time any one operation on it may take.
#[derive(Clone)]
pub struct Postgres {
    pool: Pool,
    query_timeout: Duration,
}

impl Postgres {
    /// Builds the pool without connecting: startup never waits for (or fails on) the
    /// database, connections open on first use, and every wait for one is bounded.
    pub fn lazy(
        options: PgConnectOptions,
        max_connections: u32,
        acquire_timeout: Duration,
        query_timeout: Duration,
    ) -> Postgres {
        Postgres {
            pool: Pool::lazy(options, max_connections, acquire_timeout),
            query_timeout: query_timeout.max(acquire_timeout),
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn query_timeout(&self) -> Duration {
        self.query_timeout
    }

    /// Runs one database operation within the query timeout and classifies its failure. A
    /// timed-out write may still have been committed: the client is told the outcome is
    /// unknown, never that it failed.
    pub async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, BackendError> {
        match tokio::time::timeout(self.query_timeout, work).await {
            Ok(result) => result.map_err(|e| classify(&e)),
            Err(_) => Err(self.timed_out()),
        }
    }

    /// One round trip on a pooled connection.
    pub async fn ping(&self) -> Result<(), BackendError> {
        self.bounded(async {
            let mut conn = self.pool.acquire().await?;
            conn.ping().await?;
            conn.release();
            Ok(())
        })
        .await
    }

    fn timed_out(&self) -> BackendError {
        BackendError::unavailable(format!(
            "database unavailable: no answer within {} ms",
            self.query_timeout.as_millis()
        ))
    }

    /// A pool of one connection outside this pool, for sqlx's `PgListener` (`LISTEN`), which
    /// holds a connection of an sqlx pool for as long as it listens.
    pub fn listener_pool(&self) -> sqlx::PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(self.query_timeout)
            .connect_lazy_with(self.pool.connect_options().clone())
    }
}

/// Sorts any sqlx failure (PostgreSQL or SQLite) into what the client should be told.
/// SQLSTATE classes: 08 connection, 28 refused login, 53 resources, 57 shutting down or
/// cancelled, 3D000 no such database, 25006 a read-only standby, 40 serialization failure or
/// deadlock (retry), 42P01 the table is missing (a database replaced by an empty one): all
/// "try again later". 23505 is a taken unique key; classes 22 and 23 are values the database
/// refuses.
pub fn classify(error: &sqlx::Error) -> BackendError {
    match error {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned());
            let sqlstate = code.as_deref().unwrap_or("");
            let class = sqlstate.get(..2).unwrap_or("");
            let kind = if matches!(class, "08" | "28" | "53" | "57" | "40")
                || matches!(sqlstate, "3D000" | "25006" | "42P01")
            {
                Kind::Unavailable
            } else if sqlstate == "23505" {
                Kind::Conflict
            } else if matches!(class, "22" | "23") {
                Kind::BadInput
            } else {
                Kind::Other
            };
            let message = match kind {
                Kind::Unavailable => format!("database unavailable: {}", db.message()),
                Kind::BadInput => format!("the database refused the value: {}", db.message()),
                _ => db.message().to_owned(),
            };
            BackendError::new(kind, code, message)
        }
        sqlx::Error::PoolTimedOut => {
            BackendError::unavailable("database unavailable: no connection could be opened in time")
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => {
            // sqlx's messages carry no connection string, so no password can leak here.
            BackendError::unavailable(format!("database unavailable: {error}"))
        }
        other => BackendError::other(other.to_string()),
    }
}

/// Whether the error says the table is missing (42P01): the database was replaced by an
/// empty one behind the same name, and the schema must be created again.
pub fn is_missing_table(error: &BackendError) -> bool {
    error.code() == Some("42P01")
}

/// Runs the pending migrations on one pooled connection. `run_direct` is what `Migrator::run`
/// does once it holds a connection; called through `run`, the spawned keeper could not be
/// proven `Send` (sqlx's `Acquire` for `&mut PgConnection` is not general enough).
async fn migrate(pool: &Pool, migrator: &Migrator) -> Result<(), sqlx::migrate::MigrateError> {
    let mut conn = pool.acquire().await?;
    migrator.run_direct(None, &mut *conn, false).await?;
    conn.release();
    Ok(())
}

/// Puts a service's schema in place in the background and keeps it there: migrations retry
/// with jittered backoff while the database is unreachable (so the service starts, not ready,
/// even when the database comes up second), and run again when a query finds the table gone.
pub struct Schema {
    service: &'static str,
    ready: AtomicBool,
    last_error: Mutex<Option<String>>,
    lost: Notify,
}

impl Schema {
    /// Starts keeping the schema; the task ends when `stop` is cancelled.
    pub fn keep(
        service: &'static str,
        database: &Postgres,
        migrator: Migrator,
        stop: CancellationToken,
    ) -> Arc<Schema> {
        let schema = Arc::new(Schema {
            service,
            ready: AtomicBool::new(false),
            last_error: Mutex::new(None),
            lost: Notify::new(),
        });
        let gauge = metrics::gauge!("schema_ready", "service" => service);
        gauge.set(0.0);
        let keeper = schema.clone();
        let pool = database.pool().clone();
        tokio::spawn(async move {
            let backoff = ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(5))
                .with_jitter()
                .without_max_times();
            loop {
                let attempt = || migrate(&pool, &migrator);
                let migrate =
                    attempt
                        .retry(backoff)
                        .sleep(tokio::time::sleep)
                        .notify(|error, delay| {
                            let error = error.to_string();
                            tracing::warn!(service, %error, retry_in_ms = delay.as_millis() as u64,
                            "database schema not in place yet; retrying");
                            *keeper.last_error.lock().unwrap() = Some(error);
                        });
                tokio::select! {
                    _ = stop.cancelled() => return,
                    result = migrate => if let Err(error) = result {
                        // Unreachable with an unbounded retry, but never spin.
                        tracing::error!(service, %error, "migrations gave up");
                        return;
                    }
                }
                *keeper.last_error.lock().unwrap() = None;
                keeper.ready.store(true, Ordering::SeqCst);
                gauge.set(1.0);
                tracing::info!(service, "database schema is in place");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = keeper.lost.notified() => {
                        keeper.ready.store(false, Ordering::SeqCst);
                        gauge.set(0.0);
                        tracing::warn!(service, "a table is missing; running the migrations again");
                    }
                }
            }
        });
        schema
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// `Ok` once the schema is in place; otherwise a 503-kind error saying why not.
    pub fn require(&self) -> Result<(), BackendError> {
        if self.is_ready() {
            return Ok(());
        }
        Err(BackendError::unavailable(
            match self.last_error.lock().unwrap().as_deref() {
                Some(error) => format!("database not ready: {error}"),
                None => "database schema is not in place yet; try again shortly".to_owned(),
            },
        ))
    }

    /// Passes an error through, first noticing a missing table so the schema is rebuilt.
    pub fn observe(&self, error: BackendError) -> BackendError {
        if is_missing_table(&error) && self.ready.swap(false, Ordering::SeqCst) {
            tracing::warn!(service = self.service, error = %error.message(), "table missing");
            self.lost.notify_one();
        }
        error
    }

    /// One operation for a service whose tables this keeper owns: refused at once while the
    /// schema is not in place, bounded by the query timeout, classified, and a missing table
    /// sets the keeper to work again.
    pub async fn run<T>(
        &self,
        database: &Postgres,
        work: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, BackendError> {
        self.require()?;
        database.bounded(work).await.map_err(|e| self.observe(e))
    }

    /// Readiness: the database answers and the schema is in place. `probe` is a cheap query
    /// that touches the service's table, so a database replaced by an empty one is noticed.
    pub async fn check(&self, database: &Postgres, probe: &'static str) -> Result<(), String> {
        // Read once: the keeper may finish between two looks.
        if let Err(not_ready) = self.require() {
            database.ping().await.map_err(|e| e.to_string())?;
            return Err(not_ready.to_string());
        }
        database
            .bounded(sqlx::query(probe).execute(database.pool()))
            .await
            .map(|_| ())
            .map_err(|e| self.observe(e).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        postgres: PostgresArgs,
    }

    fn parse(args: &[&str]) -> PostgresArgs {
        let mut all = vec!["service"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).expect("arguments parse").postgres
    }

    #[test]
    fn pieces_build_the_options_and_the_target_hides_the_password() {
        let args = parse(&[
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
        let options = args.connect_options("test").unwrap();
        assert_eq!(options.get_host(), "db.example");
        assert_eq!(options.get_port(), 6543);
        assert_eq!(options.get_database(), Some("shop"));
        assert_eq!(options.get_username(), "alice");
        assert_eq!(args.target(), "postgres://alice@db.example:6543/shop");
        assert!(!format!("{args:?}").contains("s3cret-pw"));
    }

    #[test]
    fn the_url_wins_and_old_flag_names_still_work() {
        let args = parse(&[
            "--database",
            "postgres://bob:pw-123@localhost/app?host=/tmp/pgsock",
            "--db-host",
            "ignored",
            "--pool-size",
            "3",
        ]);
        assert_eq!(args.display_host(), "/tmp/pgsock");
        assert!(!args.target().contains("pw-123"));
        assert_eq!(args.db_pool_size, 3);
    }

    #[test]
    fn bad_settings_are_clear_errors_without_the_password() {
        let args = parse(&["--database-url", "mysql://bob:pw-123@localhost/app"]);
        let error = format!("{:#}", args.connect_options("t").unwrap_err());
        assert!(error.contains("DATABASE_URL"), "{error}");
        assert!(!error.contains("pw-123"), "{error}");

        let args = parse(&["--db-host", "h", "--db-sslmode", "sometimes"]);
        let error = format!("{:#}", args.connect_options("t").unwrap_err());
        assert!(error.contains("DB_SSLMODE"), "{error}");

        let args = parse(&[]);
        assert!(!args.is_set());
        let error = format!("{:#}", args.connect_options("t").unwrap_err());
        assert!(error.contains("DB_HOST"), "{error}");
    }

    /// A database error as PostgreSQL would send it: only the SQLSTATE matters here.
    #[derive(Debug)]
    struct Sqlstate(&'static str);

    impl std::fmt::Display for Sqlstate {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "error {}", self.0)
        }
    }

    impl std::error::Error for Sqlstate {}

    impl sqlx::error::DatabaseError for Sqlstate {
        fn message(&self) -> &str {
            "from the database"
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.0.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    #[test]
    fn sqlstates_sort_into_the_documented_kinds() {
        use super::super::backend::Kind;
        let cases = [
            ("08006", Kind::Unavailable), // connection failure
            ("28000", Kind::Unavailable), // login refused
            ("28P01", Kind::Unavailable), // wrong password
            ("40001", Kind::Unavailable), // serialization failure
            ("53300", Kind::Unavailable), // too many connections
            ("57P01", Kind::Unavailable), // administrator shutdown
            ("3D000", Kind::Unavailable), // no such database
            ("25006", Kind::Unavailable), // read-only standby
            ("42P01", Kind::Unavailable), // table missing
            ("23505", Kind::Conflict),    // unique key taken
            ("22P05", Kind::BadInput),    // untranslatable character
            ("23514", Kind::BadInput),    // check constraint
            ("42601", Kind::Other),       // syntax error: a bug
        ];
        for (code, kind) in cases {
            let error = classify(&sqlx::Error::Database(Box::new(Sqlstate(code))));
            assert_eq!(error.kind(), kind, "{code}");
            assert_eq!(error.code(), Some(code));
        }
    }

    #[test]
    fn pool_failures_are_unavailable() {
        assert!(classify(&sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(classify(&sqlx::Error::PoolClosed).is_unavailable());
        assert_eq!(
            classify(&sqlx::Error::RowNotFound).kind(),
            super::super::backend::Kind::Other
        );
    }
}

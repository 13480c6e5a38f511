//! The users table and the connection to PostgreSQL: a lazily connected pool (so startup never
//! waits for the database), the schema kept in place by a background task that retries with
//! backoff, and the mapping of database failures onto what the API answers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use serde::Serialize;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgRow;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, FromRow, Row};
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The table recording which of `migrations/users` have run (one per service, so services can
/// share a database).
pub const MIGRATIONS_TABLE: &str = "_sqlx_migrations_users";

/// A connection idle for longer than this is pinged before use; busy connections are not, so
/// the hot path costs one round trip per query.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub email: String,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Every query selects `id, name, email, created_at` in this order, so columns are read by
/// position (no lookup by name for each row of a page).
impl<'r> FromRow<'r, PgRow> for User {
    fn from_row(row: &'r PgRow) -> Result<User, sqlx::Error> {
        Ok(User {
            id: row.try_get(0)?,
            name: row.try_get(1)?,
            email: row.try_get(2)?,
            created_at: row.try_get(3)?,
        })
    }
}

/// A user borrowed from a database row: a page of users is serialised straight from the rows
/// it was read as, without copying every name and email first.
#[derive(Debug, Serialize)]
pub struct UserRef<'r> {
    pub id: i64,
    pub name: &'r str,
    pub email: &'r str,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: OffsetDateTime,
}

impl<'r> FromRow<'r, PgRow> for UserRef<'r> {
    fn from_row(row: &'r PgRow) -> Result<UserRef<'r>, sqlx::Error> {
        Ok(UserRef {
            id: row.try_get(0)?,
            name: row.try_get(1)?,
            email: row.try_get(2)?,
            created_at: row.try_get(3)?,
        })
    }
}

/// The rows of one `list` query, in id order.
pub struct Page {
    rows: Vec<PgRow>,
}

impl Page {
    /// The users, borrowed from the rows.
    pub fn users(&self) -> Result<Vec<UserRef<'_>>, StoreError> {
        self.rows
            .iter()
            .map(|row| UserRef::from_row(row).map_err(|e| StoreError::Other(e.to_string())))
            .collect()
    }
}

/// RFC 3339 in UTC, formatted on the stack (a page holds up to 1000 timestamps).
fn rfc3339<S: serde::Serializer>(at: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
    let mut buffer = [0u8; 48];
    let mut cursor = std::io::Cursor::new(&mut buffer[..]);
    at.to_offset(time::UtcOffset::UTC)
        .format_into(&mut cursor, &time::format_description::well_known::Rfc3339)
        .map_err(serde::ser::Error::custom)?;
    let written = cursor.position() as usize;
    let text = std::str::from_utf8(&buffer[..written]).map_err(serde::ser::Error::custom)?;
    serializer.serialize_str(text)
}

/// Why a database operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a user with this email already exists")]
    DuplicateEmail,
    /// The database cannot be reached or is not ready; worth retrying later.
    #[error("{0}")]
    Unavailable(String),
    /// The schema is not in place yet (the database may or may not be reachable).
    #[error("{0}")]
    NotReady(String),
    /// Anything else: a bug or a database in an unexpected state.
    #[error("database error: {0}")]
    Other(String),
}

#[derive(Clone)]
pub struct Store {
    pool: PgPool,
    schema: Arc<SchemaState>,
    /// Longest time one database operation (waiting for a connection included) may take.
    query_timeout: Duration,
}

#[derive(Default)]
struct SchemaState {
    ready: AtomicBool,
    last_error: Mutex<Option<String>>,
    /// Woken when a query finds the table missing (a new, empty database behind the same name).
    lost: Notify,
}

impl Store {
    /// Builds the pool without connecting: connections open on first use, and every wait for
    /// one is bounded by `acquire_timeout`.
    pub fn new(
        options: PgConnectOptions,
        max_connections: u32,
        acquire_timeout: Duration,
        query_timeout: Duration,
    ) -> Store {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .min_connections(0)
            .acquire_timeout(acquire_timeout)
            .idle_timeout(Some(Duration::from_secs(300)))
            .max_lifetime(Some(Duration::from_secs(1800)))
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_IF_IDLE_FOR {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .connect_lazy_with(options);
        Store {
            pool,
            schema: Arc::new(SchemaState::default()),
            query_timeout: query_timeout.max(acquire_timeout),
        }
    }

    pub fn schema_ready(&self) -> bool {
        self.schema.ready.load(Ordering::SeqCst)
    }

    /// Runs the migrations now and again whenever the table goes missing, retrying with
    /// exponential backoff while the database is unreachable. Returns when `stop` fires.
    pub async fn keep_schema(self, stop: CancellationToken) {
        let mut migrator: Migrator = sqlx::migrate!("migrations/users");
        migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(10))
            .with_jitter()
            .without_max_times();
        loop {
            let attempt = || async { migrator.run(&self.pool).await };
            let schema = self.schema.clone();
            let migrate =
                attempt
                    .retry(backoff)
                    .sleep(tokio::time::sleep)
                    .notify(move |error, delay| {
                        let error = error.to_string();
                        tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64,
                        "database schema not in place yet; retrying");
                        *schema.last_error.lock().unwrap() = Some(error);
                    });
            tokio::select! {
                _ = stop.cancelled() => return,
                result = migrate => {
                    if let Err(error) = result {
                        // Unreachable with an unbounded retry, but never spin.
                        tracing::error!(%error, "migrations gave up");
                        return;
                    }
                }
            }
            *self.schema.last_error.lock().unwrap() = None;
            self.schema.ready.store(true, Ordering::SeqCst);
            metrics::gauge!("users_schema_ready").set(1.0);
            tracing::info!("database schema is in place");
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.schema.lost.notified() => {
                    self.schema.ready.store(false, Ordering::SeqCst);
                    metrics::gauge!("users_schema_ready").set(0.0);
                    tracing::warn!("the users table is missing; running the migrations again");
                }
            }
        }
    }

    /// Whether the API can serve: the database answers and the schema is in place.
    /// `Err((database, reason))` says whether the database itself was reachable.
    pub async fn check(&self) -> Result<(), (&'static str, String)> {
        if !self.schema_ready() {
            let ping = async {
                let mut conn = self.pool.acquire().await?;
                conn.ping().await
            };
            match tokio::time::timeout(self.query_timeout, ping).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return Err(("disconnected", unavailable_reason(&error))),
                Err(_) => return Err(("disconnected", self.timed_out().to_string())),
            }
            let detail = self
                .schema
                .last_error
                .lock()
                .unwrap()
                .clone()
                .unwrap_or_else(|| "migrations are running".to_owned());
            return Err((
                "connected",
                format!("database schema is not in place yet: {detail}"),
            ));
        }
        // Touching the table also notices a database replaced by an empty one.
        let probe = sqlx::query("SELECT 1 FROM users LIMIT 0").execute(&self.pool);
        match tokio::time::timeout(self.query_timeout, probe).await {
            Ok(Ok(_)) => Ok(()),
            Err(_) => Err(("disconnected", self.timed_out().to_string())),
            Ok(Err(error)) => {
                let connected = matches!(&error, sqlx::Error::Database(db)
                    if db.code().as_deref() == Some("42P01"));
                let reason = self.classify(error).to_string();
                Err((
                    if connected {
                        "connected"
                    } else {
                        "disconnected"
                    },
                    reason,
                ))
            }
        }
    }

    fn ensure_schema(&self) -> Result<(), StoreError> {
        if self.schema_ready() {
            return Ok(());
        }
        let reason = match self.schema.last_error.lock().unwrap().as_deref() {
            Some(error) => format!("database not ready: {error}"),
            None => "database schema is not in place yet; try again shortly".to_owned(),
        };
        Err(StoreError::NotReady(reason))
    }

    pub async fn create(&self, name: &str, email: &str) -> Result<User, StoreError> {
        self.ensure_schema()?;
        let sql = "INSERT INTO users (name, email) VALUES ($1, $2) \
                   RETURNING id, name, email, created_at";
        let insert = sqlx::query_as::<_, User>(sql)
            .bind(name)
            .bind(email)
            .fetch_one(&self.pool);
        self.bounded(insert).await
    }

    /// Up to `limit` users with an id above `after_id`, by id ascending.
    pub async fn list(&self, after_id: i64, limit: i64) -> Result<Page, StoreError> {
        self.ensure_schema()?;
        let sql = "SELECT id, name, email, created_at FROM users WHERE id > $1 \
                   ORDER BY id LIMIT $2";
        let select = sqlx::query(sql)
            .bind(after_id)
            .bind(limit)
            .fetch_all(&self.pool);
        Ok(Page {
            rows: self.bounded(select).await?,
        })
    }

    pub async fn get(&self, id: i64) -> Result<Option<User>, StoreError> {
        self.ensure_schema()?;
        let select = sqlx::query_as::<_, User>(
            "SELECT id, name, email, created_at FROM users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool);
        self.bounded(select).await
    }

    pub async fn delete(&self, id: i64) -> Result<Option<User>, StoreError> {
        self.ensure_schema()?;
        let delete = sqlx::query_as::<_, User>(
            "DELETE FROM users WHERE id = $1 RETURNING id, name, email, created_at",
        )
        .bind(id)
        .fetch_optional(&self.pool);
        self.bounded(delete).await
    }

    /// Runs one database operation within the query timeout. A timed-out write may still
    /// have been committed; the client is told the outcome is unknown.
    async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.query_timeout, work).await {
            Ok(result) => result.map_err(|e| self.classify(e)),
            Err(_) => Err(self.timed_out()),
        }
    }

    fn timed_out(&self) -> StoreError {
        StoreError::Unavailable(format!(
            "database unavailable: no answer within {} ms",
            self.query_timeout.as_millis()
        ))
    }

    /// Sorts a database failure into what the client should be told.
    fn classify(&self, error: sqlx::Error) -> StoreError {
        if let sqlx::Error::Database(db) = &error {
            if db.is_unique_violation() {
                return StoreError::DuplicateEmail;
            }
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            if code == "42P01" {
                // undefined_table: the database was replaced by an empty one.
                self.schema.ready.store(false, Ordering::SeqCst);
                self.schema.lost.notify_one();
                return StoreError::Unavailable(
                    "the users table is missing; the schema is being created again".into(),
                );
            }
            // Connection exceptions, refused logins, a missing database, shutdown, resource
            // exhaustion, a read-only standby: the database is not usable right now.
            if ["08", "28", "53", "57"].iter().any(|c| code.starts_with(c))
                || code == "3D000"
                || code == "25006"
            {
                return StoreError::Unavailable(unavailable_reason(&error));
            }
            return StoreError::Other(db.message().to_owned());
        }
        if is_connection_error(&error) {
            return StoreError::Unavailable(unavailable_reason(&error));
        }
        StoreError::Other(error.to_string())
    }
}

fn is_connection_error(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_)
    )
}

/// A reason for a client or a log line. sqlx's messages carry no connection string, so the
/// password cannot leak through them.
fn unavailable_reason(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::PoolTimedOut => {
            "database unavailable: no connection could be opened in time".to_owned()
        }
        sqlx::Error::Database(db) => format!("database unavailable: {}", db.message()),
        other => format!("database unavailable: {other}"),
    }
}

/// Counts a failure by kind, for `/metrics`.
pub fn record_failure(error: &StoreError) {
    let kind = match error {
        StoreError::DuplicateEmail => "duplicate_email",
        StoreError::Unavailable(_) | StoreError::NotReady(_) => "unavailable",
        StoreError::Other(_) => "other",
    };
    metrics::counter!("users_store_errors_total", "kind" => kind).increment(1);
}

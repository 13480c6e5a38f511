//! Where messages live: one SQLite file (the anti-pattern) or PostgreSQL (the fix).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::validate::NewMessage;
use crate::server::{BackendError, Readiness};

pub mod postgres;
pub mod sqlite;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    pub id: i64,
    pub name: String,
    pub message: String,
    pub replica: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Columns by name, from PostgreSQL (SQLite's rows arrive as one JSON array).
impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for Message {
    fn from_row(row: &'r sqlx::postgres::PgRow) -> Result<Message, sqlx::Error> {
        use sqlx::Row;
        Ok(Message {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            message: row.try_get("message")?,
            replica: row.try_get("replica")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds SQLite's write lock (SQLITE_BUSY).
    #[error("database is locked")]
    Locked,
    /// An instructor closed the guestbook in the config table (`posting_open` = false).
    #[error("the guestbook is closed for new messages")]
    Closed,
    /// Everything else, sorted by the shared classifier (unavailable, bad input, other).
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Where the secret message shown on the page came from.
#[derive(Debug, Clone, Serialize)]
pub struct Secret {
    pub value: Option<String>,
    pub source: &'static str,
}

pub enum Store {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

impl Store {
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Newest first; `before_id` pages further back.
    pub async fn list(
        &self,
        limit: u32,
        before_id: Option<i64>,
    ) -> Result<Vec<Message>, StoreError> {
        match self {
            Store::Sqlite(s) => s.list(limit, before_id).await,
            Store::Postgres(s) => s.list(limit, before_id).await,
        }
    }

    /// What the page shows: the newest messages and the secret, read together.
    pub async fn page(&self, limit: u32) -> Result<(Vec<Message>, Secret), StoreError> {
        match self {
            Store::Sqlite(s) => s.page(limit).await,
            Store::Postgres(s) => Ok((s.list(limit, None).await?, s.secret())),
        }
    }

    /// For SQLite, a number that changes whenever anyone commits to the file; `None` for
    /// PostgreSQL (no such cheap question), or when SQLite cannot tell right now.
    pub fn data_version(&self) -> Option<i64> {
        match self {
            Store::Sqlite(s) => s.data_version(),
            Store::Postgres(_) => None,
        }
    }

    pub async fn insert(&self, new: &NewMessage, replica: &str) -> Result<Message, StoreError> {
        match self {
            Store::Sqlite(s) => s.insert(new, replica).await,
            Store::Postgres(s) => s.insert(new, replica).await,
        }
    }

    pub async fn secret(&self) -> Result<Secret, StoreError> {
        match self {
            Store::Sqlite(s) => s.secret().await,
            Store::Postgres(s) => Ok(s.secret()),
        }
    }

    /// Whether the store can serve reads and writes right now.
    pub async fn check(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.check().await,
            Store::Postgres(s) => s.check().await,
        }
    }
}

impl Readiness for std::sync::Arc<Store> {
    async fn check(&self) -> Result<(), String> {
        Store::check(self).await.map_err(|e| e.to_string())
    }
}

/// SQLITE_BUSY and its extended codes (BUSY_RECOVERY, BUSY_SNAPSHOT, BUSY_TIMEOUT) all end in 5.
fn is_sqlite_busy(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|code| code & 0xff == 5),
        _ => false,
    }
}

/// SQLite: a busy file is the lesson (`Locked`). Its own error codes are not SQLSTATEs, so
/// they are reported as they are; pool and I/O failures are sorted as for any sqlx pool.
fn classify_sqlite(error: sqlx::Error) -> StoreError {
    if is_sqlite_busy(&error) {
        return StoreError::Locked;
    }
    match &error {
        sqlx::Error::Database(db) => {
            BackendError::other(format!("SQLite: {}", db.message())).into()
        }
        _ => crate::server::postgres::classify(&error).into(),
    }
}

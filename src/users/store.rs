//! The users table and the connection to PostgreSQL: a lazily connected pool (so startup never
//! waits for the database), the schema kept in place by a background task that retries with
//! backoff, and the mapping of database failures onto what the API answers.

use std::sync::Arc;

use crate::server::migrations::{self, Embedded, embed_migrations};
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, Row};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::server::postgres::{Postgres, Schema};
use crate::server::{BackendError, Readiness};

/// The table recording which of `migrations/users` have run (one per service, so services can
/// share a database).
pub const MIGRATIONS_TABLE: &str = "_sqlx_migrations_users";
pub const MIGRATIONS: &[Embedded] =
    embed_migrations!("migrations/users", ["0001_create_users.sql"]);

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
            .map(|row| {
                UserRef::from_row(row)
                    .map_err(|e| StoreError::Backend(crate::server::postgres::classify(&e)))
            })
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

/// Why a database operation did not happen: the one domain case, or the shared backend kinds.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a user with this email already exists")]
    DuplicateEmail,
    #[error(transparent)]
    Backend(#[from] BackendError),
}

#[derive(Clone)]
pub struct Store {
    database: Postgres,
    schema: Arc<Schema>,
}

impl Store {
    /// The pool connects on first use; the schema is put in place (and kept there) in the
    /// background until `stop`.
    pub fn new(database: Postgres, stop: CancellationToken) -> Store {
        let migrator = migrations::migrator(MIGRATIONS, MIGRATIONS_TABLE);
        let schema = Schema::keep("users", &database, migrator, stop);
        Store { database, schema }
    }

    /// Whether the API can serve: the database answers and the schema is in place.
    /// `Err((database, reason))` says whether the database itself was reachable.
    pub async fn health(&self) -> Result<(), (&'static str, String)> {
        let Err(reason) = self
            .schema
            .check(&self.database, "SELECT 1 FROM users LIMIT 0")
            .await
        else {
            return Ok(());
        };
        match self.database.ping().await {
            Ok(()) => Err(("connected", reason)),
            Err(_) => Err(("disconnected", reason)),
        }
    }

    pub async fn create(&self, name: &str, email: &str) -> Result<User, StoreError> {
        let sql = "INSERT INTO users (name, email) VALUES ($1, $2) \
                   RETURNING id, name, email, created_at";
        let insert = sqlx::query_as::<_, User>(sql)
            .bind(name)
            .bind(email)
            .fetch_one(self.database.pool());
        match self.run(insert).await {
            Err(StoreError::Backend(e)) if e.code() == Some("23505") => {
                Err(StoreError::DuplicateEmail)
            }
            other => other,
        }
    }

    /// Up to `limit` users with an id above `after_id`, by id ascending.
    pub async fn list(&self, after_id: i64, limit: i64) -> Result<Page, StoreError> {
        let sql = "SELECT id, name, email, created_at FROM users WHERE id > $1 \
                   ORDER BY id LIMIT $2";
        let select = sqlx::query(sql)
            .bind(after_id)
            .bind(limit)
            .fetch_all(self.database.pool());
        Ok(Page {
            rows: self.run(select).await?,
        })
    }

    pub async fn get(&self, id: i64) -> Result<Option<User>, StoreError> {
        let select = sqlx::query_as::<_, User>(
            "SELECT id, name, email, created_at FROM users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.database.pool());
        self.run(select).await
    }

    pub async fn delete(&self, id: i64) -> Result<Option<User>, StoreError> {
        let delete = sqlx::query_as::<_, User>(
            "DELETE FROM users WHERE id = $1 RETURNING id, name, email, created_at",
        )
        .bind(id)
        .fetch_optional(self.database.pool());
        self.run(delete).await
    }

    /// One query under the schema keeper's rules (see `Schema::run`), failures counted.
    async fn run<T>(
        &self,
        work: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        let result = self.schema.run(&self.database, work).await;
        if let Err(error) = &result {
            metrics::counter!("users_store_errors_total", "kind" => error.kind_label())
                .increment(1);
        }
        Ok(result?)
    }
}

impl Readiness for Store {
    async fn check(&self) -> Result<(), String> {
        self.health().await.map_err(|(_, reason)| reason)
    }
}

//! PostgreSQL: a server that many replicas share safely. The pool connects lazily and the
//! schema is applied in the background with backoff, so the app starts (not ready) even when
//! the database comes up second.

use std::sync::Arc;

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::{Message, Secret, StoreError};
use crate::guestbook::validate::NewMessage;
use crate::server::BackendError;
use crate::server::migrations::{self, Embedded, embed_migrations};
use crate::server::postgres::{Postgres, Schema};

pub const MIGRATIONS: &[Embedded] = embed_migrations!(
    "migrations/guestbook/postgres",
    ["0001_messages_and_config.sql"]
);

pub struct PgStore {
    database: Postgres,
    schema: Arc<Schema>,
    secret: Option<String>,
}

impl PgStore {
    /// The pool connects on first use; the schema is kept in place in the background until
    /// `stop`.
    pub fn new(database: Postgres, secret: Option<String>, stop: CancellationToken) -> PgStore {
        let migrator = migrations::migrator(MIGRATIONS, "_sqlx_migrations_guestbook");
        let schema = Schema::keep("guestbook", &database, migrator, stop);
        PgStore {
            database,
            schema,
            secret,
        }
    }

    /// One query under the schema keeper's rules (see `Schema::run`).
    async fn run<T>(
        &self,
        work: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        Ok(self.schema.run(&self.database, work).await?)
    }

    pub async fn list(
        &self,
        limit: u32,
        before_id: Option<i64>,
    ) -> Result<Vec<Message>, StoreError> {
        let select = sqlx::query_as(
            "SELECT id, name, message, replica, created_at FROM messages \
             WHERE id < $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(before_id.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(self.database.pool());
        self.run(select).await
    }

    pub async fn insert(&self, new: &NewMessage, replica: &str) -> Result<Message, StoreError> {
        let insert = sqlx::query_as(
            "INSERT INTO messages (name, message, replica, created_at) VALUES ($1, $2, $3, $4) \
             RETURNING id, name, message, replica, created_at",
        )
        .bind(&new.name)
        .bind(&new.message)
        .bind(replica)
        .bind(OffsetDateTime::now_utc())
        .fetch_one(self.database.pool());
        self.run(insert).await
    }

    pub fn secret(&self) -> Secret {
        Secret {
            value: self.secret.clone(),
            source: "the environment variable GUESTBOOK_SECRET",
        }
    }

    pub async fn check(&self) -> Result<(), StoreError> {
        self.schema
            .check(&self.database, "SELECT 1 FROM messages LIMIT 0")
            .await
            .map_err(|reason| BackendError::unavailable(reason).into())
    }
}

//! PostgreSQL: a server that many replicas share safely. The pool connects lazily and the
//! schema is applied in the background with backoff, so the app starts (not ready) even when
//! the database comes up second.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use time::OffsetDateTime;

use super::{Message, Secret, StoreError, classify};
use crate::guestbook::validate::NewMessage;

pub struct PgStore {
    pool: PgPool,
    schema_ready: Arc<AtomicBool>,
    secret: Option<String>,
}

impl PgStore {
    pub fn connect(url: &str, pool_size: u32, secret: Option<String>) -> anyhow::Result<PgStore> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e| anyhow::anyhow!("invalid PostgreSQL URL: {e}"))?;
        let pool = PgPoolOptions::new()
            .max_connections(pool_size)
            .acquire_timeout(Duration::from_secs(2))
            .connect_lazy_with(options);
        let store = PgStore {
            pool,
            schema_ready: Arc::new(AtomicBool::new(false)),
            secret,
        };
        store.migrate_in_background();
        Ok(store)
    }

    fn migrate_in_background(&self) {
        let mut migrator = sqlx::migrate!("migrations/guestbook/postgres");
        migrator.dangerous_set_table_name("_sqlx_migrations_guestbook");
        crate::server::schema::migrate_in_background(
            self.pool.clone(),
            migrator,
            self.schema_ready.clone(),
            Duration::from_secs(2),
            "guestbook",
        );
    }

    fn require_schema(&self) -> Result<(), StoreError> {
        if self.schema_ready.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(StoreError::Unavailable(
                "schema not in place yet (database unreachable?)".into(),
            ))
        }
    }

    pub async fn list(
        &self,
        limit: u32,
        before_id: Option<i64>,
    ) -> Result<Vec<Message>, StoreError> {
        self.require_schema()?;
        sqlx::query_as(
            "SELECT id, name, message, replica, created_at FROM messages \
             WHERE id < $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(before_id.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)
    }

    pub async fn insert(&self, new: &NewMessage, replica: &str) -> Result<Message, StoreError> {
        self.require_schema()?;
        sqlx::query_as(
            "INSERT INTO messages (name, message, replica, created_at) VALUES ($1, $2, $3, $4) \
             RETURNING id, name, message, replica, created_at",
        )
        .bind(&new.name)
        .bind(&new.message)
        .bind(replica)
        .bind(OffsetDateTime::now_utc())
        .fetch_one(&self.pool)
        .await
        .map_err(classify)
    }

    pub fn secret(&self) -> Secret {
        Secret {
            value: self.secret.clone(),
            source: "the environment variable GUESTBOOK_SECRET",
        }
    }

    pub async fn check(&self) -> Result<(), StoreError> {
        self.require_schema()?;
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(())
    }
}

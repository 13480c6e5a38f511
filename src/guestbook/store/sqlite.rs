//! One SQLite file shared by every replica. One process serialises its own writes through a
//! single writer connection, so one replica never sees a lock error; several processes on the
//! same file do, for the real reason (see `insert`).

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use backon::{ConstantBuilder, Retryable};
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use time::OffsetDateTime;

use super::{Message, Secret, StoreError, classify_sqlite as classify, is_sqlite_busy};
use crate::guestbook::config::{JournalMode, SqliteBegin};
use crate::guestbook::validate::NewMessage;
use crate::server::BackendError;
use crate::server::migrations::{self, Embedded, embed_migrations};

const SECRET_KEY: &str = "secret_message";
const POSTING_OPEN_KEY: &str = "posting_open";
const DEFAULT_SECRET: &str =
    "This secret was written into the database by the first replica that started.";

pub const MIGRATIONS: &[Embedded] = embed_migrations!(
    "migrations/guestbook/sqlite",
    ["0001_messages_and_config.sql"]
);

pub struct SqliteStore {
    /// Exactly one connection: this process's writes never contend with each other.
    writer: SqlitePool,
    readers: SqlitePool,
    changes: ChangeProbe,
    begin: SqliteBegin,
    pub path: PathBuf,
}

pub struct SqliteSettings {
    pub path: PathBuf,
    pub begin: SqliteBegin,
    pub busy_timeout: Duration,
    pub journal_mode: JournalMode,
}

impl SqliteStore {
    pub async fn open(
        settings: SqliteSettings,
        secret: Option<&str>,
    ) -> anyhow::Result<SqliteStore> {
        if let Some(dir) = settings.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(&settings.path)
            .create_if_missing(true)
            .busy_timeout(settings.busy_timeout)
            .journal_mode(journal_mode(settings.journal_mode));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", settings.path.display()))?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.read_only(false))
            .await?;
        let changes = ChangeProbe::open(&settings.path)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", settings.path.display()))?;
        let store = SqliteStore {
            writer,
            readers,
            changes,
            begin: settings.begin,
            path: settings.path,
        };
        store.migrate().await?;
        store.seed_config(secret.unwrap_or(DEFAULT_SECRET)).await?;
        Ok(store)
    }

    /// Replicas started at the same moment on an empty directory race to create the schema;
    /// the loser sees "locked" or "already applied" and simply tries again.
    async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = migrations::migrator(MIGRATIONS, "_sqlx_migrations_guestbook");
        (|| migrator.run(&self.writer))
            .retry(replica_race())
            .sleep(tokio::time::sleep)
            .notify(|error, _| {
                tracing::debug!(%error, "schema migration raced another replica; retrying")
            })
            .await
            .map_err(|error| anyhow::anyhow!("schema migration failed: {error}"))
    }

    /// Seeds the config table once: existing values are never overwritten.
    async fn seed_config(&self, secret: &str) -> anyhow::Result<()> {
        let present: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM config WHERE key IN (?, ?)")
            .bind(SECRET_KEY)
            .bind(POSTING_OPEN_KEY)
            .fetch_one(&self.readers)
            .await?;
        if present == 2 {
            return Ok(()); // a restart writes nothing
        }
        let seed = || {
            sqlx::query(
                "INSERT INTO config (key, value) VALUES (?, ?), (?, 'true') ON CONFLICT (key) DO NOTHING",
            )
            .bind(SECRET_KEY)
            .bind(secret)
            .bind(POSTING_OPEN_KEY)
            .execute(&self.writer)
        };
        seed.retry(replica_race())
            .sleep(tokio::time::sleep)
            .when(is_sqlite_busy)
            .await?;
        Ok(())
    }

    /// SQLite answers through a worker thread, one hop per row; building the page's rows as one
    /// JSON array inside SQLite makes it one hop per request.
    pub async fn list(
        &self,
        limit: u32,
        before_id: Option<i64>,
    ) -> Result<Vec<Message>, StoreError> {
        let json: String = sqlx::query_scalar(
            "SELECT COALESCE(json_group_array(json_object('id', id, 'name', name, \
             'message', message, 'replica', replica, 'created_at', created_at)), '[]') \
             FROM (SELECT * FROM messages WHERE id < ? ORDER BY id DESC LIMIT ?)",
        )
        .bind(before_id.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_one(&self.readers)
        .await
        .map_err(classify)?;
        messages_from_json(&json)
    }

    /// The write transaction reads the guestbook's settings from the config table, then
    /// inserts. Started `BEGIN` (deferred), the read takes a shared lock; if another process
    /// already holds the write lock, SQLite cannot upgrade ours without risking deadlock and
    /// answers SQLITE_BUSY at once, whatever the busy timeout. `BEGIN IMMEDIATE` takes the
    /// write lock first and waits instead.
    pub async fn insert(&self, new: &NewMessage, replica: &str) -> Result<Message, StoreError> {
        let mut conn = self.writer.acquire().await.map_err(classify)?;
        let mut tx = match self.begin {
            SqliteBegin::Deferred => conn.begin().await,
            SqliteBegin::Immediate => conn.begin_with("BEGIN IMMEDIATE").await,
        }
        .map_err(classify)?;
        let open: Option<String> = sqlx::query_scalar("SELECT value FROM config WHERE key = ?")
            .bind(POSTING_OPEN_KEY)
            .fetch_optional(&mut *tx)
            .await
            .map_err(classify)?;
        if open.as_deref() == Some("false") {
            let _ = tx.rollback().await;
            return Err(StoreError::Closed);
        }
        let created_at = OffsetDateTime::now_utc();
        let inserted = sqlx::query_scalar::<_, i64>(
            "INSERT INTO messages (name, message, replica, created_at) VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(&new.name)
        .bind(&new.message)
        .bind(replica)
        .bind(created_at)
        .fetch_one(&mut *tx)
        .await;
        let id = match inserted {
            Ok(id) => id,
            Err(error) => {
                let _ = tx.rollback().await;
                return Err(classify(error));
            }
        };
        tx.commit().await.map_err(classify)?;
        Ok(Message {
            id,
            name: new.name.clone(),
            message: new.message.clone(),
            replica: replica.to_owned(),
            created_at,
        })
    }

    /// The page's messages and secret in one statement, so one shared lock covers both. In
    /// rollback-journal mode a reader waits only while another process holds PENDING or
    /// EXCLUSIVE (it is committing, or began EXCLUSIVE); RESERVED, which `BEGIN IMMEDIATE` and
    /// a pending write take, does not stop readers. Two statements would each wait a busy
    /// timeout behind such a lock; one statement waits at most once.
    pub async fn page(&self, limit: u32) -> Result<(Vec<Message>, Secret), StoreError> {
        let (json, value): (String, Option<String>) = sqlx::query_as(
            "SELECT (SELECT COALESCE(json_group_array(json_object('id', id, 'name', name, \
             'message', message, 'replica', replica, 'created_at', created_at)), '[]') \
             FROM (SELECT * FROM messages ORDER BY id DESC LIMIT ?)), \
             (SELECT value FROM config WHERE key = ?)",
        )
        .bind(limit)
        .bind(SECRET_KEY)
        .fetch_one(&self.readers)
        .await
        .map_err(classify)?;
        let messages = messages_from_json(&json)?;
        Ok((messages, secret(value)))
    }

    pub async fn secret(&self) -> Result<Secret, StoreError> {
        let value: Option<String> = sqlx::query_scalar("SELECT value FROM config WHERE key = ?")
            .bind(SECRET_KEY)
            .fetch_optional(&self.readers)
            .await
            .map_err(classify)?;
        Ok(secret(value))
    }

    /// A number that changes whenever any connection, in this process or another, commits to
    /// the file; `None` when SQLite cannot tell at once (see `ChangeProbe`).
    pub fn data_version(&self) -> Option<i64> {
        self.changes.version()
    }

    pub async fn check(&self) -> Result<(), StoreError> {
        if !self.path.exists() {
            let shown = self.path.display();
            return Err(BackendError::unavailable(format!(
                "database unavailable: {shown} no longer exists"
            ))
            .into());
        }
        sqlx::query("SELECT 1 FROM messages LIMIT 1")
            .execute(&self.readers)
            .await
            .map_err(classify)?;
        Ok(())
    }
}

/// `PRAGMA data_version` on a connection of its own that never writes: its value changes
/// exactly when another connection (any process's, this one's writer included) has committed
/// since the last time this connection asked. Asked through sqlx, the question costs a hop to a
/// worker thread and back, as much as the read it would spare; asked here it costs a shared
/// lock and a look at the file header or the WAL index, on the caller's thread. So the caller
/// must not wait: the busy timeout is zero, and a file busy at that instant (a rollback-journal
/// writer committing) answers `None`, for the caller to read the ordinary way.
struct ChangeProbe(std::sync::Mutex<rusqlite::Connection>);

impl ChangeProbe {
    fn open(path: &std::path::Path) -> rusqlite::Result<ChangeProbe> {
        use rusqlite::OpenFlags;
        // Read-write without create: a read-only connection cannot open a WAL file whose
        // shared-memory index does not exist yet.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = rusqlite::Connection::open_with_flags(path, flags)?;
        connection.busy_timeout(Duration::ZERO)?;
        Ok(ChangeProbe(std::sync::Mutex::new(connection)))
    }

    fn version(&self) -> Option<i64> {
        let connection = self.0.lock().ok()?;
        // Prepared once, stepped on every request: the pragma is evaluated at each step.
        let mut pragma = connection.prepare_cached("PRAGMA data_version").ok()?;
        pragma.query_row([], |row| row.get(0)).ok()
    }
}

/// The rows `json_group_array` built, newest first.
fn messages_from_json(json: &str) -> Result<Vec<Message>, StoreError> {
    let mut messages: Vec<Message> = serde_json::from_str(json)
        .map_err(|e| BackendError::other(format!("unreadable row in messages: {e}")))?;
    // Aggregate order is not guaranteed by SQL; newest first is.
    messages.sort_unstable_by_key(|m| std::cmp::Reverse(m.id));
    Ok(messages)
}

fn secret(value: Option<String>) -> Secret {
    Secret {
        value,
        source: "the database's config table (seeded once from GUESTBOOK_SECRET)",
    }
}

/// `--database` may be a path or a sqlite:// URL.
pub fn path_from(database: &str) -> PathBuf {
    let trimmed = database
        .strip_prefix("sqlite://")
        .or_else(|| database.strip_prefix("sqlite:"))
        .unwrap_or(database);
    PathBuf::from_str(trimmed).unwrap_or_else(|_| PathBuf::from(trimmed))
}

fn journal_mode(mode: JournalMode) -> SqliteJournalMode {
    match mode {
        JournalMode::Delete => SqliteJournalMode::Delete,
        JournalMode::Truncate => SqliteJournalMode::Truncate,
        JournalMode::Persist => SqliteJournalMode::Persist,
        JournalMode::Wal => SqliteJournalMode::Wal,
    }
}

/// 5–50 ms, growing with the attempt, randomised so racing replicas spread out.
/// Replicas starting together on one file: short jittered waits, up to 40 tries (a few seconds).
fn replica_race() -> ConstantBuilder {
    ConstantBuilder::default()
        .with_delay(Duration::from_millis(25))
        .with_max_times(40)
        .with_jitter()
}

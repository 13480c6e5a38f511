use std::path::PathBuf;

use crate::server::ServerArgs;
use crate::server::postgres::PostgresArgs;

/// How a write transaction starts in SQLite mode: the knob that decides the lesson.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteBegin {
    /// `BEGIN`: read first, take the write lock at the first write. A second process that
    /// also read first cannot upgrade and gets "database is locked" at once (the seed's failure).
    Deferred,
    /// `BEGIN IMMEDIATE`: take the write lock up front and wait up to the busy timeout.
    /// No errors on one node, but every write in every replica queues behind one lock.
    Immediate,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalMode {
    /// Rollback journal, SQLite's default (and the original app's)
    Delete,
    Truncate,
    Persist,
    /// Write-ahead log: readers no longer block the writer, but writers still exclude each other
    Wal,
}

/// The guestbook of seed 000: works with one replica, fails with "database is locked" when
/// several replicas share one SQLite file; PostgreSQL is the fix.
#[derive(clap::Args, Debug, Clone)]
#[command(
    mut_arg("database_url", |a| a.help(
        "Storage: a postgres:// URL (the fix), or a SQLite file as a path or sqlite:PATH \
         [default: database.db inside --data-dir]"
    )),
    mut_arg("db_name", |a| a.default_value("guestbook"))
)]
pub struct Config {
    #[command(flatten)]
    pub server: ServerArgs,

    /// Where the guestbook keeps files (the SQLite database by default); created if missing
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// PostgreSQL, the fix: DATABASE_URL, or DB_HOST and the other DB_* variables
    #[command(flatten)]
    pub database: PostgresArgs,

    /// How SQLite write transactions begin
    #[arg(long, env = "SQLITE_BEGIN", value_enum, default_value_t = SqliteBegin::Deferred)]
    pub sqlite_begin: SqliteBegin,

    /// How long SQLite waits for a lock before answering "database is locked".
    /// It does not help deferred transactions: an upgrade that could deadlock fails at once
    #[arg(long, env = "SQLITE_BUSY_TIMEOUT_MS", default_value_t = 5000)]
    pub sqlite_busy_timeout_ms: u64,

    /// SQLite journal mode
    #[arg(long, env = "SQLITE_JOURNAL_MODE", value_enum, default_value_t = JournalMode::Delete)]
    pub sqlite_journal_mode: JournalMode,

    /// The "secret message". SQLite mode: seeded once into the database's config table when
    /// absent, never overwritten. PostgreSQL mode: read from here on every start
    #[arg(long, env = "GUESTBOOK_SECRET", hide_env_values = true)]
    pub secret: Option<String>,

    /// How many of the newest messages the page shows
    #[arg(long, env = "GUESTBOOK_PAGE_SIZE", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub page_size: u32,
}

impl Config {
    /// The SQLite file named by DATABASE_URL, when it names one rather than PostgreSQL.
    pub fn sqlite_url(&self) -> Option<&str> {
        self.database
            .url()
            .filter(|url| !url.starts_with("postgres://") && !url.starts_with("postgresql://"))
    }
}

//! Which setups the demo runs, as typed values: the SQLite rows at each replica count, the
//! BEGIN IMMEDIATE row, and the PostgreSQL rows.

use anyhow::bail;
use serde::Serialize;

use super::{Args, Row};
use crate::guestbook::config::SqliteBegin;

/// Where the guestbook replicas of one setup store their messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The guestbook's storage flags in one setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    Sqlite {
        begin: SqliteBegin,
        busy_timeout_ms: u64,
    },
    Postgres,
}

/// The guestbook's default busy timeout, kept by the deferred rows: it cannot help them.
const DEFAULT_BUSY_TIMEOUT_MS: u64 = 5000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    pub storage: Storage,
    pub replicas: usize,
}

impl Setup {
    pub fn backend(&self) -> Backend {
        match self.storage {
            Storage::Sqlite { .. } => Backend::Sqlite,
            Storage::Postgres => Backend::Postgres,
        }
    }

    /// How SQLite write transactions begin (PostgreSQL setups: the flag's default, ignored).
    pub fn begin(&self) -> SqliteBegin {
        match self.storage {
            Storage::Sqlite { begin, .. } => begin,
            Storage::Postgres => SqliteBegin::Deferred,
        }
    }

    pub fn busy_timeout_ms(&self) -> Option<u64> {
        match self.storage {
            Storage::Sqlite {
                busy_timeout_ms, ..
            } => Some(busy_timeout_ms),
            Storage::Postgres => None,
        }
    }

    /// The setup a row of the report was measured in.
    pub fn of_row(row: &Row) -> Setup {
        let storage = match row.backend {
            Backend::Sqlite => Storage::Sqlite {
                begin: row.begin,
                busy_timeout_ms: row.busy_timeout_ms.unwrap_or_default(),
            },
            Backend::Postgres => Storage::Postgres,
        };
        Setup {
            storage,
            replicas: row.replicas,
        }
    }

    /// A name for file and directory names.
    pub fn slug(&self) -> String {
        match self.storage {
            Storage::Sqlite { begin, .. } => {
                format!("sqlite-{}-{}", begin_name(begin), self.replicas)
            }
            Storage::Postgres => format!("postgres-{}", self.replicas),
        }
    }

    /// The setup in words, for progress lines.
    pub fn label(&self) -> String {
        match self.storage {
            Storage::Sqlite {
                begin: SqliteBegin::Deferred,
                ..
            } => "SQLite file, BEGIN".into(),
            Storage::Sqlite {
                begin: SqliteBegin::Immediate,
                busy_timeout_ms,
            } => format!("SQLite file, IMMEDIATE + {busy_timeout_ms} ms wait"),
            Storage::Postgres => "PostgreSQL".into(),
        }
    }
}

/// The value of the guestbook's `--sqlite-begin` flag.
pub fn begin_name(begin: SqliteBegin) -> &'static str {
    match begin {
        SqliteBegin::Deferred => "deferred",
        SqliteBegin::Immediate => "immediate",
    }
}

/// Every setup of one run, in order.
pub struct Plan {
    pub sqlite: Vec<Setup>,
    /// Run only when a PostgreSQL server is available
    pub postgres: Vec<Setup>,
}

impl Plan {
    pub fn from_args(args: &Args) -> anyhow::Result<Plan> {
        let mut counts: Vec<usize> = args.replicas.iter().map(|&n| usize::from(n)).collect();
        counts.sort_unstable();
        counts.dedup();
        let (Some(&fewest), Some(&most)) = (counts.first(), counts.last()) else {
            bail!("--replicas needs at least one replica count");
        };
        let sqlite = |begin, replicas, busy_timeout_ms| Setup {
            storage: Storage::Sqlite {
                begin,
                busy_timeout_ms,
            },
            replicas,
        };
        let mut sqlite_setups: Vec<Setup> = counts
            .iter()
            .map(|&n| sqlite(SqliteBegin::Deferred, n, DEFAULT_BUSY_TIMEOUT_MS))
            .collect();
        sqlite_setups.push(sqlite(SqliteBegin::Immediate, most, args.busy_timeout_ms));
        let mut pg_counts = vec![fewest, most];
        pg_counts.dedup();
        let postgres = pg_counts
            .into_iter()
            .map(|replicas| Setup {
                storage: Storage::Postgres,
                replicas,
            })
            .collect();
        Ok(Plan {
            sqlite: sqlite_setups,
            postgres,
        })
    }
}

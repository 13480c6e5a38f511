//! The SQL migrations under `migrations/`, compiled into the binary. `sqlx::migrate!` does the
//! same as a procedural macro, which builds sqlx's database drivers a second time for the
//! compiler itself (SQLite's C library included); this builds the same `Migrator`, with the
//! versions, descriptions and checksums sqlx's own reader gives the files (a test compares
//! them), so a database migrated by either agrees with the other.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// One migration file: its name (`0001_create_users.sql`) and its SQL.
pub struct Embedded {
    pub file: &'static str,
    pub sql: &'static str,
}

/// `embed_migrations!("migrations/users", ["0001_create_users.sql"])`: the files, read at
/// compile time. Every file of the directory must be named (a test checks none is missing).
macro_rules! embed_migrations {
    ($dir:literal, [$($file:literal),+ $(,)?]) => {
        &[$($crate::server::migrations::Embedded {
            file: $file,
            sql: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/", $dir, "/", $file)),
        }),+]
    };
}
pub(crate) use embed_migrations;

/// A migrator that records what it applied in `table`.
pub fn migrator(files: &'static [Embedded], table: &'static str) -> Migrator {
    let mut migrations: Vec<Migration> = files.iter().map(migration).collect();
    migrations.sort();
    let mut migrator = Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    };
    migrator.dangerous_set_table_name(table);
    migrator
}

/// As sqlx reads a file: `<version>_<description>.sql`, underscores in the description read
/// as spaces, and `-- no-transaction` on the first line runs it outside a transaction.
fn migration(file: &Embedded) -> Migration {
    let (version, rest) = file
        .file
        .split_once('_')
        .expect("a migration file is named <version>_<description>.sql");
    let version = version
        .parse()
        .expect("a migration file name starts with its version");
    let kind = MigrationType::from_filename(rest);
    let description = rest.trim_end_matches(kind.suffix()).replace('_', " ");
    Migration::new(
        version,
        Cow::Owned(description),
        kind,
        file.sql.into_sql_str(),
        file.sql.starts_with("-- no-transaction"),
    )
}

/// Every migration set the services use, with its directory, for the test below.
#[cfg(test)]
pub const ALL: &[(&str, &[Embedded])] = &[
    ("migrations/users", crate::users::store::MIGRATIONS),
    (
        "migrations/queue",
        crate::queue::backend::postgres::MIGRATIONS,
    ),
    (
        "migrations/guestbook/postgres",
        crate::guestbook::store::postgres::MIGRATIONS,
    ),
    (
        "migrations/guestbook/sqlite",
        crate::guestbook::store::sqlite::MIGRATIONS,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded migrations are exactly what sqlx itself reads from each directory: no file
    /// left out, and the same version, description, kind and checksum for each.
    #[test]
    fn embedded_migrations_match_what_sqlx_reads_from_the_directory() {
        for (dir, files) in ALL {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
            let from_disk = sqlx::migrate::resolve_blocking(&path).unwrap();
            let embedded = migrator(files, "t");
            assert_eq!(embedded.migrations.len(), from_disk.len(), "{dir}");
            for (ours, (theirs, _)) in embedded.migrations.iter().zip(&from_disk) {
                assert_eq!(ours.version, theirs.version, "{dir}");
                assert_eq!(ours.description, theirs.description, "{dir}");
                assert_eq!(ours.migration_type, theirs.migration_type, "{dir}");
                assert_eq!(ours.checksum, theirs.checksum, "{dir}");
                assert_eq!(ours.no_tx, theirs.no_tx, "{dir}");
            }
        }
    }
}

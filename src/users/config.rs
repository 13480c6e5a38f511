use crate::server::ServerArgs;
use crate::server::postgres::PostgresArgs;

/// The users API of Lab 06, Section 1: a stateless JSON API in front of PostgreSQL.
///
/// The database is given either piece by piece with the lab's variables (DB_HOST, DB_PORT,
/// DB_NAME, DB_USER, DB_PASSWORD) or as one DATABASE_URL, which then takes precedence.
/// A DB_HOST starting with `/` is a directory holding PostgreSQL's Unix socket.
#[derive(clap::Args, Clone, Debug)]
#[command(
    mut_arg("db_host", |a| a.default_value("postgres-0.postgres-headless")),
    mut_arg("db_name", |a| a.default_value("userdb"))
)]
pub struct Config {
    #[command(flatten)]
    pub server: ServerArgs,

    #[command(flatten)]
    pub database: PostgresArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: Config,
    }

    #[test]
    fn the_seed_defaults_point_at_the_statefulset_pod() {
        let config = Cli::try_parse_from(["users"]).unwrap().config;
        assert_eq!(
            config.database.target(),
            "postgres://postgres@postgres-0.postgres-headless:5432/userdb"
        );
    }
}

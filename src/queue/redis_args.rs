//! [`RedisArgs`] beside [`PostgresArgs`](crate::server::postgres::PostgresArgs) in one command.
//! Both name their URL argument `url`, and clap refuses two arguments with one id; the queue,
//! the one service that takes both, registers the Redis one as `redis_url`. Flags, variables,
//! help and defaults are the shared ones, unchanged.

use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::server::redis::RedisArgs;

const URL_ID: &str = "redis_url";

#[derive(Clone, Debug)]
pub struct QueueRedisArgs(pub RedisArgs);

impl std::ops::Deref for QueueRedisArgs {
    type Target = RedisArgs;

    fn deref(&self) -> &RedisArgs {
        &self.0
    }
}

fn renamed(cmd: Command, shared: Command) -> Command {
    shared.get_arguments().fold(cmd, |cmd, arg| {
        // Placed where the queue's flags put them, not by the scratch command's numbering.
        let arg = arg.clone().display_order(None);
        let arg = if arg.get_id() == "url" {
            arg.id(URL_ID)
        } else {
            arg
        };
        cmd.arg(arg)
    })
}

impl Args for QueueRedisArgs {
    fn augment_args(cmd: Command) -> Command {
        renamed(cmd, RedisArgs::augment_args(Command::new("redis")))
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        renamed(
            cmd,
            RedisArgs::augment_args_for_update(Command::new("redis")),
        )
    }
}

impl FromArgMatches for QueueRedisArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let number = |id: &str| {
            matches
                .get_one::<u16>(id)
                .copied()
                .ok_or_else(|| missing(id))
        };
        Ok(QueueRedisArgs(RedisArgs {
            url: matches.get_one::<String>(URL_ID).cloned(),
            redis_host: matches.get_one::<String>("redis_host").cloned(),
            redis_port: number("redis_port")?,
            redis_password: matches.get_one::<String>("redis_password").cloned(),
            redis_db: matches
                .get_one::<i64>("redis_db")
                .copied()
                .ok_or_else(|| missing("redis_db"))?,
            redis_timeout_ms: matches
                .get_one::<u64>("redis_timeout_ms")
                .copied()
                .ok_or_else(|| missing("redis_timeout_ms"))?,
        }))
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = QueueRedisArgs::from_arg_matches(matches)?;
        Ok(())
    }
}

fn missing(id: &str) -> clap::Error {
    clap::Error::raw(
        clap::error::ErrorKind::MissingRequiredArgument,
        format!("{id} has no value"),
    )
}

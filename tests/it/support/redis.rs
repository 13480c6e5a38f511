//! A private redis-server per test, on a Unix socket in a temporary directory (the demos'
//! private-backend launcher).

use std::ops::{Deref, DerefMut};

use statelab::demo::backends::Redis;

pub struct TestRedis(Redis);

impl TestRedis {
    /// Starts redis-server with AOF (`appendfsync everysec`) on or off.
    pub fn start(appendonly: bool) -> TestRedis {
        TestRedis(Redis::start(appendonly).unwrap_or_else(|e| panic!("{e:#}")))
    }

    /// Starts again on the same directory (and so the same AOF files).
    pub fn restart(&mut self) {
        self.0.restart().unwrap_or_else(|e| panic!("{e:#}"));
    }

    pub fn start_again(&mut self) {
        self.0.start_again().unwrap_or_else(|e| panic!("{e:#}"));
    }
}

impl Deref for TestRedis {
    type Target = Redis;

    fn deref(&self) -> &Redis {
        &self.0
    }
}

impl DerefMut for TestRedis {
    fn deref_mut(&mut self) -> &mut Redis {
        &mut self.0
    }
}

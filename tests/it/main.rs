//! The one integration-test binary: each module tests one service against real backends.

mod backend_rules;
mod browser;
mod cache;
mod counter;
mod demo_scaling;
mod docs_commands;
mod guestbook;
mod hostile_server;
mod lint;
mod load;
mod manifests;
mod pg_pool;
mod queue;
mod support;
mod users;
mod verify;

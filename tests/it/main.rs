//! The one integration-test binary: each module tests one service against real backends.

mod browser;
mod cache;
mod counter;
mod guestbook;
mod lint;
mod manifests;
mod queue;
mod support;
mod users;

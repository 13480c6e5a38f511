//! The one integration-test binary: each module tests one service against real backends.

mod demo_scaling;
mod guestbook;
mod load;
mod support;

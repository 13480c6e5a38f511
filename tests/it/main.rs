//! The one integration-test binary: each module tests one service against real backends.

mod support;
mod guestbook;
mod load;
mod demo_scaling;

//! statelab: the lessons of stateful workloads on Kubernetes as one binary.

pub mod cache;
pub mod cli;
pub mod counter;
pub mod demo;
pub mod guestbook;
pub mod lint;
pub mod load;
pub mod queue;
pub mod server;
pub mod sys;
pub mod users;

pub mod verify;

//! statelab: the lessons of stateful workloads on Kubernetes as one binary.

pub mod server;
pub mod guestbook;
pub mod load;
pub mod demo;

//! statelab: the lessons of stateful workloads on Kubernetes as one binary.

pub mod demo;
pub mod guestbook;
pub mod load;
pub mod server;

//! statelab: the lessons of stateful workloads on Kubernetes as one binary.

pub mod cache;
pub mod server;

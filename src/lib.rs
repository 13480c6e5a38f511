//! statelab: the lessons of stateful workloads on Kubernetes as one binary.

pub mod queue;
pub mod server;

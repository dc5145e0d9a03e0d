//! The Kubernetes operator for the `stash.appscode.com` resources: their types and
//! CRDs, the pure builders of desired objects, and (with the operator issues) the
//! controllers; the engine it drives lives in `stash-agent`.
#![forbid(unsafe_code)]

pub mod cli;
pub mod crd;
pub mod host;
pub mod image;
pub mod schedule;
pub mod sidecar;

//! Helpers shared by the integration tests under tests/.
#![forbid(unsafe_code)]

pub mod kube;
pub mod postgres;

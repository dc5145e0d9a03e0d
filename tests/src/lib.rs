//! Helpers shared by the integration tests under tests/.

pub mod kube;

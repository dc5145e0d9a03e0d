//! The operator on the test cluster: workload backup through the sidecar, restore
//! through the init container.

mod backup;
mod bad_input;
mod measure;
mod restore;
mod schedule;
mod support;

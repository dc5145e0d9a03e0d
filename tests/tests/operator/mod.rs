//! The operator on the test cluster: workload backup through the sidecar, restore
//! through the init container, volumes through Jobs.

mod auto_restore;
mod backup;
mod bad_input;
mod chart;
mod cluster;
mod default_backup;
mod hosts;
mod interrupted;
mod measure;
mod plugin;
mod postgres;
mod restore;
mod schedule;
mod scoped;
mod support;
mod task_failures;
mod volume;

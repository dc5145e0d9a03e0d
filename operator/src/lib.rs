//! The Kubernetes operator for the `stash.appscode.com` resources: their types and
//! CRDs, the pure builders of desired objects, and (with the operator issues) the
//! controllers; the engine it drives lives in `stash-agent`.
#![forbid(unsafe_code)]

pub mod auto_restore;
pub mod auto_restore_runner;
pub mod backup_metrics;
pub mod backup_runner;
pub mod builtin;
pub mod canonical;
pub mod cli;
pub mod cluster_dump;
pub mod cluster_yaml;
pub mod conditions;
pub mod controller;
pub mod crd;
pub mod default_backup;
pub mod host;
pub mod image;
pub mod init_container;
pub mod job;
pub mod location;
pub mod pg_runner;
pub mod plugin;
pub mod pod_template;
pub mod push;
pub mod rbac;
pub mod restore;
pub mod restore_runner;
pub mod runner;
pub mod schedule;
pub mod session;
pub mod sidecar;
pub mod task_runner;
pub mod time;
pub mod vars;

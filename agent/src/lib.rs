//! The stash engine: reads and writes restic repositories natively.
//!
//! - [`backend`]: opaque bytes on a store (local disk, memory, cloud via `object_store`).
//! - [`repository`]: an open repository: keys, config, encrypted files, the index,
//!   the blob saver, locks.
//! - [`backup`], [`restore`], [`check`]: the operations.
//! - [`cpu`]: the only bridge from async code to the CPU pool.
//!
//! The `stash` binary ([`cli`]) is a thin client of this library.

pub mod backend;
pub mod backup;
pub mod cache;
pub mod check;
pub mod cli;
pub mod copy;
pub mod cpu;
pub mod diff;
mod direct_io;
pub mod error;
pub mod forget;
pub mod migrate;
pub mod prune;
pub mod recover;
pub mod repair_index;
pub mod repository;
pub mod restore;
pub mod rewrite;
pub mod stats;
pub mod sys;
pub mod walk;

pub use error::{Error, Result};

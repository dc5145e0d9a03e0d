//! Repository locations in restic's syntax, turned into backends.
//!
//! Supported here: a local path (optionally `local:PATH`) and `memory:NAME`, a
//! process-wide in-memory store for tests.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
};

use object_store::{local::LocalFileSystem, memory::InMemory, ObjectStore};

use super::{Backend, ObjectStoreBackend};
use crate::error::{Error, Result};

fn memory_store(name: &str) -> Arc<dyn ObjectStore> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<InMemory>>>> = OnceLock::new();
    let mut m = STORES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    m.entry(name.to_string())
        .or_insert_with(|| Arc::new(InMemory::new()))
        .clone()
}

/// Opens the backend for `location`. With `create`, a missing local directory is
/// created (for `init`); otherwise it is reported as "no repository".
///
/// # Errors
/// [`Error::NoRepository`] for a missing local directory, [`Error::Usage`] for an
/// unsupported scheme, or an I/O error.
pub fn open_location(location: &str, create: bool) -> Result<Arc<dyn Backend>> {
    if let Some(name) = location.strip_prefix("memory:") {
        return Ok(Arc::new(ObjectStoreBackend::new(
            memory_store(name),
            "",
            location.to_string(),
        )));
    }
    for scheme in [
        "s3:", "gs:", "azure:", "b2:", "sftp:", "rest:", "rclone:", "swift:",
    ] {
        if location.starts_with(scheme) {
            return Err(Error::Usage(format!(
                "repository location {location:?}: the {} backend is not supported by this build",
                scheme.trim_end_matches(':')
            )));
        }
    }
    let path = location.strip_prefix("local:").unwrap_or(location);
    if path.is_empty() {
        return Err(Error::Usage("empty repository location".into()));
    }
    let path = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
    if !path.is_dir() {
        if create {
            std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        } else {
            return Err(Error::NoRepository(path.display().to_string()));
        }
    }
    let fs = LocalFileSystem::new_with_prefix(&path).map_err(|e| Error::Backend {
        op: "open",
        path: path.display().to_string(),
        source: Box::new(e),
        transient: false,
    })?;
    Ok(Arc::new(
        ObjectStoreBackend::new(Arc::new(fs), "", path.display().to_string()).with_local_root(path),
    ))
}

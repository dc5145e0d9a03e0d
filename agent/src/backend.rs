//! Storage backends: opaque bytes addressed by `(FileType, Id)`.
//!
//! The trait is deliberately small (list, read, write, remove); everything about
//! encryption and formats sits above it in [`crate::repository`]. Contracts:
//! - `write` is create-only: content addressing means a name is never rewritten, and
//!   a call returns only after the store confirmed the object is durable.
//! - `read` with a range returns exactly that range or an error.
//! - `list` returns only names that parse as ids, with their sizes.
//!
//! Stores: [`ObjectStoreBackend`] over any `object_store` store (local disk, memory,
//! S3, GCS, Azure; see [`location`] and [`cloud`]). Decorators, each a [`Backend`]
//! over an inner `Arc<dyn Backend>`: [`timeout`], [`retry`], [`limit`] (stacked by
//! [`Wrapping`]) and [`fault`] (fault injection for tests). [`conformance`] is the
//! test suite every backend passes.

pub mod aws_profile;
pub mod cloud;
pub mod conformance;
mod direct_read;
mod direct_write;
mod dry_run;
pub mod fault;
pub mod limit;
pub mod location;
pub mod object_store;
mod rate;
mod read_buf;
pub mod retry;
pub mod s3_bucket;
pub mod secret_dir;
pub mod timeout;
mod wrapping;

use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use stash_repo_format::{file_type::FileType, Id};

use crate::error::Result;

pub use self::object_store::ObjectStoreBackend;
pub use dry_run::DryRunBackend;
pub use fault::{FaultBackend, FaultConfig};
pub use limit::LimitBackend;
pub use location::{open_location, open_location_with, parse_location, Location, OpenOptions};
pub use rate::RateLimitBackend;
pub use read_buf::ReadBuf;
pub use retry::{RetryBackend, RetryPolicy};
pub use timeout::{TimeoutBackend, TimeoutPolicy};
pub use wrapping::Wrapping;

/// An object store holding one repository.
#[async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug + 'static {
    /// A human-readable location for messages.
    fn location(&self) -> String;

    /// Whether a listing returns every file whose write finished before the listing
    /// began (a local directory, memory). Lock taking relies on it: where it holds,
    /// a conflicting lock written concurrently is seen by at least one of the two
    /// writers' checks right away; elsewhere restic's 200 ms wait before the
    /// re-check gives a delayed listing time to show it.
    fn lists_finished_writes(&self) -> bool {
        false
    }

    /// All files of a type, with their sizes.
    async fn list(&self, ty: FileType) -> Result<Vec<(Id, u64)>>;

    /// The whole file, or a byte range of it.
    async fn read(&self, ty: FileType, id: &Id, range: Option<Range<u64>>) -> Result<Bytes>;

    /// As [`Backend::read`], for a file a local cache keeps whole: a pack of trees
    /// (restic's metadata packs). [`crate::cache::CacheBackend`] answers it from its
    /// cache; decorators that may wrap a cache forward it.
    async fn read_cacheable(
        &self,
        ty: FileType,
        id: &Id,
        range: Option<Range<u64>>,
    ) -> Result<Bytes> {
        self.read(ty, id, range).await
    }

    /// As [`Backend::write`], for a file a local cache keeps (a pack of trees).
    async fn write_cacheable(&self, ty: FileType, id: &Id, data: Bytes) -> Result<()> {
        self.write(ty, id, data).await
    }

    /// As [`Backend::read`], into `buf` (its contents are replaced): a reader of many
    /// packs recycles its buffers ([`ReadBuf::into_buffer`]) instead of faulting in
    /// fresh memory for each. The default copies from [`Backend::read`]; decorators
    /// forward it.
    async fn read_into(
        &self,
        ty: FileType,
        id: &Id,
        range: Option<Range<u64>>,
        mut buf: Vec<u8>,
    ) -> Result<ReadBuf> {
        let bytes = self.read(ty, id, range).await?;
        buf.clear();
        buf.extend_from_slice(&bytes);
        Ok(buf.into())
    }

    /// Whether [`Backend::will_read`] does anything here, so that a caller does
    /// not list a cloud bucket only to give hints that are dropped.
    fn takes_read_hints(&self) -> bool {
        false
    }

    /// A hint that the whole file will be read soon. A local directory has the
    /// kernel read it into the page cache in the background and then reads it
    /// through the cache; elsewhere it does nothing. `check --read-data` gives it
    /// for its first packs while the key is still being derived.
    async fn will_read(&self, _ty: FileType, _id: &Id) {}

    /// Stores a new file. Fails if the name already exists with other content.
    async fn write(&self, ty: FileType, id: &Id, data: Bytes) -> Result<()>;

    /// Deletes a file. Deleting a missing file is not an error.
    async fn remove(&self, ty: FileType, id: &Id) -> Result<()>;

    /// Whether the `config` file exists.
    async fn has_config(&self) -> Result<bool>;

    /// Creates whatever structure the store needs before the first write (for a
    /// local directory: the `data/00`..`data/ff` folders restic creates too).
    async fn create(&self) -> Result<()> {
        Ok(())
    }
}

//! Index files (`index/<id>`) and the in-memory blob lookup built from them.
//!
//! The index is the union of every index file: which pack holds each blob, where,
//! and how long it is. [`file`] is the JSON document; [`lookup`] the compact sorted
//! structure queried during backup, restore and check.

pub mod file;
pub mod lookup;

pub use file::{IndexBlob, IndexFile, IndexPack};
pub use lookup::{BlobLocation, IndexLookup, IndexLookupBuilder};

//! Content-defined chunking for a restic-compatible backup engine.
//!
//! **Compatibility promise.** For a given polynomial and restic's sizes (512 KiB
//! minimum, 8 MiB maximum, 20 split bits), [`RabinCutter`] and
//! [`ChunkerKind::Rabin`] cut every input at exactly the offsets restic/chunker cuts
//! it, so blobs written here deduplicate against blobs written by restic and vice
//! versa. This is checked against restic/chunker's own test vectors and a
//! restic-produced one. [`ChunkerKind::FastCdc`] is an opt-in alternative for
//! repositories only this engine writes; it promises the `fastcdc` crate's (v2020,
//! normalization level 1) boundaries at 512 KiB / 1 MiB / 8 MiB.
//!
//! Layout: [`pol`] is GF(2) polynomial arithmetic (restic's config stores the
//! polynomial as hex); [`cutter`] is the sans-IO boundary finder, fed bytes and
//! answering where chunks end; [`reader`] drives a cutter from any [`std::io::Read`]
//! in bounded memory. The crate does no other I/O and has no async runtime.
//!
//! ```
//! use stash_chunker::{ChunkReader, ChunkerKind, Polynomial};
//!
//! let pol: Polynomial = "3da3358b4dc173".parse()?;
//! assert!(pol.is_irreducible());
//! // 2 MiB of zeros: every window fingerprint is 0, so restic cuts at the minimum.
//! let zeros = std::io::repeat(0).take(4 * 512 * 1024);
//! # use std::io::Read;
//! let chunks: Vec<Vec<u8>> = ChunkReader::new(&ChunkerKind::Rabin(pol), zeros)
//!     .collect::<std::io::Result<_>>()?;
//! assert_eq!(chunks.len(), 4);
//! assert!(chunks.iter().all(|c| c.len() == 512 * 1024));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cutter;
pub mod error;
pub mod fastcdc;
pub mod pol;
mod rabin;
pub mod reader;
mod tables;

pub use cutter::{Cutter, RabinCutter, RabinParams, AVERAGE_BITS, MAX_SIZE, MIN_SIZE};
pub use error::ChunkerError;
pub use fastcdc::{FastCdcCutter, FastCdcParams};
pub use pol::Polynomial;
pub use reader::{ChunkReader, ChunkerKind};

//! Reads, chunks and saves file content on the CPU pool, several files at once.
//! Each chunk is hashed, deduplicated, compressed and sealed by the thread that read
//! it; packs fill up in the shared [`BlobSaver`] and upload in the background.

use std::{fs::File, io::Read, path::Path};

use rayon::prelude::*;
use stash_chunker::{ChunkReader, ChunkerKind};
use stash_repo_format::{blob::BlobType, node::Node};

use super::Counters;
use crate::{
    error::{Error, Result},
    repository::BlobSaver,
};

/// Fills `content` and `size` of every file; a file that cannot be read is warned
/// about and marked not ok. Stops early and returns the error if the saver fails.
///
/// # Errors
/// The first error that is not about a single file (a failed upload).
pub fn save_files(
    files: Vec<(&mut Node, &Path, &mut bool)>,
    saver: &BlobSaver,
    kind: &ChunkerKind,
    counters: &Counters,
) -> Result<()> {
    files.into_par_iter().try_for_each(|(node, path, ok)| {
        match save_file(node, path, saver, kind, counters) {
            Ok(()) => {
                Counters::add(&counters.files_done, 1);
                Ok(())
            }
            Err(Error::Io { path, source }) => {
                eprintln!("warning: {}: {source}; file skipped", path.display());
                Counters::add(&counters.errors, 1);
                *ok = false;
                Ok(())
            }
            Err(e) => Err(e),
        }
    })
}

fn save_file(
    node: &mut Node,
    path: &Path,
    saver: &BlobSaver,
    kind: &ChunkerKind,
    counters: &Counters,
) -> Result<()> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let (content, size) = save_stream(f, saver, kind, counters).map_err(|e| match e {
        Error::Io { source, .. } => Error::io(path, source),
        e => e,
    })?;
    node.content = Some(content);
    node.size = size;
    Ok(())
}

/// Chunks and saves everything `reader` yields; returns the blob ids and byte count.
///
/// # Errors
/// Read errors (as [`Error::Io`] with an empty path) or saver errors.
pub fn save_stream(
    reader: impl Read,
    saver: &BlobSaver,
    kind: &ChunkerKind,
    counters: &Counters,
) -> Result<(Vec<stash_repo_format::Id>, u64)> {
    let mut content = Vec::new();
    let mut size = 0u64;
    for chunk in ChunkReader::new(kind, reader) {
        let chunk = chunk.map_err(|e| Error::io("", e))?;
        size += chunk.len() as u64;
        Counters::add(&counters.bytes_done, chunk.len() as u64);
        content.push(saver.save(BlobType::Data, &chunk)?.id);
    }
    Ok((content, size))
}

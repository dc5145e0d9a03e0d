//! `stash list`: the ids of a repository's files, or its index's blobs, one per line
//! as restic prints them.

use std::io::Write;

use stash_repo_format::{file_type::FileType, index::file::IndexFile};

use super::Global;
use crate::error::Error;

/// Arguments of `list`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// blobs, packs, index, snapshots, keys or locks.
    what: String,
}

pub async fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    let ty = match a.what.as_str() {
        "blobs" => None,
        "packs" => Some(FileType::Pack),
        "index" => Some(FileType::Index),
        "snapshots" => Some(FileType::Snapshot),
        "keys" => Some(FileType::Key),
        "locks" => Some(FileType::Lock),
        w => anyhow::bail!(
            "list: invalid type {w:?} (blobs, packs, index, snapshots, keys or locks)"
        ),
    };
    let repo = g.open().await?;
    let mut out = std::io::stdout().lock();
    match ty {
        Some(ty) => {
            for (id, _) in repo.backend().list(ty).await? {
                writeln!(out, "{id}")?;
            }
        }
        // Every index file's entries, as restic lists them: a blob in two index
        // files is listed twice.
        None => {
            for id in repo.index_ids().await? {
                let bytes = repo.load_json_bytes(FileType::Index, &id).await?;
                let index = IndexFile::from_json(&bytes)
                    .map_err(|e| Error::damaged(FileType::Index, id, e))?;
                for pack in &index.packs {
                    for blob in &pack.blobs {
                        writeln!(out, "{} {}", blob.ty, blob.id)?;
                    }
                }
            }
        }
    }
    Ok(0)
}

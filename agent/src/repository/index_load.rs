//! Loading the index: every index file fetched concurrently, decoded on the CPU
//! pool, merged into one [`IndexLookup`].

use std::collections::HashSet;

use futures::{stream, StreamExt};
use stash_repo_format::{
    blob::BlobType,
    file_type::FileType,
    index::{IndexFile, IndexLookup, IndexLookupBuilder},
    Id,
};

use super::Repository;
use crate::error::{Error, Result};

/// Index files fetched at once.
const CONCURRENCY: usize = 8;

impl Repository {
    /// Loads and parses every index file.
    ///
    /// # Errors
    /// Backend errors, or [`Error::Damaged`] naming the first bad index file.
    pub async fn load_index_files(&self) -> Result<Vec<(Id, IndexFile)>> {
        let ids = self.index_ids().await?;
        let results: Vec<Result<(Id, IndexFile)>> = stream::iter(ids)
            .map(|id| async move {
                let bytes = self.load_json_bytes(FileType::Index, &id).await?;
                let f = IndexFile::from_json(&bytes)
                    .map_err(|e| Error::damaged(FileType::Index, id, e))?;
                Ok((id, f))
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// Loads the whole index into a lookup structure.
    ///
    /// # Errors
    /// As [`Repository::load_index_files`].
    pub async fn load_index(&self) -> Result<IndexLookup> {
        let files = self.load_index_files().await?;
        let (lookup, tree_packs) = crate::cpu::spawn(move || {
            let tree_packs: HashSet<Id> = files
                .iter()
                .flat_map(|(_, f)| &f.packs)
                .filter(|p| p.blobs.iter().any(|b| b.ty == BlobType::Tree))
                .map(|p| p.id)
                .collect();
            (build_lookup(&files), tree_packs)
        })
        .await;
        if let Some(cache) = self.cache() {
            // A cached pack the index no longer names as holding trees was pruned
            // or repacked.
            cache.retain(FileType::Pack, &tree_packs).await;
        }
        Ok(lookup)
    }
}

/// Merges parsed index files into a lookup.
pub fn build_lookup(files: &[(Id, IndexFile)]) -> IndexLookup {
    let mut b = IndexLookupBuilder::default();
    for (_, f) in files {
        for p in &f.packs {
            b.add_pack(p.id, &p.blobs);
        }
    }
    b.build()
}

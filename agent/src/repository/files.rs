//! Encrypted JSON files (index, snapshots, locks): load and save in the unpacked
//! encoding of the repository's version, and find snapshots by id prefix.

use bytes::Bytes;
use futures::{stream, StreamExt, TryStreamExt};
use serde::{de::DeserializeOwned, Serialize};
use stash_repo_format::{file_type::FileType, snapshot::Snapshot, unpacked, Id};

use super::Repository;
use crate::error::{Error, Result};

impl Repository {
    /// Reads, decrypts and decodes an unpacked file to its JSON bytes.
    ///
    /// # Errors
    /// Backend errors, or [`Error::Damaged`] naming the file.
    pub async fn load_json_bytes(&self, ty: FileType, id: &Id) -> Result<Vec<u8>> {
        let sealed = self.backend.read(ty, id, None).await?;
        let key = self.key.clone();
        crate::cpu::spawn(move || {
            let plain = key.open(&sealed)?;
            unpacked::decode(ty.name(), plain)
        })
        .await
        .map_err(|e| Error::damaged(ty, id, e))
    }

    /// Loads and parses an unpacked JSON file.
    ///
    /// # Errors
    /// As [`Repository::load_json_bytes`], or malformed JSON.
    pub async fn load_json<T: DeserializeOwned>(&self, ty: FileType, id: &Id) -> Result<T> {
        let bytes = self.load_json_bytes(ty, id).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::damaged(ty, id, stash_repo_format::FormatError::json(ty.name(), e)))
    }

    /// Encodes, encrypts and stores JSON bytes; returns the new file's id.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn save_json_bytes(&self, ty: FileType, json: Vec<u8>) -> Result<Id> {
        let key = self.key.clone();
        let version = self.config.version;
        let sealed = crate::cpu::spawn(move || key.seal(&unpacked::encode(version, &json))).await;
        let id = Id::hash(&sealed);
        self.backend.write(ty, &id, Bytes::from(sealed)).await?;
        Ok(id)
    }

    /// Serializes and stores a JSON document.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn save_json<T: Serialize>(&self, ty: FileType, value: &T) -> Result<Id> {
        let json = serde_json::to_vec(value)
            .map_err(|e| Error::Usage(format!("encoding {}: {e}", ty.name())))?;
        self.save_json_bytes(ty, json).await
    }

    /// Every snapshot, sorted by time (oldest first). Damaged snapshot files are
    /// returned as errors in `bad` rather than failing the whole listing.
    ///
    /// # Errors
    /// Backend errors while listing.
    pub async fn snapshots_with_errors(&self) -> Result<(Vec<(Id, Snapshot)>, Vec<Error>)> {
        let ids = self.backend.list(FileType::Snapshot).await?;
        let results: Vec<Result<(Id, Snapshot)>> = stream::iter(ids)
            .map(|(id, _)| async move {
                let s: Snapshot = self.load_json(FileType::Snapshot, &id).await?;
                Ok((id, s))
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for r in results {
            match r {
                Ok(x) => good.push(x),
                Err(e) => bad.push(e),
            }
        }
        good.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok((good, bad))
    }

    /// Every snapshot, oldest first.
    ///
    /// # Errors
    /// Backend errors, or the first damaged snapshot.
    pub async fn snapshots(&self) -> Result<Vec<(Id, Snapshot)>> {
        let (good, mut bad) = self.snapshots_with_errors().await?;
        match bad.pop() {
            Some(e) => Err(e),
            None => Ok(good),
        }
    }

    /// Resolves a unique hex prefix of a file name.
    ///
    /// # Errors
    /// [`Error::NotFound`] or an ambiguity error.
    pub async fn resolve_prefix(&self, ty: FileType, prefix: &str) -> Result<Id> {
        if let Ok(id) = Id::from_hex(prefix) {
            return Ok(id);
        }
        let prefix = prefix.to_ascii_lowercase();
        let matches: Vec<Id> = self
            .backend
            .list(ty)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| id.to_hex().starts_with(&prefix))
            .collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => Err(Error::NotFound(format!("{} {prefix:?}", ty.name()))),
            _ => Err(Error::Usage(format!(
                "{} prefix {prefix:?} is ambiguous",
                ty.name()
            ))),
        }
    }

    /// Finds a snapshot by id, unique prefix, or `latest` (optionally filtered by host,
    /// path and tag, as restic does for `latest`).
    ///
    /// # Errors
    /// [`Error::Snapshot`] when nothing or more than one snapshot matches.
    pub async fn find_snapshot(
        &self,
        name: &str,
        filter: &SnapshotFilter,
    ) -> Result<(Id, Snapshot)> {
        if name == "latest" {
            let all = self.snapshots().await?;
            return all
                .into_iter()
                .rev()
                .find(|(_, s)| filter.matches(s))
                .ok_or_else(|| Error::Snapshot("latest: no matching snapshot found".into()));
        }
        let id = self
            .resolve_prefix(FileType::Snapshot, name)
            .await
            .map_err(|e| Error::Snapshot(format!("{name}: {e}")))?;
        let snap = self.load_json(FileType::Snapshot, &id).await?;
        Ok((id, snap))
    }

    /// Loads the index files' ids in parallel with a stream, for callers that walk
    /// them one by one.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn index_ids(&self) -> Result<Vec<Id>> {
        Ok(self
            .backend
            .list(FileType::Index)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    /// Removes files, a few at a time.
    ///
    /// # Errors
    /// The first backend error.
    pub async fn remove_all(&self, ty: FileType, ids: &[Id]) -> Result<()> {
        stream::iter(ids.iter().copied())
            .map(|id| async move { self.backend.remove(ty, &id).await })
            .buffer_unordered(8)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }
}

/// Host, path and tag filters, as restic's `--host`, `--path` and `--tag`.
#[derive(Debug, Clone, Default)]
pub struct SnapshotFilter {
    /// Any of these hosts (empty: any host).
    pub hosts: Vec<String>,
    /// All of these paths (empty: any).
    pub paths: Vec<String>,
    /// Any of these tag lists; each list must match completely (`a,b` needs both).
    pub tags: Vec<Vec<String>>,
}

impl SnapshotFilter {
    /// Whether `s` passes the filter.
    pub fn matches(&self, s: &Snapshot) -> bool {
        (self.hosts.is_empty() || self.hosts.iter().any(|h| h == &s.hostname))
            && self.paths.iter().all(|p| s.paths.iter().any(|sp| sp == p))
            && (self.tags.is_empty()
                || self
                    .tags
                    .iter()
                    .any(|list| list.iter().all(|t| t.is_empty() || s.tags.contains(t))))
    }
}

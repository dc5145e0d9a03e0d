//! `restore --verify`: reads every restored file back and checks each piece of it
//! against the id (SHA-256) of the blob it was restored from, so a restore that
//! reports success has put exactly the snapshot's bytes on disk.

use std::{io::Read, sync::Arc};

use rayon::prelude::*;
use stash_repo_format::{blob::BlobType, index::IndexLookup, Id};

use super::plan::{FileEntry, Plan};
use crate::error::{Error, Result};

/// Checks the restored regular files of `plan` (hard links once); returns how many
/// were verified.
///
/// # Errors
/// [`Error::Check`] naming the files whose content differs (each also printed), or
/// an I/O error reading one.
pub async fn verify(index: &Arc<IndexLookup>, plan: Arc<Plan>) -> Result<u64> {
    let index = index.clone();
    let (checked, bad) = tokio::task::spawn_blocking(move || -> Result<(u64, Vec<String>)> {
        let results: Vec<Result<Option<String>>> = plan
            .files
            .par_iter()
            .filter(|f| f.hardlink_to.is_none())
            .map(|f| check_file(&index, f))
            .collect();
        let checked = results.len() as u64;
        let mut bad = Vec::new();
        for r in results {
            if let Some(problem) = r? {
                eprintln!("error: {problem}");
                bad.push(problem);
            }
        }
        Ok((checked, bad))
    })
    .await
    .map_err(|e| Error::Usage(format!("verify task: {e}")))??;
    if !bad.is_empty() {
        return Err(Error::Check(format!(
            "{} restored file(s) differ from the snapshot, the first: {}",
            bad.len(),
            bad[0]
        )));
    }
    Ok(checked)
}

/// What is wrong with one restored file, if anything.
fn check_file(index: &IndexLookup, f: &FileEntry) -> Result<Option<String>> {
    let path = &f.path;
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len != f.length {
        return Ok(Some(format!(
            "{}: {len} bytes where the snapshot has {}",
            path.display(),
            f.length
        )));
    }
    let mut buf = Vec::new();
    let mut offset = 0u64;
    for id in f.node.content.iter().flatten() {
        let n = index
            .get(BlobType::Data, id)
            .ok_or(Error::MissingBlob {
                ty: "data",
                id: *id,
            })?
            .data_length() as usize;
        buf.resize(n, 0);
        file.read_exact(&mut buf).map_err(|e| Error::io(path, e))?;
        if Id::hash(&buf) != *id {
            return Ok(Some(format!(
                "{}: the {n} bytes at offset {offset} are not blob {}",
                path.display(),
                id.short()
            )));
        }
        offset += n as u64;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        backup::{backup, BackupOptions},
        repository::memory_repo,
        restore::plan::{build, Select},
    };

    #[tokio::test]
    async fn a_changed_or_cut_file_is_named() {
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("a.txt"), vec![b'a'; 5000]).unwrap();
        std::fs::write(src.path().join("b.txt"), b"bee").unwrap();
        let repo = memory_repo("verify").await;
        let opts = BackupOptions {
            targets: vec![src.path().to_path_buf()],
            ..BackupOptions::default()
        };
        let done = backup(&repo, &opts, Default::default()).await.unwrap();
        let index = Arc::new(repo.load_index().await.unwrap());
        let out = tempfile::tempdir().unwrap();
        let none = crate::backup::exclude::Excludes::default();
        let select = Select {
            target: out.path(),
            includes: &none,
            excludes: &none,
            overwrite: Default::default(),
            record_names: false,
        };
        let plan = build(&repo, &index, done.snapshot.tree.unwrap(), &select)
            .await
            .unwrap();
        let plan = Arc::new(plan);
        for f in &plan.files {
            let n = f.node.name.as_slice();
            let data: &[u8] = if n == b"a.txt" { &[b'a'; 5000] } else { b"bee" };
            std::fs::create_dir_all(f.path.parent().unwrap()).unwrap();
            std::fs::write(&f.path, data).unwrap();
        }
        assert_eq!(verify(&index, plan.clone()).await.unwrap(), 2);
        let a = plan.files.iter().find(|f| f.node.name == b"a.txt").unwrap();
        let mut edited = vec![b'a'; 5000];
        edited[4000] = b'b';
        std::fs::write(&a.path, &edited).unwrap();
        let err = verify(&index, plan.clone()).await.unwrap_err().to_string();
        assert!(err.contains("a.txt") && err.contains("offset 0"), "{err}");
        std::fs::write(&a.path, b"short").unwrap();
        let err = verify(&index, plan).await.unwrap_err().to_string();
        assert!(err.contains("5 bytes where the snapshot has 5000"), "{err}");
    }
}

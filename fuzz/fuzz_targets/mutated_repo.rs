//! A damaged repository: the engine's `open`, `check --read-data` and `restore`
//! return Ok or an error, never panic, and never restore wrong data.
//!
//! Once per process, a version 2 repository is made in memory through the agent's
//! API (`memory:` location, `init` with a key of scrypt N=2, r=1, p=1, two `backup`s of a few small
//! files: text, zstd-friendly text, noise, an empty file, a symlink, a nested
//! directory) and its files are kept. Each input picks one file (config, key,
//! snapshot, index or pack) and either deletes it or edits it (bit flips, byte sets,
//! truncation, insertion, an overwrite with the input's bytes; offsets from the start
//! or the end), then puts the whole repository into a fresh in-memory store
//! (`ObjectStoreBackend` over `InMemory`, as `memory:` uses) and runs, on a tokio
//! current-thread runtime, `open`, `check` with `ReadData::All`, and a restore of one
//! of the two snapshots' trees into a temporary directory. Invariants:
//! - `open` reads only keys and the config: damage elsewhere never fails it;
//! - bytes left unchanged: `check` finds no error and the restore succeeds;
//! - a changed or deleted pack or index, or a changed snapshot: `check` reports an
//!   error (or fails);
//! - a restore that succeeds wrote exactly what the undamaged repository restores:
//!   same directories, same file contents, same symlink targets.
//!
//! A damaged key file that asks for a dear scrypt (N > 2^10 or r*p > 8) is skipped.
#![no_main]
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use object_store::memory::InMemory;
use stash_agent::{
    backend::{open_location, Backend, ObjectStoreBackend},
    backup::{backup, BackupOptions},
    check::{check, ReadData},
    repository::{init, open, InitOptions},
    restore::{fetch::Progress, restore, RestoreOptions},
};
use stash_repo_format::{
    file_type::FileType,
    gotime::GoTime,
    key::{KdfParams, KeyFile},
    Id,
};

const PASSWORD: &[u8] = b"fuzz";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Dir,
    File(Vec<u8>),
    Link(PathBuf),
    Other,
}

struct Pristine {
    files: Vec<(FileType, Id, Bytes)>,
    /// Root trees of the two snapshots and what restoring each gives.
    roots: [(Id, BTreeMap<PathBuf, Entry>); 2],
    /// Where restores go.
    scratch: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
}

fn tree_of(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read_dir") {
            let p = e.expect("dir entry").path();
            let meta = std::fs::symlink_metadata(&p).expect("lstat");
            let rel = p.strip_prefix(root).expect("below root").to_path_buf();
            let entry = if meta.is_dir() {
                stack.push(p.clone());
                Entry::Dir
            } else if meta.file_type().is_symlink() {
                Entry::Link(std::fs::read_link(&p).expect("readlink"))
            } else if meta.is_file() {
                Entry::File(std::fs::read(&p).expect("read"))
            } else {
                Entry::Other
            };
            out.insert(rel, entry);
        }
    }
    out
}

fn write_sources(src: &Path, second: bool) {
    let w = |rel: &str, data: &[u8]| {
        let p = src.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    w("a.txt", b"alpha\n");
    w(
        "dir/b.txt",
        if second {
            b"beta, changed\n"
        } else {
            b"beta\n"
        },
    );
    w("dir/empty", b"");
    let log: String = (0..600)
        .map(|i| {
            format!(
                "2026-01-01 info request {i} served in {}ms path=/a/b\n",
                i % 17
            )
        })
        .collect();
    w("dir/sub/log.txt", log.as_bytes());
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<u8> = (0..4000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    w("noise.bin", &noise);
    if second {
        w("dir/c.txt", b"gamma\n");
    } else {
        std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
    }
}

async fn restore_into(
    repo: &stash_agent::repository::Repository,
    root: Id,
    target: &Path,
) -> stash_agent::Result<()> {
    let opts = RestoreOptions {
        target: target.to_path_buf(),
        ..Default::default()
    };
    restore(repo, root, &opts, Arc::new(Progress::default()))
        .await
        .map(drop)
}

fn pristine() -> &'static Pristine {
    static P: OnceLock<Pristine> = OnceLock::new();
    P.get_or_init(|| {
        let setup = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let src = tempfile::tempdir().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let (files, roots) = setup.block_on(async {
            let backend = open_location("memory:stash-fuzz-mutated-repo", false).unwrap();
            // The cheapest scrypt there is: every input opens the repository.
            let kdf = Some(KdfParams { n: 2, r: 1, p: 1 });
            let repo = init(
                backend.clone(),
                PASSWORD,
                InitOptions {
                    version: 2,
                    fastcdc: false,
                    kdf,
                    chunker_of: None,
                },
            )
            .await
            .unwrap();
            let mut roots = Vec::new();
            for (i, second) in [false, true].into_iter().enumerate() {
                write_sources(src.path(), second);
                let opts = BackupOptions {
                    targets: vec![src.path().to_path_buf()],
                    host: Some("fuzz".into()),
                    time: Some(GoTime::from_unix_in(
                        1_700_000_000 + 60 * i as i64,
                        0,
                        chrono::FixedOffset::east_opt(0).unwrap(),
                    )),
                    ..Default::default()
                };
                let r = backup(&repo, &opts, Arc::default()).await.unwrap();
                roots.push(r.snapshot.tree.unwrap());
            }
            let mut files = Vec::new();
            let config = backend
                .read(FileType::Config, &Id::default(), None)
                .await
                .unwrap();
            files.push((FileType::Config, Id::default(), config));
            for ty in [
                FileType::Key,
                FileType::Snapshot,
                FileType::Index,
                FileType::Pack,
            ] {
                let mut ids = backend.list(ty).await.unwrap();
                ids.sort();
                for (id, _) in ids {
                    files.push((ty, id, backend.read(ty, &id, None).await.unwrap()));
                }
            }
            assert!(
                backend.list(FileType::Lock).await.unwrap().is_empty(),
                "a lock was left"
            );
            let report = check(&repo, ReadData::All, None).await.unwrap();
            assert!(
                report.errors.is_empty(),
                "pristine repository: {:?}",
                report.errors
            );
            let mut restored = Vec::new();
            for (i, root) in roots.iter().enumerate() {
                let target = scratch.path().join(format!("pristine-{i}"));
                restore_into(&repo, *root, &target).await.unwrap();
                let tree = tree_of(&target);
                let name = src.path().file_name().unwrap();
                assert!(tree
                    .keys()
                    .any(|k| k.ends_with(Path::new(name).join("dir/sub/log.txt"))));
                restored.push((*root, tree));
            }
            let roots: [(Id, BTreeMap<PathBuf, Entry>); 2] = restored.try_into().unwrap();
            (files, roots)
        });
        let count = |t: FileType| files.iter().filter(|f| f.0 == t).count();
        assert!(
            count(FileType::Snapshot) == 2
                && count(FileType::Index) >= 2
                && count(FileType::Pack) >= 3
        );
        drop(setup);
        Pristine {
            files,
            roots,
            scratch,
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        }
    })
}

/// Applies the edit ops in `ops` to `buf`: 5 bytes each (kind, 3 offset bytes whose
/// top bit counts from the end, value); at most 16.
fn mutate(buf: &mut Vec<u8>, ops: &[u8]) {
    for (n, op) in ops.chunks(5).enumerate() {
        if op.len() < 5 || n >= 16 {
            break;
        }
        let raw = usize::from(op[1]) | usize::from(op[2]) << 8 | usize::from(op[3]) << 16;
        let back = raw & 0x80_0000 != 0;
        let dist = (raw & 0x7f_ffff) % (buf.len() + 1);
        let at = if back { buf.len() - dist } else { dist };
        let v = op[4];
        match op[0] % 5 {
            0 if at < buf.len() => buf[at] ^= v,
            1 if at < buf.len() => buf[at] = v,
            2 => buf.truncate(at),
            3 => buf.insert(at, v),
            4 => {
                let rest = &ops[5 * (n + 1)..];
                let end = (at + rest.len()).min(buf.len());
                buf[at..end].copy_from_slice(&rest[..end - at]);
                return;
            }
            _ => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let p = pristine();
    if data.len() < 2 {
        return;
    }
    let which = usize::from(data[0]) % p.files.len();
    let delete = data[1] & 0x0f == 0x0f;
    let root = usize::from(data[1] >> 7);
    let (ty, id, original) = &p.files[which];
    let (ty, id) = (*ty, *id);
    let mut edited = original.to_vec();
    if !delete {
        mutate(&mut edited, &data[2..]);
    }
    let changed = delete || edited[..] != original[..];
    if ty == FileType::Key && !delete {
        if let Ok(kf) = KeyFile::from_bytes(&edited) {
            if kf.n > 1 << 10 || u64::from(kf.r) * u64::from(kf.p) > 8 {
                return;
            }
        }
    }

    let store = Arc::new(InMemory::new());
    let backend: Arc<dyn Backend> = Arc::new(
        ObjectStoreBackend::new(store, "", "memory:fuzz-iteration".into())
            .with_consistent_listing(),
    );
    let target = tempfile::tempdir_in(p.scratch.path()).unwrap();
    let restored = p.rt.block_on(async {
        for (i, (t, fid, bytes)) in p.files.iter().enumerate() {
            let bytes = if i != which {
                bytes.clone()
            } else if delete {
                continue;
            } else {
                Bytes::from(edited.clone())
            };
            backend.write(*t, fid, bytes).await.unwrap();
        }
        let repo = match open(backend.clone(), PASSWORD).await {
            Ok(r) => r,
            Err(e) => {
                assert!(
                    changed && matches!(ty, FileType::Key | FileType::Config),
                    "open failed with damage to {ty:?} {id} only (changed: {changed}): {e}"
                );
                return None;
            }
        };
        match check(&repo, ReadData::All, None).await {
            Ok(report) => {
                if !changed {
                    assert!(report.errors.is_empty(), "undamaged: {:?}", report.errors);
                }
                let must_see = match ty {
                    FileType::Pack | FileType::Index => changed,
                    FileType::Snapshot => changed && !delete,
                    _ => false,
                };
                if must_see {
                    assert!(
                        !report.errors.is_empty(),
                        "check missed damage to {ty:?} {id} (deleted: {delete})"
                    );
                }
            }
            Err(e) => assert!(changed, "check failed on an undamaged repository: {e}"),
        }
        let out = target.path().join("out");
        match restore_into(&repo, p.roots[root].0, &out).await {
            Ok(()) => Some(out),
            Err(e) => {
                assert!(changed, "restore failed on an undamaged repository: {e}");
                None
            }
        }
    });
    if let Some(out) = restored {
        let got = tree_of(&out);
        assert!(
            got == p.roots[root].1,
            "a restore that succeeded differs from the original (damage to {ty:?} {id})"
        );
    }
});

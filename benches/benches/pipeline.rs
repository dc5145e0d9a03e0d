//! The whole engine end to end, without disk or network on the repository side: a
//! backup and a restore of a generated tree (300 files, 256 MiB: four 32 MiB files and
//! the rest 1 KiB..2 MiB before scaling, half random and half log-like text) into the in-memory
//! backend (`memory:` location), repository version 2 (zstd), restic's Rabin chunker.
//!
//! - `pipeline/backup_first`: a backup into an empty repository (scan, read, chunk,
//!   hash, compress, seal, pack, upload to memory, index, snapshot). Between
//!   iterations, outside the timing, packs, index files and snapshots are deleted,
//!   so every iteration starts from an empty repository.
//! - `pipeline/backup_unchanged`: a backup of the same tree with the previous
//!   snapshot as parent (scan and metadata comparison only). This takes the 200 ms
//!   of the lock re-check (below): a backup waits for it before committing, and the
//!   scan of 300 files is done long before.
//! - `pipeline/restore`: a restore of the snapshot into a fresh empty directory
//!   (plan, create files, fetch packs, open, inflate, verify, write, set metadata);
//!   the directory is removed outside the timing.
//! - `repository/lock_unlock`: taking and releasing a shared lock (the engine
//!   re-checks for conflicting locks 200 ms after writing its own, as restic >= 0.16
//!   does; a backup overlaps that wait with its work, so it is the floor of every
//!   backup, not an addition).
//!
//! The source tree is generated once in a temporary directory and is in the page
//! cache, so the figures are the CPU pipeline's, not the disk's. Throughput is bytes
//! of file content per second. Before timing, the restored tree is compared with the
//! source byte for byte.
//!
//! ```text
//! cargo bench -p stash-benches --bench pipeline -- --save-baseline before
//! cargo bench -p stash-benches --bench pipeline -- --baseline before
//! ```

use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use stash_agent::{
    backend::open_location,
    backup::{backup, BackupOptions, Counters},
    repository::{init, open, InitOptions, Repository},
    restore::{fetch::Progress, restore, RestoreOptions},
};
use stash_benches::{make_tree, MIB};
use stash_repo_format::{file_type::FileType, key::KdfParams, Id};

const FILES: usize = 300;
const TOTAL: usize = 256 * MIB;
const PASSWORD: &[u8] = b"bench";

/// A fresh, empty in-memory repository with a cheap key derivation.
fn new_repo(rt: &tokio::runtime::Runtime) -> Repository {
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!("memory:bench-{}", N.fetch_add(1, Ordering::Relaxed));
    rt.block_on(async {
        let backend = open_location(&name, false).expect("memory backend");
        init(
            backend.clone(),
            PASSWORD,
            InitOptions {
                version: 2,
                fastcdc: false,
                kdf: Some(KdfParams {
                    n: 1024,
                    r: 8,
                    p: 1,
                }),
                chunker_of: None,
            },
        )
        .await
        .expect("init");
        open(backend, PASSWORD).await.expect("open")
    })
}

/// Deletes packs, index files and snapshots: back to an empty repository.
fn wipe(rt: &tokio::runtime::Runtime, repo: &Repository) {
    rt.block_on(async {
        let b = repo.backend();
        for ty in [FileType::Snapshot, FileType::Index, FileType::Pack] {
            for (id, _) in b.list(ty).await.expect("list") {
                b.remove(ty, &id).await.expect("remove");
            }
        }
    });
}

fn run_backup(rt: &tokio::runtime::Runtime, repo: &Repository, src: &Path) -> (Id, u64) {
    let opts = BackupOptions {
        targets: vec![src.to_path_buf()],
        ..Default::default()
    };
    let r = rt
        .block_on(backup(repo, &opts, Arc::new(Counters::default())))
        .expect("backup");
    assert_eq!(r.summary.errors, 0, "backup reported errors");
    (
        r.snapshot.tree.expect("snapshot has a tree"),
        r.summary.data_added_packed,
    )
}

fn run_restore(rt: &tokio::runtime::Runtime, repo: &Repository, tree: Id, target: &Path) {
    let opts = RestoreOptions {
        target: target.to_path_buf(),
        ..Default::default()
    };
    rt.block_on(restore(repo, tree, &opts, Arc::new(Progress::default())))
        .expect("restore");
}

/// Where the source root lands under a restore target (restic keeps absolute paths).
fn restored_root(target: &Path, src: &Path) -> PathBuf {
    let full = target.join(src.strip_prefix("/").unwrap_or(src));
    if full.is_dir() {
        full
    } else {
        target.join(src.file_name().expect("named source"))
    }
}

/// Compares every file under `a` with the same path under `b`.
fn same_tree(a: &Path, b: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(a).expect("read dir") {
        let e = e.expect("dir entry");
        let other = b.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            n += same_tree(&e.path(), &other);
        } else {
            let x = std::fs::read(e.path()).expect("read source");
            let y = std::fs::read(&other)
                .unwrap_or_else(|err| panic!("restored {}: {err}", other.display()));
            assert!(x == y, "restored {} differs", other.display());
            n += 1;
        }
    }
    n
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    let tree = make_tree(&src, 7, FILES, TOTAL);
    let restore_base = dir.path().join("restore");

    // Once: a backup to restore from, checked by restoring and comparing.
    let repo = new_repo(&rt);
    let (root, packed) = run_backup(&rt, &repo, &src);
    let check = restore_base.join("check");
    run_restore(&rt, &repo, root, &check);
    let compared = same_tree(&src, &restored_root(&check, &src));
    assert_eq!(compared, tree.files, "every file restored");
    std::fs::remove_dir_all(&check).expect("cleanup");
    eprintln!(
        "pipeline tree: {} files, {} bytes; stored {} bytes packed ({:.2}x); restore verified",
        tree.files,
        tree.bytes,
        packed,
        tree.bytes as f64 / packed as f64
    );

    let mut g = c.benchmark_group("pipeline");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Bytes(tree.bytes));

    let scratch = new_repo(&rt);
    g.bench_function("backup_first", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                wipe(&rt, &scratch);
                let t = Instant::now();
                black_box(run_backup(&rt, &scratch, &src));
                total += t.elapsed();
            }
            wipe(&rt, &scratch);
            total
        })
    });

    g.bench_function("backup_unchanged", |b| {
        b.iter(|| black_box(run_backup(&rt, &repo, &src)))
    });

    let n = AtomicUsize::new(0);
    g.bench_function("restore", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let target = restore_base.join(n.fetch_add(1, Ordering::Relaxed).to_string());
                let t = Instant::now();
                run_restore(&rt, &repo, root, &target);
                total += t.elapsed();
                std::fs::remove_dir_all(&target).expect("cleanup");
            }
            total
        })
    });
    g.finish();

    let mut g = c.benchmark_group("repository");
    g.sample_size(10);
    g.bench_function("lock_unlock", |b| {
        b.iter(|| {
            rt.block_on(async {
                let guard = repo.lock(false).await.expect("lock");
                guard.release().await.expect("unlock");
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

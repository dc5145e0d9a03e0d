//! The conformance suite every backend passes (memory, local, S3, Azure, GCS):
//! call [`run`] with a backend over an *empty* location. It panics with a message
//! naming the broken rule.
//!
//! Checked: an empty store lists nothing and has no config; the config is
//! create-only (the same bytes again are accepted, as a retried write; other bytes
//! are refused with a permanent error and leave the config unchanged); for every
//! listable type, files write, list with their sizes, read whole and in ranges
//! (also into recycled buffers), rewrite idempotently and remove; reading a missing file is [`Error::NotFound`]
//! and removing one is Ok; a range past the end is an error; names that are not ids
//! are not listed; 16 concurrent writes and reads; a 20 MiB object round-trips.
//! Everything written is removed at the end.

use std::sync::Arc;

use bytes::Bytes;
use object_store::{path::Path, ObjectStore, PutPayload};
use rand::{rngs::StdRng, RngCore, SeedableRng};
use stash_repo_format::{file_type::FileType, Id};

use super::Backend;
use crate::error::Error;

/// Direct access to the store under the backend, to plant names that are not ids.
#[derive(Debug, Clone)]
pub struct Raw {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// The repository's key prefix in it.
    pub prefix: String,
}

impl Raw {
    fn key(&self, rel: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(rel)
        } else {
            Path::from(format!("{}/{rel}", self.prefix))
        }
    }
}

fn random(rng: &mut StdRng, len: usize) -> Bytes {
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    Bytes::from(v)
}

async fn expect_not_found(b: &dyn Backend, ty: FileType, id: &Id, what: &str) {
    match b.read(ty, id, None).await {
        Err(Error::NotFound(_)) => {}
        other => panic!(
            "{what}: reading missing {} gave {other:?}, not NotFound",
            ty.path(id)
        ),
    }
    match b.read(ty, id, Some(0..1)).await {
        Err(Error::NotFound(_)) => {}
        other => panic!(
            "{what}: range-reading missing {} gave {other:?}, not NotFound",
            ty.path(id)
        ),
    }
}

async fn sorted_list(b: &dyn Backend, ty: FileType) -> Vec<(Id, u64)> {
    let mut l = b
        .list(ty)
        .await
        .unwrap_or_else(|e| panic!("list {}: {e}", ty.dir()));
    l.sort();
    l
}

/// Runs the suite against `b`, which must be empty. With `raw`, stray non-id
/// names are planted to check that listing ignores them.
///
/// # Panics
/// On the first broken rule.
pub async fn run(b: Arc<dyn Backend>, raw: Option<Raw>) {
    let b = b.as_ref();
    let loc = b.location();
    let mut rng = StdRng::seed_from_u64(0x5eed);

    // An empty store.
    assert!(
        !b.has_config().await.expect("has_config"),
        "{loc}: not empty: has a config"
    );
    for ty in FileType::LISTABLE {
        assert!(
            sorted_list(b, ty).await.is_empty(),
            "{loc}: not empty: {} has files",
            ty.dir()
        );
    }
    b.create().await.expect("create");

    // The config: create-only.
    let cfg = random(&mut rng, 200);
    let cid = Id::default();
    expect_not_found(b, FileType::Config, &cid, "before init").await;
    b.write(FileType::Config, &cid, cfg.clone())
        .await
        .expect("write config");
    assert!(b.has_config().await.expect("has_config"), "config not seen");
    assert_eq!(
        b.read(FileType::Config, &cid, None)
            .await
            .expect("read config"),
        cfg
    );
    b.write(FileType::Config, &cid, cfg.clone())
        .await
        .expect("rewriting the config with the same bytes (a retried write) must succeed");
    let e = b
        .write(FileType::Config, &cid, random(&mut rng, 200))
        .await
        .expect_err("overwriting the config with other bytes must fail");
    assert!(
        !e.is_transient(),
        "config overwrite refusal must be permanent: {e}"
    );
    assert_eq!(
        b.read(FileType::Config, &cid, None)
            .await
            .expect("read config"),
        cfg,
        "a refused overwrite changed the config"
    );

    // Every listable type.
    for ty in FileType::LISTABLE {
        let files: Vec<(Id, Bytes)> = [1usize, 1000, 100_000, 4097]
            .into_iter()
            .map(|n| {
                let d = random(&mut rng, n);
                (Id::hash(&d), d)
            })
            .collect();
        for (id, d) in &files {
            b.write(ty, id, d.clone())
                .await
                .unwrap_or_else(|e| panic!("write {}: {e}", ty.path(id)));
        }
        let mut want: Vec<(Id, u64)> = files.iter().map(|(id, d)| (*id, d.len() as u64)).collect();
        want.sort();
        assert_eq!(
            sorted_list(b, ty).await,
            want,
            "list {} (ids and sizes)",
            ty.dir()
        );
        for (id, d) in &files {
            let n = d.len() as u64;
            assert_eq!(
                &b.read(ty, id, None).await.expect("read")[..],
                &d[..],
                "read {}",
                ty.path(id)
            );
            let ranges = [0..1, n - 1..n, 0..n, n / 3..n / 3 + (n - n / 3).min(1000)];
            for r in ranges {
                let got = b
                    .read(ty, id, Some(r.clone()))
                    .await
                    .unwrap_or_else(|e| panic!("read {} {r:?}: {e}", ty.path(id)));
                assert_eq!(
                    &got[..],
                    &d[r.start as usize..r.end as usize],
                    "range {r:?} of {}",
                    ty.path(id)
                );
                // Into a recycled buffer holding other bytes: the same result.
                let stale = vec![0xEE; 3000];
                let into = b
                    .read_into(ty, id, Some(r.clone()), stale)
                    .await
                    .unwrap_or_else(|e| panic!("read_into {} {r:?}: {e}", ty.path(id)));
                assert_eq!(&into[..], &got[..], "read_into range {r:?}");
            }
            let whole = b.read_into(ty, id, None, b"old".to_vec()).await;
            assert_eq!(
                &whole.expect("read_into")[..],
                &d[..],
                "read_into {}",
                ty.path(id)
            );
            // After the read-ahead hint (a local pack is then read through the page
            // cache instead of past it): the same bytes, once and again.
            b.will_read(ty, id).await;
            for _ in 0..2 {
                let warmed = b.read_into(ty, id, None, vec![0xEE; 3000]).await;
                assert_eq!(
                    &warmed.expect("read_into after will_read")[..],
                    &d[..],
                    "read_into {} after will_read",
                    ty.path(id)
                );
            }
            assert!(
                b.read(ty, id, Some(n - 1..n + 10)).await.is_err(),
                "a range past the end of {} must be an error",
                ty.path(id)
            );
            assert!(
                b.read_into(ty, id, Some(n - 1..n + 10), Vec::new())
                    .await
                    .is_err(),
                "read_into: a range past the end of {} must be an error",
                ty.path(id)
            );
        }
        // A retried write of an existing file is fine.
        b.write(ty, &files[0].0, files[0].1.clone())
            .await
            .expect("rewriting a file with the same content must succeed");
        // Remove.
        let (gone, _) = &files[0];
        b.remove(ty, gone).await.expect("remove");
        expect_not_found(b, ty, gone, "after remove").await;
        b.remove(ty, gone)
            .await
            .expect("removing a missing file must succeed");
        assert_eq!(
            sorted_list(b, ty).await.len(),
            files.len() - 1,
            "list after remove"
        );
        for (id, _) in &files[1..] {
            b.remove(ty, id).await.expect("remove");
        }
        assert!(
            sorted_list(b, ty).await.is_empty(),
            "{} not empty after removing all",
            ty.dir()
        );
        expect_not_found(b, ty, &Id::hash(b"never written"), "never written").await;
    }

    // Names that are not ids are not listed.
    if let Some(raw) = &raw {
        let id = Id::hash(b"stray");
        let hex = id.to_hex();
        let stray = [
            "keys/README".to_string(),
            format!("keys/{hex}.tmp"),
            format!("snapshots/{}", &hex[..10]),
            "index/.hidden".to_string(),
            format!("locks/{hex}-x"),
            format!("data/{}/not-an-id", &hex[..2]),
            format!("data/{}/{}", &hex[..2], &hex[..63]),
        ];
        for s in &stray {
            raw.store
                .put(&raw.key(s), PutPayload::from_static(b"stray"))
                .await
                .unwrap_or_else(|e| panic!("planting {s}: {e}"));
        }
        let real = random(&mut rng, 10);
        let real_id = Id::hash(&real);
        b.write(FileType::Pack, &real_id, real)
            .await
            .expect("write pack");
        for ty in FileType::LISTABLE {
            let l = sorted_list(b, ty).await;
            let want = if ty == FileType::Pack {
                vec![(real_id, 10)]
            } else {
                vec![]
            };
            assert_eq!(
                l,
                want,
                "{}: names that are not ids must not be listed",
                ty.dir()
            );
        }
        b.remove(FileType::Pack, &real_id).await.expect("remove");
        for s in &stray {
            raw.store.delete(&raw.key(s)).await.expect("delete stray");
        }
    }

    // Concurrency.
    let small: Vec<(Id, Bytes)> = (0..16)
        .map(|_| {
            let d = random(&mut rng, 50_000);
            (Id::hash(&d), d)
        })
        .collect();
    futures::future::try_join_all(
        small
            .iter()
            .map(|(id, d)| b.write(FileType::Pack, id, d.clone())),
    )
    .await
    .expect("concurrent writes");
    let got =
        futures::future::try_join_all(small.iter().map(|(id, _)| b.read(FileType::Pack, id, None)))
            .await
            .expect("concurrent reads");
    for ((_, d), g) in small.iter().zip(got) {
        assert_eq!(d, &g, "concurrent read");
    }
    assert_eq!(
        sorted_list(b, FileType::Pack).await.len(),
        16,
        "list after concurrent writes"
    );
    futures::future::try_join_all(small.iter().map(|(id, _)| b.remove(FileType::Pack, id)))
        .await
        .expect("concurrent removes");

    // A 20 MiB object.
    let big = random(&mut rng, 20 << 20);
    let big_id = Id::hash(&big);
    b.write(FileType::Pack, &big_id, big.clone())
        .await
        .expect("write 20 MiB");
    assert_eq!(
        sorted_list(b, FileType::Pack).await,
        vec![(big_id, 20 << 20)]
    );
    let back = b
        .read(FileType::Pack, &big_id, None)
        .await
        .expect("read 20 MiB");
    assert!(back == big, "20 MiB object changed in a round trip");
    let n = big.len() as u64;
    let tail = b
        .read(FileType::Pack, &big_id, Some(n - 4096..n))
        .await
        .expect("read the tail");
    assert_eq!(&tail[..], &big[big.len() - 4096..]);
    b.remove(FileType::Pack, &big_id).await.expect("remove");

    // Leave it empty.
    b.remove(FileType::Config, &cid)
        .await
        .expect("remove config");
    assert!(
        !b.has_config().await.expect("has_config"),
        "config still there after remove"
    );
    for ty in FileType::LISTABLE {
        assert!(
            sorted_list(b, ty).await.is_empty(),
            "{} not empty at the end",
            ty.dir()
        );
    }
}

#[cfg(test)]
mod tests {
    use std::ops::Range;

    use super::*;
    use crate::backend::{open_location, ObjectStoreBackend, Wrapping};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory() {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let b = Arc::new(ObjectStoreBackend::new(
            store.clone(),
            "some/prefix",
            "mem".into(),
        ));
        let wrapped = Wrapping::for_location(&crate::backend::Location::S3(
            crate::backend::location::S3Location {
                endpoint: "x".into(),
                use_http: false,
                bucket: "b".into(),
                prefix: String::new(),
            },
        ))
        .wrap(b);
        run(
            wrapped,
            Some(Raw {
                store,
                prefix: "some/prefix".into(),
            }),
        )
        .await;
        // And through the location syntax, with the root prefix.
        run(open_location("memory:conformance", false).unwrap(), None).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn local() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repo");
        let b = open_location(path.to_str().unwrap(), true).unwrap();
        let store: Arc<dyn ObjectStore> =
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&path).unwrap());
        run(
            b,
            Some(Raw {
                store,
                prefix: String::new(),
            }),
        )
        .await;
        // restic's layout was created.
        assert!(path.join("data/00").is_dir() && path.join("data/ff").is_dir());
    }

    /// Reads pack `id` whole into a buffer holding other bytes, and `part` of it
    /// into an empty one, and compares both with `data`.
    async fn reads_back(b: &dyn Backend, id: &Id, data: &[u8], part: Range<u64>, what: &str) {
        let whole = b
            .read_into(FileType::Pack, id, None, vec![1; 10])
            .await
            .unwrap();
        assert!(whole == data, "whole pack, {what}");
        let (start, end) = (part.start as usize, part.end as usize);
        let got = b
            .read_into(FileType::Pack, id, Some(part), Vec::new())
            .await
            .unwrap();
        assert!(got == data[start..end], "range {start}..{end}, {what}");
    }

    /// Local packs of 1 MiB and more are read past the page cache, and through it
    /// after [`Backend::will_read`]: both give exactly the file's bytes, for the
    /// whole file and for ranges.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn local_large_packs_read_the_same_hinted_or_not() {
        let dir = tempfile::tempdir().unwrap();
        let b = open_location(dir.path().join("repo").to_str().unwrap(), true).unwrap();
        b.create().await.unwrap();
        let data: Vec<u8> = (0..3_000_123u32)
            .map(|i| (i * 7 + i / 4099) as u8)
            .collect();
        let id = Id::hash(&data);
        b.write(FileType::Pack, &id, Bytes::from(data.clone()))
            .await
            .unwrap();
        assert!(b.takes_read_hints(), "a local directory takes read hints");
        for hinted in [false, true] {
            if hinted {
                b.will_read(FileType::Pack, &id).await;
            }
            let what = format!("hinted: {hinted}");
            reads_back(&*b, &id, &data, 4095..2_000_000, &what).await;
        }
        let memory = open_location("memory:read-hints", false).unwrap();
        assert!(!memory.takes_read_hints(), "memory drops read hints");
    }

    /// Where the file system refuses `O_DIRECT` (simulated by the test build below
    /// `direct_io::refusing_dir`), packs are written and read the ordinary way,
    /// and the same bytes come back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn local_packs_fall_back_where_o_direct_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = crate::direct_io::refusing_dir(dir.path()).join("repo");
        let b = open_location(root.to_str().unwrap(), true).unwrap();
        b.create().await.unwrap();
        for n in 0..2u32 {
            let data: Vec<u8> = (0..2_500_000u32).map(|i| (i * 3 + n) as u8).collect();
            let id = Id::hash(&data);
            b.write(FileType::Pack, &id, Bytes::from(data.clone()))
                .await
                .unwrap();
            assert!(
                std::fs::read(root.join(FileType::Pack.path(&id))).unwrap() == data,
                "pack {n} on disk"
            );
            reads_back(&*b, &id, &data, 1..2_000_001, &format!("pack {n}")).await;
        }
    }
}

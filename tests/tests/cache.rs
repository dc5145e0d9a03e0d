//! The local cache (`--cache-dir`, `--no-cache`, `cache`): what it keeps matches the
//! repository after other tools change it, a damaged cached file is replaced, restic
//! reads the same cache, several processes share it, and old caches are cleaned up.

use std::collections::BTreeSet;

use crate::util::*;

/// Names of the files in one part (`snapshots`, `index`, `data`) of a cache.
fn cached(cache: &std::path::Path, part: &str) -> BTreeSet<String> {
    let repo_dir = std::fs::read_dir(cache)
        .unwrap()
        .flatten()
        .find(|e| e.path().is_dir())
        .expect("a repository cache")
        .path();
    Repo::new(repo_dir, "")
        .files(part)
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

fn names(repo: &Repo, part: &str) -> BTreeSet<String> {
    repo.files(part).into_iter().map(|(n, _)| n).collect()
}

fn tree_packs(repo: &Repo) -> BTreeSet<String> {
    repo.restic_pack_contents()
        .into_iter()
        .filter(|(_, blobs)| blobs.iter().any(|(t, _)| t == "tree"))
        .map(|(id, _)| id)
        .collect()
}

#[test]
fn the_cache_follows_the_repository() {
    let s = Scratch::new();
    make_rich_tree(&s.path("src"));
    let repo = s.repo("repo");
    repo.stash_init(2);
    let cache = s.path("cache");
    let c = cache.to_str().unwrap();
    repo.stash(&["backup", "src", "--cache-dir", c])
        .cwd(&s.root)
        .ok();
    repo.restic(&["backup", "src", "--tag", "theirs"])
        .cwd(&s.root)
        .ok();

    let plain = repo.stash(&["ls", "latest"]).ok().stdout_str();
    assert_eq!(
        repo.stash(&["ls", "latest", "--cache-dir", c])
            .ok()
            .stdout_str(),
        plain
    );
    assert_eq!(cached(&cache, "snapshots"), names(&repo, "snapshots"));
    assert_eq!(cached(&cache, "index"), names(&repo, "index"));
    let trees = tree_packs(&repo);
    let packs = cached(&cache, "data");
    assert!(
        !packs.is_empty() && packs.is_subset(&trees),
        "{packs:?} vs {trees:?}"
    );

    // restic reads the same layout, and what it adds we read.
    Cmd::new(restic_bin())
        .args(["--cache-dir", c, "-r"])
        .arg(&repo.path)
        .args(["ls", "latest"])
        .env("RESTIC_PASSWORD", &repo.password)
        .ok();
    assert_eq!(
        repo.stash(&["ls", "latest", "--cache-dir", c])
            .ok()
            .stdout_str(),
        plain
    );

    // restic forgets our snapshot and prunes: the cache drops what went.
    let ours = repo.restic_snapshots()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    repo.restic(&["forget", &ours, "--prune"]).ok();
    repo.stash(&["ls", "latest", "--cache-dir", c]).ok();
    assert_eq!(cached(&cache, "snapshots"), names(&repo, "snapshots"));
    assert_eq!(cached(&cache, "index"), names(&repo, "index"));
    assert!(cached(&cache, "data").is_subset(&tree_packs(&repo)));

    // A cached file damaged on disk is read from the repository and replaced.
    let index = names(&repo, "index").into_iter().next().unwrap();
    let repo_dir = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .find(|e| e.path().is_dir())
        .unwrap()
        .path();
    let damaged = repo_dir.join("index").join(&index[..2]).join(&index);
    std::fs::write(&damaged, b"torn").unwrap();
    assert_eq!(
        repo.stash(&["ls", "latest", "--cache-dir", c])
            .ok()
            .stdout_str(),
        plain
    );
    assert_eq!(sha256_hex(&std::fs::read(&damaged).unwrap()), index);

    // --no-cache leaves a cache directory alone.
    let unused = s.path("unused");
    repo.stash(&[
        "snapshots",
        "--no-cache",
        "--cache-dir",
        unused.to_str().unwrap(),
    ])
    .ok();
    assert!(!unused.exists());
    repo.restic_check_read_data();
}

/// Processes started together on an empty cache all answer alike.
#[test]
fn processes_share_a_cache() {
    let s = Scratch::new();
    make_rich_tree(&s.path("src"));
    let repo = s.repo("repo");
    repo.restic_init(2);
    repo.restic(&["backup", "src"]).cwd(&s.root).ok();
    let plain = repo.stash(&["ls", "latest"]).ok().stdout_str();
    let cache = s.path("cache");
    let outs: Vec<String> = std::thread::scope(|sc| {
        let runs: Vec<_> = (0..4)
            .map(|_| {
                sc.spawn(|| {
                    repo.stash(&["ls", "latest", "--cache-dir", cache.to_str().unwrap()])
                        .ok()
                        .stdout_str()
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert!(outs.iter().all(|o| *o == plain));
    assert_eq!(cached(&cache, "snapshots"), names(&repo, "snapshots"));
}

#[test]
fn cache_lists_and_cleans_up_old_caches() {
    let s = Scratch::new();
    make_simple_tree(&s.path("src"), &[("a", b"a\n")]);
    let cache = s.path("cache");
    let c = cache.to_str().unwrap();
    let mut ids = Vec::new();
    for name in ["old", "new"] {
        let repo = s.repo(name);
        repo.stash_init(2);
        repo.stash(&["backup", "src", "--cache-dir", c])
            .cwd(&s.root)
            .ok();
        ids.push(
            std::fs::read_dir(&cache)
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .find(|n| n.len() == 64 && !ids.contains(n))
                .unwrap(),
        );
    }
    let old = cache.join(&ids[0]);
    let month_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(40 * 86_400);
    filetime::set_file_mtime(&old, month_ago.into()).unwrap();

    let stash = || Cmd::new(stash_bin()).args(["--cache-dir", c, "cache"]);
    let table = stash().ok().stdout_str();
    assert!(
        table.contains(&format!("{}  40 days ago", &ids[0][..10])),
        "{table}"
    );
    assert!(table.contains("2 cache dirs in"), "{table}");
    let json = stash().arg("--json").ok().json();
    let olds: Vec<bool> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["old"].as_bool().unwrap())
        .collect();
    assert_eq!(olds, [true, false]);

    let out = stash().arg("--cleanup").ok().stdout_str();
    assert!(out.contains("removing 1 old cache dirs"), "{out}");
    assert!(!old.exists() && cache.join(&ids[1]).exists());
    assert!(stash()
        .arg("--cleanup")
        .ok()
        .stdout_str()
        .contains("no old cache dirs found"));
}

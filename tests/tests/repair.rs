//! `repair index` (and `rebuild-index`) against restic's `rebuild-index`: the same
//! blobs indexed from the same packs, a repository restic checks, and damage (a lost
//! index, a garbage index file, a lost pack) handled without losing what is there.

use crate::util::*;

/// A restic repository of `version` with one restic snapshot of a small tree.
fn small_restic_repo(s: &Scratch, version: u32) -> Repo {
    make_simple_tree(
        &s.path("src"),
        &[("a.txt", b"alpha\n"), ("b/c.txt", b"gamma\n")],
    );
    let repo = s.repo("repo");
    repo.restic_init(version);
    repo.restic(&["backup", "src"]).cwd(&s.root).ok();
    repo
}

/// A repository with a restic snapshot and one of ours on top.
fn two_snapshots(s: &Scratch) -> Repo {
    make_rich_tree(&s.path("src"));
    let repo = s.repo("repo");
    repo.restic_init(2);
    repo.restic(&["backup", "src"]).cwd(&s.root).ok();
    std::fs::write(s.path("src/nested/a/new.txt"), b"new\n").unwrap();
    repo.stash(&["backup", "src"]).cwd(&s.root).ok();
    repo
}

fn remove_all(repo: &Repo, dir: &str) {
    for (name, _) in repo.files(dir) {
        std::fs::remove_file(repo.path.join(dir).join(name)).unwrap();
    }
}

#[test]
fn repair_index_rebuilds_what_restic_rebuilds() {
    let s = Scratch::new();
    let repo = two_snapshots(&s);
    let blobs = repo.restic_blobs();
    let theirs = s.repo("theirs");
    copy_dir(&repo.path, &theirs.path);

    // Everything indexed is lost, and a file that is no index at all appears.
    remove_all(&repo, "index");
    remove_all(&theirs, "index");
    let garbage = repo.path.join("index").join("ab".repeat(32));
    std::fs::write(&garbage, b"not an index").unwrap();
    repo.stash(&["ls", "latest"]).run().assert_failed();

    let out = repo.stash(&["repair", "index"]).ok();
    assert!(out.stdout_str().contains("(1 damaged)"), "{out}");
    assert!(!garbage.exists(), "the garbage index file was left");
    theirs.restic(&["rebuild-index"]).ok();
    assert_eq!(repo.restic_blobs(), blobs);
    assert_eq!(theirs.restic_blobs(), blobs);
    repo.restic_check_read_data();
    repo.assert_no_locks("repair index");

    // With a complete index, nothing is read unless asked; the result is the same.
    let again = repo.stash(&["rebuild-index"]).ok().stdout_str();
    assert!(again.contains(" 0 headers read"), "{again}");
    let all = repo
        .stash(&["repair", "index", "--read-all-packs"])
        .ok()
        .stdout_str();
    assert!(all.contains(" 0 from the old index"), "{all}");
    assert_eq!(repo.restic_blobs(), blobs);
    let target = s.path("restored");
    repo.stash(&[
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--verify",
    ])
    .ok();
}

#[test]
fn repair_index_drops_the_entries_of_a_lost_pack() {
    let s = Scratch::new();
    let repo = two_snapshots(&s);
    let (lost, _) = repo
        .files("data")
        .into_iter()
        .max_by_key(|(_, size)| *size)
        .unwrap();
    std::fs::remove_file(repo.pack_path(&lost)).unwrap();
    let out = repo.stash(&["repair", "index"]).ok().stdout_str();
    assert!(out.contains("1 indexed packs were missing"), "{out}");
    let indexed = repo.stash(&["list", "index"]).ok().stdout_str();
    assert!(!indexed.contains(&lost), "the lost pack is still indexed");
}

#[test]
fn migrate_upgrades_a_version_1_repository_as_restic_does() {
    let s = Scratch::new();
    let repo = small_restic_repo(&s, 1);
    let listed = repo.stash(&["migrate"]).ok().stdout_str();
    assert_eq!(listed, repo.restic(&["migrate"]).ok().stdout_str());
    assert!(listed.contains("upgrade_repo_v2"), "{listed}");
    let before: serde_json::Value =
        serde_json::from_str(&repo.restic(&["cat", "config"]).ok().stdout_str()).unwrap();
    // A damaged repository is not upgraded.
    let damaged = s.repo("damaged");
    copy_dir(&repo.path, &damaged.path);
    let (pack, _) = damaged.files("data").pop().unwrap();
    std::fs::remove_file(damaged.pack_path(&pack)).unwrap();
    let refused = damaged.stash(&["migrate", "upgrade_repo_v2"]).run();
    refused.assert_failed();
    assert!(
        refused.stderr.contains("repair it before upgrading"),
        "{refused}"
    );
    let kept: serde_json::Value =
        serde_json::from_str(&damaged.restic(&["cat", "config"]).ok().stdout_str()).unwrap();
    assert_eq!(kept["version"], 1);

    repo.stash(&["migrate", "upgrade_repo_v2"]).ok();
    let after: serde_json::Value =
        serde_json::from_str(&repo.restic(&["cat", "config"]).ok().stdout_str()).unwrap();
    assert_eq!(after["version"], 2);
    assert_eq!(after["id"], before["id"]);
    assert_eq!(after["chunker_polynomial"], before["chunker_polynomial"]);
    repo.assert_no_locks("migrate");
    // Both write compressed data into it now, and restic checks it.
    repo.restic(&["backup", "src", "--compression", "max", "--force"])
        .cwd(&s.root)
        .ok();
    repo.stash(&["backup", "src", "--compression", "max", "--force"])
        .cwd(&s.root)
        .ok();
    repo.restic_check_read_data();
    let none = repo.stash(&["migrate"]).ok().stdout_str();
    assert!(none.contains("no migrations found"), "{none}");
    let again = repo.stash(&["migrate", "upgrade_repo_v2"]).run();
    again.assert_failed();
    assert!(
        again.stderr.contains("already upgraded to version 2"),
        "{again}"
    );
}

/// The paths of the `recovered` snapshot, below its per-root directories.
fn recovered_listing(repo: &Repo) -> Vec<String> {
    let mut l = repo
        .stash(&["ls", "latest", "--tag", "recovered", "--recursive"])
        .ok()
        .lines();
    l.remove(0);
    l
}

#[test]
fn recover_finds_the_roots_restic_finds() {
    let s = Scratch::new();
    let repo = small_restic_repo(&s, 2);
    std::fs::write(s.path("src/b/d.txt"), b"delta\n").unwrap();
    repo.stash(&["backup", "src"]).cwd(&s.root).ok();
    let nothing = repo.stash(&["recover"]).ok().stdout_str();
    assert!(nothing.contains("found 0 unreferenced roots"), "{nothing}");
    // Both snapshot files are lost; their trees are still there.
    for (name, _) in repo.files("snapshots") {
        std::fs::remove_file(repo.path.join("snapshots").join(name)).unwrap();
    }
    let theirs = s.repo("theirs");
    copy_dir(&repo.path, &theirs.path);
    let out = repo.stash(&["recover"]).ok().stdout_str();
    assert!(out.contains("found 2 unreferenced roots"), "{out}");
    theirs.restic(&["recover"]).ok();
    let snaps = repo.restic_snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["paths"], serde_json::json!(["/recover"]));
    assert_eq!(snaps[0]["tags"], serde_json::json!(["recovered"]));
    let ours = recovered_listing(&repo);
    assert_eq!(ours, recovered_listing(&theirs));
    assert!(ours.iter().any(|p| p.ends_with("/src/b/d.txt")), "{ours:?}");
    repo.restic_check_read_data();
}

/// The paths of a snapshot (`ls` without its header).
fn paths_of(repo: &Repo, snapshot: &str) -> Vec<String> {
    let mut l = repo.stash(&["ls", snapshot]).ok().lines();
    l.remove(0);
    l
}

#[test]
fn rewrite_leaves_out_what_a_backup_with_the_excludes_leaves_out() {
    let s = Scratch::new();
    make_rich_tree(&s.path("src"));
    let repo = s.repo("repo");
    repo.restic_init(2);
    repo.restic(&["backup", "src", "--host", "full"])
        .cwd(&s.root)
        .ok();
    // Unanchored: an anchored pattern matches the snapshot's paths in a rewrite
    // but the file system's in a backup.
    let excludes = ["--exclude", "*.txt", "--exclude", "big"];
    let mut args = vec!["backup", "src", "--host", "reference"];
    args.extend(excludes);
    repo.restic(&args).cwd(&s.root).ok();
    let by_host = |host: &str| -> (String, serde_json::Value) {
        let snap = repo
            .restic_snapshots()
            .into_iter()
            .find(|x| x["hostname"] == host && x["tags"].is_null())
            .unwrap();
        (snap["id"].as_str().unwrap().to_string(), snap)
    };
    let (full, _) = by_host("full");
    let (reference, _) = by_host("reference");

    // A dry run changes nothing.
    let before: Vec<_> = ["data", "index", "snapshots"]
        .iter()
        .map(|d| repo.files(d))
        .collect();
    let mut dry = vec!["rewrite", "-n", &full[..8]];
    dry.extend(excludes);
    let out = repo.stash(&dry).ok().stdout_str();
    assert!(out.contains("would save a new snapshot"), "{out}");
    let after: Vec<_> = ["data", "index", "snapshots"]
        .iter()
        .map(|d| repo.files(d))
        .collect();
    assert_eq!(after, before);

    let mut rewrite = vec!["rewrite", &full[..8]];
    rewrite.extend(excludes);
    repo.stash(&rewrite).ok();
    let new = repo
        .restic_snapshots()
        .into_iter()
        .find(|x| x["tags"] == serde_json::json!(["rewrite"]))
        .expect("a snapshot tagged rewrite");
    assert_eq!(new["original"].as_str(), Some(full.as_str()));
    let new_id = new["id"].as_str().unwrap().to_string();
    assert_eq!(paths_of(&repo, &new_id), paths_of(&repo, &reference));
    assert!(repo.restic_snapshots().iter().any(|x| x["id"] == full));

    // Nothing to leave out: nothing changes. --forget replaces the snapshot.
    let none = repo
        .stash(&["rewrite", "--exclude", "no-such-name", "--host", "full"])
        .ok()
        .stdout_str();
    assert!(none.contains("0 of 2 snapshots changed"), "{none}");
    repo.stash(&[
        "rewrite",
        "--forget",
        "--exclude",
        "/src/nested",
        &new_id[..8],
    ])
    .ok();
    let snaps = repo.restic_snapshots();
    assert_eq!(snaps.len(), 3, "{snaps:?}");
    assert!(!snaps.iter().any(|x| x["id"] == new_id));
    repo.restic_check_read_data();
    let bare = repo.stash(&["rewrite", "latest"]).run();
    bare.assert_failed();
    assert!(bare.stderr.contains("no excludes"), "{bare}");

    // --iexclude and --iexclude-file ignore case.
    let pats = s.path("patterns");
    std::fs::write(&pats, "*.TXT\n").unwrap();
    let pats = pats.to_str().unwrap();
    let before = repo.restic_snapshots();
    repo.stash(&[
        "rewrite",
        &full[..8],
        "--iexclude",
        "BIG",
        "--iexclude-file",
        pats,
    ])
    .ok();
    let again = repo
        .restic_snapshots()
        .into_iter()
        .find(|x| !before.contains(x))
        .expect("a second rewrite of the full snapshot");
    let again = again["id"].as_str().unwrap();
    assert_eq!(paths_of(&repo, again), paths_of(&repo, &reference));
}

/// The first pack, by restic's index, whose blobs all pass `pick`.
fn pack_where(repo: &Repo, pick: impl Fn(&[serde_json::Value]) -> bool) -> String {
    for index in repo.restic(&["list", "index"]).ok().lines() {
        let text = repo.restic(&["cat", "index", &index]).ok().stdout_str();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        for p in v["packs"].as_array().unwrap() {
            if pick(p["blobs"].as_array().unwrap()) {
                return p["id"].as_str().unwrap().to_string();
            }
        }
    }
    panic!("no such pack");
}

#[test]
fn repair_snapshots_drops_what_is_lost_and_restic_checks_the_rest() {
    let s = Scratch::new();
    make_simple_tree(
        &s.path("src"),
        &[("small.txt", b"small\n"), ("d/other.txt", b"other\n")],
    );
    std::fs::write(s.path("src/big.bin"), random_bytes(3, 4 << 20)).unwrap();
    let repo = s.repo("repo");
    repo.restic_init(2);
    repo.restic(&["backup", "src"]).cwd(&s.root).ok();
    let clean = repo.stash(&["repair", "snapshots"]).ok().stdout_str();
    assert!(clean.contains("0 of 1 snapshots changed"), "{clean}");

    let lost = pack_where(&repo, |blobs| blobs.iter().all(|b| b["type"] == "data"));
    std::fs::remove_file(repo.pack_path(&lost)).unwrap();
    repo.stash(&["repair", "index"]).ok();
    let out = repo.stash(&["repair", "snapshots"]).ok().stdout_str();
    assert!(out.contains("removed missing content"), "{out}");
    let repaired = repo
        .restic_snapshots()
        .into_iter()
        .find(|x| x["tags"] == serde_json::json!(["repaired"]))
        .expect("a snapshot tagged repaired");
    let id = repaired["id"].as_str().unwrap().to_string();
    assert_eq!(paths_of(&repo, &id).len(), 5, "the paths stay");
    // With --forget the damaged original is replaced: the repaired copy made
    // before and this one are left, and they check clean.
    let original = repaired["original"].clone();
    repo.stash(&["repair", "snapshots", "--forget"]).ok();
    let left = repo.restic_snapshots();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(!left.iter().any(|x| x["id"] == original));
    repo.restic_check_read_data();
    let target = s.path("restored");
    // What is left of each file restores and verifies (a file whose blobs were all
    // lost is empty).
    repo.stash(&[
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--verify",
    ])
    .ok();
    assert!(target.join("src/d/other.txt").is_file());

    // A snapshot whose root tree is lost is removed.
    let root = repo.restic_snapshots()[0]["tree"].clone();
    let trees = pack_where(&repo, |blobs| blobs.iter().any(|b| b["id"] == root));
    std::fs::remove_file(repo.pack_path(&trees)).unwrap();
    repo.stash(&["repair", "index"]).ok();
    let gone = repo.stash(&["repair", "snapshots"]).ok().stdout_str();
    assert!(
        gone.contains("not readable") && gone.contains(": removed"),
        "{gone}"
    );
    assert!(repo.restic_snapshots().len() < 2);
}

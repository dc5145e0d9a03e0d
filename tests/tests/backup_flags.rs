//! The `backup` flags that change what is stored or whether anything is: each against
//! the real `restic` where restic 0.14 has the flag (`--dry-run`, `-x`,
//! `--with-atime`), on outcomes where it does not (`--skip-if-unchanged`,
//! `--read-concurrency`).

use std::{collections::BTreeMap, process::Command};

use serde_json::Value;

use crate::util::*;

/// Every file of the repository but its locks, with sizes.
fn contents(repo: &Repo) -> BTreeMap<String, u64> {
    ["data", "index", "snapshots", "keys"]
        .iter()
        .flat_map(|d| {
            repo.files(d)
                .into_iter()
                .map(move |(n, s)| (format!("{d}/{n}"), s))
        })
        .collect()
}

/// The node of `path` in the latest snapshot, from `ls --json`.
fn node(repo: &Repo, path: &str) -> Value {
    repo.stash(&["ls", "--json", "latest"])
        .ok()
        .json_lines()
        .into_iter()
        .find(|v| v["path"] == path)
        .unwrap_or_else(|| panic!("{path} not in the latest snapshot"))
}

fn summary(out: &Out) -> Value {
    out.json_lines()
        .into_iter()
        .find(|v| v["message_type"] == "summary")
        .expect("a summary message")
}

#[test]
fn dry_run_writes_nothing_and_counts_what_restic_counts() {
    let s = Scratch::new();
    make_rich_tree(&s.path("src"));
    let repo = s.repo("repo");
    repo.restic_init(2);
    let before = contents(&repo);
    let ours = repo
        .stash(&["backup", "--dry-run", "--json", "src"])
        .cwd(&s.root)
        .ok();
    let theirs = repo
        .restic(&["backup", "--dry-run", "--json", "src"])
        .cwd(&s.root)
        .ok();
    assert_eq!(contents(&repo), before, "a dry run changed the repository");
    repo.assert_no_locks("backup --dry-run");
    let (o, t) = (summary(&ours), summary(&theirs));
    assert_eq!(o["dry_run"], true, "{o}");
    for k in [
        "files_new",
        "dirs_new",
        "data_blobs",
        "tree_blobs",
        "total_files_processed",
        "total_bytes_processed",
        "data_added",
    ] {
        assert_eq!(o[k], t[k], "{k}: ours {o}\ntheirs {t}");
    }
    let text = repo.stash(&["backup", "-n", "src"]).cwd(&s.root).ok();
    let text = text.stdout_str();
    assert!(text.contains("Would add to the repository: "), "{text}");
    assert!(!text.contains("saved"), "{text}");
    assert_eq!(contents(&repo), before);
    assert!(repo.restic_snapshots().is_empty());
}

#[test]
fn one_file_system_keeps_the_mount_point_and_leaves_its_contents() {
    let s = Scratch::new();
    make_simple_tree(&s.path("src"), &[("a.txt", b"a"), ("mnt/.keep", b"")]);
    let mnt = s.path("src/mnt");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "stash-test", mnt.to_str().unwrap()])
        .status()
        .expect("run mount");
    assert!(
        mounted.success(),
        "mounting a tmpfs (the tests run as root) failed"
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    std::fs::write(mnt.join("inside.txt"), b"on another file system").unwrap();
    let repo = s.repo("repo");
    repo.restic_init(2);
    let listing = |host: &str| -> Vec<String> {
        let mut l = repo.stash(&["ls", "latest", "--host", host]).ok().lines();
        l.remove(0);
        l
    };
    repo.restic(&["backup", "-x", "src", "--host", "restic"])
        .cwd(&s.root)
        .ok();
    repo.stash(&["backup", "-x", "src", "--host", "stash"])
        .cwd(&s.root)
        .ok();
    repo.stash(&["backup", "src", "--host", "across"])
        .cwd(&s.root)
        .ok();
    assert_eq!(listing("stash"), listing("restic"));
    assert_eq!(listing("stash"), ["/src", "/src/a.txt", "/src/mnt"]);
    assert!(listing("across").contains(&"/src/mnt/inside.txt".to_string()));
}

#[test]
fn with_atime_stores_what_restic_stores() {
    let s = Scratch::new();
    make_simple_tree(&s.path("src"), &[("f.txt", b"f")]);
    // Reading the file during a backup moves its access time: set it before each.
    let set_atime = || {
        let set = Command::new("touch")
            .args(["-a", "-d", "2001-02-03 04:05:06", "src/f.txt"])
            .current_dir(&s.root)
            .status()
            .unwrap();
        assert!(set.success());
    };
    let repo = s.repo("repo");
    repo.restic_init(2);
    set_atime();
    repo.restic(&["backup", "--with-atime", "src"])
        .cwd(&s.root)
        .ok();
    let theirs = node(&repo, "/src/f.txt");
    set_atime();
    repo.stash(&["backup", "--with-atime", "src"])
        .cwd(&s.root)
        .ok();
    let ours = node(&repo, "/src/f.txt");
    assert_eq!(ours["atime"], theirs["atime"]);
    assert!(
        ours["atime"]
            .as_str()
            .unwrap()
            .starts_with("2001-02-03T04:05:06"),
        "{ours}"
    );
    set_atime();
    repo.stash(&["backup", "src"]).cwd(&s.root).ok();
    let plain = node(&repo, "/src/f.txt");
    assert_eq!(plain["atime"], plain["mtime"], "{plain}");
    repo.restic_check_read_data();
}

#[test]
fn skip_if_unchanged_writes_no_snapshot_until_something_changes() {
    let s = Scratch::new();
    make_simple_tree(&s.path("src"), &[("a.txt", b"a"), ("d/b.txt", b"b")]);
    let repo = s.repo("repo");
    repo.restic_init(2);
    let backup = |extra: &[&str]| {
        let mut args = vec!["backup", "src", "--skip-if-unchanged"];
        args.extend_from_slice(extra);
        repo.stash(&args).cwd(&s.root).ok()
    };
    backup(&[]);
    let again = backup(&[]).stdout_str();
    assert!(again.contains("skipped creating snapshot"), "{again}");
    let json = summary(&backup(&["--json"]));
    assert!(json.get("snapshot_id").is_none(), "{json}");
    assert_eq!(repo.restic_snapshots().len(), 1);
    std::fs::write(s.path("src/d/b.txt"), b"changed").unwrap();
    let changed = backup(&[]).stdout_str();
    assert!(changed.contains("saved"), "{changed}");
    assert_eq!(repo.restic_snapshots().len(), 2);
    repo.restic_check_read_data();
}

#[test]
fn read_concurrency_changes_nothing_stored() {
    let s = Scratch::new();
    make_rich_tree(&s.path("src"));
    let repo = s.repo("repo");
    repo.restic_init(2);
    let tree = |extra: &[&str]| -> Value {
        let mut args = vec!["backup", "src", "--force", "--json"];
        args.extend_from_slice(extra);
        let id = summary(&repo.stash(&args).cwd(&s.root).ok())["snapshot_id"].clone();
        let snap = repo
            .restic_snapshots()
            .into_iter()
            .find(|x| x["id"] == id)
            .expect("the snapshot");
        snap["tree"].clone()
    };
    assert_eq!(tree(&["--read-concurrency", "1"]), tree(&[]));
    let bad = repo
        .stash(&["backup", "src", "--read-concurrency", "0"])
        .cwd(&s.root)
        .run();
    bad.assert_failed();
    assert!(bad.stderr.contains("--read-concurrency"), "{bad}");
}

#[test]
fn global_pack_size_options_and_limits() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path("src")).unwrap();
    std::fs::write(s.path("src/big.bin"), random_bytes(11, 24 << 20)).unwrap();
    let repo = s.repo("repo");
    repo.restic_init(2);
    repo.stash(&[
        "--pack-size",
        "4",
        "backup",
        "src",
        "--limit-upload",
        "1048576",
    ])
    .cwd(&s.root)
    .ok();
    let packs = repo.files("data");
    assert!(packs.len() >= 5, "{packs:?}");
    assert!(
        packs.iter().all(|(_, size)| *size < 5 << 20),
        "a pack is larger than --pack-size allows: {packs:?}"
    );
    repo.restic_check_read_data();
    let target = s.path("restored");
    repo.stash(&[
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--limit-download",
        "1048576",
        "--verify",
    ])
    .ok();
    for (args, says) in [
        (&["--pack-size", "2", "snapshots"][..], "--pack-size"),
        (&["-o", "s3.storage-class=X", "snapshots"], "unknown option"),
        (
            &["-o", "local.connections=none", "snapshots"],
            "not a positive number",
        ),
        (
            &["--cacert", "/no/such/ca.pem", "snapshots"],
            "/no/such/ca.pem",
        ),
    ] {
        let out = repo.stash(args).run();
        out.assert_failed();
        assert!(out.stderr.contains(says), "{args:?}: {out}");
    }
    repo.stash(&["-o", "local.connections=2", "snapshots"]).ok();
}

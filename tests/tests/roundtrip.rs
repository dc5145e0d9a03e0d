//! stash on its own: backup and restore, partial restores, dump, ls, cat, keys, and
//! what an unchanged second backup adds.

use std::{collections::BTreeSet, fs, path::Path};

use crate::util::*;

fn stash_roundtrip(version: u32) {
    let s = Scratch::new();
    let tree = make_rich_tree(&s.path("src"));
    let repo = s.repo("repo");
    repo.stash_init(version);
    let summary = stash_backup_json(&repo, &s.root, &["src"]);
    assert_eq!(summary["files_new"], tree.regular_files.len() as u64);
    assert_eq!(summary["errors"], 0, "{summary}");
    let out = repo
        .stash(&["restore", "latest", "--target", "out"])
        .cwd(&s.root)
        .ok();
    assert_same_tree(&s.path("src"), &s.path("out/src"));
    assert!(out.stdout_str().contains("restored"), "{out}");
    let check = repo.stash(&["check", "--read-data"]).ok();
    assert!(
        check.stdout_str().contains("no errors were found"),
        "{check}"
    );
    // Restoring again into the same target leaves it identical.
    repo.stash(&["restore", "latest", "--target", "out"])
        .cwd(&s.root)
        .ok();
    assert_same_tree(&s.path("src"), &s.path("out/src"));
}

#[test]
fn stash_backup_and_restore_rich_tree_v1() {
    stash_roundtrip(1);
}

#[test]
fn stash_backup_and_restore_rich_tree_v2() {
    stash_roundtrip(2);
}

fn small_tree(root: &Path) {
    make_simple_tree(
        root,
        &[
            ("docs/a.txt", b"a\n"),
            ("docs/sub/b.md", b"b\n"),
            ("code/main.rs", b"fn main() {}\n"),
            ("code/lib.rs", b"// lib\n"),
            ("readme.md", b"readme\n"),
        ],
    );
    fs::create_dir_all(root.join("emptyd")).expect("mkdir");
}

/// Restores with `--include`/`--exclude` restore exactly the chosen paths: the
/// expectations were taken from restic 0.14, and restic is asked again here.
#[test]
fn restore_include_and_exclude_select_paths() {
    let s = Scratch::new();
    small_tree(&s.path("src"));
    let repo = s.repo("repo");
    repo.stash_init(2);
    repo.stash(&["backup", "src"]).cwd(&s.root).ok();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--include", "/src/docs"],
            &[
                "src",
                "src/docs",
                "src/docs/a.txt",
                "src/docs/sub",
                "src/docs/sub/b.md",
            ],
        ),
        (
            &["--include", "*.md"],
            &[
                "src",
                "src/docs",
                "src/docs/sub",
                "src/docs/sub/b.md",
                "src/readme.md",
            ],
        ),
        (
            &["--include", "/src/code/main.rs"],
            &["src", "src/code", "src/code/main.rs"],
        ),
        (
            &["--exclude", "/src/docs"],
            &[
                "src",
                "src/code",
                "src/code/lib.rs",
                "src/code/main.rs",
                "src/emptyd",
                "src/readme.md",
            ],
        ),
        (
            &["--exclude", "*.rs"],
            &[
                "src",
                "src/code",
                "src/docs",
                "src/docs/a.txt",
                "src/docs/sub",
                "src/docs/sub/b.md",
                "src/emptyd",
                "src/readme.md",
            ],
        ),
    ];
    for (i, (flags, want)) in cases.iter().enumerate() {
        let ours = format!("ours{i}");
        let theirs = format!("theirs{i}");
        repo.stash(&[&["restore", "latest", "--target", &ours], *flags].concat())
            .cwd(&s.root)
            .ok();
        repo.restic(&[&["restore", "latest", "--target", &theirs], *flags].concat())
            .cwd(&s.root)
            .ok();
        let got = tree_paths(&s.path(&ours));
        let want: BTreeSet<String> = want.iter().map(|p| p.to_string()).collect();
        assert_eq!(got, want, "stash restore {flags:?}");
        assert_eq!(
            got,
            tree_paths(&s.path(&theirs)),
            "stash and restic restore {flags:?} differ"
        );
        // What is restored is correct.
        for p in &got {
            let restored = s.path(&ours).join(p);
            if restored.is_file() {
                let source = s.root.join(p);
                assert_eq!(
                    fs::read(&source).expect("source"),
                    fs::read(&restored).expect("restored"),
                    "content of {p}"
                );
            }
        }
    }
}

/// `restore ID:subfolder` restores the contents of that folder.
#[test]
fn restore_subfolder() {
    let s = Scratch::new();
    small_tree(&s.path("src"));
    let repo = s.repo("repo");
    repo.stash_init(2);
    repo.stash(&["backup", "src"]).cwd(&s.root).ok();
    repo.stash(&["restore", "latest:src/docs", "--target", "out"])
        .cwd(&s.root)
        .ok();
    assert_same_contents(&s.path("src/docs"), &s.path("out"));
}

#[test]
fn dump_ls_and_cat() {
    let s = Scratch::new();
    let tree = make_rich_tree(&s.path("src"));
    let repo = s.repo("repo");
    repo.stash_init(2);
    stash_backup_json(&repo, &s.root, &["src"]);

    for rel in [
        "big/large-9m.bin",
        "big/random-3m.bin",
        "text.txt",
        "empty.txt",
    ] {
        let out = repo.stash(&["dump", "latest", &format!("/src/{rel}")]).ok();
        let want = fs::read(s.path("src").join(rel)).expect("source");
        assert!(
            out.stdout == want,
            "stash dump /src/{rel}: {} bytes, the file has {}",
            out.stdout.len(),
            want.len()
        );
    }
    let out = repo.stash(&["dump", "latest", "/src/nope.txt"]).run();
    out.assert_failed();
    out.assert_no_panic();

    // ls lists every path once (names lossily: the raw 0xff name is compared as
    // UTF-8 with replacement).
    let ls = repo.stash(&["ls", "latest"]).ok();
    let mut lines = ls.lines();
    assert!(lines.remove(0).starts_with("snapshot "), "{ls}");
    let got: BTreeSet<String> = lines.iter().cloned().collect();
    assert_eq!(got.len(), lines.len(), "ls lists a path twice");
    let want: BTreeSet<String> = std::iter::once("/src".to_string())
        .chain(tree.all_paths.iter().map(|p| snapshot_path("/src", p)))
        .collect();
    assert_eq!(got, want, "stash ls latest");
    // Restricted to a directory: its entries, or with --recursive all below it.
    let ls = repo.stash(&["ls", "latest", "/src/nested"]).ok();
    let got: BTreeSet<String> = ls.lines().into_iter().skip(1).collect();
    let below: BTreeSet<String> = want
        .iter()
        .filter(|p| *p == "/src/nested" || p.starts_with("/src/nested/"))
        .cloned()
        .collect();
    let entries: BTreeSet<String> = below
        .iter()
        .filter(|p| p.matches('/').count() <= 3)
        .cloned()
        .collect();
    assert_eq!(got, entries, "stash ls latest /src/nested");
    let ls = repo
        .stash(&["ls", "latest", "/src/nested", "--recursive"])
        .ok();
    let got: BTreeSet<String> = ls.lines().into_iter().skip(1).collect();
    assert_eq!(got, below, "stash ls latest /src/nested --recursive");
    // --long shows the symlink target and the permissions.
    let long = repo.stash(&["ls", "--long", "latest"]).ok().stdout_str();
    assert!(
        long.lines()
            .any(|l| l.ends_with("/src/link-to-text -> text.txt") && l.starts_with('L')),
        "{long}"
    );
    assert!(
        long.lines()
            .any(|l| l.starts_with("-rw-------") && l.ends_with("/src/perms/secret-0600.txt")),
        "{long}"
    );

    // cat config: JSON with the version.
    let config = repo.stash(&["cat", "config"]).ok().json();
    assert_eq!(config["version"], 2, "{config}");
    let id = config["id"].as_str().expect("id");
    assert!(
        id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{config}"
    );
    assert!(config["chunker_polynomial"].is_string(), "{config}");
    let snap = repo.stash(&["cat", "snapshot", "latest"]).ok().json();
    assert!(snap["tree"].is_string(), "{snap}");
    let root = repo
        .stash(&["cat", "tree", snap["tree"].as_str().expect("tree")])
        .ok()
        .json();
    assert_eq!(root["nodes"][0]["name"], "src", "{root}");
    let mk = repo.stash(&["cat", "masterkey"]).ok().json();
    assert!(mk["encrypt"].is_string() && mk["mac"].is_object(), "{mk}");
    let out = repo.stash(&["cat", "nonsense"]).run();
    out.assert_failed();
    out.assert_no_panic();
}

fn key_ids(repo: &Repo) -> Vec<serde_json::Value> {
    repo.stash(&["--json", "key", "list"])
        .ok()
        .json()
        .as_array()
        .expect("key list --json is an array")
        .clone()
}

#[test]
fn key_add_list_and_passwd() {
    let s = Scratch::new();
    let repo = s.repo("repo");
    repo.stash_init(2);
    assert_eq!(key_ids(&repo).len(), 1);

    fs::write(s.path("new-pw"), "second password\n").expect("write");
    let pw_arg = s.path("new-pw");
    repo.stash(&["key", "add", "--new-password-file"])
        .arg(&pw_arg)
        .ok();
    let keys = key_ids(&repo);
    assert_eq!(keys.len(), 2, "key list after key add: {keys:?}");
    assert_eq!(
        keys.iter().filter(|k| k["current"] == true).count(),
        1,
        "{keys:?}"
    );
    // The new password opens the repository (trailing newline trimmed, as restic).
    let second = Repo::new(repo.path.clone(), "second password");
    second.stash(&["snapshots"]).ok();
    // Through a password file too.
    Cmd::new(stash_bin())
        .arg("-r")
        .arg(&repo.path)
        .arg("--password-file")
        .arg(&pw_arg)
        .arg("snapshots")
        .ok();
    Cmd::new(stash_bin())
        .arg("-r")
        .arg(&repo.path)
        .env("RESTIC_PASSWORD_FILE", &pw_arg)
        .arg("snapshots")
        .ok();
    // restic accepts the key stash added.
    second.restic(&["snapshots"]).ok();
    assert_eq!(
        second
            .restic(&["key", "list", "--json"])
            .ok()
            .json()
            .as_array()
            .map(Vec::len),
        Some(2)
    );

    // passwd replaces the key in use: the old password stops working.
    fs::write(s.path("third-pw"), "third password").expect("write");
    repo.stash(&["key", "passwd", "--new-password-file"])
        .arg(s.path("third-pw"))
        .ok();
    let out = repo.stash(&["snapshots"]).run();
    out.assert_code(12);
    assert!(out.stderr.contains("wrong password"), "{out}");
    let third = Repo::new(repo.path.clone(), "third password");
    third.stash(&["snapshots"]).ok();
    third.restic(&["snapshots"]).ok();
    let keys = key_ids(&third);
    assert_eq!(keys.len(), 2, "passwd replaces, not adds: {keys:?}");
    second.stash(&["snapshots"]).ok();

    // remove: not the key in use; the other one goes.
    let current = keys
        .iter()
        .find(|k| k["current"] == true)
        .expect("current key");
    let other = keys
        .iter()
        .find(|k| k["current"] == false)
        .expect("other key");
    let out = third
        .stash(&["key", "remove", current["id"].as_str().expect("id")])
        .run();
    out.assert_failed();
    third
        .stash(&["key", "remove", other["id"].as_str().expect("id")])
        .ok();
    second.stash(&["snapshots"]).run().assert_code(12);
    assert_eq!(key_ids(&third).len(), 1);
}

/// A second backup of an unchanged tree reads no file and adds no data, only
/// (at most) tree metadata.
#[test]
fn unchanged_second_backup_adds_no_data() {
    let s = Scratch::new();
    let tree = make_rich_tree(&s.path("src"));
    let repo = s.repo("repo");
    repo.stash_init(2);
    let first = stash_backup_json(&repo, &s.root, &["src"]);
    let data_blobs = repo.restic_data_blobs();
    let bytes = repo.data_bytes();
    let second = stash_backup_json(&repo, &s.root, &["src"]);
    assert_eq!(second["parent"], first["snapshot_id"], "{second}");
    let n = tree.regular_files.len() as u64;
    assert_eq!(second["files_unmodified"], n, "{second}");
    assert_eq!(second["files_new"], 0, "{second}");
    assert_eq!(second["files_changed"], 0, "{second}");
    assert_eq!(second["data_blobs"], 0, "{second}");
    let added = second["data_added"].as_u64().expect("data_added");
    let growth = repo.data_bytes() - bytes;
    assert!(
        added < 64 * 1024 && growth < 64 * 1024,
        "an unchanged backup added {added} bytes ({growth} on disk): {second}"
    );
    assert_eq!(repo.restic_data_blobs(), data_blobs, "no new data blobs");
    // A third one now sees identical metadata too: nothing at all is added.
    let third = stash_backup_json(&repo, &s.root, &["src"]);
    assert_eq!(third["files_unmodified"], n, "{third}");
    assert_eq!(third["data_added"], 0, "{third}");
    assert_eq!(third["tree_blobs"], 0, "{third}");
}

/// The tree comparison the other tests rely on sees every kind of difference (a
/// comparison that cannot fail would make them worthless).
#[test]
fn tree_comparison_detects_every_kind_of_difference() {
    let s = Scratch::new();
    let tree = make_rich_tree(&s.path("a"));
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(s.path("a"))
        .arg(s.path("b"))
        .status()
        .expect("cp -a");
    assert!(st.success());
    assert_same_tree(&s.path("a"), &s.path("b"));

    let b = s.path("b");
    let other = filetime::FileTime::from_unix_time(1_234_567_890, 5);
    set_times(&b.join("link-to-text"), other);
    set_times(
        &b.join("fifo"),
        filetime::FileTime::from_unix_time(BASE_SECS, 0),
    );
    fs::set_permissions(
        b.join("perms/secret-0600.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o640),
    )
    .expect("chmod");
    fs::remove_file(b.join("nested/hard2.txt")).expect("rm");
    fs::write(b.join("nested/hard2.txt"), b"hard-linked content\n").expect("write");
    let text = fs::read(b.join("perms/script-0755.sh")).expect("read");
    let mut changed = text.clone();
    changed[0] ^= 1;
    fs::write(b.join("perms/script-0755.sh"), &changed).expect("write");
    fs::remove_dir(b.join("emptydir")).expect("rmdir");
    fs::write(b.join("extra.txt"), b"x").expect("write");
    fs::remove_file(b.join("dangling")).expect("rm");
    std::os::unix::fs::symlink("elsewhere", b.join("dangling")).expect("symlink");
    if tree.xattrs {
        xattr::set(b.join("text.txt"), "user.comment", b"changed").expect("xattr");
    }
    // Directory times are set last: the changes above touched them.
    set_times(&b.join("nested/a/b/c"), other);

    let diffs = tree_differences(&s.path("a"), &b).join("\n");
    for want in [
        "link-to-text: mtime differs",
        "fifo: mtime differs",
        "perms/secret-0600.txt: mode differs",
        "hard1.txt: hard links differ",
        "perms/script-0755.sh: type/content differs",
        "emptydir: missing",
        "extra.txt: unexpected extra entry",
        "dangling: type/content differs",
        "nested/a/b/c: mtime differs",
    ] {
        assert!(diffs.contains(want), "no {want:?} among:\n{diffs}");
    }
    if tree.xattrs {
        assert!(diffs.contains("text.txt: xattrs differ"), "{diffs}");
    }
}

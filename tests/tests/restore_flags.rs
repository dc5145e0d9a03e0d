//! The `restore` flags that decide what happens to what the target holds already
//! (`--overwrite`, `--delete`) and how files are written and checked (`--sparse`,
//! `--verify`).

use std::{os::unix::fs::MetadataExt, path::Path, process::Command};

use crate::util::*;

fn set_mtime(path: &Path, when: &str) {
    let ok = Command::new("touch")
        .args(["-m", "-d", when])
        .arg(path)
        .status()
        .unwrap();
    assert!(ok.success());
}

fn read(path: &Path) -> String {
    String::from_utf8(std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn overwrite_modes_keep_or_replace_existing_files() {
    let s = Scratch::new();
    make_simple_tree(
        &s.path("src"),
        &[
            ("same.txt", b"snapshot"),
            ("older.txt", b"snapshot"),
            ("gone.txt", b"snapshot"),
        ],
    );
    for f in ["same.txt", "older.txt", "gone.txt"] {
        set_mtime(&s.path("src").join(f), "2020-01-01 00:00:00");
    }
    let repo = s.repo("repo");
    repo.restic_init(2);
    repo.stash(&["backup", "src"]).cwd(&s.root).ok();
    let target = s.path("target");
    let file = |name: &str| target.join("src").join(name);
    // Local state: same.txt edited in place keeping size and mtime, older.txt edited
    // and older than the snapshot, gone.txt missing.
    let prepare = || {
        let _ = std::fs::remove_dir_all(&target);
        repo.stash(&["restore", "latest", "--target", target.to_str().unwrap()])
            .ok();
        std::fs::write(file("same.txt"), b"SNAPSHOT").unwrap();
        set_mtime(&file("same.txt"), "2020-01-01 00:00:00");
        std::fs::write(file("older.txt"), b"local edit").unwrap();
        set_mtime(&file("older.txt"), "2019-01-01 00:00:00");
        std::fs::remove_file(file("gone.txt")).unwrap();
    };
    let restore = |mode: &str| {
        repo.stash(&[
            "restore",
            "latest",
            "--target",
            target.to_str().unwrap(),
            "--overwrite",
            mode,
        ])
        .ok()
    };
    for (mode, same, older) in [
        ("always", "snapshot", "snapshot"),
        ("never", "SNAPSHOT", "local edit"),
        ("if-newer", "SNAPSHOT", "snapshot"),
        ("if-changed", "SNAPSHOT", "snapshot"),
    ] {
        prepare();
        restore(mode);
        assert_eq!(read(&file("same.txt")), same, "--overwrite {mode}");
        assert_eq!(read(&file("older.txt")), older, "--overwrite {mode}");
        assert_eq!(read(&file("gone.txt")), "snapshot", "--overwrite {mode}");
    }
    let bad = repo
        .stash(&[
            "restore",
            "latest",
            "--target",
            "x",
            "--overwrite",
            "sometimes",
        ])
        .run();
    bad.assert_failed();
    assert!(bad.stderr.contains("if-changed"), "{bad}");
}

#[test]
fn delete_removes_what_the_snapshot_lacks_but_not_what_is_excluded() {
    let s = Scratch::new();
    make_simple_tree(&s.path("src"), &[("keep.txt", b"k"), ("d/inner.txt", b"i")]);
    let repo = s.repo("repo");
    repo.restic_init(2);
    repo.stash(&["backup", "src"]).cwd(&s.root).ok();
    let target = s.path("target");
    make_simple_tree(
        &target.join("src"),
        &[
            ("extra.txt", b"x"),
            ("d/extra/deeper.txt", b"x"),
            ("notes.log", b"x"),
        ],
    );
    make_simple_tree(&target, &[("outside.txt", b"x")]);
    let out = repo
        .stash(&[
            "restore",
            "latest",
            "--target",
            target.to_str().unwrap(),
            "--delete",
            "--exclude",
            "*.log",
            "--json",
        ])
        .ok();
    let summary = out.json_lines().pop().unwrap();
    assert_eq!(summary["files_deleted"], 3, "{summary}");
    let mut left: Vec<String> = walk_files(&target);
    left.sort();
    assert_eq!(
        left,
        ["src/d/inner.txt", "src/keep.txt", "src/notes.log"],
        "outside.txt went too: the target root is the snapshot's root directory"
    );
}

/// Relative paths of the regular files below `root`.
fn walk_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    out
}

#[test]
fn sparse_leaves_holes_and_verify_reads_everything_back() {
    let s = Scratch::new();
    let mut data = random_bytes(7, 1 << 20);
    data.extend(std::iter::repeat_n(0u8, 32 << 20));
    data.extend(random_bytes(8, 1 << 20));
    make_simple_tree(&s.path("src"), &[("holes.bin", &data), ("small.txt", b"s")]);
    let repo = s.repo("repo");
    repo.restic_init(2);
    repo.stash(&["backup", "src"]).cwd(&s.root).ok();
    let restore = |dir: &str, extra: &[&str]| {
        let target = s.path(dir);
        let mut args = vec!["restore", "latest", "--target", target.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = repo.stash(&args).ok();
        let f = target.join("src/holes.bin");
        assert!(std::fs::read(&f).unwrap() == data, "{dir}: content differs");
        (out, std::fs::metadata(&f).unwrap().blocks() * 512)
    };
    let (_, dense) = restore("dense", &[]);
    let (out, sparse) = restore("sparse", &["--sparse", "--verify"]);
    assert!(
        dense >= 34 << 20,
        "a plain restore writes the zeros: {dense}"
    );
    assert!(sparse < 8 << 20, "--sparse left {sparse} bytes allocated");
    let text = out.stdout_str();
    assert!(text.contains("finished verifying 2 files"), "{text}");
    let theirs = repo
        .restic(&[
            "restore",
            "latest",
            "--target",
            s.path("restic").to_str().unwrap(),
            "--verify",
        ])
        .ok();
    assert!(
        theirs.stdout_str().contains("finished verifying 2 files"),
        "{theirs}"
    );
}

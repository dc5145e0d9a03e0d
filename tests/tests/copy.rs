//! `copy` against restic's: the same snapshots (same trees, `original` set) in the
//! destination, a destination restic checks, nothing copied twice (by us or by
//! restic after us), and a version 1 destination receiving a compressed source.

use std::collections::BTreeSet;

use crate::util::*;

/// (tree, original, time) of each snapshot.
fn copies(repo: &Repo) -> BTreeSet<String> {
    repo.restic_snapshots()
        .iter()
        .map(|s| format!("{} {} {}", s["tree"], s["original"], s["time"]))
        .collect()
}

#[test]
fn copy_copies_what_restic_copies_once() {
    let s = Scratch::new();
    make_rich_tree(&s.path("src"));
    let from = s.repo("from");
    from.restic_init(2);
    from.restic(&["backup", "src", "--host", "a"])
        .cwd(&s.root)
        .ok();
    std::fs::write(s.path("src/nested/a/new.txt"), b"new\n").unwrap();
    from.stash(&["backup", "src", "--host", "b"])
        .cwd(&s.root)
        .ok();
    let pw = s.path("from-password");
    std::fs::write(&pw, "from-secret\n").unwrap();
    // The source's password is its own; the destinations keep the tests' one.
    from.restic(&["key", "add", "--new-password-file", pw.to_str().unwrap()])
        .ok();

    // Both destinations cut files as the source does, so copies keep their blobs
    // and trees (ours made by our init, theirs by restic's).
    let params = [
        "init",
        "--repository-version",
        "1",
        "--copy-chunker-params",
        "--from-repo",
        from.path.to_str().unwrap(),
        "--from-password-file",
        pw.to_str().unwrap(),
    ];
    let ours = s.repo("ours");
    ours.stash(&params).ok();
    let theirs = s.repo("theirs");
    theirs.restic(&params).ok();
    let config = |r: &Repo| r.restic(&["cat", "config"]).ok().json()["chunker_polynomial"].clone();
    assert_eq!(config(&ours), config(&from));
    assert_eq!(config(&theirs), config(&from));
    let copy = [
        "copy",
        "--from-repo",
        from.path.to_str().unwrap(),
        "--from-password-file",
        pw.to_str().unwrap(),
    ];
    let out = ours.stash(&copy).ok().stdout_str();
    assert_eq!(out.matches(" saved as ").count(), 2, "{out}");
    theirs.restic(&copy).ok();
    assert_eq!(copies(&ours), copies(&theirs));
    ours.restic_check_read_data();

    // Again: nothing to copy, by us or by restic.
    let data = ours.files("data");
    let again = ours.stash(&copy).ok().stdout_str();
    assert_eq!(again.matches("was already copied").count(), 2, "{again}");
    let by_restic = ours.restic(&copy).ok().stdout_str();
    assert!(
        !by_restic.contains("saved"),
        "restic copied again: {by_restic}"
    );
    assert_eq!(ours.files("data"), data);
    assert_eq!(ours.restic_snapshots().len(), 2);

    // Only what passes the filter; the copy restores to the source's tree.
    let only = s.repo("only");
    only.restic_init(2);
    let mut filtered = copy.to_vec();
    filtered.extend(["--host", "b"]);
    only.stash(&filtered).ok();
    assert_eq!(only.restic_snapshots().len(), 1);
    let target = s.path("restored");
    only.stash(&[
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--verify",
    ])
    .ok();
    assert_eq!(
        std::fs::read(target.join("src/nested/a/new.txt")).unwrap(),
        b"new\n"
    );
    let wrong = ours
        .stash(&["copy", "--from-repo", from.path.to_str().unwrap()])
        .env("RESTIC_FROM_PASSWORD", "nope")
        .run();
    wrong.assert_code(12);
}

/// Into a repository with another chunker polynomial, files are cut again: the copy
/// stores only what that repository's own backup of the same files lacks, restores
/// byte for byte, and is recognised as copied on the next run.
#[test]
fn copy_into_another_polynomial_cuts_files_again() {
    let s = Scratch::new();
    make_rich_tree(&s.path("src"));
    let from = s.repo("from");
    from.restic_init(2);
    from.restic(&["backup", "src", "--host", "a"])
        .cwd(&s.root)
        .ok();
    let dst = s.repo("dst");
    dst.restic_init(2);
    dst.restic(&["backup", "src", "--host", "own"])
        .cwd(&s.root)
        .ok();
    let before = dst.data_bytes();
    let copy = ["copy", "--from-repo", from.path.to_str().unwrap()];
    let out = dst
        .stash(&copy)
        .env("RESTIC_FROM_PASSWORD", &from.password)
        .ok()
        .stdout_str();
    assert!(out.contains(" saved as "), "{out}");
    let grown = dst.data_bytes() - before;
    assert!(
        grown < 100_000,
        "the copy stored {grown} bytes beyond trees: its files were not cut again"
    );
    dst.restic_check_read_data();
    let target = s.path("restored");
    dst.stash(&[
        "restore",
        "latest",
        "--host",
        "a",
        "--target",
        target.to_str().unwrap(),
        "--verify",
    ])
    .ok();
    for rel in [
        "src/big/random-3m.bin",
        "src/big/large-9m.bin",
        "src/text.txt",
    ] {
        assert_eq!(
            std::fs::read(target.join(rel)).unwrap(),
            std::fs::read(s.path(rel)).unwrap(),
            "{rel}"
        );
    }
    let again = dst
        .stash(&copy)
        .env("RESTIC_FROM_PASSWORD", &from.password)
        .ok()
        .stdout_str();
    assert!(again.contains("was already copied"), "{again}");
    assert_eq!(dst.restic_snapshots().len(), 2);
}

//! Wrong passwords, missing repositories and damaged repository files: clear errors
//! with the right exit codes, naming the object at fault, never a panic, never a
//! wrongly restored file.

use std::{fs, path::Path};

use crate::util::*;

/// A repository with one snapshot of `src` (rich tree) and 4 MiB packs.
fn backed_up(s: &Scratch) -> (Repo, RichTree) {
    let tree = make_rich_tree(&s.path("src"));
    let repo = s.repo("repo");
    repo.stash_init(2);
    repo.stash(&["backup", "src", "--pack-size", "4"])
        .cwd(&s.root)
        .ok();
    (repo, tree)
}

fn small_repo(s: &Scratch) -> Repo {
    make_simple_tree(
        &s.path("src"),
        &[("a.txt", b"alpha\n"), ("dir/b.txt", b"beta\n")],
    );
    let repo = s.repo("repo");
    repo.stash_init(2);
    repo.stash(&["backup", "src"]).cwd(&s.root).ok();
    repo
}

/// Makes a file writable (restic and stash store repository files read-only).
fn writable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(0o644)).expect("chmod");
}

#[test]
fn wrong_password_exits_12() {
    let s = Scratch::new();
    let repo = small_repo(&s);
    let wrong = Repo::new(repo.path.clone(), "not the password");
    for args in [
        vec!["snapshots"],
        vec!["backup", "src"],
        vec!["restore", "latest", "--target", "out"],
        vec!["check"],
        vec!["ls", "latest"],
        vec!["key", "list"],
    ] {
        let out = wrong.stash(&args).cwd(&s.root).run();
        out.assert_code(12);
        out.assert_no_panic();
        assert!(
            out.stderr.to_lowercase().contains("wrong password"),
            "stderr must say \"wrong password\"\n{out}"
        );
    }
    assert!(!s.path("out").exists(), "nothing restored");
    repo.assert_no_locks("stash with a wrong password");
}

#[test]
fn missing_repository_exits_10() {
    let s = Scratch::new();
    for (name, create) in [("does-not-exist", false), ("empty-dir", true)] {
        let path = s.path(name);
        if create {
            fs::create_dir(&path).expect("mkdir");
        }
        let repo = Repo::new(path.clone(), PASSWORD);
        for args in [vec!["snapshots"], vec!["backup", "."], vec!["check"]] {
            let out = repo.stash(&args).cwd(&s.root).run();
            out.assert_code(10);
            out.assert_no_panic();
            assert!(
                out.stderr.contains(path.to_str().expect("utf8")),
                "the message must name the repository path\n{out}"
            );
        }
        assert_eq!(
            fs::read_dir(s.path(name)).map(|d| d.count()).unwrap_or(0),
            0,
            "nothing may be created at a missing repository"
        );
    }
    // No repository given at all.
    let out = Cmd::new(stash_bin())
        .arg("snapshots")
        .env("RESTIC_PASSWORD", PASSWORD)
        .run();
    out.assert_failed();
    out.assert_no_panic();
}

#[test]
fn flipped_byte_in_data_pack_is_detected_and_never_restored() {
    let s = Scratch::new();
    let (repo, tree) = backed_up(&s);
    let contents = repo.restic_pack_contents();
    let (pack, size) = repo
        .files("data")
        .into_iter()
        .max_by_key(|(_, size)| *size)
        .expect("a pack");
    assert!(size > 1_000_000, "largest pack is only {size} bytes");
    let blobs = contents.get(&pack).expect("pack in index").clone();
    let p = repo.pack_path(&pack);
    writable(&p);
    let mut data = fs::read(&p).expect("read pack");
    let mid = data.len() / 2;
    data[mid] ^= 0x55;
    fs::write(&p, &data).expect("write pack");

    let out = repo.stash(&["check", "--read-data"]).run();
    out.assert_failed();
    out.assert_no_panic();
    let all = format!("{}{}", out.stdout_str(), out.stderr);
    assert!(
        all.contains(&pack),
        "check must name the damaged pack {pack}\n{out}"
    );
    repo.assert_no_locks("stash check --read-data");
    // Without --read-data, pack contents are not read: the damage is not seen.
    repo.stash(&["check"]).ok();

    let out = repo
        .stash(&["restore", "latest", "--target", "out"])
        .cwd(&s.root)
        .run();
    out.assert_failed();
    out.assert_no_panic();
    assert!(
        out.stderr.contains(&pack[..8])
            || blobs.iter().any(|(_, id)| out.stderr.contains(&id[..8])),
        "restore must name the damaged pack or blob\n{out}"
    );
    repo.assert_no_locks("a failed stash restore");
    let mut restored = 0;
    for rel in &tree.regular_files {
        let got = s.path("out/src").join(rel);
        if let Ok(bytes) = fs::read(&got) {
            let want = fs::read(s.path("src").join(rel)).expect("source");
            assert!(
                bytes == want,
                "restore left {} with wrong content ({} bytes, want {})",
                got.display(),
                bytes.len(),
                want.len()
            );
            restored += 1;
        }
    }
    assert!(
        restored < tree.regular_files.len(),
        "every file was restored although a blob is damaged"
    );
    // restic agrees that the repository is damaged.
    repo.restic(&["check", "--read-data"]).run().assert_failed();
}

#[test]
fn truncated_index_fails_with_a_one_line_error() {
    let s = Scratch::new();
    let repo = small_repo(&s);
    let (idx, size) = repo.files("index").pop().expect("an index file");
    let p = repo.path.join("index").join(&idx);
    writable(&p);
    let data = fs::read(&p).expect("read");
    fs::write(&p, &data[..size as usize / 2]).expect("truncate");

    for args in [
        vec!["restore", "latest", "--target", "out"],
        vec!["ls", "latest"],
        vec!["dump", "latest", "/src/a.txt"],
    ] {
        let out = repo.stash(&args).cwd(&s.root).run();
        out.assert_code(1);
        out.assert_no_panic();
        let lines: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(lines.len(), 1, "one line of error\n{out}");
        assert!(
            lines[0].contains(&idx) || lines[0].contains(&idx[..8]),
            "the error must name index {idx}\n{out}"
        );
    }
    let out = repo.stash(&["check"]).run();
    out.assert_failed();
    out.assert_no_panic();
    assert!(
        out.stderr.contains(&idx) || out.stderr.contains(&idx[..8]),
        "check must name index {idx}\n{out}"
    );
    // snapshots does not need the index (restic does not load it either).
    let out = repo.stash(&["snapshots"]).run();
    out.assert_no_panic();
    if out.code != Some(0) {
        assert!(out.stderr.contains(&idx[..8]), "{out}");
    }
    repo.assert_no_locks("commands on a repository with a truncated index");
}

/// A file in snapshots/ named like a real one (the hash of its content) that is
/// garbage: every command that loads it names it; nothing panics.
#[test]
fn garbage_snapshot_file_is_named() {
    let s = Scratch::new();
    let repo = small_repo(&s);
    let good = repo.restic_snapshots()[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let garbage = random_bytes(99, 500);
    let id = sha256_hex(&garbage);
    fs::write(repo.path.join("snapshots").join(&id), &garbage).expect("write");

    for args in [
        vec!["snapshots"],
        vec!["check"],
        vec!["restore", "latest", "--target", "out"],
    ] {
        let out = repo.stash(&args).cwd(&s.root).run();
        out.assert_no_panic();
        assert!(
            out.stderr.contains(&id) || out.stderr.contains(&id[..8]),
            "`{}` must name the damaged snapshot {id}\n{out}",
            args.join(" ")
        );
    }
    repo.stash(&["check"]).run().assert_failed();
    // The good snapshot is still restorable by id.
    repo.stash(&["restore", &good[..8], "--target", "out-good"])
        .cwd(&s.root)
        .ok();
    assert_same_tree(&s.path("src"), &s.path("out-good/src"));
    repo.assert_no_locks("commands on a repository with a garbage snapshot");
}

/// A snapshot file that decrypts fine but is not a snapshot (a copy of an index
/// file, stored under its own hash): check reports it, nothing panics.
#[test]
fn non_snapshot_json_in_snapshots_is_reported() {
    let s = Scratch::new();
    let repo = small_repo(&s);
    let (idx, _) = repo.files("index").pop().expect("index");
    fs::copy(
        repo.path.join("index").join(&idx),
        repo.path.join("snapshots").join(&idx),
    )
    .expect("copy");
    let out = repo.stash(&["check"]).run();
    out.assert_failed();
    out.assert_no_panic();
    assert!(
        out.stderr.contains(&idx) || out.stderr.contains(&idx[..8]),
        "check must name {idx}\n{out}"
    );
    for args in [
        vec!["snapshots"],
        vec!["snapshots", "--json"],
        vec!["ls", &idx[..8]],
    ] {
        let out = repo.stash(&args).run();
        out.assert_no_panic();
        if out.code != Some(0) {
            assert!(out.stderr.contains(&idx[..8]), "{out}");
        }
    }
}

/// `stash snapshots` lists every snapshot it counts, also one without paths.
#[test]
fn snapshots_table_shows_snapshot_without_paths() {
    let s = Scratch::new();
    let repo = small_repo(&s);
    let (idx, _) = repo.files("index").pop().expect("index");
    fs::copy(
        repo.path.join("index").join(&idx),
        repo.path.join("snapshots").join(&idx),
    )
    .expect("copy");
    let out = repo.stash(&["snapshots"]).ok();
    assert!(out.stdout_str().contains("2 snapshots"), "{out}");
    assert!(
        out.stdout_str().contains(&idx[..8]),
        "the table must show snapshot {}\n{out}",
        &idx[..8]
    );
}

/// A pack file that vanished: check names it, restore fails naming it.
#[test]
fn missing_pack_is_named() {
    let s = Scratch::new();
    let (repo, _) = backed_up(&s);
    let (pack, _) = repo
        .files("data")
        .into_iter()
        .max_by_key(|(_, size)| *size)
        .expect("a pack");
    fs::remove_file(repo.pack_path(&pack)).expect("remove");
    let out = repo.stash(&["check"]).run();
    out.assert_failed();
    out.assert_no_panic();
    let all = format!("{}{}", out.stdout_str(), out.stderr);
    assert!(
        all.contains(&pack[..8]),
        "check must name pack {pack}\n{out}"
    );
    let out = repo
        .stash(&["restore", "latest", "--target", "out"])
        .cwd(&s.root)
        .run();
    out.assert_failed();
    out.assert_no_panic();
    repo.assert_no_locks("commands on a repository with a missing pack");
}

/// A pack cut short (its header is gone): check --read-data names it.
#[test]
fn truncated_pack_is_named() {
    let s = Scratch::new();
    let repo = small_repo(&s);
    let contents = repo.restic_pack_contents();
    let pack = contents
        .iter()
        .find(|(_, blobs)| blobs.iter().any(|(t, _)| t == "data"))
        .map(|(p, _)| p.clone())
        .expect("data pack");
    let p = repo.pack_path(&pack);
    writable(&p);
    let data = fs::read(&p).expect("read");
    fs::write(&p, &data[..data.len() - 10]).expect("truncate");
    let out = repo.stash(&["check", "--read-data"]).run();
    out.assert_failed();
    out.assert_no_panic();
    let all = format!("{}{}", out.stdout_str(), out.stderr);
    assert!(
        all.contains(&pack[..8]),
        "check must name pack {pack}\n{out}"
    );
    let out = repo.stash(&["dump", "latest", "/src/a.txt"]).run();
    out.assert_no_panic();
    if out.code == Some(0) {
        assert_eq!(out.stdout, b"alpha\n", "dump returned wrong bytes");
    }
}

/// A damaged config is an error naming it.
#[test]
fn damaged_config_is_named() {
    let s = Scratch::new();
    let repo = small_repo(&s);
    let p = repo.path.join("config");
    writable(&p);
    let mut data = fs::read(&p).expect("read");
    let mid = data.len() / 2;
    data[mid] ^= 1;
    fs::write(&p, &data).expect("write");
    let out = repo.stash(&["snapshots"]).run();
    out.assert_failed();
    out.assert_no_panic();
    assert!(out.stderr.contains("config"), "{out}");
}

/// `check --read-data-subset n/t` reads the same packs as restic's: the subsets that
/// hold the damaged pack fail for both, the others pass for both.
#[test]
fn read_data_subset_selects_the_packs_restic_selects() {
    let s = Scratch::new();
    let (repo, _) = backed_up(&s);
    let packs = repo.files("data");
    assert!(packs.len() >= 3, "want several packs: {packs:?}");
    let (pack, _) = packs
        .iter()
        .max_by_key(|(_, size)| *size)
        .cloned()
        .expect("a pack");
    let p = repo.pack_path(&pack);
    writable(&p);
    let mut data = fs::read(&p).expect("read pack");
    let mid = data.len() / 2;
    data[mid] ^= 0x01;
    fs::write(&p, &data).expect("write pack");

    let mut failed = 0;
    for t in [2u32, 3] {
        for n in 1..=t {
            let subset = format!("{n}/{t}");
            let ours = repo.stash(&["check", "--read-data-subset", &subset]).run();
            let theirs = repo.restic(&["check", "--read-data-subset", &subset]).run();
            ours.assert_no_panic();
            assert_eq!(
                ours.code == Some(0),
                theirs.code == Some(0),
                "stash and restic disagree on subset {subset}\n{ours}\n{theirs}"
            );
            if ours.code != Some(0) {
                failed += 1;
                let all = format!("{}{}", ours.stdout_str(), ours.stderr);
                assert!(all.contains(&pack[..8]), "{ours}");
            }
        }
    }
    assert_eq!(
        failed, 2,
        "exactly one subset of each split holds the damaged pack"
    );
    repo.stash(&["check", "--read-data-subset", "100%"])
        .run()
        .assert_failed();
}

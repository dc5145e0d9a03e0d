//! Wrong passwords, missing repositories and damaged repository files: clear errors
//! with the right exit codes, naming the object at fault, never a panic, never a
//! wrongly restored file.

use std::{fs, path::Path};

use stash_repo_format::{
    crypto::{Key, MasterKeyJson},
    index::{IndexBlob, IndexFile},
    pack::{self, PackedBlob},
    unpacked,
};

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

// ---------------------------------------------------------------------------------
// Damage crafted with the master key: packs, index files and snapshots that decrypt
// but lie. Nothing here needs restic.
// ---------------------------------------------------------------------------------

/// The repository's master key, as `stash cat masterkey` prints it.
fn master_key(repo: &Repo) -> Key {
    let out = repo.stash(&["cat", "masterkey"]).ok();
    let json: MasterKeyJson = serde_json::from_slice(&out.stdout).expect("master key JSON");
    Key::from_json(&json).expect("master key")
}

/// Every index file, decrypted: (file name, document).
fn read_indexes(repo: &Repo, key: &Key) -> Vec<(String, IndexFile)> {
    repo.files("index")
        .into_iter()
        .map(|(name, _)| {
            let sealed = fs::read(repo.path.join("index").join(&name)).expect("read index");
            let plain = key.open(&sealed).expect("index decrypts");
            let json = unpacked::decode("index", plain).expect("index decodes");
            (name, IndexFile::from_json(&json).expect("index parses"))
        })
        .collect()
}

/// Seals `json` as a version 2 repository stores it and writes it to `dir` under
/// its hash; returns that name.
fn store_unpacked(repo: &Repo, key: &Key, dir: &str, json: &[u8]) -> String {
    let sealed = key.seal(&unpacked::encode(2, json));
    let name = sha256_hex(&sealed);
    fs::write(repo.path.join(dir).join(&name), &sealed).expect("write");
    name
}

/// Replaces index file `old` with `index`.
fn replace_index(repo: &Repo, key: &Key, old: &str, index: &IndexFile) -> String {
    fs::remove_file(repo.path.join("index").join(old)).expect("remove index");
    store_unpacked(repo, key, "index", &index.to_json())
}

/// The index file and position of the pack holding the repository's trees.
fn tree_pack(indexes: &[(String, IndexFile)]) -> (usize, usize) {
    for (k, (_, f)) in indexes.iter().enumerate() {
        for (p, pack) in f.packs.iter().enumerate() {
            if pack.blobs.iter().all(|b| b.ty.as_str() == "tree") {
                return (k, p);
            }
        }
    }
    panic!("no tree pack in the index");
}

/// Replaces pack `old` by its blobs followed by a header listing `header`, stored
/// under its new hash with index file `index` (of `indexes`) pointing there; returns
/// the new pack's name.
fn rewrite_pack_header(
    repo: &Repo,
    key: &Key,
    indexes: &mut [(String, IndexFile)],
    (index, at): (usize, usize),
    header: &[PackedBlob],
) -> String {
    let indexed = &indexes[index].1.packs[at];
    let old = indexed.id.to_string();
    let data_len = indexed
        .blobs
        .iter()
        .map(|b| b.length as usize)
        .sum::<usize>();
    let bytes = fs::read(repo.pack_path(&old)).expect("read pack");
    let mut new = bytes[..data_len].to_vec();
    let sealed = key.seal(&pack::encode_header(header));
    new.extend_from_slice(&sealed);
    new.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
    let name = sha256_hex(&new);
    let path = repo.pack_path(&name);
    fs::create_dir_all(path.parent().expect("pack dir")).expect("mkdir");
    fs::write(&path, &new).expect("write pack");
    fs::remove_file(repo.pack_path(&old)).expect("remove pack");
    let (file, doc) = &mut indexes[index];
    doc.packs[at].id = name.parse().expect("pack id");
    *file = replace_index(repo, key, file, doc);
    name
}

/// Fails with exactly one line on stderr that names `what`, without a panic.
fn assert_one_line_naming(out: &Out, what: &str) {
    out.assert_failed();
    out.assert_no_panic();
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "one line of error\n{out}");
    assert!(lines[0].contains(what), "the error must name {what}\n{out}");
}

/// Fails naming each of `what` (on stdout or stderr), without a panic.
fn assert_fails_naming(out: &Out, what: &[&str]) {
    out.assert_failed();
    out.assert_no_panic();
    let all = format!("{}{}", out.stdout_str(), out.stderr);
    for w in what {
        assert!(all.contains(w), "the output must name {w}\n{out}");
    }
}

/// The root tree of the latest snapshot.
fn root_tree(repo: &Repo) -> String {
    let snap = repo.stash(&["cat", "snapshot", "latest"]).ok().json();
    snap["tree"].as_str().expect("tree").to_string()
}

/// A tree pack cut to a few bytes, so that the index's trees lie past its end:
/// check reports the pack and the snapshot (it used to panic slicing the pack),
/// and every command that reads the trees fails with one line naming the pack.
#[test]
fn truncated_tree_pack_is_named_and_nothing_panics() {
    let s = Scratch::new();
    let repo = small_repo(&s);
    let key = master_key(&repo);
    let indexes = read_indexes(&repo, &key);
    let (k, p) = tree_pack(&indexes);
    let pack = indexes[k].1.packs[p].id.to_string();
    let root = root_tree(&repo);
    let path = repo.pack_path(&pack);
    writable(&path);
    let bytes = fs::read(&path).expect("read pack");
    fs::write(&path, &bytes[..10]).expect("truncate");

    for args in [vec!["check"], vec!["check", "--read-data"]] {
        let out = repo.stash(&args).run();
        assert_fails_naming(&out, &[&pack, "size 10 does not match"]);
        assert!(out.stderr.contains("affected snapshots"), "{out}");
    }
    // Trees are read through their whole pack: the error says which blob lies
    // where past its end.
    for args in [
        vec!["restore", "latest", "--target", "out"],
        vec!["ls", "latest"],
        vec!["dump", "latest", "/src/a.txt"],
    ] {
        let out = repo.stash(&args).cwd(&s.root).run();
        assert_one_line_naming(&out, &pack);
        assert!(
            out.stderr
                .contains(&format!("tree blob {root} in pack {pack}"))
                && out.stderr.contains("ends past the 10 bytes"),
            "{out}"
        );
    }
    for args in [vec!["cat", "tree", &root], vec!["cat", "pack", &pack]] {
        let out = repo.stash(&args).run();
        assert_one_line_naming(&out, &pack);
    }
    assert!(!s.path("out/src/a.txt").exists(), "nothing restored");
    repo.assert_no_locks("commands on a repository with a truncated tree pack");
}

/// An index entry moved past the end of its pack (the pack's size still as the
/// index implies): check names the pack and the entry (the tree walk used to
/// panic slicing the pack), and restore fails with one line naming the pack.
#[test]
fn index_entry_past_the_end_of_its_pack_is_named() {
    let s = Scratch::new();
    let repo = small_repo(&s);
    let key = master_key(&repo);
    let mut indexes = read_indexes(&repo, &key);
    let (k, p) = tree_pack(&indexes);
    let root = root_tree(&repo);
    let entry: &mut IndexBlob = indexes[k].1.packs[p]
        .blobs
        .iter_mut()
        .find(|b| b.id.to_string() == root)
        .expect("root tree indexed");
    entry.offset += 1 << 20;
    let entry_offset = entry.offset;
    let pack = indexes[k].1.packs[p].id.to_string();
    let (old, doc) = &indexes[k];
    replace_index(&repo, &key, old, doc);

    for args in [vec!["check"], vec!["check", "--read-data"]] {
        let out = repo.stash(&args).run();
        assert_fails_naming(
            &out,
            &[&pack, &format!("tree blob {root} at offset"), "ends past"],
        );
    }
    for args in [
        vec!["restore", "latest", "--target", "out"],
        vec!["ls", "latest"],
        vec!["cat", "tree", &root],
    ] {
        let out = repo.stash(&args).cwd(&s.root).run();
        assert_one_line_naming(&out, &pack);
    }
    let out = repo.stash(&["ls", "latest"]).run();
    assert!(
        out.stderr
            .contains(&format!("offset {} of length", entry_offset)),
        "{out}"
    );
    repo.assert_no_locks("commands on a repository with a lying index");
}

/// Pack headers that claim more blobs, or longer ones, than the pack holds bytes
/// for: check names the pack, `cat pack` fails with one line naming it.
#[test]
fn pack_header_claiming_more_than_its_bytes_is_named() {
    let s = Scratch::new();
    let repo = small_repo(&s);
    let key = master_key(&repo);
    let mut indexes = read_indexes(&repo, &key);
    let at = tree_pack(&indexes);
    let blobs: Vec<PackedBlob> = indexes[at.0].1.packs[at.1]
        .blobs
        .iter()
        .map(PackedBlob::from)
        .collect();

    // Three more blobs than there are: the pack no longer has the index's size.
    let mut more = blobs.clone();
    for n in 0..3u8 {
        more.push(PackedBlob {
            id: stash_repo_format::Id([n; 32]),
            length: 1000,
            ..blobs[0]
        });
    }
    let pack = rewrite_pack_header(&repo, &key, &mut indexes, at, &more);
    for args in [vec!["check"], vec!["check", "--read-data"]] {
        let out = repo.stash(&args).run();
        assert_fails_naming(&out, &[&pack, "does not match"]);
    }
    let out = repo.stash(&["cat", "pack", &pack]).run();
    assert_one_line_naming(&out, &pack);
    assert!(out.stderr.contains("overruns"), "{out}");

    // As many blobs, the last one longer than the bytes before the header: the
    // size is right, only reading the pack finds the header's lie.
    let mut longer = blobs.clone();
    longer.last_mut().expect("a blob").length += 1000;
    let pack = rewrite_pack_header(&repo, &key, &mut indexes, at, &longer);
    repo.stash(&["check"]).ok();
    let out = repo.stash(&["check", "--read-data"]).run();
    assert_fails_naming(&out, &[&format!("pack {pack}: header"), "overruns"]);
    let out = repo.stash(&["cat", "pack", &pack]).run();
    assert_one_line_naming(&out, &pack);
    repo.assert_no_locks("commands on a repository with a lying pack header");
}

/// A snapshot whose tree is in no pack: check names the snapshot and the tree,
/// restore and ls fail with one line naming the tree.
#[test]
fn snapshot_naming_a_missing_tree_is_named() {
    let s = Scratch::new();
    let repo = small_repo(&s);
    let key = master_key(&repo);
    let mut snap = repo.stash(&["cat", "snapshot", "latest"]).ok().json();
    let missing = sha256_hex(b"no such tree");
    snap["tree"] = serde_json::json!(missing);
    let json = serde_json::to_vec(&snap).expect("json");
    let id = store_unpacked(&repo, &key, "snapshots", &json);

    let out = repo.stash(&["check"]).run();
    assert_fails_naming(&out, &[&format!("snapshot {id}: root tree {missing}")]);
    assert!(out.stderr.contains(&id[..8]), "affected snapshots\n{out}");
    for args in [
        vec!["restore", &id[..12], "--target", "out"],
        vec!["ls", &id[..12]],
    ] {
        let out = repo.stash(&args).cwd(&s.root).run();
        assert_one_line_naming(&out, &missing);
    }
    repo.assert_no_locks("commands on a snapshot without its tree");
}

/// An empty file in keys/: beside a good key, commands still open the repository
/// and check names the empty key; as the only key, every command fails with one
/// line naming it and saying it is empty.
#[test]
fn empty_key_file_is_named() {
    let s = Scratch::new();
    let repo = small_repo(&s);
    let empty = sha256_hex(b"");
    fs::write(repo.path.join("keys").join(&empty), b"").expect("write");
    repo.stash(&["snapshots"]).ok();
    let out = repo.stash(&["check"]).run();
    assert_fails_naming(&out, &[&format!("key {empty}: key file truncated")]);

    for (good, _) in repo.files("keys") {
        if good != empty {
            let p = repo.path.join("keys").join(&good);
            writable(&p);
            fs::remove_file(&p).expect("remove key");
        }
    }
    for args in [vec!["snapshots"], vec!["check"], vec!["ls", "latest"]] {
        let out = repo.stash(&args).run();
        assert_one_line_naming(&out, &empty);
        assert!(out.stderr.contains("0 bytes, no key"), "{out}");
    }
}

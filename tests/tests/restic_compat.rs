//! stash and restic on the same repositories: what one writes the other must read,
//! check and restore identically.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::Path,
};

use serde_json::Value;

use crate::util::*;

fn abs(p: &Path) -> String {
    p.to_str().expect("temp paths are UTF-8").to_string()
}

/// Sorted by time, as restic lists them.
fn by_time(mut snaps: Vec<Value>) -> Vec<Value> {
    snaps.sort_by_key(|s| s["time"].as_str().unwrap_or_default().to_string());
    snaps
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().expect("string").to_string())
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------
// 1. stash writes, restic checks and restores
// ---------------------------------------------------------------------------------

fn stash_writes_restic_reads(version: u32) {
    let s = Scratch::new();
    let tree = make_rich_tree(&s.path("src"));
    let repo = s.repo("repo");
    repo.stash_init(version);
    let config = repo.restic(&["cat", "config"]).ok().json();
    assert_eq!(
        config["version"], version,
        "restic reads the version stash wrote"
    );

    let first = stash_backup_json(
        &repo,
        &s.root,
        &[
            "src",
            "--host",
            "host-a",
            "--tag",
            "one",
            "--tag",
            "two",
            "--time",
            "2021-01-02 03:04:05",
        ],
    );
    assert_eq!(
        first["files_new"],
        tree.regular_files.len() as u64,
        "{first}"
    );
    repo.restic_check_read_data();
    repo.restic(&["restore", "latest", "--target", "out1"])
        .cwd(&s.root)
        .ok();
    assert_same_tree(&s.path("src"), &s.path("out1/src"));

    // Change one file; the second backup uses the first as its parent.
    let text = s.path("src/text.txt");
    let mut data = fs::read(&text).expect("read text");
    data.extend_from_slice(b"one more line\n");
    fs::write(&text, &data).expect("write text");
    set_times(
        &text,
        filetime::FileTime::from_unix_time(1_700_000_000, 987_654_321),
    );
    let second = stash_backup_json(
        &repo,
        &s.root,
        &[
            "src",
            "--host",
            "host-a",
            "--tag",
            "one",
            "--time",
            "2021-01-03 04:05:06",
        ],
    );
    assert_eq!(
        second["parent"], first["snapshot_id"],
        "the second backup must use the first as parent: {second}"
    );
    assert_eq!(second["files_changed"], 1, "{second}");
    assert_eq!(
        second["files_unmodified"],
        tree.regular_files.len() as u64 - 1,
        "{second}"
    );
    let added = second["data_added"].as_u64().expect("data_added");
    assert!(
        added < 256 * 1024,
        "changing one small file added {added} bytes: {second}"
    );
    repo.restic_check_read_data();

    let snaps = by_time(repo.restic_snapshots());
    assert_eq!(snaps.len(), 2, "restic sees both snapshots: {snaps:?}");
    let src = abs(&s.path("src"));
    for (snap, (want, time, tags)) in snaps.iter().zip([
        (&first, "2021-01-02T03:04:05", vec!["one", "two"]),
        (&second, "2021-01-03T04:05:06", vec!["one"]),
    ]) {
        assert_eq!(snap["id"], want["snapshot_id"], "{snap}");
        assert_eq!(str_list(&snap["paths"]), vec![src.clone()], "{snap}");
        assert_eq!(snap["hostname"], "host-a", "{snap}");
        assert_eq!(str_list(&snap["tags"]), tags, "{snap}");
        let t = snap["time"].as_str().expect("time");
        assert!(
            t.starts_with(time) && (t.ends_with('Z') || t.ends_with("+00:00")),
            "snapshot time {t:?} is not {time} UTC"
        );
    }
    assert_eq!(snaps[1]["parent"], first["snapshot_id"]);

    let id = second["snapshot_id"].as_str().expect("id");
    repo.restic(&["restore", id, "--target", "out2"])
        .cwd(&s.root)
        .ok();
    assert_same_tree(&s.path("src"), &s.path("out2/src"));
}

#[test]
fn stash_backup_restic_check_and_restore_v1() {
    stash_writes_restic_reads(1);
}

#[test]
fn stash_backup_restic_check_and_restore_v2() {
    stash_writes_restic_reads(2);
}

// ---------------------------------------------------------------------------------
// 2. restic writes, stash reads, then stash adds to restic's repository
// ---------------------------------------------------------------------------------

/// `ls --json` nodes keyed by path, reduced to what both must agree on.
fn ls_nodes(out: &Out) -> BTreeMap<String, Value> {
    let mut m = BTreeMap::new();
    for v in out.json_lines() {
        if v["struct_type"] != "node" {
            continue;
        }
        let path = v["path"].as_str().expect("path").to_string();
        let keep: serde_json::Map<String, Value> = ["name", "type", "path", "mode", "mtime"]
            .iter()
            .map(|k| (k.to_string(), v[*k].clone()))
            .chain(std::iter::once((
                "size".to_string(),
                if v["type"] == "file" {
                    v["size"].clone()
                } else {
                    Value::Null
                },
            )))
            .collect();
        m.insert(path, Value::Object(keep));
    }
    m
}

fn restic_writes_stash_reads(version: u32) {
    let s = Scratch::new();
    let tree = make_rich_tree(&s.path("src"));
    let repo = s.repo("repo");
    repo.restic_init(version);
    repo.restic(&[
        "backup",
        "src",
        "--host",
        "host-r",
        "--tag",
        "rt",
        "--time",
        "2021-02-03 04:05:06",
    ])
    .cwd(&s.root)
    .ok();

    // Restore.
    repo.stash(&["restore", "latest", "--target", "out1"])
        .cwd(&s.root)
        .ok();
    assert_same_tree(&s.path("src"), &s.path("out1/src"));

    // snapshots --json: the same objects.
    let theirs = by_time(repo.restic_snapshots());
    let ours = by_time(
        repo.stash(&["snapshots", "--json"])
            .ok()
            .json()
            .as_array()
            .expect("array")
            .clone(),
    );
    assert_eq!(ours.len(), 1);
    for key in [
        "id", "short_id", "time", "tree", "paths", "hostname", "username", "tags", "uid", "gid",
    ] {
        assert_eq!(
            ours[0][key], theirs[0][key],
            "stash and restic disagree on snapshot field {key:?}:\nstash:  {}\nrestic: {}",
            ours[0], theirs[0]
        );
    }

    // ls: the same paths (plain, lossily for the non-UTF-8 name) and the same nodes.
    let restic_ls = repo.restic(&["ls", "latest"]).ok();
    let stash_ls = repo.stash(&["ls", "latest"]).ok();
    let body = |o: &Out| -> Vec<String> { o.lines().into_iter().skip(1).collect() };
    assert_eq!(
        body(&stash_ls),
        body(&restic_ls),
        "stash ls and restic ls list different paths"
    );
    let expected: BTreeSet<String> = std::iter::once("/src".to_string())
        .chain(tree.all_paths.iter().map(|p| snapshot_path("/src", p)))
        .collect();
    assert_eq!(
        body(&stash_ls).into_iter().collect::<BTreeSet<_>>(),
        expected,
        "stash ls does not list exactly the source tree"
    );
    let ours = ls_nodes(&repo.stash(&["ls", "--json", "latest"]).ok());
    let theirs = ls_nodes(&repo.restic(&["ls", "--json", "latest"]).ok());
    assert_eq!(ours.len(), theirs.len());
    for (path, t) in &theirs {
        assert_eq!(ours.get(path), Some(t), "ls --json node {path}");
    }

    // dump: byte-identical to restic's and to the source.
    for f in ["/src/text.txt", "/src/big/large-9m.bin", "/src/empty.txt"] {
        let ours = repo.stash(&["dump", "latest", f]).ok().stdout;
        let theirs = repo.restic(&["dump", "latest", f]).ok().stdout;
        let source = fs::read(s.root.join(&f[1..])).expect("source");
        assert!(
            ours == theirs && ours == source,
            "stash dump {f}: {} bytes, restic dump: {} bytes, source: {} bytes",
            ours.len(),
            theirs.len(),
            source.len()
        );
    }

    // stash backup --force into restic's repository adds only metadata.
    let bytes_before = repo.data_bytes();
    let packs_before: BTreeSet<String> = repo.files("data").into_iter().map(|(n, _)| n).collect();
    let data_before = repo.restic_data_blobs();
    let summary = stash_backup_json(
        &repo,
        &s.root,
        &["src", "--force", "--host", "host-r", "--tag", "stash"],
    );
    let bytes_after = repo.data_bytes();
    let growth = bytes_after - bytes_before;
    assert!(
        growth < tree.file_bytes / 100 + 16 * 1024,
        "re-reading unchanged files grew data/ by {growth} bytes (source: {} bytes): {summary}",
        tree.file_bytes
    );
    let contents = repo.restic_pack_contents();
    let new_packs: Vec<String> = repo
        .files("data")
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| !packs_before.contains(n))
        .collect();
    for p in &new_packs {
        let blobs = contents
            .get(p)
            .unwrap_or_else(|| panic!("new pack {p} is not in any index"));
        assert!(
            blobs.iter().all(|(t, _)| t == "tree"),
            "new pack {p} holds data blobs although all data was already stored: {blobs:?}"
        );
    }
    assert_eq!(
        repo.restic_data_blobs(),
        data_before,
        "the set of data blobs changed"
    );
    repo.restic_check_read_data();
    let id = summary["snapshot_id"].as_str().expect("snapshot_id");
    repo.restic(&["restore", id, "--target", "out2"])
        .cwd(&s.root)
        .ok();
    assert_same_tree(&s.path("src"), &s.path("out2/src"));
}

#[test]
fn restic_backup_stash_reads_and_adds_v1() {
    restic_writes_stash_reads(1);
}

#[test]
fn restic_backup_stash_reads_and_adds_v2() {
    restic_writes_stash_reads(2);
}

/// restic's `ls` prints names as the raw bytes stored; so must stash's.
#[test]
fn ls_prints_raw_file_names_like_restic() {
    let s = Scratch::new();
    fs::create_dir_all(s.path("src")).expect("mkdir");
    fs::write(s.path("src/plain.txt"), b"p").expect("write");
    fs::write(s.path("src").join(os_string(b"raw\xffbyte.bin")), b"r").expect("write");
    let repo = s.repo("repo");
    repo.restic_init(2);
    repo.restic(&["backup", "src"]).cwd(&s.root).ok();
    let ours = repo.stash(&["ls", "latest"]).ok().stdout;
    let theirs = repo.restic(&["ls", "latest"]).ok().stdout;
    let body = |b: &[u8]| -> Vec<Vec<u8>> {
        b.split(|c| *c == b'\n')
            .skip(1)
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    };
    assert_eq!(
        body(&ours)
            .iter()
            .map(|l| l.escape_ascii().to_string())
            .collect::<Vec<_>>(),
        body(&theirs)
            .iter()
            .map(|l| l.escape_ascii().to_string())
            .collect::<Vec<_>>(),
        "stash ls must print the stored name bytes as restic does"
    );
}

/// `stash cat` of internal objects gives what restic's `cat` gives.
#[test]
fn cat_objects_match_restic() {
    let s = Scratch::new();
    make_simple_tree(
        &s.path("src"),
        &[
            ("a.txt", b"alpha\n"),
            ("dir/b.txt", b"beta\n"),
            ("dir/c.bin", &random_bytes(7, 300_000)),
        ],
    );
    let repo = s.repo("repo");
    repo.stash_init(2);
    stash_backup_json(&repo, &s.root, &["src"]);

    let ours = repo.stash(&["cat", "config"]).ok().json();
    let theirs = repo.restic(&["cat", "config"]).ok().json();
    for k in ["version", "id", "chunker_polynomial"] {
        assert_eq!(ours[k], theirs[k], "config field {k}");
    }

    let snap_ours = repo.stash(&["cat", "snapshot", "latest"]).ok().json();
    let sid = repo.restic_snapshots()[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let snap_theirs = repo.restic(&["cat", "snapshot", &sid]).ok().json();
    // restic 0.14 re-encodes the snapshot with the fields it knows; stash may keep more
    // (summary, program_version), but every field restic shows must agree.
    for (k, v) in snap_theirs.as_object().expect("object") {
        assert_eq!(
            &snap_ours[k], v,
            "cat snapshot field {k}:\nstash:  {snap_ours}\nrestic: {snap_theirs}"
        );
    }

    let tree = snap_theirs["tree"].as_str().expect("tree").to_string();
    let ours = repo.stash(&["cat", "tree", &tree]).ok().stdout;
    let theirs = repo.restic(&["cat", "blob", &tree]).ok().stdout;
    assert_eq!(
        String::from_utf8_lossy(&ours).trim_end(),
        String::from_utf8_lossy(&theirs).trim_end(),
        "cat tree"
    );

    for idx in repo.restic(&["list", "index"]).ok().lines() {
        let ours = repo.stash(&["cat", "index", &idx]).ok().json();
        let theirs = repo.restic(&["cat", "index", &idx]).ok().json();
        assert_eq!(ours, theirs, "cat index {idx}");
    }

    let contents = repo.restic_pack_contents();
    for (pack, blobs) in &contents {
        let listing = repo.stash(&["cat", "pack", pack]).ok().stdout_str();
        for (ty, id) in blobs {
            assert!(
                listing.contains(&format!("{ty} {id}")),
                "stash cat pack {pack} does not list {ty} {id}:\n{listing}"
            );
            if ty == "data" {
                let ours = repo.stash(&["cat", "blob", id]).ok().stdout;
                let theirs = repo.restic(&["cat", "blob", id]).ok().stdout;
                assert!(ours == theirs, "cat blob {id} differs");
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// 3. FastCDC repositories stay restic-readable and restic-writable
// ---------------------------------------------------------------------------------

#[test]
fn fastcdc_repository_is_restic_compatible() {
    let s = Scratch::new();
    let tree = make_rich_tree(&s.path("src"));
    let repo = s.repo("repo");
    repo.stash(&["init", "--chunker", "fastcdc"]).ok();
    let config = repo.stash(&["cat", "config"]).ok().json();
    assert_eq!(config["chunker"], "fastcdc", "config: {config}");
    stash_backup_json(&repo, &s.root, &["src"]);
    repo.restic_check_read_data();
    repo.restic(&["restore", "latest", "--target", "out1"])
        .cwd(&s.root)
        .ok();
    assert_same_tree(&s.path("src"), &s.path("out1/src"));

    // The chunker really is different: restic (Rabin) chunks the same big file into
    // other blobs.
    let fastcdc_blobs = repo.restic_data_blobs();
    let rabin = s.repo("rabin");
    rabin.restic_init(2);
    fs::create_dir_all(s.path("only-big")).expect("mkdir");
    fs::copy(
        s.path("src/big/large-9m.bin"),
        s.path("only-big/large-9m.bin"),
    )
    .expect("copy");
    rabin.restic(&["backup", "only-big"]).cwd(&s.root).ok();
    let rabin_blobs = rabin.restic_data_blobs();
    assert!(
        rabin_blobs.len() > 1,
        "restic chunks 9 MB into several blobs"
    );
    assert!(
        rabin_blobs.is_disjoint(&fastcdc_blobs),
        "a FastCDC repository holds chunks identical to Rabin's: the chunker setting is ignored"
    );

    // restic writes into the FastCDC repository (it ignores the extra config field).
    fs::write(s.path("src/added-by-restic.txt"), b"restic was here\n").expect("write");
    repo.restic(&["backup", "src"]).cwd(&s.root).ok();
    repo.restic_check_read_data();
    assert_eq!(repo.restic_snapshots().len(), 2);
    // ...and stash reads restic's snapshot back.
    repo.stash(&["restore", "latest", "--target", "out2"])
        .cwd(&s.root)
        .ok();
    assert_same_tree(&s.path("src"), &s.path("out2/src"));
    assert!(tree.regular_files.len() > 10);
}

/// `--compression off|auto|max` (and `RESTIC_COMPRESSION`) change how much a
/// compressible file takes in the repository; restic checks and restores every one.
#[test]
fn compression_modes_are_restic_compatible() {
    let s = Scratch::new();
    let log: String = (0..40_000u32)
        .map(|i| {
            format!(
                "2026-11-25T04:{:02}:{:02} INFO request id={i} path=/api/v1/items/{} status={}\n",
                i / 60 % 60,
                i % 60,
                i.wrapping_mul(7919) % 1000,
                [200, 200, 404, 500][(i % 4) as usize]
            )
        })
        .collect();
    fs::create_dir_all(s.path("src")).expect("mkdir");
    fs::write(s.path("src/app.log"), &log).expect("write");

    let mut sizes = BTreeMap::new();
    for mode in ["off", "auto", "max"] {
        let repo = s.repo(mode);
        repo.stash_init(2);
        let mut cmd = repo.stash(&["backup", "src"]).cwd(&s.root);
        cmd = if mode == "off" {
            cmd.env("RESTIC_COMPRESSION", mode)
        } else {
            cmd.args(["--compression", mode])
        };
        cmd.ok();
        repo.restic_check_read_data();
        let out = format!("out-{mode}");
        repo.restic(&["restore", "latest", "--target", &out])
            .cwd(&s.root)
            .ok();
        assert_same_tree(&s.path("src"), &s.path(&out).join("src"));
        sizes.insert(mode, repo.data_bytes());
    }
    assert!(sizes["off"] > log.len() as u64, "{sizes:?}");
    assert!(sizes["auto"] * 4 < sizes["off"], "{sizes:?}");
    assert!(sizes["max"] * 4 < sizes["off"], "{sizes:?}");
    // Another level reaches the encoder (on this log level 11 happens to lose to 2).
    assert_ne!(sizes["max"], sizes["auto"], "{sizes:?}");

    let bad = s
        .repo("auto")
        .stash(&["--compression", "fast", "snapshots"])
        .run();
    assert_ne!(bad.code, Some(0), "{bad}");
    assert!(bad.stderr.contains("invalid compression mode"), "{bad}");
}

// ---------------------------------------------------------------------------------
// 4. --stdin
// ---------------------------------------------------------------------------------

#[test]
fn stdin_backup_restic_dumps_same_bytes() {
    let s = Scratch::new();
    let repo = s.repo("repo");
    repo.stash_init(2);
    let mut data = Vec::new();
    for i in 0..20_000 {
        data.extend_from_slice(format!("INSERT INTO t VALUES ({i}, 'row {i}');\n").as_bytes());
    }
    data.extend_from_slice(&random_bytes(4, 2_500_000));
    let out = repo
        .stash(&[
            "--json",
            "backup",
            "--stdin",
            "--stdin-filename",
            "db.sql",
            "--host",
            "dbhost",
        ])
        .stdin(data.clone())
        .ok();
    let summary = out.json_lines().pop().expect("summary");
    assert_eq!(summary["files_new"], 1, "{out}");
    let dumped = repo.restic(&["dump", "latest", "db.sql"]).ok().stdout;
    assert_eq!(dumped.len(), data.len(), "restic dump size");
    assert!(dumped == data, "restic dump returns other bytes");
    let snaps = repo.restic_snapshots();
    assert_eq!(
        str_list(&snaps[0]["paths"]),
        vec!["/db.sql"],
        "{}",
        snaps[0]
    );
    assert_eq!(snaps[0]["hostname"], "dbhost");
    let ls = repo.restic(&["ls", "latest"]).ok();
    assert_eq!(
        ls.lines().into_iter().skip(1).collect::<Vec<_>>(),
        vec!["/db.sql"],
        "{ls}"
    );
    repo.restic_check_read_data();
}

// ---------------------------------------------------------------------------------
// 5. --exclude
// ---------------------------------------------------------------------------------

#[test]
fn exclude_pattern_excludes_files() {
    let s = Scratch::new();
    make_simple_tree(
        &s.path("src"),
        &[
            ("keep.txt", b"keep"),
            ("app.log", b"log"),
            ("nested/debug.log", b"log"),
            ("nested/keep2.txt", b"keep"),
            ("nested/deeper/x.log", b"log"),
            ("nested/deeper/log.txt", b"not a log"),
        ],
    );
    let repo = s.repo("repo");
    repo.stash_init(2);
    repo.stash(&["backup", "src", "--exclude", "*.log"])
        .cwd(&s.root)
        .ok();
    let ls = repo.restic(&["ls", "latest"]).ok();
    let got: BTreeSet<String> = ls.lines().into_iter().skip(1).collect();
    let want: BTreeSet<String> = [
        "/src",
        "/src/keep.txt",
        "/src/nested",
        "/src/nested/keep2.txt",
        "/src/nested/deeper",
        "/src/nested/deeper/log.txt",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(got, want, "restic ls after --exclude '*.log'\n{ls}");
}

// ---------------------------------------------------------------------------------
// 6. Committed fixtures made by restic
// ---------------------------------------------------------------------------------

const FIXTURE_PASSWORD: &str = "fixture";

/// Copies a committed fixture repository, recreating the directories git does not
/// keep (empty `locks/`, `data/xx/`).
fn copy_fixture(name: &str, to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    assert!(
        from.join("config").is_file(),
        "fixture {} is missing",
        from.display()
    );
    copy_dir(&from, to);
    for d in ["data", "index", "keys", "locks", "snapshots"] {
        fs::create_dir_all(to.join(d)).expect("mkdir");
    }
    for i in 0..=255u8 {
        fs::create_dir_all(to.join("data").join(format!("{i:02x}"))).expect("mkdir");
    }
}

fn fixture_test(name: &str, version: u32) {
    let s = Scratch::new();
    copy_fixture(name, &s.path("repo"));
    let repo = Repo::new(s.path("repo"), FIXTURE_PASSWORD);

    let config = repo.stash(&["cat", "config"]).ok().json();
    assert_eq!(config["version"], version);

    // Two snapshots, as make-fixtures.sh made them.
    let snaps = by_time(
        repo.stash(&["snapshots", "--json"])
            .ok()
            .json()
            .as_array()
            .expect("array")
            .clone(),
    );
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    for (snap, (time, tags)) in snaps.iter().zip([
        ("2022-03-04T05:06:07Z", vec!["fixture", "first"]),
        ("2022-03-05T06:07:08Z", vec!["fixture", "second"]),
    ]) {
        assert_eq!(snap["time"], time, "{snap}");
        assert_eq!(snap["hostname"], "fixture-host", "{snap}");
        assert_eq!(
            str_list(&snap["paths"]),
            vec!["/tmp/stash-fixture-src"],
            "{snap}"
        );
        assert_eq!(str_list(&snap["tags"]), tags, "{snap}");
    }
    assert_eq!(snaps[1]["parent"], snaps[0]["id"]);

    let expect_files = |root: &Path, second: bool| {
        let mut want: Vec<(&str, Vec<u8>)> = vec![
            ("hello.txt", b"hello, fixture\n".to_vec()),
            ("empty.txt", Vec::new()),
            ("dir/nested.txt", b"nested line 1\nnested line 2\n".to_vec()),
            ("dir/sub/deep.txt", b"deep\n".to_vec()),
            (
                "numbers.txt",
                (1..=1000)
                    .map(|i| format!("{i}\n"))
                    .collect::<String>()
                    .into_bytes(),
            ),
        ];
        if second {
            want[0].1 = b"hello, fixture\nchanged in the second snapshot\n".to_vec();
            want.push(("added.txt", b"added later\n".to_vec()));
        }
        let mut found = BTreeSet::new();
        for (rel, data) in &want {
            let p = root.join(rel);
            let got = fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(data),
                "{rel}"
            );
            found.insert(rel.to_string());
        }
        let all: BTreeSet<String> = tree_paths(root)
            .into_iter()
            .filter(|p| fs::symlink_metadata(root.join(p)).is_ok_and(|m| m.is_file()))
            .collect();
        assert_eq!(all, found, "restored files");
        let link = fs::read_link(root.join("link")).expect("symlink restored");
        assert_eq!(link, Path::new("hello.txt"));
        // make-fixtures.sh sets this mtime.
        let m = fs::metadata(root.join("dir/nested.txt")).expect("meta");
        assert_eq!(
            filetime::FileTime::from_last_modification_time(&m).unix_seconds(),
            1_577_934_245,
            "mtime of dir/nested.txt (2020-01-02 03:04:05 UTC)"
        );
    };
    repo.stash(&["restore", "latest", "--target", "out-latest"])
        .cwd(&s.root)
        .ok();
    expect_files(&s.path("out-latest"), true);
    let first = snaps[0]["short_id"].as_str().expect("short_id");
    repo.stash(&["restore", first, "--target", "out-first"])
        .cwd(&s.root)
        .ok();
    expect_files(&s.path("out-first"), false);

    let out = repo.stash(&["check", "--read-data"]).ok();
    assert!(
        out.stdout_str().contains("no errors were found"),
        "stash check --read-data on the fixture\n{out}"
    );
    let dump = repo
        .stash(&["dump", "latest", "/dir/sub/deep.txt"])
        .ok()
        .stdout;
    assert_eq!(dump, b"deep\n");
}

#[test]
fn committed_restic_v1_fixture() {
    fixture_test("restic-v1", 1);
}

#[test]
fn committed_restic_v2_fixture() {
    fixture_test("restic-v2", 2);
}

// ---------------------------------------------------------------------------------
// Byte-level agreement of what both write
// ---------------------------------------------------------------------------------

/// Walks a snapshot's trees with `restic cat blob`: path -> node JSON (without the
/// subtree id, whose differences follow from the children's).
fn tree_nodes(repo: &Repo, tree: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(tree.to_string(), String::new())];
    while let Some((id, prefix)) = stack.pop() {
        let t = repo.restic(&["cat", "blob", &id]).ok().json();
        for n in t["nodes"].as_array().expect("nodes") {
            let path = format!("{prefix}/{}", n["name"].as_str().expect("name"));
            let mut n = n.clone();
            if let Some(sub) = n.as_object_mut().and_then(|o| o.remove("subtree")) {
                stack.push((sub.as_str().expect("subtree").to_string(), path.clone()));
            }
            out.insert(path, n);
        }
    }
    out
}

/// For the same unchanged files, stash writes the very tree blobs restic writes, so
/// trees deduplicate across both tools.
#[test]
fn tree_blobs_identical_to_restic() {
    let s = Scratch::new();
    make_rich_tree(&s.path("src"));
    let repo = s.repo("repo");
    repo.restic_init(2);
    // The first backup reads every file, which updates access times; after it both
    // tools see the same metadata.
    repo.restic(&["backup", "src", "--host", "h"])
        .cwd(&s.root)
        .ok();
    let ours = stash_backup_json(&repo, &s.root, &["src", "--host", "h", "--force"]);
    repo.restic(&["backup", "src", "--host", "h", "--force"])
        .cwd(&s.root)
        .ok();
    let snaps = by_time(repo.restic_snapshots());
    let stash_snap = snaps
        .iter()
        .find(|v| v["id"] == ours["snapshot_id"])
        .expect("stash snapshot");
    let restic_snap = snaps.last().expect("restic snapshot");
    let a = tree_nodes(&repo, stash_snap["tree"].as_str().expect("tree"));
    let b = tree_nodes(&repo, restic_snap["tree"].as_str().expect("tree"));
    let mut diffs = Vec::new();
    for (path, theirs) in &b {
        match a.get(path) {
            None => diffs.push(format!("{path}: missing in stash's tree")),
            Some(mine) if mine != theirs => {
                let (m, t) = (
                    mine.as_object().expect("obj"),
                    theirs.as_object().expect("obj"),
                );
                for k in m.keys().chain(t.keys()).collect::<BTreeSet<_>>() {
                    if m.get(k) != t.get(k) {
                        diffs.push(format!(
                            "{path}: field {k:?}: stash {:?}, restic {:?}",
                            m.get(k),
                            t.get(k)
                        ));
                    }
                }
            }
            Some(_) => {}
        }
    }
    for path in a.keys().filter(|p| !b.contains_key(*p)) {
        diffs.push(format!("{path}: only in stash's tree"));
    }
    assert!(
        diffs.is_empty(),
        "stash's tree nodes differ from restic's:\n  {}",
        diffs.join("\n  ")
    );
    assert_eq!(
        stash_snap["tree"], restic_snap["tree"],
        "same metadata, same root tree id"
    );
}

/// Without USER/LOGNAME in the environment (cron, systemd, containers) restic still
/// records the user name of the uid in the snapshot; so must stash.
#[test]
fn snapshot_username_without_user_env_matches_restic() {
    let s = Scratch::new();
    make_simple_tree(&s.path("src"), &[("a.txt", b"a")]);
    let repo = s.repo("repo");
    repo.restic_init(2);
    repo.restic(&["backup", "src", "--tag", "restic"])
        .cwd(&s.root)
        .env_remove("USER")
        .env_remove("LOGNAME")
        .ok();
    repo.stash(&["backup", "src", "--tag", "stash"])
        .cwd(&s.root)
        .env_remove("USER")
        .env_remove("LOGNAME")
        .ok();
    let snaps = repo.restic_snapshots();
    let user = |tag: &str| {
        snaps
            .iter()
            .find(|v| str_list(&v["tags"]) == vec![tag.to_string()])
            .map(|v| v["username"].clone())
            .expect("snapshot")
    };
    assert!(user("restic").is_string(), "restic recorded no user name");
    assert_eq!(
        user("stash"),
        user("restic"),
        "snapshot user name without $USER"
    );
}

// ---------------------------------------------------------------------------------
// Path semantics
// ---------------------------------------------------------------------------------

/// `.`, a relative and an absolute path are stored as restic stores them: the
/// snapshot paths and the listed tree are the same for both tools, and restic
/// restores an absolute-path backup of stash under TARGET/<absolute path>.
#[test]
fn backup_path_forms_match_restic() {
    let s = Scratch::new();
    make_simple_tree(&s.path("src"), &[("a.txt", b"a\n"), ("sub/b.txt", b"b\n")]);
    let repo = s.repo("repo");
    repo.restic_init(2);
    let src = abs(&s.path("src"));
    for (i, (cwd, arg)) in [
        (s.path("src"), "."),
        (s.root.clone(), "src"),
        (s.root.clone(), src.as_str()),
    ]
    .iter()
    .enumerate()
    {
        let ours = format!("stash{i}");
        let theirs = format!("restic{i}");
        repo.stash(&["backup", arg, "--tag", &ours]).cwd(cwd).ok();
        repo.restic(&["backup", arg, "--tag", &theirs])
            .cwd(cwd)
            .ok();
        let snaps = repo.restic_snapshots();
        let find = |tag: &str| {
            snaps
                .iter()
                .find(|v| str_list(&v["tags"]) == vec![tag.to_string()])
                .unwrap_or_else(|| panic!("no snapshot tagged {tag}"))
                .clone()
        };
        let (a, b) = (find(&ours), find(&theirs));
        assert_eq!(a["paths"], b["paths"], "snapshot paths of `backup {arg}`");
        assert_eq!(str_list(&a["paths"]), vec![src.clone()]);
        let ls = |id: &Value| -> Vec<String> {
            repo.restic(&["ls", id.as_str().expect("id")])
                .ok()
                .lines()
                .into_iter()
                .skip(1)
                .collect()
        };
        assert_eq!(ls(&a["id"]), ls(&b["id"]), "tree of `backup {arg}`");
        if arg.starts_with('/') {
            let target = format!("out{i}");
            repo.restic(&[
                "restore",
                a["id"].as_str().expect("id"),
                "--target",
                &target,
            ])
            .cwd(&s.root)
            .ok();
            assert_same_tree(&s.path("src"), &s.path(&target).join(&src[1..]));
        }
    }
}

/// Files whose stat size is 0 but that have content (Linux pseudo-files such as
/// /proc/version) are read to the end, as restic does; restic stores their content.
#[test]
fn zero_size_pseudo_file_content_is_backed_up() {
    let want = fs::read("/proc/version").expect("/proc/version is readable");
    assert!(!want.is_empty());
    let s = Scratch::new();
    let repo = s.repo("repo");
    repo.stash_init(2);
    repo.stash(&["backup", "/proc/version"]).ok();
    let got = repo
        .restic(&["dump", "latest", "/proc/version"])
        .ok()
        .stdout;
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want),
        "content of /proc/version in stash's snapshot"
    );
}

/// A file that cannot be read makes the backup finish with exit code 3 (restic's
/// "some files unreadable"): /proc/self/mem fails with EIO at offset 0. restic is
/// asked first to show the file really is unreadable here.
#[test]
fn unreadable_file_exits_3() {
    let s = Scratch::new();
    make_simple_tree(&s.path("src"), &[("fine.txt", b"fine\n")]);
    let repo = s.repo("repo");
    repo.restic_init(2);
    let theirs = repo
        .restic(&["backup", "src", "/proc/self/mem", "--tag", "restic"])
        .cwd(&s.root)
        .run();
    theirs.assert_code(3);
    let ours = repo
        .stash(&["backup", "src", "/proc/self/mem", "--tag", "stash"])
        .cwd(&s.root)
        .run();
    ours.assert_code(3);
    assert!(ours.stderr.contains("/proc/self/mem"), "{ours}");
    // The snapshot is saved with what could be read.
    assert_eq!(repo.restic_snapshots().len(), 2);
    let dumped = repo
        .restic(&["dump", "latest", "/src/fine.txt"])
        .ok()
        .stdout;
    assert_eq!(dumped, b"fine\n");
}

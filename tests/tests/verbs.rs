//! restic's verbs beyond the first twelve, each against the real `restic` on the same
//! repository: `list` prints what restic prints, `tag` changes what restic's `tag`
//! changes and leaves a repository restic checks.

use std::{collections::BTreeSet, process::Command};

use serde_json::Value;

use crate::util::*;

/// A restic repository with two restic snapshots of a small tree and one of stash's.
fn three_snapshots(s: &Scratch) -> Repo {
    make_simple_tree(
        &s.path("src"),
        &[("a.txt", b"alpha\n"), ("b/c.txt", b"gamma\n")],
    );
    let repo = s.repo("repo");
    repo.restic_init(2);
    for tags in ["one,two", "two"] {
        repo.restic(&["backup", "src", "--host", "h1", "--tag", tags])
            .cwd(&s.root)
            .ok();
    }
    repo.stash(&["backup", "src", "--host", "h2"])
        .cwd(&s.root)
        .ok();
    repo
}

fn sorted_lines(out: &Out) -> BTreeSet<String> {
    out.lines().into_iter().collect()
}

#[test]
fn list_prints_what_restic_prints() {
    let s = Scratch::new();
    let repo = three_snapshots(&s);
    for what in ["blobs", "packs", "index", "snapshots", "keys", "locks"] {
        let ours = repo.stash(&["list", what]).ok();
        let theirs = repo.restic(&["list", what]).ok();
        assert_eq!(sorted_lines(&ours), sorted_lines(&theirs), "list {what}");
    }
    assert_eq!(repo.stash(&["list", "snapshots"]).ok().lines().len(), 3);
    let bad = repo.stash(&["list", "trees"]).run();
    bad.assert_failed();
    assert!(bad.stderr.contains("invalid type"), "{bad}");
}

/// Tags and original of every snapshot, by its original id (or its id), as restic
/// reads them.
fn tag_state(repo: &Repo) -> BTreeSet<(String, Vec<String>, String)> {
    repo.restic_snapshots()
        .iter()
        .map(|s: &Value| {
            let tags: Vec<String> = s["tags"]
                .as_array()
                .map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect())
                .unwrap_or_default();
            let original = s["original"].as_str().unwrap_or("").to_string();
            let key = if original.is_empty() {
                s["id"].as_str().unwrap().to_string()
            } else {
                original.clone()
            };
            (key, tags, original)
        })
        .collect()
}

#[test]
fn tag_changes_what_restics_tag_changes() {
    let s = Scratch::new();
    let ours = three_snapshots(&s);
    let theirs = Repo::new(s.path("theirs"), &ours.password);
    copy_dir(&ours.path, &theirs.path);
    let first = ours.restic_snapshots()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let steps: [&[&str]; 4] = [
        // One snapshot by id prefix: add and remove.
        &["tag", &first[..8], "--add", "three,four", "--remove", "one"],
        // Filters pick the snapshots: every snapshot tagged two.
        &["tag", "--tag", "two", "--add", "five"],
        // A later rewrite keeps the first original.
        &["tag", &first[..8], "--remove", "five"],
        // The host filter and --set ''.
        &["tag", "--host", "h2", "--set", "x", "--set", "y"],
    ];
    for args in steps {
        // Each step names the first snapshot by a prefix of its original id, which
        // restic resolves against current file names: give both the current one.
        let current = |repo: &Repo| {
            repo.restic_snapshots()
                .iter()
                .find(|s| s["original"].as_str().unwrap_or(s["id"].as_str().unwrap()) == first)
                .map(|s| s["id"].as_str().unwrap().to_string())
                .unwrap()
        };
        let with = |repo: &Repo| -> Vec<String> {
            args.iter()
                .map(|a| {
                    if *a == &first[..8] {
                        current(repo)
                    } else {
                        a.to_string()
                    }
                })
                .collect()
        };
        let out = ours.stash(&with(&ours)).ok();
        assert!(out.stdout_str().contains("modified tags on"), "{out}");
        theirs.restic(&with(&theirs)).ok();
        assert_eq!(tag_state(&ours), tag_state(&theirs), "after {args:?}");
    }
    ours.restic_check_read_data();
    assert_eq!(ours.restic_snapshots().len(), 3);

    // Nothing to change: the snapshot stays, as restic's does.
    let before = ours.stash(&["list", "snapshots"]).ok().lines();
    let none = ours.stash(&["tag", "--host", "h2", "--add", "x"]).ok();
    assert!(
        none.stdout_str().contains("no snapshots were modified"),
        "{none}"
    );
    assert_eq!(ours.stash(&["list", "snapshots"]).ok().lines(), before);

    // --json: one message per change and a summary.
    let json = ours
        .stash(&["--json", "tag", "--host", "h2", "--set", ""])
        .ok()
        .json_lines();
    assert_eq!(json[0]["message_type"], "changed");
    assert_eq!(json.last().unwrap()["message_type"], "summary");
    assert_eq!(json.last().unwrap()["changed_snapshots"], 1);

    // restic's refusals, one line each, and nothing changed.
    for bad in [
        &["tag", "--host", "h1"][..],
        &["tag", "--set", "a", "--add", "b"][..],
    ] {
        let out = ours.stash(bad).run();
        out.assert_failed();
        assert_eq!(out.stderr.trim().lines().count(), 1, "{out}");
    }
    assert_eq!(ours.restic_snapshots().len(), 3);
}

#[test]
fn generate_writes_completions_and_man_pages() {
    let s = Scratch::new();
    let dir = s.path("gen");
    let file = |n: &str| dir.join(n).to_str().unwrap().to_string();
    std::fs::create_dir_all(&dir).unwrap();
    Cmd::new(stash_bin())
        .args([
            "generate",
            "--bash-completion",
            &file("stash.bash"),
            "--zsh-completion",
            &file("_stash"),
            "--fish-completion",
            &file("stash.fish"),
            "--powershell-completion",
            &file("stash.ps1"),
            "--man",
            &file("man"),
        ])
        .ok();
    // bash loads it and completes stash's verbs with it.
    let probe = format!(
        "source {}; COMP_WORDS=(stash ta); COMP_CWORD=1; _stash stash ta stash; echo \"${{COMPREPLY[@]}}\"",
        file("stash.bash")
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&probe)
        .output()
        .expect("bash");
    let words = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(words.split_whitespace().any(|w| w == "tag"), "{words}");
    let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap();
    assert!(read("_stash").starts_with("#compdef stash"));
    assert!(read("stash.fish").contains("complete -c stash"));
    assert!(read("stash.ps1").contains("Register-ArgumentCompleter"));
    for page in [
        "stash.1",
        "stash-backup.1",
        "stash-tag.1",
        "stash-key-add.1",
    ] {
        let text = read(&format!("man/{page}"));
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{page}: {text}"
        );
    }
    // `-` is stdout, and no flag at all is restic's refusal.
    let bash = Cmd::new(stash_bin())
        .args(["generate", "--bash-completion", "-"])
        .ok();
    assert_eq!(bash.stdout_str(), read("stash.bash"));
    Cmd::new(stash_bin()).arg("generate").run().assert_failed();
}

#[test]
fn stats_counts_what_restic_counts_in_every_mode() {
    let s = Scratch::new();
    make_rich_tree(&s.path("src"));
    let repo = s.repo("repo");
    repo.restic_init(2);
    repo.restic(&["backup", "src", "--host", "h1"])
        .cwd(&s.root)
        .ok();
    std::fs::write(s.path("src/added.txt"), b"one more file\n").unwrap();
    repo.stash(&["backup", "src", "--host", "h2"])
        .cwd(&s.root)
        .ok();
    let selections: [&[&str]; 3] = [&[], &["latest"], &["--host", "h1"]];
    for mode in [
        "restore-size",
        "files-by-contents",
        "raw-data",
        "blobs-per-file",
    ] {
        for pick in selections {
            let mut args = vec!["--json", "stats", "--mode", mode];
            args.extend_from_slice(pick);
            let ours = repo.stash(&args).ok().json();
            let theirs = repo.restic(&args).ok().json();
            // restic 0.14's fields; ours adds newer restic's compression figures.
            for (field, value) in theirs.as_object().unwrap() {
                assert_eq!(
                    &ours[field], value,
                    "{mode} {pick:?}: {field}\n{ours}\n{theirs}"
                );
            }
        }
    }
    let text = repo
        .stash(&["stats", "--mode", "raw-data"])
        .ok()
        .stdout_str();
    assert!(text.contains("Stats in raw-data mode:"), "{text}");
    repo.stash(&["stats", "--mode", "everything"])
        .run()
        .assert_failed();
}

/// The paths of the latest snapshot of `host`, as restic lists them.
fn listed(repo: &Repo, host: &str) -> Vec<String> {
    repo.restic(&["ls", "latest", "--host", host])
        .ok()
        .lines()
        .into_iter()
        .skip(1)
        .collect()
}

#[test]
fn backup_leaves_out_what_restic_leaves_out() {
    let s = Scratch::new();
    let big = random_bytes(7, 2 << 20);
    make_simple_tree(
        &s.path("src"),
        &[
            ("Notes.TXT", b"case"),
            ("readme.md", b"kept"),
            ("big.bin", &big),
            ("small.bin", b"small"),
            (
                "cache/CACHEDIR.TAG",
                b"Signature: 8a477f597d28d172789f06886806bc55\n",
            ),
            ("cache/data", b"cached"),
            ("fakecache/CACHEDIR.TAG", b"no signature"),
            ("private/.nobackup", b""),
            ("private/secret", b"s"),
            ("sub/deep.txt", b"deep"),
            ("sub/keep.rs", b"fn main() {}"),
        ],
    );
    let repo = s.repo("repo");
    repo.restic_init(2);
    let flags = [
        "--iexclude",
        "*.txt",
        "--exclude-larger-than",
        "1M",
        "--exclude-caches",
        "--exclude-if-present",
        ".nobackup",
    ];
    for (host, tool) in [("restic", true), ("stash", false)] {
        let mut args = vec!["backup", "src", "--host", host];
        args.extend(flags);
        let cmd = if tool {
            repo.restic(&args)
        } else {
            repo.stash(&args)
        };
        cmd.cwd(&s.root).ok();
    }
    let theirs = listed(&repo, "restic");
    assert_eq!(listed(&repo, "stash"), theirs);
    assert!(
        theirs.iter().any(|p| p.ends_with("/fakecache")),
        "{theirs:?}"
    );
    assert!(!theirs
        .iter()
        .any(|p| p.contains("secret") || p.contains("big.bin")));

    // --files-from (globs, comments), --files-from-verbatim and --files-from-raw.
    std::fs::write(s.path("list"), "# a comment\nsrc/sub/*\n\nsrc/readme.md\n").unwrap();
    std::fs::write(s.path("verbatim"), "src/small.bin\nsrc/cache\n").unwrap();
    std::fs::write(s.path("raw"), b"src/fakecache\0src/Notes.TXT\0").unwrap();
    for (host, tool) in [("restic-from", true), ("stash-from", false)] {
        let args = [
            "backup",
            "--host",
            host,
            "--files-from",
            "list",
            "--files-from-verbatim",
            "verbatim",
            "--files-from-raw",
            "raw",
        ];
        let cmd = if tool {
            repo.restic(&args)
        } else {
            repo.stash(&args)
        };
        cmd.cwd(&s.root).ok();
    }
    let paths = |host: &str| -> BTreeSet<String> {
        repo.restic_snapshots()
            .iter()
            .filter(|x| x["hostname"] == host)
            .flat_map(|x| x["paths"].as_array().unwrap().clone())
            .map(|p| p.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(paths("stash-from"), paths("restic-from"));
    assert_eq!(paths("stash-from").len(), 7, "{:?}", paths("stash-from"));
    assert_eq!(listed(&repo, "stash-from"), listed(&repo, "restic-from"));
    repo.restic_check_read_data();

    // A size restic would refuse is refused, with nothing written.
    let snapshots = repo.restic_snapshots().len();
    let bad = repo
        .stash(&["backup", "src", "--exclude-larger-than", "1.5M"])
        .cwd(&s.root)
        .run();
    bad.assert_failed();
    assert!(bad.stderr.contains("1.5M"), "{bad}");
    assert_eq!(repo.restic_snapshots().len(), snapshots);
}

#[test]
fn the_password_comes_from_where_restic_takes_it() {
    let s = Scratch::new();
    let repo = s.repo("repo");
    repo.restic_init(2);
    std::fs::write(s.path("right"), format!("  {}\n", repo.password)).unwrap();
    std::fs::write(s.path("wrong"), "not it\n").unwrap();
    let pw = repo.password.clone();
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], bool);
    let cases: [Case; 6] = [
        (
            &[("RESTIC_PASSWORD", "nope")],
            &["--password-file", "right"],
            true,
        ),
        (
            &[
                ("RESTIC_PASSWORD", "nope"),
                ("RESTIC_PASSWORD_FILE", "right"),
            ],
            &[],
            true,
        ),
        (
            &[("RESTIC_PASSWORD", "nope")],
            &["--password-command", "cat 'right'"],
            true,
        ),
        (&[("RESTIC_PASSWORD_COMMAND", "cat right")], &[], true),
        (
            &[("RESTIC_PASSWORD", &pw)],
            &["--password-file", "wrong"],
            false,
        ),
        (
            &[],
            &[
                "--password-file",
                "right",
                "--password-command",
                "cat right",
            ],
            false,
        ),
    ];
    for (env, flags, works) in cases {
        for restic in [true, false] {
            let mut args = flags.to_vec();
            args.push("snapshots");
            let mut cmd = if restic {
                repo.restic(&args)
            } else {
                repo.stash(&args)
            };
            cmd = cmd
                .env_remove("RESTIC_PASSWORD")
                .stdin(Vec::new())
                .cwd(&s.root);
            for (k, v) in env {
                cmd = cmd.env(k, v);
            }
            let out = cmd.run();
            assert_eq!(
                out.code == Some(0),
                works,
                "restic: {restic}, {env:?} {flags:?}\n{out}"
            );
        }
    }
}

#[test]
fn diff_prints_what_restic_prints() {
    let s = Scratch::new();
    make_rich_tree(&s.path("src"));
    make_simple_tree(
        &s.path("src/changes"),
        &[
            ("edited.txt", b"before"),
            ("gone/a", b"a"),
            ("gone/deeper/b", b"b"),
            ("becomes_dir", b"file"),
            ("mode.txt", b"same"),
        ],
    );
    let repo = s.repo("repo");
    repo.restic_init(2);
    repo.restic(&["backup", "src"]).cwd(&s.root).ok();
    let c = s.path("src/changes");
    std::fs::write(c.join("edited.txt"), b"after, longer").unwrap();
    std::fs::remove_dir_all(c.join("gone")).unwrap();
    std::fs::remove_file(c.join("becomes_dir")).unwrap();
    make_simple_tree(
        &c,
        &[("becomes_dir/x", b"x"), ("new/y", b"y"), ("new/z", b"z")],
    );
    let mode = Command::new("chmod")
        .arg("600")
        .arg(c.join("mode.txt"))
        .status()
        .unwrap();
    assert!(mode.success());
    repo.stash(&["backup", "src"]).cwd(&s.root).ok();
    let ids: Vec<String> = repo
        .restic_snapshots()
        .iter()
        .map(|x| x["short_id"].as_str().unwrap().to_string())
        .collect();
    for flags in [
        &[][..],
        &["--json"][..],
        &["--metadata"][..],
        &["--json", "--metadata"][..],
    ] {
        let mut args = vec!["diff"];
        args.extend_from_slice(flags);
        args.extend([ids[0].as_str(), ids[1].as_str()]);
        let ours = repo.stash(&args).ok().stdout_str();
        let theirs = repo.restic(&args).ok().stdout_str();
        assert_eq!(ours, theirs, "diff {flags:?}");
    }
    let text = repo.stash(&["diff", &ids[0], &ids[1]]).ok().stdout_str();
    assert!(text.contains("T    /src/changes/becomes_dir/"), "{text}");
    assert!(text.contains("-    /src/changes/gone/deeper/b"), "{text}");
}

/// `find`'s output split into one block per snapshot: restic 0.14 prints snapshots in
/// its backend's listing order, newer restic and stash by time.
fn find_blocks(out: &str) -> BTreeSet<String> {
    out.split("\n\n")
        .map(|b| b.trim_end().to_string())
        .collect()
}

#[test]
fn ls_and_find_print_what_restic_prints() {
    let s = Scratch::new();
    make_rich_tree(&s.path("src"));
    let repo = s.repo("repo");
    repo.restic_init(2);
    repo.restic(&["backup", "src", "--host", "h1"])
        .cwd(&s.root)
        .ok();
    std::fs::write(s.path("src/nested/a/new.txt"), b"new\n").unwrap();
    repo.stash(&["backup", "src", "--host", "h2"])
        .cwd(&s.root)
        .ok();
    let recursive = repo
        .stash(&["ls", "latest", "/src/nested/a", "--recursive"])
        .ok()
        .stdout_str();
    assert!(
        recursive.contains("\n/src/nested/a/b/c/deep.txt\n"),
        "{recursive}"
    );
    for args in [
        &["ls", "latest"][..],
        &["ls", "-l", "latest"],
        &["ls", "latest", "/src/nested/a", "/src/perms"],
        &["ls", "-l", "latest", "--host", "h1"],
    ] {
        let ours = repo.stash(args).ok().stdout_str();
        let theirs = repo.restic(args).ok().stdout_str();
        assert_eq!(ours, theirs, "{args:?}");
    }
    // --human-readable: restic's long lines with the size as 1.234 KiB.
    let human = |n: u64| match n {
        n if n >= 1 << 20 => format!("{:.3} MiB", n as f64 / f64::from(1u32 << 20)),
        n if n >= 1 << 10 => format!("{:.3} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    };
    let ours = repo
        .stash(&["ls", "-l", "--human-readable", "latest"])
        .ok()
        .stdout_str();
    let theirs = repo.restic(&["ls", "-l", "latest"]).ok().stdout_str();
    assert_eq!(ours.lines().count(), theirs.lines().count());
    for (o, t) in ours.lines().zip(theirs.lines()).skip(1) {
        let mut want: Vec<String> = t.split_whitespace().map(str::to_string).collect();
        let size = human(want[3].parse().unwrap());
        want.splice(3..4, size.split(' ').map(str::to_string));
        let got: Vec<&str> = o.split_whitespace().collect();
        assert_eq!(got, want, "{o}");
    }
    for args in [
        &["find", "*.txt"][..],
        &["find", "a"],
        &["find", "/src/nested/*"],
        &["find", "**/c", "deep.txt"],
        &["find", "-i", "DEEP*", "--host", "h2"],
        &["find", "-l", "nested", "perms"],
        &["find", "new.txt", "-s", "latest"],
        &["find", "*.txt", "--newest", "2001-01-01"],
        &["find", "nothing-matches"],
    ] {
        let ours = repo.stash(args).ok().stdout_str();
        let theirs = repo.restic(args).ok().stdout_str();
        assert_eq!(find_blocks(&ours), find_blocks(&theirs), "{args:?}");
        let mut json = args.to_vec();
        json.push("--json");
        let by_snapshot = |text: String| -> BTreeSet<String> {
            let v: Value = serde_json::from_str(&text).unwrap();
            v.as_array().unwrap().iter().map(Value::to_string).collect()
        };
        assert_eq!(
            by_snapshot(repo.stash(&json).ok().stdout_str()),
            by_snapshot(repo.restic(&json).ok().stdout_str()),
            "{json:?}"
        );
    }
    let found = repo.stash(&["find", "deep.txt"]).ok().stdout_str();
    assert_eq!(
        found.matches("/src/nested/a/b/c/deep.txt").count(),
        2,
        "{found}"
    );
    let none = repo.stash(&["find"]).run();
    none.assert_failed();
    assert!(none.stderr.contains("PATTERN"), "{none}");
}

/// `find --tree/--blob/--pack`'s text split into one block per object found.
fn found_blocks(out: &str) -> BTreeSet<String> {
    out.split("Found ").map(str::to_string).collect()
}

/// `find --json` of ids: a set of objects, the snapshot times as instants (restic
/// writes a zero offset as `Z`).
fn found_json(out: &str) -> BTreeSet<String> {
    let v: Value = serde_json::from_str(out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let mut o = o.clone();
            let t = o["time"].as_str().unwrap();
            let t = chrono::DateTime::parse_from_rfc3339(t)
                .unwrap()
                .timestamp_nanos_opt();
            o["time"] = serde_json::json!(t);
            o.to_string()
        })
        .collect()
}

#[test]
fn find_by_id_prints_what_restic_prints() {
    let s = Scratch::new();
    make_rich_tree(&s.path("src"));
    let repo = s.repo("repo");
    repo.restic_init(2);
    repo.restic(&["backup", "src"]).cwd(&s.root).ok();
    std::fs::write(s.path("src/nested/a/new.txt"), b"new\n").unwrap();
    repo.stash(&["backup", "src"]).cwd(&s.root).ok();

    let latest = repo.restic_snapshots().last().unwrap()["id"].clone();
    let snap = repo
        .restic(&["cat", "snapshot", latest.as_str().unwrap()])
        .ok()
        .json();
    let tree = |id: &str| repo.restic(&["cat", "blob", id]).ok().json();
    let root = tree(snap["tree"].as_str().unwrap());
    let src = root["nodes"][0]["subtree"].as_str().unwrap().to_string();
    let nodes = tree(&src)["nodes"].as_array().unwrap().clone();
    let dir = |name: &str| {
        nodes.iter().find(|n| n["name"] == name).unwrap()["subtree"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let nested = dir("nested");
    let blob = nodes
        .iter()
        .find(|n| n["type"] == "file" && !n["content"].as_array().unwrap().is_empty())
        .unwrap()["content"][0]
        .as_str()
        .unwrap()
        .to_string();
    let pack = repo
        .restic_pack_contents()
        .into_iter()
        .find(|(_, blobs)| blobs.iter().any(|(_, b)| *b == blob))
        .unwrap()
        .0;
    for args in [
        vec!["find", "--tree", &nested],
        vec!["find", "--tree", &nested[..8], &src],
        vec!["find", "--blob", &blob],
        vec!["find", "--blob", &blob[..8], "-s", "latest"],
        vec!["find", "--pack", &pack],
        vec!["find", "--tree", "0000000000000000"],
    ] {
        let ours = repo.stash(&args).ok().stdout_str();
        let theirs = repo.restic(&args).ok().stdout_str();
        assert_eq!(found_blocks(&ours), found_blocks(&theirs), "{args:?}");
        let mut json = args.clone();
        json.push("--json");
        assert_eq!(
            found_json(&repo.stash(&json).ok().stdout_str()),
            found_json(&repo.restic(&json).ok().stdout_str()),
            "{json:?}"
        );
    }
    let unknown = repo.stash(&["find", "--pack", "deadbeef"]).run();
    unknown.assert_failed();
    assert!(unknown.stderr.contains("deadbeef"), "{unknown}");
}

/// Every key path of a JSON value (`a.b`, `list[].c`), array elements merged.
fn key_paths(v: &Value, at: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                let p = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                out.insert(p.clone());
                key_paths(x, &p, out);
            }
        }
        Value::Array(a) => {
            for x in a {
                key_paths(x, &format!("{at}[]"), out);
            }
        }
        _ => {}
    }
}

fn keys_of(values: &[Value]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for v in values {
        key_paths(v, "", &mut out);
    }
    out
}

#[test]
fn json_messages_carry_restics_field_names() {
    let s = Scratch::new();
    let repo = three_snapshots(&s);
    let backup = |tool: &str| -> Vec<Value> {
        let args = ["backup", "src", "--json", "--host", "h1"];
        let out = if tool == "restic" {
            repo.restic(&args).cwd(&s.root).ok()
        } else {
            repo.stash(&args).cwd(&s.root).ok()
        };
        out.json_lines()
            .into_iter()
            .filter(|v| v["message_type"] == "summary")
            .collect()
    };
    let mut cases: Vec<(&str, Vec<Value>, Vec<Value>)> =
        vec![("backup", backup("stash"), backup("restic"))];
    for args in [
        &["snapshots", "--json"][..],
        &["ls", "--json", "latest"],
        &["forget", "--json", "--dry-run", "--keep-last", "1"],
        &["find", "--json", "*.txt"],
        &["stats", "--json"],
    ] {
        let parse = |out: Out| -> Vec<Value> {
            let text = out.stdout_str();
            match serde_json::from_str::<Value>(&text) {
                Ok(v) => vec![v],
                Err(_) => out.json_lines(),
            }
        };
        cases.push((
            args[0],
            parse(repo.stash(args).ok()),
            parse(repo.restic(args).ok()),
        ));
    }
    // Beyond names: forget's reasons and counters are restic's.
    let reasons = |out: Out| -> BTreeSet<String> {
        let v: Value = serde_json::from_str(&out.stdout_str()).unwrap();
        let mut r = BTreeSet::new();
        for g in v.as_array().unwrap() {
            for k in g["reasons"].as_array().unwrap() {
                r.insert(format!(
                    "{} {} {}",
                    k["snapshot"]["time"], k["matches"], k["counters"]
                ));
            }
        }
        r
    };
    let args = [
        "forget",
        "--json",
        "--dry-run",
        "--keep-last",
        "2",
        "--keep-daily",
        "1",
    ];
    assert_eq!(
        reasons(repo.stash(&args).ok()),
        reasons(repo.restic(&args).ok())
    );
    for (verb, ours, theirs) in cases {
        let (ours, theirs) = (keys_of(&ours), keys_of(&theirs));
        let missing: Vec<&String> = theirs.difference(&ours).collect();
        assert!(
            missing.is_empty(),
            "{verb} --json lacks restic's {missing:?}"
        );
    }
}

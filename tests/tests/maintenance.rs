//! Maintenance: `forget` retention parity with restic 0.14 (and the one documented
//! difference), `forget --prune`, SIGKILL during backup and prune, concurrent
//! writers, live and stale locks against prune, and check naming the snapshots a
//! lost pack damages.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    io::Write,
    path::{Path, PathBuf},
    process::{Child, ChildStdin},
    sync::OnceLock,
    time::{Duration, Instant},
};

use crate::util::*;

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

/// The snapshot ids of a repository: the names of the files in `snapshots/`.
fn snapshot_ids(repo: &Repo) -> BTreeSet<String> {
    repo.files("snapshots")
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

/// The complete lock files currently in the repository, waited for up to 30 s.
fn wait_lock(repo: &Repo, what: &str) -> String {
    wait_for(Duration::from_secs(30), || repo.locks().pop())
        .unwrap_or_else(|| panic!("{what} never created a lock file"))
}

/// A process whose stdin pipe is held open (so it holds its lock until released).
struct Held {
    child: Child,
    stdin: Option<ChildStdin>,
    shown: String,
}

impl Held {
    fn start(cmd: Cmd, first: &[u8]) -> Self {
        let shown = cmd.shown().to_string();
        let mut child = cmd.spawn();
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(first).expect("writing to the held process");
        Held {
            child,
            stdin: Some(stdin),
            shown,
        }
    }

    fn sigkill(mut self) {
        send_signal(self.child.id(), "KILL");
        let _ = self.child.wait();
        self.stdin = None;
    }

    fn finish(mut self) -> Out {
        self.stdin = None;
        let (code, stdout, stderr) = wait_capture(&mut self.child, COMMAND_TIMEOUT, &self.shown);
        Out {
            shown: self.shown.clone(),
            code,
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.child.kill();
        self.stdin = None;
        let _ = self.child.wait();
    }
}

/// `restic check [--read-data]`; restic 0.14 refuses to check next to any other
/// lock, stale or not, so on "locked" it gets `restic unlock` first. Returns whether
/// the unlock was needed.
fn restic_check(repo: &Repo, read_data: bool, context: &str) -> bool {
    let args: &[&str] = if read_data {
        &["check", "--read-data"]
    } else {
        &["check"]
    };
    let out = repo.restic(args).run();
    if out.code == Some(0) {
        assert!(out.stdout_str().contains("no errors were found"), "{out}");
        return false;
    }
    assert!(
        out.stderr.contains("locked"),
        "restic check failed ({context})\n{out}"
    );
    repo.restic(&["unlock"]).ok();
    let out = repo.restic(args).run();
    assert_eq!(out.code, Some(0), "restic check failed ({context})\n{out}");
    true
}

// ---------------------------------------------------------------------------------
// 1. forget parity with restic 0.14
// ---------------------------------------------------------------------------------

/// The groups (host, path below the fixture root) of the forget fixture.
const GROUPS: [(&str, &str); 5] = [
    ("alpha", "src/a"),
    ("alpha", "src/b"),
    ("beta", "src/a"),
    ("beta", "src/b"),
    ("gamma", "src/a"),
];

/// The 20 snapshot times of group `g`: the oldest alone in its month (January
/// 2023), then spread over two years with ISO-week boundaries (Sunday 2023-12-31 is
/// 2023-W52, Monday 2024-01-01 is 2024-W01; Sunday 2024-12-29 is 2024-W52, Monday
/// 2024-12-30 is 2025-W01) and a cluster in January 2025 with three snapshots in one
/// hour and four on one day.
fn group_times(g: usize) -> Vec<String> {
    vec![
        format!("2023-01-{:02} 08:00:00", 10 + g),
        format!("2023-03-{:02} 12:30:00", 5 + g),
        format!("2023-05-20 {:02}:15:00", 6 + g),
        format!("2023-08-14 09:{:02}:00", 10 * g),
        format!("2023-11-{:02} 18:00:00", 2 + g),
        format!("2023-12-31 10:0{g}:00"),
        format!("2024-01-01 09:0{g}:00"),
        format!("2024-03-{:02} 07:00:00", 10 + g),
        format!("2024-06-18 1{g}:45:00"),
        format!("2024-09-{:02} 20:00:00", 9 + g),
        format!("2024-12-29 11:0{g}:00"),
        format!("2024-12-30 11:0{g}:00"),
        format!("2025-01-01 00:3{g}:00"),
        format!("2025-01-05 10:0{g}:00"),
        format!("2025-01-05 10:2{g}:00"),
        format!("2025-01-05 10:4{g}:00"),
        format!("2025-01-05 14:0{g}:00"),
        format!("2025-01-06 23:5{g}:00"),
        format!("2025-01-08 06:0{g}:00"),
        format!("2025-01-12 13:0{g}:00"),
    ]
}

struct ForgetFixture {
    root: PathBuf,
    repo: Repo,
    /// id -> (host, path, time) as restic lists it.
    snaps: BTreeMap<String, (String, String, String)>,
}

/// One repository with 100 snapshots made by `restic backup --time`, built once per
/// test run under `CARGO_TARGET_TMPDIR` (three backups run at a time).
fn forget_fixture() -> &'static ForgetFixture {
    static FIX: OnceLock<ForgetFixture> = OnceLock::new();
    FIX.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("maintenance-forget-fixture-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        make_simple_tree(
            &root,
            &[("src/a/one.txt", b"one\n"), ("src/b/two.txt", b"two\n")],
        );
        let repo = Repo::new(root.join("repo"), PASSWORD);
        repo.stash_init(2);
        let mut jobs = Vec::new();
        for (g, (host, path)) in GROUPS.iter().enumerate() {
            for (k, time) in group_times(g).into_iter().enumerate() {
                let tags = match (k + g) % 4 {
                    0 => "prod",
                    1 => "dev",
                    2 => "",
                    _ => "prod,weekly",
                };
                jobs.push((host.to_string(), path.to_string(), time, tags));
            }
        }
        std::thread::scope(|sc| {
            for part in jobs.chunks(jobs.len().div_ceil(3)) {
                let (repo, root) = (&repo, &root);
                sc.spawn(move || {
                    for (host, path, time, tags) in part {
                        let mut args = vec!["backup", "-q", "--time", time, "--host", host];
                        if !tags.is_empty() {
                            args.extend(["--tag", tags]);
                        }
                        args.push(path);
                        repo.restic(&args).cwd(root).ok();
                    }
                });
            }
        });
        let mut snaps = BTreeMap::new();
        for s in repo.restic_snapshots() {
            let path = s["paths"][0].as_str().expect("path").to_string();
            snaps.insert(
                s["id"].as_str().expect("id").to_string(),
                (
                    s["hostname"].as_str().expect("host").to_string(),
                    path,
                    s["time"].as_str().expect("time").to_string(),
                ),
            );
        }
        assert_eq!(snaps.len(), 100, "the fixture has 100 snapshots");
        ForgetFixture { root, repo, snaps }
    })
}

/// Runs `forget FLAGS` with restic and with stash on two copies of the fixture and
/// returns the snapshot ids each leaves.
fn forget_both(
    fix: &ForgetFixture,
    s: &Scratch,
    name: &str,
    flags: &[String],
) -> (BTreeSet<String>, BTreeSet<String>) {
    let r = s.repo(&format!("{name}-restic"));
    let st = s.repo(&format!("{name}-stash"));
    copy_dir(&fix.repo.path, &r.path);
    copy_dir(&fix.repo.path, &st.path);
    r.restic(&[&["forget".to_string()], flags].concat())
        .cwd(&fix.root)
        .ok();
    let out = st
        .stash(&[&["forget".to_string()], flags].concat())
        .cwd(&fix.root)
        .run();
    out.assert_ok();
    out.assert_no_panic();
    st.assert_no_locks("stash forget");
    (snapshot_ids(&r), snapshot_ids(&st))
}

fn describe(fix: &ForgetFixture, ids: &BTreeSet<String>) -> String {
    ids.iter()
        .map(|id| {
            let (h, p, t) = &fix.snaps[id];
            format!("{} {h} {p} {t}", &id[..8])
        })
        .collect::<Vec<_>>()
        .join("\n    ")
}

/// For a dozen policies chosen so that neither restic ≥ 0.16 rule restic 0.14 lacks
/// can fire (every bucket count is at most the number of distinct periods in every
/// group, unlimited buckets see each group's oldest snapshot alone in its period,
/// every group keeps something), stash forgets exactly what restic 0.14 forgets.
#[test]
fn forget_policies_match_restic() {
    let fix = forget_fixture();
    let s = Scratch::new();
    let abs_a = fix.root.join("src/a").display().to_string();
    let policies: Vec<Vec<String>> = [
        "--keep-last 5",
        "--keep-daily 7",
        "--keep-weekly 4 --keep-monthly 6",
        "--keep-yearly 2 --keep-monthly 3",
        "--keep-hourly 10",
        "--keep-within 30d",
        "--keep-within-daily 60d",
        "--keep-within-monthly 1y --keep-last 2",
        "--keep-tag prod",
        "--keep-tag prod,weekly --keep-tag dev --keep-last 1",
        "--keep-last 3 --group-by host",
        "--keep-daily 3 --group-by tags",
        "--host alpha --keep-last 2",
        "--tag dev --keep-weekly 2",
        "--keep-monthly 100 --keep-last 1",
        "--keep-weekly 3 --keep-within 2m --group-by host,tags",
    ]
    .iter()
    .map(|p| p.split(' ').map(String::from).collect())
    .chain([vec![
        "--path".to_string(),
        abs_a,
        "--keep-daily".into(),
        "2".into(),
    ]])
    .collect();
    let all: BTreeSet<String> = fix.snaps.keys().cloned().collect();
    // Two policies at a time (each runs one restic and one stash).
    let results: Vec<(usize, BTreeSet<String>, BTreeSet<String>)> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..2)
            .map(|t| {
                let (policies, s) = (&policies, &s);
                sc.spawn(move || {
                    (t..policies.len())
                        .step_by(2)
                        .map(|i| {
                            let (r, st) = forget_both(fix, s, &format!("p{i}"), &policies[i]);
                            (i, r, st)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("policy thread"))
            .collect()
    });
    let mut failures = Vec::new();
    for (i, restic, stash) in results {
        let flags = &policies[i];
        assert!(
            !restic.is_empty() && restic.len() < all.len(),
            "policy {flags:?} should remove some but not all snapshots (restic kept {})",
            restic.len()
        );
        if restic != stash {
            failures.push(format!(
                "forget {}: restic kept {}, stash kept {}\n  only restic kept:\n    {}\n  only stash kept:\n    {}",
                flags.join(" "),
                restic.len(),
                stash.len(),
                describe(fix, &restic.difference(&stash).cloned().collect()),
                describe(fix, &stash.difference(&restic).cloned().collect()),
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The documented difference (restic ≥ 0.16, which stash follows): when a bucket
/// still has count left at a group's oldest snapshot, that snapshot is kept too.
/// `--keep-yearly 10` sees three years per group: restic 0.14 keeps the newest
/// snapshot of each, stash additionally each group's oldest (January 2023).
#[test]
fn forget_keeps_oldest_snapshot_when_count_is_left() {
    let fix = forget_fixture();
    let s = Scratch::new();
    let flags: Vec<String> = vec!["--keep-yearly".into(), "10".into()];
    let (restic, stash) = forget_both(fix, &s, "oldest", &flags);
    let mut oldest: BTreeMap<(String, String), (String, String)> = BTreeMap::new();
    for (id, (h, p, t)) in &fix.snaps {
        let e = oldest
            .entry((h.clone(), p.clone()))
            .or_insert((t.clone(), id.clone()));
        if *t < e.0 {
            *e = (t.clone(), id.clone());
        }
    }
    assert_eq!(oldest.len(), GROUPS.len());
    assert_eq!(
        restic.len(),
        3 * GROUPS.len(),
        "restic 0.14 keeps 3 per group"
    );
    let mut expected = restic.clone();
    for (_, id) in oldest.values() {
        assert!(!restic.contains(id), "restic 0.14 forgets the oldest {id}");
        expected.insert(id.clone());
    }
    assert_eq!(
        stash,
        expected,
        "stash must keep restic 0.14's set plus each group's oldest snapshot\n  only stash kept:\n    {}\n  missing:\n    {}",
        describe(fix, &stash.difference(&expected).cloned().collect()),
        describe(fix, &expected.difference(&stash).cloned().collect()),
    );
}

// ---------------------------------------------------------------------------------
// 2. forget --prune
// ---------------------------------------------------------------------------------

/// The files of source state `i`: a constant file, four ~300 KB files changing at
/// different rates (sizes change with content), one file only in state `i`, one
/// file deleted from state 2 on.
fn state_files(i: u64) -> Vec<(String, Vec<u8>)> {
    let mut files = vec![("common.txt".to_string(), b"always here\n".to_vec())];
    for j in 0..4u64 {
        let version = i / (j + 1);
        let seed = 1000 + j * 100 + version;
        files.push((
            format!("data/f{j}.bin"),
            random_bytes(seed, 300_000 + version as usize * 1000),
        ));
    }
    files.push((format!("only-in-{i}.bin"), random_bytes(5000 + i, 200_000)));
    if i < 2 {
        files.push(("old.txt".into(), b"deleted in state 2\n".to_vec()));
    }
    files
}

/// `stash forget --keep-last 2 --prune` after five backups of changing data: data/
/// shrinks, restic's check --read-data passes, and both remaining snapshots restore
/// (with restic) identically to the states they were taken from.
#[test]
fn forget_prune_keeps_last_two_intact() {
    let s = Scratch::new();
    let repo = s.repo("repo");
    repo.stash_init(2);
    let mut ids = Vec::new();
    for i in 0..5u64 {
        let files = state_files(i);
        let refs: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(p, d)| (p.as_str(), d.as_slice()))
            .collect();
        make_simple_tree(&s.path("src"), &refs);
        let summary = stash_backup_json(&repo, &s.root, &["src"]);
        ids.push(
            summary["snapshot_id"]
                .as_str()
                .unwrap_or_else(|| panic!("no snapshot_id in {summary}"))
                .to_string(),
        );
        fs::rename(s.path("src"), s.path(&format!("state-{i}"))).expect("rename state");
    }
    let before = repo.data_bytes();
    let out = repo
        .stash(&["forget", "--keep-last", "2", "--prune"])
        .cwd(&s.root)
        .ok();
    out.assert_no_panic();
    repo.assert_no_locks("stash forget --prune");
    let after = repo.data_bytes();
    assert!(
        after < before,
        "data/ must shrink: {before} -> {after} bytes\n{out}"
    );
    let remaining = snapshot_ids(&repo);
    assert_eq!(remaining.len(), 2, "{remaining:?}");
    for id in &ids[3..] {
        assert!(
            remaining.iter().any(|r| r.starts_with(id.as_str())),
            "snapshot {id} (one of the last two) must remain, got {remaining:?}"
        );
    }
    repo.restic_check_read_data();
    // restic (0.14 as stash) stores a backed-up directory under its base name.
    let rel = Path::new("src");
    for (i, id) in ids.iter().enumerate().skip(3) {
        let target = s.path(&format!("restored-{i}"));
        repo.restic(&["restore", id, "--target"]).arg(&target).ok();
        assert_same_tree(&s.path(&format!("state-{i}")), &target.join(rel));
    }
}

// ---------------------------------------------------------------------------------
// 3. SIGKILL during backup and prune
// ---------------------------------------------------------------------------------

/// Runs `cmd` and SIGKILLs it after `delay` if it is still running. `None`: it was
/// killed; `Some(took)`: it had already finished, successfully, after `took`.
fn run_and_kill(cmd: Cmd, delay: Duration) -> Option<Duration> {
    let shown = cmd.shown().to_string();
    let mut child = cmd.spawn();
    drop(child.stdin.take());
    let out = reader_drain(&mut child);
    let start = Instant::now();
    let mut killed = false;
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            let took = start.elapsed();
            let (stdout, stderr) = out.join().expect("reader");
            assert!(
                killed || st.success(),
                "`{shown}` failed on its own: {st}\n{}{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            );
            return (!killed).then_some(took);
        }
        if !killed && start.elapsed() >= delay {
            send_signal(child.id(), "KILL");
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Runs `cmd` on a fresh copy of `template` at `repo` and kills it at `fraction` of
/// `normal`. Run times swing with the load of the tests running beside this one: a run
/// that finishes before its kill is repeated on a fresh copy, its kill timed against the
/// duration it just took, up to three times. Returns the delay of the last attempt and
/// whether that attempt was killed.
fn kill_at_fraction(
    template: &Repo,
    repo: &Repo,
    normal: Duration,
    fraction: f64,
    cmd: impl Fn(&Repo) -> Cmd,
) -> (Duration, bool) {
    let mut yardstick = normal;
    let mut delay = yardstick.mul_f64(fraction);
    for _ in 0..3 {
        if repo.path.exists() {
            fs::remove_dir_all(&repo.path).expect("remove repo");
        }
        copy_dir(&template.path, &repo.path);
        delay = yardstick.mul_f64(fraction);
        match run_and_kill(cmd(repo), delay) {
            None => return (delay, true),
            Some(took) => yardstick = yardstick.min(took),
        }
    }
    (delay, false)
}

type Drained = std::thread::JoinHandle<(Vec<u8>, Vec<u8>)>;

fn reader_drain(child: &mut Child) -> Drained {
    use std::io::Read;
    let mut o = child.stdout.take().expect("stdout");
    let mut e = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        let t = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = e.read_to_end(&mut v);
            v
        });
        let mut v = Vec::new();
        let _ = o.read_to_end(&mut v);
        (v, t.join().unwrap_or_default())
    })
}

/// After a SIGKILL: `stash check` works directly (the dead process's lock is
/// stale), restic's check passes (after `restic unlock` if 0.14 insists).
/// Returns whether restic needed the unlock.
fn checks_after_kill(repo: &Repo, context: &str) -> bool {
    let out = repo.stash(&["check"]).run();
    assert_eq!(
        out.code,
        Some(0),
        "stash check must pass after a SIGKILL ({context})\n{out}"
    );
    out.assert_no_panic();
    restic_check(repo, false, context)
}

/// The fractions of an uninterrupted run at which runs are killed: 12 spread from 0 to
/// 66% (at least 10 must be killed).
fn kill_fractions() -> impl Iterator<Item = f64> {
    (0..12).map(|k| k as f64 * 0.06)
}

/// The fastest of three uninterrupted runs of `args`, each on a fresh copy of
/// `template`. The first run pays for a cold page cache; timing kills against it let
/// the warm runs that follow finish before their kill, so the minimum is the yardstick.
fn fastest_run(s: &Scratch, template: &Repo, args: &[&str]) -> (Duration, Repo) {
    let mut best = None;
    let mut last = None;
    for i in 0..3 {
        let repo = s.repo(&format!("measure{i}"));
        copy_dir(&template.path, &repo.path);
        let t0 = Instant::now();
        repo.stash(args).cwd(&s.root).ok();
        let took = t0.elapsed();
        best = Some(best.map_or(took, |b: Duration| b.min(took)));
        last = Some(repo);
    }
    (best.expect("three runs"), last.expect("three runs"))
}

/// After the rerun no complete lock is left; a partial lock file of the killed
/// process (the local backend's `<name>#<n>` staging file) may stay behind and is
/// only reported.
fn assert_no_complete_locks(repo: &Repo, context: &str, leftovers: &mut Vec<String>) {
    assert_eq!(repo.locks(), Vec::<String>::new(), "locks left ({context})");
    leftovers.extend(repo.lock_files());
}

/// `stash backup` of a 60 MB tree SIGKILLed at twelve moments from 0 to 66% of its fastest
/// uninterrupted run: the repository checks clean with both tools, and a rerun completes and
/// stores the data intact.
#[test]
fn sigkill_during_backup_leaves_a_consistent_repository() {
    let s = Scratch::new();
    let src = s.path("src");
    let files: Vec<(String, Vec<u8>)> = (0..12u64)
        .map(|i| {
            (
                format!("d{}/f{i}.bin", i % 3),
                random_bytes(700 + i, 5_000_000),
            )
        })
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, d)| (p.as_str(), d.as_slice()))
        .collect();
    make_simple_tree(&src, &refs);
    let template = s.repo("template");
    template.stash_init(2);

    let (normal, _) = fastest_run(&s, &template, &["backup", "src"]);

    let mut unlocks = 0;
    let mut killed = 0;
    let mut leftovers = Vec::new();
    for (k, fraction) in kill_fractions().enumerate() {
        let repo = s.repo(&format!("r{k}"));
        let (delay, was_killed) = kill_at_fraction(&template, &repo, normal, fraction, |r| {
            r.stash(&["backup", "src"]).cwd(&s.root)
        });
        killed += usize::from(was_killed);
        let ctx = format!("backup killed after {delay:?} of {normal:?}");
        if checks_after_kill(&repo, &ctx) {
            unlocks += 1;
        }
        // Whatever snapshot survived is intact.
        if !snapshot_ids(&repo).is_empty() {
            repo.stash(&["check", "--read-data"]).ok();
        }
        repo.stash(&["backup", "src"]).cwd(&s.root).ok();
        assert_no_complete_locks(&repo, &ctx, &mut leftovers);
        if k % 3 == 0 {
            restic_check(&repo, true, &ctx);
        } else {
            repo.stash(&["check", "--read-data"]).ok();
        }
        if k == 5 {
            let target = s.path("restored");
            repo.restic(&["restore", "latest", "--target"])
                .arg(&target)
                .ok();
            assert_same_tree(&src, &target.join("src"));
        }
        fs::remove_dir_all(&repo.path).expect("remove repo");
    }
    println!(
        "backup: normal run {normal:?}, {killed} of 12 runs killed, restic 0.14 needed unlock {unlocks} times, \
         partial lock files left: {leftovers:?}"
    );
    assert!(killed >= 10, "only {killed} runs were killed");
}

/// `stash prune --max-unused 0%` with half of the data unused, SIGKILLed at twelve
/// moments from 0 to 66% of its fastest uninterrupted run: both checks pass, the remaining snapshot
/// is intact, and a rerun of the prune completes.
#[test]
fn sigkill_during_prune_leaves_a_consistent_repository() {
    let s = Scratch::new();
    let files: Vec<(String, Vec<u8>)> = (0..10u64)
        .map(|i| (format!("f{i}.bin"), random_bytes(900 + i, 2_000_000)))
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, d)| (p.as_str(), d.as_slice()))
        .collect();
    // Snapshot 1 has all ten files, snapshot 2 only the even ones: forgetting 1
    // leaves half of every mixed pack unused.
    make_simple_tree(&s.path("src"), &refs);
    let template = s.repo("template");
    template.stash_init(2);
    let first = stash_backup_json(&template, &s.root, &["src"])["snapshot_id"]
        .as_str()
        .expect("snapshot_id")
        .to_string();
    for i in (1..10).step_by(2) {
        fs::remove_file(s.path(&format!("src/f{i}.bin"))).expect("rm");
    }
    template.stash(&["backup", "src"]).cwd(&s.root).ok();
    template.stash(&["forget", &first]).ok();
    fs::rename(s.path("src"), s.path("kept")).expect("rename");

    let (normal, measure) = fastest_run(&s, &template, &["prune", "--max-unused", "0%"]);
    assert!(
        measure.data_bytes() < template.data_bytes(),
        "the prune must free space"
    );

    let mut unlocks = 0;
    let mut killed = 0;
    let mut leftovers = Vec::new();
    for (k, fraction) in kill_fractions().enumerate() {
        let repo = s.repo(&format!("r{k}"));
        let (delay, was_killed) = kill_at_fraction(&template, &repo, normal, fraction, |r| {
            r.stash(&["prune", "--max-unused", "0%"])
        });
        killed += usize::from(was_killed);
        let ctx = format!("prune killed after {delay:?} of {normal:?}");
        if checks_after_kill(&repo, &ctx) {
            unlocks += 1;
        }
        if k % 3 == 1 {
            restic_check(&repo, true, &ctx);
        } else {
            let out = repo.stash(&["check", "--read-data"]).run();
            assert_eq!(out.code, Some(0), "{ctx}\n{out}");
        }
        repo.stash(&["prune", "--max-unused", "0%"]).ok();
        assert_no_complete_locks(&repo, &ctx, &mut leftovers);
        assert_eq!(snapshot_ids(&repo).len(), 1, "{ctx}");
        repo.stash(&["check", "--read-data"]).ok();
        if k % 4 == 2 {
            let target = s.path(&format!("restored-{k}"));
            repo.restic(&["restore", "latest", "--target"])
                .arg(&target)
                .ok();
            assert_same_contents(&s.path("kept"), &target.join("src"));
        }
        fs::remove_dir_all(&repo.path).expect("remove repo");
    }
    println!(
        "prune: normal run {normal:?}, {killed} of 12 runs killed, restic 0.14 needed unlock {unlocks} times, \
         partial lock files left: {leftovers:?}"
    );
    assert!(killed >= 10, "only {killed} runs were killed");
}

// ---------------------------------------------------------------------------------
// 4. Concurrency and locks against prune
// ---------------------------------------------------------------------------------

/// Two `stash backup`s and a `restic backup` into one repository at the same time
/// all succeed; restic's check --read-data passes and there are three new snapshots.
#[test]
fn concurrent_stash_and_restic_backups() {
    let s = Scratch::new();
    for (n, seed) in [("one", 11u64), ("two", 12), ("three", 13)] {
        let big = random_bytes(seed, 4_000_000);
        let small = format!("{n}\n");
        make_simple_tree(
            &s.path(n),
            &[("big.bin", &big), ("small.txt", small.as_bytes())],
        );
    }
    let repo = s.repo("repo");
    repo.stash_init(2);
    repo.stash(&["backup", "one"]).cwd(&s.root).ok();
    let before = snapshot_ids(&repo);
    let children = [
        repo.stash(&["backup", "one", "--force"]).cwd(&s.root),
        repo.stash(&["backup", "two"]).cwd(&s.root),
        repo.restic(&["backup", "three"]).cwd(&s.root),
    ]
    .map(|c| {
        let shown = c.shown().to_string();
        let mut child = c.spawn();
        drop(child.stdin.take());
        (shown, child)
    });
    for (shown, mut child) in children {
        let (code, stdout, stderr) = wait_capture(&mut child, COMMAND_TIMEOUT, &shown);
        assert_eq!(
            code,
            Some(0),
            "`{shown}` failed\n{}{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        );
    }
    repo.assert_no_locks("concurrent backups");
    let after = snapshot_ids(&repo);
    assert_eq!(after.len(), before.len() + 3, "{before:?} -> {after:?}");
    repo.restic_check_read_data();
}

/// `stash prune` while `restic backup --stdin` holds a live lock exits 11 naming the
/// lock; once that restic is SIGKILLed its lock looks dead (this host, PID gone) but
/// prune still refuses it, as restic does, and points to `stash unlock`, which
/// removes it; then prune succeeds.
#[test]
fn prune_refuses_live_and_dead_restic_locks_until_unlock() {
    let s = Scratch::new();
    make_simple_tree(&s.path("src"), &[("a.txt", b"alpha\n")]);
    let repo = s.repo("repo");
    repo.stash_init(2);
    repo.stash(&["backup", "src"]).cwd(&s.root).ok();

    let held = Held::start(
        repo.restic(&["backup", "--stdin", "--stdin-filename", "held.bin"]),
        &random_bytes(3, 100_000),
    );
    let lock = wait_lock(&repo, "restic backup --stdin");
    let out = repo.stash(&["prune"]).run();
    out.assert_code(11);
    out.assert_no_panic();
    assert!(
        out.stderr.contains("locked") && out.stderr.contains(&lock[..8]),
        "prune must say locked and name lock {lock}\n{out}"
    );
    assert!(
        repo.lock_files().iter().all(|l| l.starts_with(&lock[..8])),
        "prune must leave no lock of its own: {:?}",
        repo.lock_files()
    );
    // The held backup is unharmed: let it finish.
    let out = held.finish();
    out.assert_ok();
    repo.assert_no_locks("restic backup --stdin");

    // Now a stale one.
    let held = Held::start(
        repo.restic(&["backup", "--stdin", "--stdin-filename", "killed.bin"]),
        &random_bytes(4, 100_000),
    );
    let lock = wait_lock(&repo, "restic backup --stdin (to be killed)");
    held.sigkill();
    assert_eq!(repo.locks(), vec![lock.clone()], "SIGKILL leaves the lock");
    // Its PID is gone, but restic's lock does not say in which PID namespace it ran:
    // not proof, so prune is refused with a hint and the lock is left alone.
    let out = repo.stash(&["prune"]).run();
    out.assert_code(11);
    out.assert_no_panic();
    assert!(
        out.stderr.contains(&lock[..8]) && out.stderr.contains("stash unlock"),
        "prune must name lock {lock} and point to unlock\n{out}"
    );
    repo.assert_unlock_removes(&lock, "prune");
    repo.stash(&["prune"]).ok();
    repo.assert_no_locks("stash prune");
    repo.restic_check_read_data();
    assert_eq!(snapshot_ids(&repo).len(), 2);
}

// ---------------------------------------------------------------------------------
// 5. Corruption reports
// ---------------------------------------------------------------------------------

/// A lost data pack: `stash check` fails naming the pack and the snapshot whose
/// data it held, not the snapshot it did not touch.
#[test]
fn missing_pack_names_affected_snapshots() {
    let s = Scratch::new();
    let x = random_bytes(21, 2_000_000);
    let y = random_bytes(22, 2_000_000);
    make_simple_tree(&s.path("x"), &[("x.bin", &x)]);
    make_simple_tree(&s.path("y"), &[("y.bin", &y)]);
    let repo = s.repo("repo");
    repo.stash_init(2);
    let sx = stash_backup_json(&repo, &s.root, &["x"])["snapshot_id"]
        .as_str()
        .expect("id")
        .to_string();
    let packs_x: BTreeSet<(String, u64)> = repo.files("data").into_iter().collect();
    let sy = stash_backup_json(&repo, &s.root, &["y"])["snapshot_id"]
        .as_str()
        .expect("id")
        .to_string();
    let (pack, _) = packs_x
        .iter()
        .max_by_key(|(_, size)| *size)
        .expect("a pack")
        .clone();
    fs::remove_file(repo.pack_path(&pack)).expect("remove pack");
    let out = repo.stash(&["check"]).run();
    out.assert_failed();
    out.assert_no_panic();
    let all = format!("{}{}", out.stdout_str(), out.stderr);
    assert!(
        all.contains(&pack[..8]),
        "check must name pack {pack}\n{out}"
    );
    assert!(
        all.contains(&sx[..8]),
        "check must name the affected snapshot {sx}\n{out}"
    );
    assert!(
        !all.contains(&sy[..8]),
        "check must not call the intact snapshot {sy} damaged\n{out}"
    );
    repo.assert_no_locks("stash check of a repository with a missing pack");
}

/// Many small packs (one backup of one small new file at a time) are repacked into
/// few, as restic 0.14's prune repacks them; a fresh repository's few small packs are
/// left alone by both.
#[test]
fn prune_repacks_small_packs_as_restic_does() {
    let s = Scratch::new();
    let repo = s.repo("repo");
    repo.restic_init(2);
    std::fs::create_dir_all(s.path("src")).unwrap();
    for i in 0..12u64 {
        std::fs::write(s.path(&format!("src/f{i}")), random_bytes(i, 2000)).unwrap();
        repo.restic(&["backup", "src"]).cwd(&s.root).ok();
        if i == 3 {
            let few = s.repo("few");
            copy_dir(&repo.path, &few.path);
            let before = few.files("data").len();
            few.stash(&["prune"]).ok();
            assert_eq!(
                few.files("data").len(),
                before,
                "fewer than ten small packs"
            );
        }
    }
    let theirs = s.repo("theirs");
    copy_dir(&repo.path, &theirs.path);
    let before = repo.files("data").len();
    let blobs = repo.restic_blobs();
    repo.stash(&["prune"]).ok();
    theirs.restic(&["prune"]).ok();
    let (ours, restic) = (repo.files("data").len(), theirs.files("data").len());
    assert!(ours < before / 4, "{before} packs became {ours}");
    assert_eq!(ours, restic, "restic's prune leaves {restic} packs");
    assert_eq!(repo.restic_blobs(), blobs);
    repo.restic_check_read_data();
}

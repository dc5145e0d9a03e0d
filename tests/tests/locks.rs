//! Locks: every command removes its own, SIGINT and SIGTERM remove them, conflicting
//! locks of restic and stash are honoured (exit code 11), stale ones are ignored and
//! left for `unlock`, a live lock from another PID namespace is never removed, and a
//! lock that cannot be refreshed ends the command.

use std::{
    io::Write,
    process::Child,
    sync::mpsc,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::util::*;

/// After every stash command locks/ is empty and restic can check the repository
/// without `unlock`.
#[test]
fn every_command_removes_its_lock() {
    let s = Scratch::new();
    make_simple_tree(
        &s.path("src"),
        &[
            ("a.txt", b"alpha\n"),
            ("dir/b.bin", &random_bytes(3, 200_000)),
        ],
    );
    let repo = s.repo("repo");
    let pw_file = s.path("pw2");
    std::fs::write(&pw_file, "another").expect("write");
    let pw_file = pw_file.to_str().expect("utf8").to_string();
    let steps: Vec<(Vec<&str>, Option<&[u8]>)> = vec![
        (vec!["init"], None),
        (vec!["backup", "src"], None),
        (vec!["backup", "src"], None),
        (
            vec!["backup", "--stdin", "--stdin-filename", "x"],
            Some(b"stdin data"),
        ),
        (vec!["snapshots"], None),
        (vec!["ls", "latest"], None),
        (vec!["dump", "latest", "/x"], None),
        (vec!["restore", "latest", "--target", "out"], None),
        (vec!["cat", "config"], None),
        (vec!["check"], None),
        (vec!["check", "--read-data"], None),
        (vec!["check", "--read-data-subset", "1/2"], None),
        (vec!["key", "list"], None),
        (vec!["key", "add", "--new-password-file", &pw_file], None),
        // Failing commands must clean up too.
        (vec!["restore", "deadbeef", "--target", "out2"], None),
        (vec!["backup", "does-not-exist-anywhere"], None),
        (vec!["dump", "latest", "/nope"], None),
    ];
    for (args, stdin) in steps {
        let mut cmd = repo.stash(&args).cwd(&s.root);
        if let Some(data) = stdin {
            cmd = cmd.stdin(data);
        }
        let out = cmd.run();
        out.assert_no_panic();
        let shown = args.join(" ");
        repo.assert_no_locks(&format!("stash {shown}"));
        let check = repo.restic(&["check"]).run();
        assert_eq!(
            check.code,
            Some(0),
            "restic check right after `stash {shown}` (exit {:?}) failed\n{check}",
            out.code
        );
    }
}

/// A child whose stdin we keep open: a writer thread feeds `prefix` bytes and then
/// holds the pipe until told to close it.
struct Held {
    child: Child,
    close: Option<mpsc::Sender<()>>,
    writer: Option<JoinHandle<()>>,
}

impl Held {
    fn start(cmd: Cmd, prefix: Vec<u8>) -> Held {
        let mut child = cmd.spawn();
        let mut stdin = child.stdin.take().expect("stdin");
        let (tx, rx) = mpsc::channel::<()>();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&prefix);
            let _ = stdin.flush();
            // Hold the pipe open until told (or the test ends).
            let _ = rx.recv_timeout(Duration::from_secs(120));
            drop(stdin);
        });
        Held {
            child,
            close: Some(tx),
            writer: Some(writer),
        }
    }

    fn close_stdin(&mut self) {
        if let Some(tx) = self.close.take() {
            let _ = tx.send(());
        }
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }

    /// Closes stdin and collects the outcome.
    fn finish(mut self, shown: &str) -> Out {
        self.close_stdin();
        let (code, stdout, stderr) = wait_capture(&mut self.child, COMMAND_TIMEOUT, shown);
        Out {
            shown: shown.to_string(),
            code,
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.close.is_some() {
            let _ = self.child.kill();
            self.close_stdin();
            let _ = self.child.wait();
        }
    }
}

fn wait_lock(repo: &Repo, what: &str) -> String {
    wait_for(Duration::from_secs(30), || repo.locks().pop())
        .unwrap_or_else(|| panic!("{what} never created a lock file"))
}

fn initialised(s: &Scratch) -> Repo {
    make_simple_tree(&s.path("src"), &[("a.txt", b"alpha\n")]);
    let repo = s.repo("repo");
    repo.stash_init(2);
    repo.stash(&["backup", "src"]).cwd(&s.root).ok();
    repo
}

/// Starts `stash backup --stdin` on a pipe kept open, waits for its lock, lets it
/// hold the lock for `hold` and sends `signal` (INT or TERM).
fn interrupted_stdin_backup(repo: &Repo, hold: Duration, signal: &str) -> (Held, String) {
    let cmd = repo.stash(&["backup", "--stdin", "--stdin-filename", "big.bin"]);
    let shown = cmd.shown().to_string();
    let held = Held::start(cmd, random_bytes(5, 3_000_000));
    wait_lock(repo, "stash backup --stdin");
    std::thread::sleep(hold);
    send_signal(held.child.id(), signal);
    (held, shown)
}

/// After SIGINT (SIGTERM) the lock goes away within 5 s, the exit code is 130 (143)
/// (stdin is closed only after the lock is gone), no snapshot is written, restic's
/// check passes without unlock, and stash carries on with the repository.
fn signal_removes_lock(hold: Duration, signal: &str, code: i32) {
    let s = Scratch::new();
    let repo = initialised(&s);
    let (mut held, shown) = interrupted_stdin_backup(&repo, hold, signal);
    let gone = wait_for(Duration::from_secs(5), || {
        repo.lock_files().is_empty().then_some(())
    });
    held.close_stdin();
    let out = held.finish(&shown);
    assert!(
        gone.is_some(),
        "lock still there 5 s after SIG{signal}: {:?}\n{out}",
        repo.lock_files()
    );
    out.assert_code(code);
    out.assert_no_panic();
    repo.assert_no_locks(signal);
    assert_eq!(
        repo.restic_snapshots().len(),
        1,
        "no snapshot from an interrupted backup"
    );
    repo.restic(&["check"]).ok();
    repo.stash(&["backup", "src"]).cwd(&s.root).ok();
    repo.stash(&["check", "--read-data"]).ok();
}

/// SIGINT once the backup has held its lock for a second.
#[test]
fn sigint_during_stdin_backup_removes_lock() {
    signal_removes_lock(Duration::from_secs(1), "INT", 130);
}

/// SIGTERM, what Kubernetes sends a container it stops, is handled like Ctrl-C, with
/// the exit code a shell reports for it.
#[test]
fn sigterm_during_stdin_backup_removes_lock() {
    signal_removes_lock(Duration::from_secs(1), "TERM", 143);
}

/// SIGINT the moment the lock file appears.
#[test]
fn sigint_right_after_locking_removes_lock() {
    signal_removes_lock(Duration::ZERO, "INT", 130);
}

/// Ctrl-C during `backup --stdin` while the pipe stays open: exit 130 within a few
/// seconds, lock removed, restic check passes.
#[test]
fn sigint_during_stdin_backup_exits_130_promptly() {
    let s = Scratch::new();
    let repo = initialised(&s);
    let (mut held, shown) = interrupted_stdin_backup(&repo, Duration::from_secs(1), "INT");
    let start = Instant::now();
    let status = wait_for(Duration::from_secs(10), || {
        held.child.try_wait().expect("try_wait")
    });
    let waited = start.elapsed();
    let out = held.finish(&shown);
    assert!(
        status.is_some(),
        "stash did not exit within {waited:?} of SIGINT while stdin stayed open; it exited \
         only after stdin was closed\n{out}"
    );
    out.assert_code(130);
    repo.assert_no_locks("SIGINT");
    repo.restic(&["check"]).ok();
}

/// restic holds an exclusive lock (`restic key passwd` waiting for the new password
/// on an open stdin): stash commands that lock exit 11 naming it; snapshots needs no
/// lock; once restic is gone stash works again.
#[test]
fn live_exclusive_restic_lock_blocks_stash() {
    let s = Scratch::new();
    let repo = initialised(&s);
    let cmd = repo.restic(&["key", "passwd"]);
    let shown = cmd.shown().to_string();
    let held = Held::start(cmd, Vec::new());
    let lock = wait_lock(&repo, "restic key passwd");
    for args in [
        vec!["backup", "src"],
        vec!["check"],
        vec!["restore", "latest", "--target", "out"],
    ] {
        let out = repo.stash(&args).cwd(&s.root).run();
        out.assert_code(11);
        out.assert_no_panic();
        assert!(
            out.stderr.contains("locked") && out.stderr.contains(&lock[..8]),
            "the error must say locked and name lock {lock}\n{out}"
        );
        assert_eq!(repo.lock_files(), vec![lock.clone()], "stash left a lock");
    }
    repo.stash(&["snapshots"]).ok();
    // restic's key passwd gets an empty password and gives up, removing its lock.
    let out = held.finish(&shown);
    assert!(out.code.is_some(), "{out}");
    repo.assert_no_locks("restic key passwd");
    repo.stash(&["backup", "src"]).cwd(&s.root).ok();
}

/// stash holds a shared lock (a `backup --stdin` reading an open pipe): exclusive
/// operations of stash (exit 11) and restic (check) are refused, another backup
/// (shared) goes ahead, and the held backup completes once its input ends.
#[test]
fn live_shared_stash_lock_blocks_exclusive_operations() {
    let s = Scratch::new();
    let repo = initialised(&s);
    let cmd = repo.stash(&[
        "--json",
        "backup",
        "--stdin",
        "--stdin-filename",
        "held.bin",
    ]);
    let shown = cmd.shown().to_string();
    let data = random_bytes(6, 1_000_000);
    let held = Held::start(cmd, data.clone());
    let lock = wait_lock(&repo, "stash backup --stdin");

    let out = repo.stash(&["check"]).run();
    out.assert_code(11);
    assert!(out.stderr.contains(&lock[..8]), "{out}");
    let out = repo.restic(&["check"]).run();
    out.assert_failed();
    assert!(
        out.stderr.contains("locked"),
        "restic must see stash's lock\n{out}"
    );
    // Shared with shared is fine, for stash and for restic.
    repo.stash(&["backup", "src"]).cwd(&s.root).ok();
    repo.restic(&["backup", "src"]).cwd(&s.root).ok();
    assert_eq!(repo.lock_files(), vec![lock.clone()]);

    let out = held.finish(&shown);
    out.assert_ok();
    repo.assert_no_locks("stash backup --stdin");
    repo.restic(&["check", "--read-data"]).ok();
    let dumped = repo.restic(&["dump", "latest", "held.bin"]).ok().stdout;
    assert!(dumped == data, "the held backup stored other bytes");
}

/// A lock left by restic killed with SIGKILL: its PID is gone, but restic's lock
/// does not say in which PID namespace it ran, so stash refuses it (exit 11) with a
/// hint, as restic would, and `stash unlock` removes it (restic's rule).
#[test]
fn dead_restic_lock_blocks_until_unlock() {
    let s = Scratch::new();
    let repo = initialised(&s);
    let held = Held::start(repo.restic(&["key", "passwd"]), Vec::new());
    let lock = wait_lock(&repo, "restic key passwd");
    let mut held = held;
    send_signal(held.child.id(), "KILL");
    let _ = held.child.wait();
    drop(held);
    assert_eq!(repo.locks(), vec![lock.clone()], "SIGKILL leaves the lock");
    let out = repo.stash(&["check"]).run();
    out.assert_code(11);
    assert!(
        out.stderr.contains(&lock[..8]) && out.stderr.contains("stash unlock"),
        "the error must name lock {lock} and point to unlock\n{out}"
    );
    repo.assert_unlock_removes(&lock, "check");
    repo.stash(&["check"]).ok();
    repo.restic(&["check"]).ok();
}

/// A lock of a SIGKILLed stash from this PID namespace is provably stale: the next
/// exclusive command goes ahead and says it ignores it, but leaves the file for
/// `unlock`.
#[test]
fn dead_stash_lock_of_this_namespace_is_ignored_and_left_for_unlock() {
    let s = Scratch::new();
    let repo = initialised(&s);
    let (mut held, _) = interrupted_stdin_backup(&repo, Duration::ZERO, "KILL");
    let _ = held.child.wait();
    drop(held);
    let lock = repo.locks().pop().expect("SIGKILL leaves the lock");
    let out = repo.stash(&["check"]).ok();
    assert!(
        out.stderr.contains("ignoring stale") && out.stderr.contains(&lock[..8]),
        "check must say it ignores lock {lock}\n{out}"
    );
    repo.assert_unlock_removes(&lock, "check");
    repo.restic(&["check"]).ok();
}

/// A PID that no process of this namespace has, nor the next few.
fn free_pid() -> u32 {
    let max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(32768);
    (max / 2..max - 10)
        .rev()
        .find(|p| (*p..p + 8).all(|q| !std::path::Path::new(&format!("/proc/{q}")).exists()))
        .expect("a free PID range")
}

/// A live `stash backup --stdin` in another PID namespace of this host, as a
/// sidecar looks from the next container of its pod: same host name, a PID that
/// does not run here. Nothing removes its lock: prune is refused with a hint, even
/// `unlock` keeps it, a shared backup goes ahead; the held backup then completes.
#[test]
fn live_lock_from_another_pid_namespace_is_never_removed() {
    let s = Scratch::new();
    let repo = initialised(&s);
    let last = free_pid();
    // `; exit` keeps the shell from exec-ing stash, which would make it PID 1.
    let script = format!(
        "echo {last} > /proc/sys/kernel/ns_last_pid && \"$0\" -r \"$1\" backup --stdin \
         --stdin-filename held.bin; exit $?"
    );
    let cmd = Cmd::new(std::path::Path::new("/usr/bin/unshare"))
        .args([
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",
            "sh",
            "-c",
        ])
        .arg(&script)
        .arg(stash_bin())
        .arg(&repo.path)
        .env("RESTIC_PASSWORD", &repo.password);
    let shown = cmd.shown().to_string();
    let data = random_bytes(8, 500_000);
    let held = Held::start(cmd, data.clone());
    let lock = wait_lock(&repo, "stash backup --stdin in another PID namespace");
    let doc = repo.restic(&["cat", "lock", &lock]).ok().json();
    let pid = doc["pid"].as_u64().expect("pid");
    assert_eq!(pid, u64::from(last) + 1, "{doc}");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "PID {pid} runs here too: the test proves nothing"
    );

    let out = repo.stash(&["prune"]).run();
    out.assert_code(11);
    out.assert_no_panic();
    assert!(
        out.stderr.contains(&lock[..8]) && out.stderr.contains("another PID namespace"),
        "prune must name lock {lock} and say why it may be live\n{out}"
    );
    repo.stash(&["unlock"]).ok();
    repo.stash(&["backup", "src"]).cwd(&s.root).ok();
    assert_eq!(
        repo.lock_files(),
        vec![lock.clone()],
        "the live lock was removed"
    );

    let out = held.finish(&shown);
    out.assert_ok();
    repo.assert_no_locks("the held backup");
    repo.restic(&["check"]).ok();
    let dumped = repo.restic(&["dump", "latest", "held.bin"]).ok().stdout;
    assert!(dumped == data, "the held backup stored other bytes");
}

/// A store that stops taking lock files while a backup runs (here `locks/` replaced
/// by a plain file): with refreshes every 400 ms the backup gives its lock up after
/// 1.8 s, long before the lock could be taken for stale, and ends with an error
/// naming the lock; the repository stays consistent.
#[test]
fn failed_lock_refreshes_end_the_backup() {
    let s = Scratch::new();
    let repo = initialised(&s);
    let cmd = repo
        .stash(&["backup", "--stdin", "--stdin-filename", "big.bin"])
        .env("STASH_TEST_LOCK_REFRESH_MS", "400");
    let shown = cmd.shown().to_string();
    let mut held = Held::start(cmd, random_bytes(9, 3_000_000));
    let lock = wait_lock(&repo, "stash backup --stdin");
    // Let the re-check that follows taking the lock (list, then read each lock)
    // finish first: breaking `locks/` in between fails that check instead, with
    // an error naming the lock file, which is not what this test is about. The
    // backup waits on its open stdin meanwhile, refreshing its lock.
    std::thread::sleep(Duration::from_secs(1));
    let locks = repo.path.join("locks");
    let away = repo.path.join("locks.away");
    std::fs::rename(&locks, &away).expect("move locks/ away");
    std::fs::write(&locks, b"not a directory").expect("write");
    let start = Instant::now();
    let status = wait_for(Duration::from_secs(20), || {
        held.child.try_wait().expect("try_wait")
    });
    let waited = start.elapsed();
    std::fs::remove_file(&locks).expect("rm");
    std::fs::rename(&away, &locks).expect("move locks/ back");
    held.close_stdin();
    let out = held.finish(&shown);
    assert!(
        status.is_some(),
        "the backup kept running without its lock\n{out}"
    );
    out.assert_code(1);
    out.assert_no_panic();
    assert!(
        out.stderr.contains("could not be refreshed"),
        "the error must say the lock could not be refreshed\n{out}"
    );
    assert!(waited < Duration::from_secs(15), "{waited:?}");
    assert_eq!(
        repo.restic_snapshots().len(),
        1,
        "no snapshot without a lock"
    );
    // The lock file the store kept (the first or a refreshed one) is ours and dead.
    let left = repo.locks();
    assert!(left.len() <= 1, "{left:?} (first lock {lock})");
    repo.stash(&["unlock"]).ok();
    repo.assert_no_locks("stash unlock");
    repo.restic(&["check"]).ok();
    repo.stash(&["backup", "src"]).cwd(&s.root).ok();
}

/// `--retry-lock` waits for a conflicting lock to go, `--no-lock` lets check and
/// restore read past it, and without either the command fails at once with 11.
#[test]
fn retry_lock_waits_and_no_lock_reads_past_a_lock() {
    let s = Scratch::new();
    let repo = initialised(&s);
    let cmd = repo.restic(&["backup", "--stdin", "--stdin-filename", "held"]);
    let shown = cmd.shown().to_string();
    let held = Held::start(cmd, b"held open".to_vec());
    wait_lock(&repo, "restic backup --stdin");

    repo.stash(&["check"]).run().assert_code(11);
    repo.stash(&["--no-lock", "check", "--read-data"]).ok();
    let target = s.path("out");
    repo.stash(&["--no-lock", "restore", "latest", "--target"])
        .arg(&target)
        .ok();
    assert_eq!(std::fs::read(target.join("src/a.txt")).unwrap(), b"alpha\n");
    repo.stash(&["--retry-lock", "5", "check"])
        .run()
        .assert_failed();

    let t0 = Instant::now();
    let closer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        held.finish(&shown)
    });
    let waited = repo.stash(&["--retry-lock", "1m", "check"]).run();
    closer.join().expect("closer").assert_ok();
    waited.assert_ok();
    assert!(
        waited.stderr.contains("already locked, waiting up to 60s"),
        "{waited}"
    );
    assert!(t0.elapsed() >= Duration::from_secs(2));
    repo.assert_no_locks("check --retry-lock");
}

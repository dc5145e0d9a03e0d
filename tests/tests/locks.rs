//! Locks: every command removes its own, Ctrl-C removes them, conflicting locks of
//! restic and stash are honoured (exit code 11), stale ones are cleaned up.

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

/// A lock left by a process that no longer exists (here: restic killed with
/// SIGKILL) does not block stash: it is removed and the backup goes ahead.
#[test]
fn stale_lock_of_dead_process_is_removed() {
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
    out.assert_ok();
    assert!(
        out.stderr.contains(&lock[..8]),
        "the removal of the stale lock must be reported\n{out}"
    );
    repo.assert_no_locks("stash check after a stale lock");
    repo.restic(&["check"]).ok();
}

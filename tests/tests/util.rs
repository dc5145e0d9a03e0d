//! Helpers shared by the integration tests: locating (and if needed building) the
//! `stash` binary, running `stash` and `restic` with a clean environment, building a
//! rich source tree, and comparing two directory trees in every detail a restore
//! must reproduce.

#![allow(dead_code)]

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    ffi::{OsStr, OsString},
    fmt, fs,
    io::{Read, Write},
    os::unix::{
        ffi::OsStrExt,
        fs::{FileTypeExt, MetadataExt, PermissionsExt},
    },
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant, SystemTime},
};

use filetime::FileTime;
use rand::{rngs::StdRng, RngCore, SeedableRng};
use sha2::{Digest, Sha256};

/// Every command run by the tests is killed after this long (a hang is a failure).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(180);

/// The password of every repository the tests create.
pub const PASSWORD: &str = "correct horse battery staple";

// ---------------------------------------------------------------------------------
// Binaries
// ---------------------------------------------------------------------------------

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent directory")
        .to_path_buf()
}

/// The directory of this profile's artifacts (`target/debug`): the test executable
/// lives in its `deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe
        .parent()
        .expect("test executable has a directory")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

fn newest_mtime(path: &Path, newest: &mut SystemTime) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_dir() {
        if path.file_name() == Some(OsStr::new("target")) {
            return;
        }
        if let Ok(rd) = fs::read_dir(path) {
            for e in rd.flatten() {
                newest_mtime(&e.path(), newest);
            }
        }
    } else if let Ok(t) = meta.modified() {
        if t > *newest {
            *newest = t;
        }
    }
}

/// The newest modification time of anything the `stash` binary is built from.
fn newest_source() -> SystemTime {
    let root = workspace_root();
    let mut newest = SystemTime::UNIX_EPOCH;
    for p in ["Cargo.toml", "Cargo.lock"] {
        newest_mtime(&root.join(p), &mut newest);
    }
    for krate in ["agent", "repo-format", "chunker", "operator"] {
        newest_mtime(&root.join(krate).join("Cargo.toml"), &mut newest);
        newest_mtime(&root.join(krate).join("src"), &mut newest);
    }
    newest
}

fn build_stash(dir: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace_root())
        .args(["build", "-p", "stash-operator", "--bin", "stash"]);
    if let Some(target_dir) = dir.parent() {
        cmd.arg("--target-dir").arg(target_dir);
    }
    match dir.file_name().and_then(OsStr::to_str) {
        Some("debug") | None => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(profile) => {
            cmd.args(["--profile", profile]);
        }
    }
    // The engine may be mid-edit by someone else: retry a couple of times.
    let mut last = String::new();
    for attempt in 0..3 {
        if attempt > 0 {
            eprintln!("stash build failed, retrying in 20 s:\n{last}");
            std::thread::sleep(Duration::from_secs(20));
        }
        let out = cmd
            .output()
            .expect("running cargo build for the stash binary");
        if out.status.success() {
            return;
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
    }
    panic!("`cargo build -p stash-operator --bin stash` failed:\n{last}");
}

/// The `stash` binary (`target/<profile>/stash`), built once if missing or older than
/// its sources.
pub fn stash_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = profile_dir();
        let bin = dir.join("stash");
        let fresh = fs::metadata(&bin)
            .and_then(|m| m.modified())
            .map(|t| t >= newest_source())
            .unwrap_or(false);
        if !fresh {
            build_stash(&dir);
        }
        assert!(
            bin.is_file(),
            "the stash binary {} does not exist after building it",
            bin.display()
        );
        bin
    })
}

/// restic, the oracle. Missing restic is a failure, never a skip.
pub fn restic_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join("restic"))
                    .collect()
            })
            .unwrap_or_default();
        candidates.push("/usr/bin/restic".into());
        let bin = candidates
            .into_iter()
            .find(|p| p.is_file())
            .unwrap_or_else(|| {
                panic!(
                    "restic is required by these tests (it is the oracle) but was not found \
                 in PATH or at /usr/bin/restic; install it (`apt-get install restic`)"
                )
            });
        let out = Command::new(&bin)
            .arg("version")
            .output()
            .unwrap_or_else(|e| panic!("running {} version: {e}", bin.display()));
        assert!(
            out.status.success(),
            "{} version failed: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        bin
    })
}

// ---------------------------------------------------------------------------------
// Running commands
// ---------------------------------------------------------------------------------

/// A command to run, with a clean restic-related environment.
pub struct Cmd {
    cmd: Command,
    shown: String,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
}

fn show(a: &OsStr) -> String {
    let s = a.to_string_lossy();
    if s.is_empty() || s.contains([' ', '"', '\'', '*', '\\']) {
        format!("{s:?}")
    } else {
        s.into_owned()
    }
}

impl Cmd {
    /// `prog` with no restic variables set, `TZ=UTC`.
    pub fn new(prog: &Path) -> Self {
        let mut cmd = Command::new(prog);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("RESTIC_") {
                cmd.env_remove(&k);
            }
        }
        cmd.env("TZ", "UTC").env_remove("RUST_LOG");
        let name = prog.file_name().unwrap_or(prog.as_os_str());
        Cmd {
            cmd,
            shown: show(name),
            stdin: None,
            timeout: COMMAND_TIMEOUT,
        }
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.shown.push(' ');
        self.shown.push_str(&show(a.as_ref()));
        self.cmd.arg(a);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for a in args {
            self = self.arg(a);
        }
        self
    }

    pub fn env(mut self, k: &str, v: impl AsRef<OsStr>) -> Self {
        self.cmd.env(k, v);
        self
    }

    pub fn env_remove(mut self, k: &str) -> Self {
        self.cmd.env_remove(k);
        self
    }

    pub fn cwd(mut self, dir: &Path) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }

    /// How the command is shown in messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Starts the command with piped stdin, stdout and stderr.
    pub fn spawn(mut self) -> Child {
        self.cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting `{}`: {e}", self.shown))
    }

    /// Runs to completion (killed after [`COMMAND_TIMEOUT`]) and captures everything.
    pub fn run(mut self) -> Out {
        let mut child = self
            .cmd
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting `{}`: {e}", self.shown));
        let writer = child.stdin.take().map(|mut w| {
            let data = self.stdin.take().unwrap_or_default();
            std::thread::spawn(move || {
                // The command may exit without reading everything.
                let _ = w.write_all(&data);
            })
        });
        let (code, stdout, stderr) = wait_capture(&mut child, self.timeout, &self.shown);
        if let Some(w) = writer {
            let _ = w.join();
        }
        Out {
            shown: self.shown,
            code,
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    /// Runs and asserts exit code 0.
    pub fn ok(self) -> Out {
        let out = self.run();
        out.assert_ok();
        out
    }
}

fn reader_thread(
    r: Option<impl Read + Send + 'static>,
) -> Option<std::thread::JoinHandle<Vec<u8>>> {
    r.map(|mut r| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    })
}

/// Waits for `child` (stdin already taken or null), collecting stdout and stderr;
/// kills it and panics after `timeout`.
pub fn wait_capture(
    child: &mut Child,
    timeout: Duration,
    shown: &str,
) -> (Option<i32>, Vec<u8>, Vec<u8>) {
    let out = reader_thread(child.stdout.take());
    let err = reader_thread(child.stderr.take());
    let status = wait_timeout(child, timeout);
    let stdout = out
        .map(|t| t.join().unwrap_or_default())
        .unwrap_or_default();
    let stderr = err
        .map(|t| t.join().unwrap_or_default())
        .unwrap_or_default();
    match status {
        Some(s) => (s.code(), stdout, stderr),
        None => {
            panic!(
                "`{shown}` did not finish within {timeout:?} and was killed\nstderr:\n{}",
                String::from_utf8_lossy(&stderr)
            )
        }
    }
}

/// Waits up to `timeout`; on timeout kills the child and returns None.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return Some(s);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What a finished command did.
pub struct Out {
    pub shown: String,
    /// None when killed by a signal.
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n[... {} more bytes]", &s[..end], s.len() - end)
}

impl fmt::Display for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "command: {}", self.shown)?;
        match self.code {
            Some(c) => writeln!(f, "exit code: {c}")?,
            None => writeln!(f, "killed by a signal")?,
        }
        writeln!(f, "--- stdout ---\n{}", clip(&self.stdout_str(), 4000))?;
        write!(f, "--- stderr ---\n{}", clip(&self.stderr, 4000))
    }
}

impl Out {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// The exit code (panics if the process died of a signal).
    pub fn code(&self) -> i32 {
        self.code
            .unwrap_or_else(|| panic!("process died of a signal\n{self}"))
    }

    pub fn assert_ok(&self) {
        assert_eq!(self.code, Some(0), "command failed\n{self}");
    }

    pub fn assert_code(&self, code: i32) {
        assert_eq!(self.code, Some(code), "unexpected exit code\n{self}");
    }

    pub fn assert_failed(&self) {
        assert!(
            self.code.is_some_and(|c| c != 0),
            "command should have failed with a non-zero exit code\n{self}"
        );
    }

    /// No Rust panic and no abort.
    pub fn assert_no_panic(&self) {
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("RUST_BACKTRACE"),
            "the command panicked\n{self}"
        );
        assert!(
            self.code.is_some() && self.code != Some(101),
            "the command crashed\n{self}"
        );
    }

    /// stdout as one JSON document.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON: {e}\n{self}"))
    }

    /// stdout as JSON lines (empty lines skipped).
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .split(|b| *b == b'\n')
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
            .map(|l| {
                serde_json::from_slice(l).unwrap_or_else(|e| {
                    panic!(
                        "stdout line {:?} is not JSON: {e}\n{self}",
                        String::from_utf8_lossy(l)
                    )
                })
            })
            .collect()
    }

    /// The stdout lines.
    pub fn lines(&self) -> Vec<String> {
        self.stdout_str().lines().map(String::from).collect()
    }
}

// ---------------------------------------------------------------------------------
// Scratch directories and repositories
// ---------------------------------------------------------------------------------

/// A temporary directory (deleted when dropped) with a canonical path.
pub struct Scratch {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
}

impl Scratch {
    pub fn new() -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("stash-it-")
            .tempdir()
            .expect("creating a temporary directory");
        let root = tmp.path().canonicalize().expect("canonicalize tempdir");
        Scratch { _tmp: tmp, root }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// A repository at `<root>/<name>` (not yet initialised).
    pub fn repo(&self, name: &str) -> Repo {
        Repo::new(self.root.join(name), PASSWORD)
    }
}

/// A repository location and its password.
#[derive(Clone)]
pub struct Repo {
    pub path: PathBuf,
    pub password: String,
}

impl Repo {
    pub fn new(path: PathBuf, password: &str) -> Self {
        Repo {
            path,
            password: password.to_string(),
        }
    }

    /// `stash -r REPO ARGS...` with RESTIC_PASSWORD set.
    pub fn stash<S: AsRef<OsStr>>(&self, args: &[S]) -> Cmd {
        Cmd::new(stash_bin())
            .arg("-r")
            .arg(&self.path)
            .args(args)
            .env("RESTIC_PASSWORD", &self.password)
    }

    /// `restic --no-cache -r REPO ARGS...` with RESTIC_PASSWORD set.
    pub fn restic<S: AsRef<OsStr>>(&self, args: &[S]) -> Cmd {
        Cmd::new(restic_bin())
            .args(["--no-cache", "-r"])
            .arg(&self.path)
            .args(args)
            .env("RESTIC_PASSWORD", &self.password)
    }

    pub fn stash_init(&self, version: u32) {
        self.stash(&["init", "--repository-version", &version.to_string()])
            .ok();
    }

    pub fn restic_init(&self, version: u32) {
        self.restic(&["init", "--repository-version", &version.to_string()])
            .ok();
    }

    /// Names and sizes of the files of one kind (`data` recurses into its
    /// subdirectories).
    pub fn files(&self, kind: &str) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        fn walk(dir: &Path, out: &mut Vec<(String, u64)>) {
            let Ok(rd) = fs::read_dir(dir) else { return };
            for e in rd.flatten() {
                let m = e.metadata().expect("metadata");
                if m.is_dir() {
                    walk(&e.path(), out);
                } else {
                    out.push((e.file_name().to_string_lossy().into_owned(), m.len()));
                }
            }
        }
        walk(&self.path.join(kind), &mut out);
        out.sort();
        out
    }

    /// The path of a pack file by id.
    pub fn pack_path(&self, id: &str) -> PathBuf {
        self.path.join("data").join(&id[..2]).join(id)
    }

    /// Total bytes under `data/`.
    pub fn data_bytes(&self) -> u64 {
        self.files("data").iter().map(|(_, s)| s).sum()
    }

    /// The names of the files in `locks/` (restic's `<id>-tmp-N` files of a write in
    /// progress included).
    pub fn lock_files(&self) -> Vec<String> {
        self.files("locks").into_iter().map(|(n, _)| n).collect()
    }

    /// The complete lock files: named by a 64-digit hex id.
    pub fn locks(&self) -> Vec<String> {
        self.lock_files()
            .into_iter()
            .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
            .collect()
    }

    pub fn assert_no_locks(&self, after: &str) {
        let locks = self.lock_files();
        assert!(
            locks.is_empty(),
            "locks/ is not empty after `{after}`: {locks:?}"
        );
    }

    /// `lock` is the one lock left (`after` did not remove it), and `stash unlock`
    /// removes it, naming it.
    pub fn assert_unlock_removes(&self, lock: &str, after: &str) {
        assert_eq!(
            self.locks(),
            vec![lock.to_string()],
            "{after} removed a lock"
        );
        let out = self.stash(&["unlock"]).ok();
        assert!(out.stdout_str().contains(&lock[..8]), "{out}");
        self.assert_no_locks("stash unlock");
    }

    /// `restic list blobs` as (type, id) pairs.
    pub fn restic_blobs(&self) -> BTreeSet<(String, String)> {
        self.restic(&["list", "blobs"])
            .ok()
            .lines()
            .iter()
            .filter_map(|l| {
                let (t, id) = l.split_once(' ')?;
                Some((t.to_string(), id.trim().to_string()))
            })
            .collect()
    }

    /// Ids of the data blobs, as restic lists them.
    pub fn restic_data_blobs(&self) -> BTreeSet<String> {
        self.restic_blobs()
            .into_iter()
            .filter(|(t, _)| t == "data")
            .map(|(_, id)| id)
            .collect()
    }

    /// For each pack in restic's view of the index: the blob types and ids it holds.
    pub fn restic_pack_contents(&self) -> HashMap<String, Vec<(String, String)>> {
        let mut packs: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for idx in self.restic(&["list", "index"]).ok().lines() {
            let idx = idx.trim();
            if idx.is_empty() {
                continue;
            }
            let v = self.restic(&["cat", "index", idx]).ok().json();
            for p in v["packs"].as_array().expect("index has packs") {
                let id = p["id"].as_str().expect("pack id").to_string();
                let entry = packs.entry(id).or_default();
                for b in p["blobs"].as_array().expect("pack has blobs") {
                    entry.push((
                        b["type"].as_str().expect("blob type").to_string(),
                        b["id"].as_str().expect("blob id").to_string(),
                    ));
                }
            }
        }
        packs
    }

    /// `restic snapshots --json`.
    pub fn restic_snapshots(&self) -> Vec<serde_json::Value> {
        self.restic(&["snapshots", "--json"])
            .ok()
            .json()
            .as_array()
            .expect("snapshots --json is an array")
            .clone()
    }

    /// `restic check --read-data` must pass.
    pub fn restic_check_read_data(&self) {
        let out = self.restic(&["check", "--read-data"]).run();
        assert_eq!(out.code, Some(0), "restic check --read-data failed\n{out}");
        assert!(
            out.stdout_str().contains("no errors were found"),
            "restic check did not report success\n{out}"
        );
    }
}

// ---------------------------------------------------------------------------------
// Source trees
// ---------------------------------------------------------------------------------

/// Copies a directory tree (regular files and directories only, as repositories are).
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
    for e in fs::read_dir(from).expect("read_dir").flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type().expect("file_type").is_dir() {
            copy_dir(&src, &dst);
        } else {
            fs::copy(&src, &dst)
                .unwrap_or_else(|e| panic!("copy {} -> {}: {e}", src.display(), dst.display()));
        }
    }
}

/// Deterministic pseudo-random bytes.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    StdRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The base mtime of the rich tree: 1_600_000_000.123456789.
pub const BASE_SECS: i64 = 1_600_000_000;
pub const BASE_NANOS: u32 = 123_456_789;

/// What [`make_rich_tree`] made.
pub struct RichTree {
    /// Paths (relative to the tree root) of regular files, one per directory entry
    /// (hard links count once per name).
    pub regular_files: Vec<PathBuf>,
    /// Every path relative to the root, the root excluded.
    pub all_paths: Vec<PathBuf>,
    /// Bytes of regular file content (hard links once per name).
    pub file_bytes: u64,
    /// Whether the `user.comment` xattrs could be set.
    pub xattrs: bool,
}

fn os(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}

fn mtime(i: i64) -> FileTime {
    FileTime::from_unix_time(BASE_SECS + i * 3_600, BASE_NANOS)
}

/// Sets atime and mtime of `p` without following a symlink.
pub fn set_times(p: &Path, t: FileTime) {
    filetime::set_symlink_file_times(p, t, t)
        .unwrap_or_else(|e| panic!("setting times of {}: {e}", p.display()));
}

fn write(p: &Path, data: &[u8]) {
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).expect("create_dir_all");
    }
    fs::write(p, data).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

/// Creates at `root` (which must not exist) a tree with every kind of entry a
/// restore has to reproduce: a ~3 MB random file and a 9 MB one (several chunks),
/// text, empty file, empty dir, nested dirs, symlinks (to a file, to a dir,
/// dangling), hard links, a fifo, `user.comment` xattrs, permission bits 0600, 0755,
/// 0444, 0700 and 01777, names with spaces, unicode, `"` `\` `<&>` and a raw 0xff
/// byte, and fixed mtimes with nanoseconds.
pub fn make_rich_tree(root: &Path) -> RichTree {
    fs::create_dir_all(root).expect("create root");
    let files: Vec<(&[u8], Vec<u8>)> = vec![
        (
            b"text.txt",
            "The quick brown fox\njumps over the lazy dog.\n"
                .repeat(50)
                .into_bytes(),
        ),
        (b"empty.txt", Vec::new()),
        (b"big/random-3m.bin", random_bytes(1, 3_000_000)),
        (b"big/large-9m.bin", random_bytes(2, 9_000_000)),
        (b"nested/a/b/c/deep.txt", b"deep down\n".to_vec()),
        (b"nested/a/b/sibling.txt", b"a sibling\n".to_vec()),
        (b"nested/a/top.txt", b"top of a\n".to_vec()),
        (b"hard1.txt", b"hard-linked content\n".to_vec()),
        (b"perms/secret-0600.txt", b"secret\n".to_vec()),
        (b"perms/script-0755.sh", b"#!/bin/sh\necho hi\n".to_vec()),
        (b"perms/readonly-0444.txt", b"read only\n".to_vec()),
        (b"perms/private-0700/inside.txt", b"inside\n".to_vec()),
        (b"names/with space.txt", b"space\n".to_vec()),
        (
            "names/ünïcødé 日本語 ✓.txt".as_bytes(),
            "unicode ✓\n".as_bytes().to_vec(),
        ),
        (b"names/quote\"back\\slash<&>.txt", b"specials\n".to_vec()),
        (b"names/raw\xffbyte.bin", b"raw byte name\n".to_vec()),
        (b"sticky-01777/file.txt", b"in a sticky dir\n".to_vec()),
    ];
    let mut regular_files = Vec::new();
    let mut file_bytes = 0u64;
    for (rel, data) in &files {
        write(&root.join(os(rel)), data);
        regular_files.push(PathBuf::from(os(rel)));
        file_bytes += data.len() as u64;
    }
    fs::create_dir_all(root.join("emptydir")).expect("emptydir");
    // Hard link across directories.
    fs::hard_link(root.join("hard1.txt"), root.join("nested/hard2.txt")).expect("hard link");
    regular_files.push("nested/hard2.txt".into());
    file_bytes += b"hard-linked content\n".len() as u64;
    // Symlinks.
    std::os::unix::fs::symlink("text.txt", root.join("link-to-text")).expect("symlink");
    std::os::unix::fs::symlink("nested/a", root.join("link-to-dir")).expect("symlink");
    std::os::unix::fs::symlink("does/not/exist", root.join("dangling")).expect("symlink");
    // A fifo (no libc: the workspace denies unsafe code).
    let st = Command::new("mkfifo")
        .arg(root.join("fifo"))
        .status()
        .expect("running mkfifo");
    assert!(st.success(), "mkfifo failed");
    // Extended attributes.
    let xattrs = match xattr::set(root.join("text.txt"), "user.comment", b"a comment") {
        Ok(()) => {
            xattr::set(root.join("nested"), "user.comment", b"dir comment")
                .expect("xattr on a directory");
            xattr::set(
                root.join("big/random-3m.bin"),
                "user.other",
                b"\x00\x01binary\xff",
            )
            .expect("binary xattr");
            true
        }
        Err(e) => {
            println!("note: the file system refuses user xattrs ({e}); not testing them");
            false
        }
    };
    // Permissions.
    chmod(&root.join("perms/secret-0600.txt"), 0o600);
    chmod(&root.join("perms/script-0755.sh"), 0o755);
    chmod(&root.join("perms/readonly-0444.txt"), 0o444);
    chmod(&root.join("perms/private-0700"), 0o700);
    chmod(&root.join("sticky-01777"), 0o1777);

    // Times: everything but directories first, then directories deepest first.
    let mut all = Vec::new();
    collect_paths(root, Path::new(""), &mut all);
    let (dirs, others): (Vec<_>, Vec<_>) = all
        .iter()
        .partition(|p| fs::symlink_metadata(root.join(p)).is_ok_and(|m| m.is_dir()));
    for (i, p) in others.iter().enumerate() {
        set_times(&root.join(p), mtime(i as i64));
    }
    let mut dirs: Vec<&PathBuf> = dirs;
    dirs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, p) in dirs.iter().enumerate() {
        set_times(&root.join(p), mtime(1000 + i as i64));
    }
    set_times(root, mtime(2000));
    all.sort();
    regular_files.sort();
    RichTree {
        regular_files,
        all_paths: all,
        file_bytes,
        xattrs,
    }
}

fn collect_paths(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(root.join(rel))
        .expect("read_dir")
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let r = rel.join(e.file_name());
        let is_dir = e.file_type().expect("file_type").is_dir();
        out.push(r.clone());
        if is_dir {
            collect_paths(root, &r, out);
        }
    }
}

/// Writes `files` (relative path, content) under `root`, every mtime fixed.
pub fn make_simple_tree(root: &Path, files: &[(&str, &[u8])]) {
    fs::create_dir_all(root).expect("create root");
    for (rel, data) in files {
        write(&root.join(rel), data);
    }
    let mut all = Vec::new();
    collect_paths(root, Path::new(""), &mut all);
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, p) in all.iter().enumerate() {
        set_times(&root.join(p), mtime(i as i64));
    }
    set_times(root, mtime(999));
}

// ---------------------------------------------------------------------------------
// Tree comparison
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    File { sha256: String, size: u64 },
    Dir,
    Symlink { target: Vec<u8> },
    Fifo,
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: Kind,
    mode: u32,
    mtime: (i64, i64),
    xattrs: BTreeMap<String, Vec<u8>>,
    /// The other names of a hard-linked file, within the tree.
    hard_links: Vec<String>,
}

fn display_rel(p: &Path) -> String {
    let s = p.as_os_str().as_bytes().escape_ascii().to_string();
    if s.is_empty() {
        ".".into()
    } else {
        s
    }
}

fn scan(root: &Path) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut inodes: HashMap<(u64, u64), Vec<String>> = HashMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let p = root.join(&rel);
        let m = fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()));
        let ft = m.file_type();
        let kind = if ft.is_file() {
            let data = fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
            Kind::File {
                sha256: sha256_hex(&data),
                size: data.len() as u64,
            }
        } else if ft.is_dir() {
            let mut children: Vec<_> = fs::read_dir(&p)
                .unwrap_or_else(|e| panic!("read_dir {}: {e}", p.display()))
                .flatten()
                .map(|e| rel.join(e.file_name()))
                .collect();
            children.sort();
            stack.extend(children);
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Symlink {
                target: fs::read_link(&p)
                    .expect("read_link")
                    .as_os_str()
                    .as_bytes()
                    .to_vec(),
            }
        } else if ft.is_fifo() {
            Kind::Fifo
        } else {
            Kind::Other(format!("{ft:?}"))
        };
        let mut xattrs = BTreeMap::new();
        if !ft.is_symlink() {
            if let Ok(names) = xattr::list(&p) {
                for n in names {
                    let name = n.to_string_lossy().into_owned();
                    if name.starts_with("user.") {
                        let v = xattr::get(&p, &n).ok().flatten().unwrap_or_default();
                        xattrs.insert(name, v);
                    }
                }
            }
        }
        let key = display_rel(&rel);
        if ft.is_file() && m.nlink() > 1 {
            inodes
                .entry((m.dev(), m.ino()))
                .or_default()
                .push(key.clone());
        }
        out.insert(
            key,
            Entry {
                kind,
                mode: m.mode() & 0o7777,
                mtime: (m.mtime(), m.mtime_nsec()),
                xattrs,
                hard_links: Vec::new(),
            },
        );
    }
    for names in inodes.values() {
        if names.len() < 2 {
            continue;
        }
        for n in names {
            let mut others: Vec<String> = names.iter().filter(|o| *o != n).cloned().collect();
            others.sort();
            out.get_mut(n).expect("entry").hard_links = others;
        }
    }
    out
}

/// The differences between two trees, one line each (empty when identical).
pub fn tree_differences(expected: &Path, actual: &Path) -> Vec<String> {
    let want = scan(expected);
    let got = scan(actual);
    let mut diffs = Vec::new();
    for (path, w) in &want {
        let Some(g) = got.get(path) else {
            diffs.push(format!("{path}: missing"));
            continue;
        };
        if w.kind != g.kind {
            diffs.push(format!(
                "{path}: type/content differs: expected {:?}, got {:?}",
                w.kind, g.kind
            ));
        }
        // Symlink permissions are not settable on Linux.
        if w.mode != g.mode && !matches!(w.kind, Kind::Symlink { .. }) {
            diffs.push(format!(
                "{path}: mode differs: expected {:o}, got {:o}",
                w.mode, g.mode
            ));
        }
        if w.mtime != g.mtime {
            diffs.push(format!(
                "{path}: mtime differs: expected {}.{:09}, got {}.{:09}",
                w.mtime.0, w.mtime.1, g.mtime.0, g.mtime.1
            ));
        }
        if w.xattrs != g.xattrs {
            diffs.push(format!(
                "{path}: xattrs differ: expected {:?}, got {:?}",
                w.xattrs, g.xattrs
            ));
        }
        if w.hard_links != g.hard_links {
            diffs.push(format!(
                "{path}: hard links differ: expected links to {:?}, got {:?}",
                w.hard_links, g.hard_links
            ));
        }
    }
    for path in got.keys() {
        if !want.contains_key(path) {
            diffs.push(format!("{path}: unexpected extra entry"));
        }
    }
    diffs
}

/// Asserts that `actual` reproduces `expected` in every detail.
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    report_differences(expected, actual, tree_differences(expected, actual));
}

/// Like [`assert_same_tree`], but the two roots themselves are not compared (a
/// restore target is not part of what is restored).
pub fn assert_same_contents(expected: &Path, actual: &Path) {
    let diffs = tree_differences(expected, actual)
        .into_iter()
        .filter(|d| !d.starts_with(".: "))
        .collect();
    report_differences(expected, actual, diffs);
}

fn report_differences(expected: &Path, actual: &Path, diffs: Vec<String>) {
    assert!(
        diffs.is_empty(),
        "restored tree {} differs from {} in {} ways:\n  {}",
        actual.display(),
        expected.display(),
        diffs.len(),
        diffs
            .iter()
            .take(60)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  ")
    );
}

/// The relative paths (as shown in messages) of every entry below `root`.
pub fn tree_paths(root: &Path) -> BTreeSet<String> {
    scan(root).into_keys().filter(|k| k != ".").collect()
}

/// Converts a relative path to how restic/stash print it inside a snapshot
/// (`/prefix/rel`), lossily for non-UTF-8 names.
pub fn snapshot_path(prefix: &str, rel: &Path) -> String {
    format!(
        "{prefix}/{}",
        String::from_utf8_lossy(rel.as_os_str().as_bytes())
    )
}

/// Polls `f` every 10 ms until it returns Some or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends a signal with the `kill` command (the workspace denies unsafe code).
pub fn send_signal(pid: u32, signal: &str) {
    let st = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("running kill");
    assert!(st.success(), "kill -{signal} {pid} failed");
}

/// Runs `stash --json backup EXTRA...` in `cwd` and returns its summary line.
pub fn stash_backup_json(repo: &Repo, cwd: &Path, extra: &[&str]) -> serde_json::Value {
    let out = repo
        .stash(&[&["--json", "backup"], extra].concat())
        .cwd(cwd)
        .ok();
    let lines = out.json_lines();
    lines
        .into_iter()
        .rev()
        .find(|v| v["message_type"] == "summary")
        .unwrap_or_else(|| panic!("no summary line in backup --json output\n{out}"))
}

/// An OS string from raw bytes (for names that are not UTF-8).
pub fn os_string(b: &[u8]) -> OsString {
    OsStr::from_bytes(b).to_os_string()
}

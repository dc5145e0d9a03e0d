//! `stash backup`

use std::{os::unix::ffi::OsStrExt, path::PathBuf, sync::Arc};

use serde_json::json;
use stash_repo_format::gotime::GoTime;

use super::{progress, Global};
use crate::backup::{backup, backup_stdin, BackupOptions, Counters};

/// Arguments of `backup`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files and directories to back up.
    paths: Vec<PathBuf>,
    /// Host name for the snapshot.
    #[arg(long, visible_alias = "hostname")]
    host: Option<String>,
    /// Tag the snapshot (repeatable; `a,b` adds two tags).
    #[arg(long = "tag", value_delimiter = ',')]
    tags: Vec<String>,
    /// Snapshot time instead of now (`2006-01-02 15:04:05`, local time, or RFC 3339).
    #[arg(long)]
    time: Option<String>,
    /// Exclude paths matching this pattern (repeatable).
    #[arg(short = 'e', long = "exclude")]
    exclude: Vec<String>,
    /// Read patterns to exclude from a file (repeatable).
    #[arg(long = "exclude-file")]
    exclude_file: Vec<PathBuf>,
    /// As --exclude, ignoring case (repeatable).
    #[arg(long = "iexclude")]
    iexclude: Vec<String>,
    /// As --exclude-file, ignoring case (repeatable).
    #[arg(long = "iexclude-file")]
    iexclude_file: Vec<PathBuf>,
    /// Leave out files larger than this (bytes, or 10k, 5M, 1G, 2T).
    #[arg(long = "exclude-larger-than", value_name = "SIZE")]
    exclude_larger_than: Option<String>,
    /// Leave out directories holding this file (`name`, or `name:header` for a file
    /// starting with header; repeatable).
    #[arg(long = "exclude-if-present", value_name = "FILE[:HEADER]")]
    exclude_if_present: Vec<String>,
    /// Leave out directories holding a valid CACHEDIR.TAG.
    #[arg(long = "exclude-caches")]
    exclude_caches: bool,
    /// Back up the files and directories listed in this file, one glob pattern per
    /// line (`#` comments; repeatable).
    #[arg(long = "files-from", value_name = "FILE")]
    files_from: Vec<PathBuf>,
    /// Back up the paths listed in this file, one per line, taken literally.
    #[arg(long = "files-from-verbatim", value_name = "FILE")]
    files_from_verbatim: Vec<PathBuf>,
    /// Back up the paths listed in this file, separated by NUL bytes.
    #[arg(long = "files-from-raw", value_name = "FILE")]
    files_from_raw: Vec<PathBuf>,
    /// Re-read all files even when unchanged since the parent snapshot.
    #[arg(short, long)]
    force: bool,
    /// Use this snapshot as the parent instead of the latest one with the same host and paths.
    #[arg(long)]
    parent: Option<String>,
    /// Read the content to back up from stdin.
    #[arg(long)]
    stdin: bool,
    /// File name for the stdin content.
    #[arg(long = "stdin-filename", default_value = "stdin")]
    stdin_filename: String,
    /// Do everything but write: no packs, index or snapshot reach the repository.
    #[arg(short = 'n', long = "dry-run")]
    dry_run: bool,
    /// Exclude other file systems: stay on each target's device (mount points are
    /// kept as empty directories).
    #[arg(short = 'x', long = "one-file-system")]
    one_file_system: bool,
    /// Store the files' access times (restic stores the modification time there).
    #[arg(long = "with-atime")]
    with_atime: bool,
    /// Write no snapshot when nothing changed since the parent snapshot.
    #[arg(long = "skip-if-unchanged")]
    skip_if_unchanged: bool,
    /// Read this many files at once (default: one per core).
    #[arg(long = "read-concurrency", env = "RESTIC_READ_CONCURRENCY", value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..))]
    read_concurrency: Option<u16>,
}

fn parse_time(s: &str) -> anyhow::Result<GoTime> {
    if let Ok(t) = GoTime::parse(s) {
        return Ok(t);
    }
    let naive = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .map_err(|_| anyhow::anyhow!("invalid --time {s:?}: use \"2006-01-02 15:04:05\""))?;
    let local = naive
        .and_local_timezone(chrono::Local)
        .earliest()
        .ok_or_else(|| anyhow::anyhow!("invalid --time {s:?}: not a valid local time"))?;
    Ok(GoTime::new(local.fixed_offset()))
}

/// The patterns of `--exclude-file`s: one per line, `#` comments and blank lines
/// skipped.
pub(super) fn pattern_files(files: &[PathBuf]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
        out.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    Ok(out)
}

/// The targets named on the command line and in the `--files-from*` files.
fn targets(a: &Args) -> anyhow::Result<Vec<PathBuf>> {
    let read = |f: &PathBuf| std::fs::read(f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()));
    let mut targets = a.paths.clone();
    for pattern in pattern_files(&a.files_from)? {
        let found = super::glob::expand(&pattern)?;
        if found.is_empty() {
            eprintln!("warning: pattern {pattern:?} does not match any files, skipping");
        }
        targets.extend(found);
    }
    for f in &a.files_from_verbatim {
        let text = read(f)?;
        targets.extend(
            text.split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| PathBuf::from(std::ffi::OsStr::from_bytes(l))),
        );
    }
    for f in &a.files_from_raw {
        let text = read(f)?;
        targets.extend(
            text.split(|b| *b == 0)
                .filter(|l| !l.is_empty())
                .map(|l| PathBuf::from(std::ffi::OsStr::from_bytes(l))),
        );
    }
    Ok(targets)
}

pub async fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    let mut excludes = a.exclude.clone();
    excludes.extend(pattern_files(&a.exclude_file)?);
    let mut iexcludes = a.iexclude.clone();
    iexcludes.extend(pattern_files(&a.iexclude_file)?);
    let mut if_present = a.exclude_if_present.clone();
    if a.exclude_caches {
        if_present.push(crate::backup::reject::CACHEDIR_TAG.to_string());
    }
    let exclude_larger_than = a
        .exclude_larger_than
        .as_deref()
        .map(crate::backup::reject::parse_size)
        .transpose()?;
    let opts = BackupOptions {
        targets: targets(&a)?,
        host: a.host.clone(),
        tags: a.tags.iter().filter(|t| !t.is_empty()).cloned().collect(),
        time: a.time.as_deref().map(parse_time).transpose()?,
        excludes,
        iexcludes,
        exclude_larger_than,
        exclude_if_present: if_present,
        force: a.force,
        parent: a.parent.clone(),
        pack_size: None,
        one_file_system: a.one_file_system,
        with_atime: a.with_atime,
        skip_if_unchanged: a.skip_if_unchanged,
        read_concurrency: a.read_concurrency.map(usize::from),
    };
    if a.stdin && !opts.targets.is_empty() {
        anyhow::bail!("--stdin and paths cannot be used together");
    }
    let repo = g.open().await?;
    let repo = if a.dry_run { repo.into_dry_run() } else { repo };
    let counters = Arc::new(Counters::default());
    let c = counters.clone();
    let bar = progress::start(g, move || {
        use std::sync::atomic::Ordering::Relaxed;
        (
            c.bytes_done.load(Relaxed),
            c.bytes_total.load(Relaxed),
            format!(
                "{}/{} files",
                c.files_done.load(Relaxed),
                c.files.load(Relaxed)
            ),
        )
    });
    let res = if a.stdin {
        backup_stdin(
            &repo,
            &opts,
            &a.stdin_filename,
            Box::new(std::io::stdin()),
            counters,
        )
        .await
    } else {
        backup(&repo, &opts, counters).await
    };
    drop(bar);
    let r = res?;
    let s = &r.summary;
    if g.json {
        let mut v = serde_json::to_value(s)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("message_type".into(), json!("summary"));
            if !r.skipped {
                o.insert("snapshot_id".into(), json!(r.snapshot_id.to_string()));
            }
            if let Some(p) = r.parent {
                o.insert("parent".into(), json!(p.to_string()));
            }
            if a.dry_run {
                o.insert("dry_run".into(), json!(true));
            }
        }
        g.print_json(&v);
    } else if !g.quiet {
        if let Some(p) = r.parent {
            println!("using parent snapshot {}", p.short());
        }
        println!(
            "Files:       {:>6} new, {:>6} changed, {:>6} unmodified",
            s.files_new, s.files_changed, s.files_unmodified
        );
        println!(
            "Dirs:        {:>6} new, {:>6} changed, {:>6} unmodified",
            s.dirs_new, s.dirs_changed, s.dirs_unmodified
        );
        println!(
            "{} to the repository: {} ({} stored)",
            if a.dry_run { "Would add" } else { "Added" },
            human(s.data_added),
            human(s.data_added_packed)
        );
        println!(
            "\nprocessed {} files, {} in {:.2}s",
            s.total_files_processed,
            human(s.total_bytes_processed),
            s.total_duration
        );
        if r.skipped {
            println!("skipped creating snapshot");
        } else if !a.dry_run {
            println!("snapshot {} saved", r.snapshot_id.short());
        }
    }
    if s.errors > 0 {
        eprintln!("Warning: at least one source file could not be read");
        return Ok(3);
    }
    Ok(0)
}

/// Bytes in restic's style (binary units).
pub fn human(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.3} {}", U[i])
    }
}

//! `stash find PATTERN...`: the files and directories of snapshots whose path matches
//! a pattern, as restic prints them (text or its `--json` array of `{matches, hits,
//! snapshot}`). Snapshots come oldest first, as newer restic sorts them; restic 0.14
//! took the backend's listing order.

use std::{io::Write, ops::ControlFlow, os::unix::ffi::OsStrExt, path::Path};

use chrono::{DateTime, FixedOffset, Local, NaiveDate, NaiveDateTime, TimeZone};
use stash_repo_format::{
    gostr::push_json_string,
    node::{go_mode_string, Node, NodeType},
    Id,
};

use super::{filter::FilterArgs, find_ids::Kind, ls::root_of, Global};
use crate::{
    backup::exclude::Excludes,
    repository::tree_packs::TreePacks,
    walk::{walk, Visit},
};

/// Arguments of `find`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Patterns: shell wildcards per path component, `**` for any depth; one starting
    /// with `/` matches from the snapshot's root, any other anywhere in a path.
    #[arg(required = true, value_name = "PATTERN")]
    patterns: Vec<String>,
    /// Only nodes modified at or after this time ("2006-01-02 15:04:05", a date, or
    /// RFC 3339).
    #[arg(short = 'O', long, value_name = "TIME", value_parser = parse_time)]
    oldest: Option<DateTime<FixedOffset>>,
    /// Only nodes modified at or before this time.
    #[arg(short = 'N', long, value_name = "TIME", value_parser = parse_time)]
    newest: Option<DateTime<FixedOffset>>,
    /// Search only these snapshots (id, prefix or `latest`; repeatable).
    #[arg(short = 's', long = "snapshot", value_name = "ID")]
    snapshots: Vec<String>,
    /// Match patterns without regard to case.
    #[arg(short = 'i', long)]
    ignore_case: bool,
    /// Long listing (mode, owner, size, time), as `ls -l`.
    #[arg(short = 'l', long)]
    long: bool,
    /// The patterns are tree ids: find the directories with these trees.
    #[arg(long, conflicts_with_all = ["blob", "pack"])]
    tree: bool,
    /// The patterns are blob ids: find the files holding these blobs.
    #[arg(long, conflicts_with = "pack")]
    blob: bool,
    /// The patterns are pack ids: find the files holding blobs of these packs.
    #[arg(long)]
    pack: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

/// restic's `find` time formats, in local time unless they carry an offset.
fn parse_time(s: &str) -> Result<DateTime<FixedOffset>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t);
    }
    let naive = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .ok_or_else(|| format!("unable to parse time: {s:?}"))?;
    Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.fixed_offset())
        .ok_or_else(|| format!("{s:?} is not a valid local time"))
}

/// The paths and nodes in `root` that match, in walk order.
async fn search(
    trees: &TreePacks,
    index: &stash_repo_format::index::IndexLookup,
    root: Id,
    patterns: &Excludes,
    a: &Args,
) -> anyhow::Result<Vec<(Vec<u8>, Node)>> {
    let mut hits = Vec::new();
    walk(trees, index, root, |path, node| {
        let lowered;
        let text: &[u8] = if a.ignore_case {
            lowered = String::from_utf8_lossy(path).to_lowercase();
            lowered.as_bytes()
        } else {
            path
        };
        let p = Path::new(std::ffi::OsStr::from_bytes(text));
        let is_dir = node.node_type == NodeType::Dir;
        let below = !is_dir || patterns.may_match_below(p);
        if !patterns.is_excluded(p) {
            return ControlFlow::Continue(if below { Visit::Enter } else { Visit::Skip });
        }
        let mtime = node.mtime.datetime();
        let in_range = a.oldest.is_none_or(|o| mtime >= o) && a.newest.is_none_or(|n| mtime <= n);
        if in_range {
            hits.push((path.to_vec(), node.clone()));
        }
        ControlFlow::Continue(Visit::Enter)
    })
    .await?;
    Ok(hits)
}

/// restic's long line: `ls -l`'s format; `human` sizes as restic's
/// `--human-readable` (`1.500 KiB`).
pub fn long_line(path: &[u8], n: &Node, human: bool) -> Vec<u8> {
    let t = n
        .mtime
        .datetime()
        .with_timezone(&Local)
        .format("%Y-%m-%d %H:%M:%S");
    let size = if human {
        super::stats::format_bytes(n.size)
    } else {
        format!("{:>6}", n.size)
    };
    let mut line = format!(
        "{} {:>5} {:>5} {size} {t} ",
        go_mode_string(n.mode),
        n.uid,
        n.gid,
    )
    .into_bytes();
    line.extend_from_slice(path);
    if n.node_type == NodeType::Symlink {
        line.extend_from_slice(b" -> ");
        line.extend_from_slice(&n.link_target);
    }
    line
}

/// A match as restic's `find --json` writes it: the node without its name, inode,
/// attributes, device, content and subtree, after its path and permissions.
fn json_match(out: &mut Vec<u8>, path: &[u8], n: &Node) {
    out.extend_from_slice(b"{\"path\":");
    push_json_string(out, path);
    out.extend_from_slice(b",\"permissions\":");
    push_json_string(out, go_mode_string(n.mode).as_bytes());
    n.write_json_fields(
        out,
        false,
        &[
            "name",
            "inode",
            "extended_attributes",
            "device",
            "content",
            "subtree",
        ],
    );
    out.push(b'}');
}

pub async fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    let ids = match (a.tree, a.blob, a.pack) {
        (true, _, _) => Some(Kind::Tree),
        (_, true, _) => Some(Kind::Blob),
        (_, _, true) => Some(Kind::Pack),
        _ => None,
    };
    if let Some(kind) = ids {
        let repo = g.open().await?;
        let snaps = super::filter::select(&repo, &a.snapshots, &a.filter).await?;
        return super::find_ids::run(&repo, &snaps, kind, &a.patterns, g.json).await;
    }
    let patterns: Vec<String> = if a.ignore_case {
        a.patterns.iter().map(|p| p.to_lowercase()).collect()
    } else {
        a.patterns.clone()
    };
    let patterns = Excludes::new(&patterns)?;
    let repo = g.open().await?;
    let snaps = super::filter::select(&repo, &a.snapshots, &a.filter).await?;
    let index = repo.load_index().await?;
    let trees = TreePacks::new(&repo);
    let mut stdout = std::io::stdout().lock();
    let mut json = b"[".to_vec();
    let mut first = true;
    for (id, snap) in &snaps {
        let hits = search(&trees, &index, root_of(id, snap)?, &patterns, &a).await?;
        if hits.is_empty() {
            continue;
        }
        if g.json {
            if !std::mem::take(&mut first) {
                json.push(b',');
            }
            json.extend_from_slice(b"{\"matches\":[");
            for (i, (path, n)) in hits.iter().enumerate() {
                if i > 0 {
                    json.push(b',');
                }
                json_match(&mut json, path, n);
            }
            json.extend_from_slice(
                format!("],\"hits\":{},\"snapshot\":\"{id}\"}}", hits.len()).as_bytes(),
            );
            continue;
        }
        if !g.quiet {
            if !std::mem::take(&mut first) {
                writeln!(stdout)?;
            }
            let when = snap.time.datetime().with_timezone(&Local);
            writeln!(
                stdout,
                "Found matching entries in snapshot {} from {}",
                id.short(),
                when.format("%Y-%m-%d %H:%M:%S")
            )?;
        }
        for (path, n) in &hits {
            let mut line = if a.long {
                long_line(path, n, false)
            } else {
                path.clone()
            };
            line.push(b'\n');
            stdout.write_all(&line)?;
        }
    }
    if g.json {
        json.extend_from_slice(b"]\n");
        stdout.write_all(&json)?;
    }
    Ok(0)
}

//! `stash ls` and `stash dump`

use std::{io::Write, ops::ControlFlow, os::unix::ffi::OsStrExt};

use serde_json::json;
use stash_repo_format::{
    node::{Node, NodeType},
    Id,
};

use super::Global;
use crate::{
    error::Error,
    repository::{files::SnapshotFilter, tree_packs::TreePacks},
    restore::dump::{find_node, write_file},
    walk::{walk, Visit},
};

/// Arguments of `ls`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Snapshot id, prefix or `latest`.
    snapshot: String,
    /// Only list below these directories.
    dirs: Vec<String>,
    /// Long listing (mode, owner, size, time).
    #[arg(short, long)]
    long: bool,
    /// Sizes in a long listing as 1.500 KiB, 2.000 MiB, ...
    #[arg(long = "human-readable")]
    human_readable: bool,
    /// With directories given, list everything below them, not only their entries.
    #[arg(long)]
    recursive: bool,
    /// Which snapshots `latest` may be.
    #[command(flatten)]
    filter: super::filter::FilterArgs,
}

/// Arguments of `dump`.
#[derive(Debug, clap::Args)]
pub struct DumpArgs {
    /// Snapshot id, prefix or `latest`.
    snapshot: String,
    /// Path of the file inside the snapshot.
    file: String,
}

/// The root tree of a snapshot, or an error naming a snapshot without one.
pub fn root_of(id: &Id, s: &stash_repo_format::snapshot::Snapshot) -> Result<Id, Error> {
    s.tree
        .ok_or_else(|| Error::Snapshot(format!("{id} has no tree")))
}

fn name_of(n: &Node) -> String {
    String::from_utf8_lossy(&n.name).into_owned()
}

pub async fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    let repo = g.open().await?;
    let (id, snap) = repo.find_snapshot(&a.snapshot, &a.filter.filter()).await?;
    let index = repo.load_index().await?;
    let dirs: Vec<&[u8]> = a
        .dirs
        .iter()
        .map(|d| d.trim_end_matches('/').as_bytes())
        .collect();
    // `p` lies strictly below `d`.
    let below = |p: &[u8], d: &[u8]| p.starts_with(d) && p.get(d.len()) == Some(&b'/');
    let parent = |p: &[u8]| -> usize { p.iter().rposition(|&b| b == b'/').unwrap_or(0) };
    // As restic: a directory given and its entries, or with --recursive all below it.
    let keep = |p: &[u8]| {
        dirs.is_empty()
            || dirs
                .iter()
                .any(|d| p == *d || (below(p, d) && (a.recursive || parent(p) == d.len())))
    };
    // A directory is read when it is one of `dirs`, lies above one, or (recursive)
    // below one.
    let enter = |p: &[u8]| {
        dirs.is_empty()
            || dirs
                .iter()
                .any(|d| p == *d || below(d, p) || (a.recursive && below(p, d)))
    };
    let mut entries = Vec::new();
    walk(
        &TreePacks::new(&repo),
        &index,
        root_of(&id, &snap)?,
        |path, n| {
            if keep(path) {
                entries.push((path.to_vec(), n.clone()));
            }
            ControlFlow::Continue(if enter(path) {
                Visit::Enter
            } else {
                Visit::Skip
            })
        },
    )
    .await?;
    let mut stdout = std::io::stdout().lock();
    if g.json {
        let mut v = super::snapshots::snapshot_json(&id, &snap);
        v["struct_type"] = json!("snapshot");
        writeln!(stdout, "{v}")?;
    } else if !g.quiet {
        writeln!(
            stdout,
            "snapshot {} of [{}] filtered by [{}] at {}):",
            id.short(),
            snap.paths.join(" "),
            a.dirs.join(" "),
            snap.time.to_go_display()
        )?;
    }
    for (path, n) in &entries {
        if g.json {
            let mut v = json!({
                "name": name_of(n), "type": n.node_type.as_str(), "path": String::from_utf8_lossy(path),
                "uid": n.uid, "gid": n.gid, "mode": n.mode,
                "permissions": stash_repo_format::node::go_mode_string(n.mode),
                "mtime": n.mtime, "atime": n.atime, "ctime": n.ctime, "struct_type": "node",
            });
            // restic gives a size to files only.
            if n.node_type == NodeType::File {
                v["size"] = json!(n.size);
            }
            writeln!(stdout, "{v}")?;
        } else if a.long {
            let mut line = super::find::long_line(path, n, a.human_readable);
            line.push(b'\n');
            stdout.write_all(&line)?;
        } else {
            stdout.write_all(path)?;
            stdout.write_all(b"\n")?;
        }
    }
    Ok(0)
}

pub async fn dump(g: &Global, a: DumpArgs) -> anyhow::Result<i32> {
    let repo = g.open().await?;
    let (id, snap) = repo
        .find_snapshot(&a.snapshot, &SnapshotFilter::default())
        .await?;
    let index = repo.load_index().await?;
    let node = find_node(&repo, &index, root_of(&id, &snap)?, &a.file).await?;
    match node.node_type {
        NodeType::File => {
            write_file(&repo, &index, &node, &mut tokio::io::stdout(), "stdout").await?;
        }
        NodeType::Symlink => {
            let mut out = std::io::stdout().lock();
            out.write_all(std::ffi::OsStr::from_bytes(&node.link_target).as_bytes())?;
            out.flush()?;
        }
        _ => anyhow::bail!(
            "{}: is a {}, dump writes files",
            a.file,
            node.node_type.as_str()
        ),
    }
    Ok(0)
}

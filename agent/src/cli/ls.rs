//! `stash ls` and `stash dump`

use std::{io::Write, os::unix::ffi::OsStrExt};

use serde_json::json;
use stash_repo_format::{
    index::IndexLookup,
    node::{Node, NodeType},
    Id,
};

use super::Global;
use crate::{
    error::Error,
    repository::{files::SnapshotFilter, tree_packs::TreePacks, Repository},
    restore::dump::{find_node, write_file},
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

fn mode_string(n: &Node) -> String {
    let t = match n.node_type {
        NodeType::Dir => 'd',
        NodeType::Symlink => 'L',
        NodeType::Fifo => 'p',
        NodeType::CharDev => 'c',
        NodeType::Dev => 'D',
        NodeType::Socket => 'S',
        _ => '-',
    };
    let p = stash_repo_format::node::posix_perm_from_go_mode(n.mode);
    let mut s = String::from(t);
    for (bit, ch) in [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o40, 'r'),
        (0o20, 'w'),
        (0o10, 'x'),
        (0o4, 'r'),
        (0o2, 'w'),
        (0o1, 'x'),
    ] {
        s.push(if p & bit != 0 { ch } else { '-' });
    }
    s
}

async fn walk(
    repo: &Repository,
    index: &IndexLookup,
    tree: Id,
    prefix: &[u8],
    out: &mut Vec<(Vec<u8>, Node)>,
) -> anyhow::Result<()> {
    let trees = TreePacks::new(repo);
    let mut stack = vec![(tree, prefix.to_vec())];
    while let Some((id, pre)) = stack.pop() {
        let t = trees.read_tree(index, &id).await?;
        let mut subdirs = Vec::new();
        for n in t.nodes {
            // Raw name bytes: restic prints names exactly as stored.
            let mut path = pre.clone();
            path.push(b'/');
            path.extend_from_slice(&n.name);
            if let Some(s) = n.subtree {
                subdirs.push((s, path.clone()));
            }
            out.push((path, n));
        }
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(())
}

pub async fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    let repo = g.open().await?;
    let (id, snap) = repo
        .find_snapshot(&a.snapshot, &SnapshotFilter::default())
        .await?;
    let index = repo.load_index().await?;
    let mut entries = Vec::new();
    walk(&repo, &index, root_of(&id, &snap)?, b"", &mut entries).await?;
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let keep = |p: &[u8]| {
        a.dirs.is_empty()
            || a.dirs.iter().any(|d| {
                let d = d.trim_end_matches('/').as_bytes();
                p == d || (p.starts_with(d) && p.get(d.len()) == Some(&b'/'))
            })
    };
    let mut stdout = std::io::stdout().lock();
    if g.json {
        let v = json!({"time": snap.time, "tree": snap.tree, "paths": snap.paths, "hostname": snap.hostname, "id": id, "short_id": id.short(), "struct_type": "snapshot"});
        writeln!(stdout, "{v}")?;
    } else if !g.quiet {
        writeln!(
            stdout,
            "snapshot {} of {:?} at {}:",
            id.short(),
            snap.paths,
            snap.time
        )?;
    }
    for (path, n) in entries.iter().filter(|(p, _)| keep(p)) {
        if g.json {
            let v = json!({
                "name": name_of(n), "type": n.node_type.as_str(), "path": String::from_utf8_lossy(path),
                "uid": n.uid, "gid": n.gid, "size": n.size, "mode": n.mode,
                "mtime": n.mtime, "atime": n.atime, "ctime": n.ctime, "struct_type": "node",
            });
            writeln!(stdout, "{v}")?;
        } else if a.long {
            let t = n
                .mtime
                .datetime()
                .with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S");
            let line = format!(
                "{} {:>5} {:>5} {:>12} {t} ",
                mode_string(n),
                n.uid,
                n.gid,
                n.size
            );
            let mut line = line.into_bytes();
            line.extend_from_slice(path);
            if n.node_type == NodeType::Symlink {
                line.extend_from_slice(b" -> ");
                line.extend_from_slice(&n.link_target);
            }
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

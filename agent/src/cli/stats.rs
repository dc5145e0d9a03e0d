//! `stash stats`: sizes and counts of snapshots, restic's four modes
//! ([`crate::stats`]), over the snapshots given (ids, `latest`) or every one the
//! filters pick.

use stash_repo_format::{blob::BlobType, index::IndexLookup, snapshot::Snapshot, Id};

use super::{filter::FilterArgs, ls::root_of, Global};
use crate::{
    error::Error,
    repository::{tree_packs::TreePacks, Repository},
    stats::{Counter, Mode},
};

/// Arguments of `stats`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Snapshots (ids, prefixes or `latest`; default: every one the filters pick).
    snapshots: Vec<String>,
    /// What to count: restore-size, files-by-contents, raw-data or blobs-per-file.
    #[arg(long, value_enum, default_value = "restore-size")]
    mode: Mode,
    #[command(flatten)]
    filter: FilterArgs,
}

/// restic's `ui.FormatBytes`.
pub fn format_bytes(n: u64) -> String {
    let b = n as f64;
    match n {
        _ if n >= 1 << 40 => format!("{:.3} TiB", b / (1u64 << 40) as f64),
        _ if n >= 1 << 30 => format!("{:.3} GiB", b / (1u64 << 30) as f64),
        _ if n >= 1 << 20 => format!("{:.3} MiB", b / (1u64 << 20) as f64),
        _ if n >= 1 << 10 => format!("{:.3} KiB", b / (1u64 << 10) as f64),
        _ => format!("{n} B"),
    }
}

/// Feeds every tree and node of the snapshot rooted at `root` to `c`, depth first in
/// tree order (restic's walk).
async fn walk(
    trees: &TreePacks,
    index: &IndexLookup,
    root: Id,
    c: &mut Counter,
) -> anyhow::Result<()> {
    let mut stack: Vec<(Id, Vec<u8>)> = Vec::new();
    if c.tree(root) {
        stack.push((root, Vec::new()));
    }
    let plaintext = |b: &Id| {
        index
            .get(BlobType::Data, b)
            .map(|l| u64::from(l.data_length()))
    };
    while let Some((id, prefix)) = stack.pop() {
        let tree = trees.read_tree(index, &id).await?;
        let mut subdirs = Vec::new();
        for n in &tree.nodes {
            let mut path = prefix.clone();
            path.push(b'/');
            path.extend_from_slice(&n.name);
            c.node(&path, n, plaintext);
            if let Some(sub) = n.subtree {
                if c.tree(sub) {
                    subdirs.push((sub, path));
                }
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(())
}

async fn picked(repo: &Repository, a: &Args) -> anyhow::Result<Vec<(Id, Snapshot)>> {
    let filter = a.filter.filter();
    if a.snapshots.is_empty() {
        let all = repo.snapshots().await?;
        return Ok(all.into_iter().filter(|(_, s)| filter.matches(s)).collect());
    }
    let mut picked = Vec::new();
    for name in &a.snapshots {
        picked.push(repo.find_snapshot(name, &filter).await?);
    }
    Ok(picked)
}

pub async fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    let repo = g.open().await?;
    let snapshots = picked(&repo, &a).await?;
    let index = repo.load_index().await?;
    let trees = TreePacks::new(&repo);
    let mut counter = Counter::new(a.mode);
    if !g.json && !g.quiet {
        println!("scanning...");
    }
    for (id, snap) in &snapshots {
        counter.snapshot();
        walk(&trees, &index, root_of(id, snap)?, &mut counter).await?;
    }
    let totals = counter
        .finish(|ty, id| index.get(ty, id))
        .map_err(|(ty, id)| Error::NotFound(format!("{ty} blob {id} in the index")))?;
    if g.json {
        g.print_json(&totals);
        return Ok(0);
    }
    println!("Stats in {} mode:", a.mode.as_str());
    println!("     Snapshots processed:  {}", totals.snapshots_count);
    if totals.total_blob_count > 0 {
        println!("        Total Blob Count:  {}", totals.total_blob_count);
    }
    if totals.total_file_count > 0 {
        println!("        Total File Count:  {}", totals.total_file_count);
    }
    if totals.total_uncompressed_size > 0 {
        println!(
            " Total Uncompressed Size:  {}",
            format_bytes(totals.total_uncompressed_size)
        );
    }
    println!(
        "              Total Size:  {}",
        format_bytes(totals.total_size)
    );
    if totals.compression_ratio > 0.0 {
        println!(
            "    Compression Progress:  {:.2}%",
            totals.compression_progress
        );
        println!(
            "       Compression Ratio:  {:.2}x",
            totals.compression_ratio
        );
        println!(
            "Compression Space Saving:  {:.2}%",
            totals.compression_space_saving
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::format_bytes;

    #[test]
    fn sizes_read_as_restics() {
        assert_eq!(format_bytes(1000), "1000 B");
        assert_eq!(format_bytes(6_000_029), "5.722 MiB");
        assert_eq!(format_bytes(3 << 30), "3.000 GiB");
    }
}

//! `stash diff`: what changed between two snapshots ([`crate::diff`]), printed as
//! restic prints it, or as restic's `change` and `statistics` JSON messages.

use serde::Serialize;

use super::{ls::root_of, stats::format_bytes, Global};
use crate::{
    diff::{diff, Side},
    repository::files::SnapshotFilter,
};

/// restic's `change` message, its fields in restic's order.
#[derive(Serialize)]
struct ChangeMessage<'a> {
    message_type: &'static str,
    path: &'a str,
    modifier: &'a str,
}

/// restic's `statistics` message.
#[derive(Serialize)]
struct Statistics<'a> {
    message_type: &'static str,
    source_snapshot: &'a str,
    target_snapshot: &'a str,
    changed_files: u64,
    added: &'a Side,
    removed: &'a Side,
}

/// Arguments of `diff`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The snapshot before (id, prefix or `latest`).
    before: String,
    /// The snapshot after.
    after: String,
    /// Also report paths whose metadata alone changed (`U`).
    #[arg(long)]
    metadata: bool,
}

pub async fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    let repo = g.open().await?;
    let any = SnapshotFilter::default();
    let (id1, s1) = repo.find_snapshot(&a.before, &any).await?;
    let (id2, s2) = repo.find_snapshot(&a.after, &any).await?;
    if !g.json && !g.quiet {
        println!("comparing snapshot {} to {}:\n", id1.short(), id2.short());
    }
    let d = diff(&repo, root_of(&id1, &s1)?, root_of(&id2, &s2)?, a.metadata).await?;
    for c in &d.changes {
        if g.json {
            g.print_json(&ChangeMessage {
                message_type: "change",
                path: &c.path,
                modifier: &c.modifier,
            });
        } else {
            println!("{:<5}{}", c.modifier, c.path);
        }
    }
    if g.json {
        g.print_json(&Statistics {
            message_type: "statistics",
            source_snapshot: &a.before,
            target_snapshot: &a.after,
            changed_files: d.changed_files,
            added: &d.added,
            removed: &d.removed,
        });
        return Ok(0);
    }
    let (n, r) = (&d.added, &d.removed);
    println!();
    println!(
        "Files:       {:>5} new, {:>5} removed, {:>5} changed",
        n.files, r.files, d.changed_files
    );
    println!("Dirs:        {:>5} new, {:>5} removed", n.dirs, r.dirs);
    println!("Others:      {:>5} new, {:>5} removed", n.others, r.others);
    println!(
        "Data Blobs:  {:>5} new, {:>5} removed",
        n.data_blobs, r.data_blobs
    );
    println!(
        "Tree Blobs:  {:>5} new, {:>5} removed",
        n.tree_blobs, r.tree_blobs
    );
    println!("  Added:   {}", format_bytes(n.bytes));
    println!("  Removed: {}", format_bytes(r.bytes));
    Ok(0)
}

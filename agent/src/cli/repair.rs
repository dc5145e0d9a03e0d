//! `stash repair index` (also restic 0.14's `rebuild-index`) and `repair snapshots`.

use super::Global;
use crate::repair_index::repair_index;

/// Arguments of `repair`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Build a new index from the packs in the repository.
    Index(IndexArgs),
    /// Save damaged snapshots again without what the repository lost.
    Snapshots(super::rewrite::RepairArgs),
}

/// Arguments of `repair index` and `rebuild-index`.
#[derive(Debug, clap::Args)]
pub struct IndexArgs {
    /// Read every pack's header, even of packs the old index describes.
    #[arg(long = "read-all-packs")]
    read_all_packs: bool,
}

pub async fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    match a.what {
        What::Index(i) => index(g, i).await,
        What::Snapshots(s) => super::rewrite::repair(g, s).await,
    }
}

pub async fn index(g: &Global, a: IndexArgs) -> anyhow::Result<i32> {
    let repo = g.open().await?;
    let s = repair_index(&repo, a.read_all_packs).await?;
    if !g.quiet {
        println!(
            "{} packs: {} from the old index, {} headers read, {} unreadable left out; \
             {} indexed packs were missing",
            s.packs_kept + s.packs_read + s.packs_unreadable,
            s.packs_kept,
            s.packs_read,
            s.packs_unreadable,
            s.packs_missing
        );
        println!(
            "wrote {} index files, removed {} old ones ({} damaged)",
            s.index_files_written, s.index_files_removed, s.index_files_damaged
        );
    }
    Ok(0)
}

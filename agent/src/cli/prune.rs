//! `stash prune`

use serde_json::json;
use stash_repo_format::prune::{parse_size, MaxUnused, PruneOptions};

use super::{backup::human, Global};
use crate::{error::Result, prune::prune_when, repository::Repository};

/// Options shared by `prune` and `forget --prune`.
#[derive(Debug, Clone, clap::Args)]
pub struct PruneArgs {
    /// Tolerate this much unused space: `5%` (default), a size like `100M`, or `unlimited`.
    #[arg(long = "max-unused", default_value = "5%")]
    max_unused: String,
    /// Repack at most this many bytes (e.g. `1G`).
    #[arg(long = "max-repack-size")]
    max_repack_size: Option<String>,
    /// Repack packs with uncompressed blobs (repository version 2).
    #[arg(long = "repack-uncompressed")]
    repack_uncompressed: bool,
    /// Repack packs below 80% of the target pack size (not only those below 4%).
    #[arg(long = "repack-small")]
    repack_small: bool,
    /// Repack only packs holding trees.
    #[arg(long = "repack-cacheable-only")]
    repack_cacheable_only: bool,
}

/// Arguments of `prune`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    opts: PruneArgs,
    /// Only print what would be done.
    #[arg(short = 'n', long = "dry-run")]
    dry_run: bool,
}

fn options(a: &PruneArgs, repo: &Repository) -> anyhow::Result<PruneOptions> {
    Ok(PruneOptions {
        max_unused: MaxUnused::parse(&a.max_unused).map_err(anyhow::Error::msg)?,
        max_repack_bytes: a
            .max_repack_size
            .as_deref()
            .map(|s| {
                parse_size(s).ok_or_else(|| anyhow::anyhow!("invalid --max-repack-size {s:?}"))
            })
            .transpose()?,
        repack_uncompressed: a.repack_uncompressed,
        compression: true,
        pack_size: repo.pack_size() as u64,
        repack_small: a.repack_small,
        repack_cacheable_only: a.repack_cacheable_only,
    })
}

async fn run_prune(
    g: &Global,
    repo: &Repository,
    a: &PruneArgs,
    dry_run: bool,
    ready: impl std::future::Future<Output = Result<()>>,
) -> anyhow::Result<()> {
    let (plan, report) = prune_when(repo, &options(a, repo)?, dry_run, ready).await?;
    let s = &report.stats;
    if g.json {
        g.print_json(&json!({
            "message_type": "summary", "dry_run": dry_run, "stats": s,
            "packs_to_delete": plan.delete.len() + plan.unreferenced.len(),
            "packs_to_repack": plan.repack.len(), "packs_kept": plan.keep.len(),
            "packs_deleted": report.packs_deleted, "packs_written": report.packs_written,
        }));
    } else if !g.quiet {
        println!("used:   {:>8} blobs, {}", s.used_blobs, human(s.used_bytes));
        println!(
            "unused: {:>8} blobs, {}",
            s.unused_blobs,
            human(s.unused_bytes)
        );
        println!(
            "{}: delete {} packs ({} unreferenced), repack {} packs ({} to copy), keep {} packs",
            if dry_run { "would" } else { "plan" },
            plan.delete.len() + plan.unreferenced.len(),
            plan.unreferenced.len(),
            plan.repack.len(),
            human(s.repack_bytes),
            plan.keep.len()
        );
        println!(
            "frees {}, unused space left {}",
            human(s.freed_bytes),
            human(s.unused_after)
        );
        if !dry_run {
            println!(
                "done: {} packs deleted, {} written, {} index files replaced",
                report.packs_deleted, report.packs_written, report.index_files_replaced
            );
        }
    }
    Ok(())
}

/// Prune with the exclusive lock already held (for `forget --prune`).
pub async fn prune_locked(g: &Global, repo: &Repository, a: &PruneArgs) -> anyhow::Result<()> {
    run_prune(g, repo, a, false, async { Ok(()) }).await
}

pub async fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    let repo = g.open().await?;
    let mut lock = repo.lock_unconfirmed(true).await?;
    let res = run_prune(g, &repo, &a.opts, a.dry_run, lock.confirm()).await;
    lock.release().await?;
    res?;
    Ok(0)
}

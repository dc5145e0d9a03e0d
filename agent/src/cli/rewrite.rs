//! `stash rewrite` and `stash repair snapshots`: snapshots saved again with paths left
//! out, or with what the repository lost dropped ([`crate::rewrite`]).

use std::path::PathBuf;

use super::{filter::FilterArgs, Global};
use crate::{
    backup::exclude::PathExcludes,
    rewrite::{rewrite_snapshots, Change, Options, Outcome},
};

/// Arguments of `rewrite`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Snapshots to rewrite (default: all that pass the filters).
    snapshots: Vec<String>,
    /// Leave out paths matching this pattern (repeatable).
    #[arg(short = 'e', long = "exclude")]
    exclude: Vec<String>,
    /// Read patterns to leave out from a file (repeatable).
    #[arg(long = "exclude-file")]
    exclude_file: Vec<PathBuf>,
    /// As --exclude, ignoring case (repeatable).
    #[arg(long = "iexclude")]
    iexclude: Vec<String>,
    /// As --exclude-file, ignoring case (repeatable).
    #[arg(long = "iexclude-file")]
    iexclude_file: Vec<PathBuf>,
    #[command(flatten)]
    how: How,
}

/// Arguments of `repair snapshots`.
#[derive(Debug, clap::Args)]
pub struct RepairArgs {
    /// Snapshots to repair (default: all that pass the filters).
    snapshots: Vec<String>,
    #[command(flatten)]
    how: How,
}

/// What both share.
#[derive(Debug, clap::Args)]
struct How {
    /// Remove the old snapshots instead of keeping them beside the new ones.
    #[arg(long)]
    forget: bool,
    /// Report what would change; write nothing.
    #[arg(short = 'n', long = "dry-run")]
    dry_run: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

pub async fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    let mut patterns = a.exclude.clone();
    patterns.extend(super::backup::pattern_files(&a.exclude_file)?);
    let mut ipatterns = a.iexclude.clone();
    ipatterns.extend(super::backup::pattern_files(&a.iexclude_file)?);
    let excludes = PathExcludes::new(&patterns, &ipatterns)?;
    if excludes.is_empty() {
        anyhow::bail!("nothing to do: no excludes provided");
    }
    let change = Change::Exclude(excludes);
    apply(g, &a.snapshots, &a.how, &change).await
}

pub async fn repair(g: &Global, a: RepairArgs) -> anyhow::Result<i32> {
    apply(g, &a.snapshots, &a.how, &Change::Repair).await
}

async fn apply(g: &Global, names: &[String], how: &How, change: &Change) -> anyhow::Result<i32> {
    let repo = g.open().await?;
    let repo = if how.dry_run {
        repo.into_dry_run()
    } else {
        repo
    };
    let snaps = super::filter::select(&repo, names, &how.filter).await?;
    let opts = Options {
        forget: how.forget,
        dry_run: how.dry_run,
    };
    let outcomes = rewrite_snapshots(&repo, snaps, change, opts).await?;
    let mut changed = 0;
    for (id, o) in &outcomes {
        let short = id.short();
        match (o, how.dry_run) {
            (Outcome::Unchanged, _) => {}
            (Outcome::Rewritten(_), true) => {
                println!("snapshot {short}: would save a new snapshot")
            }
            (Outcome::Rewritten(new), false) => {
                println!("snapshot {short}: saved new snapshot {}", new.short());
            }
            (Outcome::Unrecoverable, true) => println!("snapshot {short}: would remove it"),
            (Outcome::Unrecoverable, false) => println!("snapshot {short}: removed"),
        }
        if *o != Outcome::Unchanged {
            changed += 1;
            if how.forget && matches!(o, Outcome::Rewritten(_)) && !how.dry_run {
                println!("snapshot {short}: removed the old snapshot");
            }
        }
    }
    if !g.quiet {
        println!(
            "{} of {} snapshots {}",
            changed,
            outcomes.len(),
            if how.dry_run {
                "would change"
            } else {
                "changed"
            }
        );
    }
    Ok(0)
}

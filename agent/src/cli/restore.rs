//! `stash restore`

use std::{path::PathBuf, sync::Arc};

use serde_json::json;

use super::{progress, Global};
use crate::{
    repository::files::SnapshotFilter,
    restore::{fetch::Progress, restore_when, Overwrite, RestoreOptions},
};

/// Arguments of `restore`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Snapshot id, prefix or `latest`, optionally `ID:subfolder`.
    snapshot: String,
    /// Directory to restore into.
    #[arg(short, long)]
    target: PathBuf,
    /// Restore only paths matching this pattern (repeatable).
    #[arg(short = 'i', long = "include")]
    include: Vec<String>,
    /// Do not restore paths matching this pattern (repeatable).
    #[arg(short = 'e', long = "exclude")]
    exclude: Vec<String>,
    /// With `latest`: only snapshots of this host.
    #[arg(long)]
    host: Vec<String>,
    /// With `latest`: only snapshots with these paths.
    #[arg(long)]
    path: Vec<String>,
    /// With `latest`: only snapshots with these tags.
    #[arg(long, value_delimiter = ',')]
    tag: Vec<String>,
    /// When to replace a file that exists already.
    #[arg(long, value_enum, default_value = "always")]
    overwrite: Overwrite,
    /// Remove files and directories in the restored directories that the snapshot
    /// does not have.
    #[arg(long)]
    delete: bool,
    /// Restore files with holes where their content is zeros.
    #[arg(long)]
    sparse: bool,
    /// Read the restored files back and check their content.
    #[arg(long)]
    verify: bool,
}

pub async fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    let repo = g.open().await?;
    let mut lock = match g.no_lock() {
        true => None,
        false => Some(repo.lock_unconfirmed(false).await?),
    };
    let (name, sub) = match a.snapshot.split_once(':') {
        Some((n, s)) => (n.to_string(), Some(s.to_string())),
        None => (a.snapshot.clone(), None),
    };
    let filter = SnapshotFilter {
        hosts: a.host.clone(),
        paths: a.path.clone(),
        tags: if a.tag.is_empty() {
            vec![]
        } else {
            vec![a.tag.clone()]
        },
    };
    let res = async {
        let (id, snap) = repo.find_snapshot(&name, &filter).await?;
        if !g.quiet && !g.json {
            println!(
                "restoring snapshot {} of {:?} at {} to {}",
                id.short(),
                snap.paths,
                snap.time,
                a.target.display()
            );
        }
        let opts = RestoreOptions {
            target: a.target.clone(),
            include: a.include.clone(),
            exclude: a.exclude.clone(),
            subpath: sub,
            overwrite: a.overwrite,
            delete: a.delete,
            sparse: a.sparse,
            verify: a.verify,
        };
        let prog = Arc::new(Progress::default());
        let p = prog.clone();
        let bar = progress::start(g, move || {
            use std::sync::atomic::Ordering::Relaxed;
            (
                p.bytes_done.load(Relaxed),
                p.bytes_total.load(Relaxed),
                String::new(),
            )
        });
        let r = match super::ls::root_of(&id, &snap) {
            Ok(root) => {
                let confirmed = async {
                    match lock.as_mut() {
                        Some(l) => l.confirm().await,
                        None => Ok(()),
                    }
                };
                restore_when(&repo, root, &opts, prog, confirmed).await
            }
            Err(e) => Err(e),
        };
        drop(bar);
        r
    }
    .await;
    if let Some(lock) = lock {
        lock.release().await?;
    }
    let s = res?;
    if g.json {
        let mut v = serde_json::to_value(&s)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("message_type".into(), json!("summary"));
        }
        g.print_json(&v);
    } else if !g.quiet {
        println!(
            "restored {} files, {} directories, {} other entries, {}",
            s.files_restored,
            s.dirs_restored,
            s.others_restored,
            super::backup::human(s.bytes_restored)
        );
        if s.files_skipped > 0 {
            println!("skipped {} existing entries", s.files_skipped);
        }
        if a.delete {
            println!(
                "deleted {} entries the snapshot does not have",
                s.files_deleted
            );
        }
        if a.verify {
            println!(
                "finished verifying {} files in {}",
                s.files_verified,
                a.target.display()
            );
        }
    }
    Ok(0)
}

//! `stash unlock`: remove stale locks (all locks with `--remove-all`). Stale is
//! [`stash_repo_format::lock::Lock::is_stale_for_unlock`]: restic's rule for restic's locks, and for ours a
//! PID is only looked up in the PID namespace that wrote it.

use stash_repo_format::{file_type::FileType, gotime::GoTime};

use super::Global;
use crate::repository::{
    lock::{describe, here, pid_alive},
    open::hostname,
};

/// Arguments of `unlock`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Remove all locks, even live ones.
    #[arg(long = "remove-all")]
    remove_all: bool,
}

pub async fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    let repo = g.open().await?;
    let now = GoTime::now();
    let host = hostname();
    let mut removed = 0;
    for (id, l) in repo.list_locks().await? {
        let stale = l.is_stale_for_unlock(&now, &here(&host), pid_alive);
        if a.remove_all || stale {
            repo.backend().remove(FileType::Lock, &id).await?;
            removed += 1;
            if !g.quiet {
                println!("removed {}", describe(&id, &l));
            }
        }
    }
    if !g.quiet {
        println!("{removed} locks removed");
    }
    Ok(0)
}

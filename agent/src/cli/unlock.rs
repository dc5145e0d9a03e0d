//! `stash unlock`: remove stale locks (all locks with `--remove-all`).

use stash_repo_format::{file_type::FileType, gotime::GoTime};

use super::Global;
use crate::repository::{lock::describe, open::hostname};

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
        let stale = l.is_stale(&now, &host, |pid| {
            std::path::Path::new(&format!("/proc/{pid}")).exists()
        });
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

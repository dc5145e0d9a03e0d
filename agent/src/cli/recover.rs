//! `stash recover`

use super::Global;
use crate::recover::recover;

/// Arguments of `recover`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(g: &Global, _: Args) -> anyhow::Result<i32> {
    let repo = g.open().await?;
    let r = recover(&repo).await?;
    if g.quiet {
        return Ok(0);
    }
    println!("load {} trees", r.trees);
    for id in &r.roots {
        println!("found root tree {}", id.short());
    }
    println!("\nfound {} unreferenced roots", r.roots.len());
    match r.snapshot {
        Some(id) => println!("saved new snapshot {}", id.short()),
        None => println!("no snapshot to write."),
    }
    Ok(0)
}

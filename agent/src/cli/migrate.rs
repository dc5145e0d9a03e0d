//! `stash migrate [NAME]`: lists the migrations that apply, or applies one.

use super::Global;
use crate::migrate::{applicable, upgrade_repo_v2, MIGRATIONS};

/// Arguments of `migrate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Migrations to apply (none: list those that apply).
    names: Vec<String>,
}

pub async fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    let repo = g.open().await?;
    if a.names.is_empty() {
        println!("available migrations:");
        let mut any = false;
        for (name, what) in MIGRATIONS {
            if applicable(&repo, name).is_ok() {
                println!("  {name}\t{what}");
                any = true;
            }
        }
        if !any {
            println!("no migrations found");
        }
        return Ok(0);
    }
    for name in &a.names {
        if let Err(why) = applicable(&repo, name) {
            anyhow::bail!("migration {name} cannot be applied: {why}");
        }
        if !g.quiet {
            println!("checking repository integrity...");
            println!("applying migration {name}...");
        }
        match name.as_str() {
            "upgrade_repo_v2" => upgrade_repo_v2(&repo).await?,
            other => anyhow::bail!("unknown migration {other:?}"),
        }
        if !g.quiet {
            println!("migration {name}: success");
        }
    }
    Ok(0)
}

//! `stash cache`: the repository caches in the cache root, with their last use,
//! whether they are old and their size; `--cleanup` removes the old ones.

use std::time::{Duration, SystemTime};

use super::{stats::format_bytes, Global};
use crate::cache::{cache_dirs, CacheDir, DEFAULT_MAX_AGE_DAYS};

/// Arguments of `cache`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Remove the caches not used for longer than --max-age.
    #[arg(long)]
    cleanup: bool,
    /// Days after which an unused cache is old.
    #[arg(long = "max-age", value_name = "DAYS", default_value_t = DEFAULT_MAX_AGE_DAYS)]
    max_age: u64,
    /// Do not measure the caches' sizes.
    #[arg(long = "no-size")]
    no_size: bool,
}

#[derive(serde::Serialize)]
struct Entry<'a> {
    id: &'a str,
    path: String,
    last_used: chrono::DateTime<chrono::Utc>,
    old: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
}

pub async fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    let root = g.cache_root().ok_or_else(|| {
        anyhow::anyhow!(
            "no cache directory: set --cache-dir, RESTIC_CACHE_DIR, XDG_CACHE_HOME or HOME"
        )
    })?;
    let max_age = Duration::from_secs(a.max_age.saturating_mul(86_400));
    let now = SystemTime::now();
    let (r2, sizes) = (root.clone(), !a.no_size && !a.cleanup);
    let dirs = tokio::task::spawn_blocking(move || cache_dirs(&r2, sizes))
        .await?
        .map_err(|e| anyhow::anyhow!("{}: {e}", root.display()))?;
    if a.cleanup {
        let old: Vec<CacheDir> = dirs
            .into_iter()
            .filter(|d| d.is_old(now, max_age))
            .collect();
        if old.is_empty() {
            if !g.quiet() {
                println!("no old cache dirs found");
            }
            return Ok(0);
        }
        if !g.quiet() {
            println!(
                "removing {} old cache dirs from {}",
                old.len(),
                root.display()
            );
        }
        for d in old {
            let path = d.path.clone();
            tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&path))
                .await?
                .map_err(|e| anyhow::anyhow!("removing {}: {e}", d.path.display()))?;
        }
        return Ok(0);
    }
    if g.json() {
        let entries: Vec<Entry> = dirs
            .iter()
            .map(|d| Entry {
                id: &d.id,
                path: d.path.display().to_string(),
                last_used: d.last_used.into(),
                old: d.is_old(now, max_age),
                size: d.size,
            })
            .collect();
        g.print_json(&entries);
        return Ok(0);
    }
    if dirs.is_empty() {
        println!("no cache dirs found in {}", root.display());
        return Ok(0);
    }
    let rule = "-".repeat(44);
    println!("{:<12}{:<14}{:<6}Size", "Repo ID", "Last Used", "Old");
    println!("{rule}");
    for d in &dirs {
        let days = now
            .duration_since(d.last_used)
            .map_or(0, |age| age.as_secs() / 86_400);
        println!(
            "{:<12}{:<14}{:<6}{}",
            &d.id[..10],
            format!("{days} days ago"),
            if d.is_old(now, max_age) { "yes" } else { "" },
            d.size.map(format_bytes).unwrap_or_default()
        );
    }
    println!("{rule}");
    println!("{} cache dirs in {}", dirs.len(), root.display());
    Ok(0)
}

//! `stash forget`: remove snapshots by id or by retention policy.

use serde_json::json;

use super::snapshots::snapshot_json;
use stash_repo_format::{
    file_type::FileType,
    gotime::GoTime,
    retention::{Count, Duration, GroupBy, Policy},
    Id,
};

use super::Global;

/// Arguments of `forget`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Snapshots to remove explicitly (ids or prefixes).
    ids: Vec<String>,
    /// Keep the last n snapshots (`unlimited` for all).
    #[arg(short = 'l', long = "keep-last", value_parser = parse_count, default_value = "0")]
    keep_last: Count,
    /// Keep the last n hourly snapshots.
    #[arg(short = 'H', long = "keep-hourly", value_parser = parse_count, default_value = "0")]
    keep_hourly: Count,
    /// Keep the last n daily snapshots.
    #[arg(short = 'd', long = "keep-daily", value_parser = parse_count, default_value = "0")]
    keep_daily: Count,
    /// Keep the last n weekly snapshots.
    #[arg(short = 'w', long = "keep-weekly", value_parser = parse_count, default_value = "0")]
    keep_weekly: Count,
    /// Keep the last n monthly snapshots.
    #[arg(short = 'm', long = "keep-monthly", value_parser = parse_count, default_value = "0")]
    keep_monthly: Count,
    /// Keep the last n yearly snapshots.
    #[arg(short = 'y', long = "keep-yearly", value_parser = parse_count, default_value = "0")]
    keep_yearly: Count,
    /// Keep snapshots newer than this duration before the latest (e.g. 1y5m7d2h).
    #[arg(long = "keep-within", value_parser = parse_duration)]
    keep_within: Option<Duration>,
    /// Keep hourly snapshots within this duration.
    #[arg(long = "keep-within-hourly", value_parser = parse_duration)]
    keep_within_hourly: Option<Duration>,
    /// Keep daily snapshots within this duration.
    #[arg(long = "keep-within-daily", value_parser = parse_duration)]
    keep_within_daily: Option<Duration>,
    /// Keep weekly snapshots within this duration.
    #[arg(long = "keep-within-weekly", value_parser = parse_duration)]
    keep_within_weekly: Option<Duration>,
    /// Keep monthly snapshots within this duration.
    #[arg(long = "keep-within-monthly", value_parser = parse_duration)]
    keep_within_monthly: Option<Duration>,
    /// Keep yearly snapshots within this duration.
    #[arg(long = "keep-within-yearly", value_parser = parse_duration)]
    keep_within_yearly: Option<Duration>,
    /// Keep snapshots with all of these tags (repeatable: any of the lists).
    #[arg(long = "keep-tag")]
    keep_tag: Vec<String>,
    #[command(flatten)]
    filter: super::filter::FilterArgs,
    /// Group snapshots by these fields: host, paths, tags (comma-separated; '' for one group).
    #[arg(short = 'g', long = "group-by", default_value = "host,paths")]
    group_by: String,
    /// Only print what would be removed.
    #[arg(short = 'n', long = "dry-run")]
    dry_run: bool,
    /// Run prune afterwards.
    #[arg(long)]
    prune: bool,
    /// Allow an empty policy to remove all snapshots (needs a filter).
    #[arg(long = "unsafe-allow-remove-all")]
    unsafe_allow_remove_all: bool,
    #[command(flatten)]
    prune_opts: super::prune::PruneArgs,
}

fn parse_count(s: &str) -> Result<Count, String> {
    if s == "unlimited" {
        return Ok(-1);
    }
    match s.parse::<i64>() {
        Ok(n) if n >= 0 => Ok(n),
        Ok(-1) => Ok(-1),
        _ => Err(format!("invalid count {s:?}: a number >= 0 or 'unlimited'")),
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    Duration::parse(s).map_err(|e| e.to_string())
}

impl Args {
    fn policy(&self) -> Policy {
        Policy {
            last: self.keep_last,
            hourly: self.keep_hourly,
            daily: self.keep_daily,
            weekly: self.keep_weekly,
            monthly: self.keep_monthly,
            yearly: self.keep_yearly,
            within: self.keep_within.unwrap_or_default(),
            within_hourly: self.keep_within_hourly.unwrap_or_default(),
            within_daily: self.keep_within_daily.unwrap_or_default(),
            within_weekly: self.keep_within_weekly.unwrap_or_default(),
            within_monthly: self.keep_within_monthly.unwrap_or_default(),
            within_yearly: self.keep_within_yearly.unwrap_or_default(),
            tags: self
                .keep_tag
                .iter()
                .map(|t| t.split(',').map(String::from).collect())
                .collect(),
        }
    }
}

pub async fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    let repo = g.open().await?;
    let policy = a.policy();
    let by = GroupBy::parse(&a.group_by)?;
    let filter = a.filter.filter();
    let has_filter = !a.filter.is_empty();
    if policy.is_empty() && a.ids.is_empty() && !a.unsafe_allow_remove_all {
        if !g.quiet {
            eprintln!("no policy was specified, no snapshots will be removed");
        }
        if !a.prune {
            return Ok(0);
        }
    }
    anyhow::ensure!(
        !(a.unsafe_allow_remove_all && policy.is_empty() && !has_filter),
        "--unsafe-allow-remove-all needs a snapshot filter (--host, --tag or --path)"
    );
    // The lock's re-check overlaps reading and judging the snapshots; nothing is
    // deleted before it succeeds.
    let mut lock = repo.lock_unconfirmed(true).await?;
    let res = async {
        let mut remove: Vec<Id> = Vec::new();
        let mut report = Vec::new();
        if !a.ids.is_empty() {
            for s in &a.ids {
                remove.push(repo.resolve_prefix(FileType::Snapshot, s).await?);
            }
        } else if !policy.is_empty() || a.unsafe_allow_remove_all {
            let snaps: Vec<_> = repo.snapshots().await?.into_iter().filter(|(_, s)| filter.matches(s)).collect();
            for p in crate::forget::plan(snaps, &policy, by, &GoTime::now())? {
                if !g.json && !g.quiet {
                    println!("snapshots for {}:", serde_json::to_string(&p.key)?);
                    println!("keep {} snapshots:", p.keep.len());
                    for (id, s, why, _) in &p.keep {
                        println!("  {}  {}  {}  {}", id.short(), s.time, s.hostname, why.join(", "));
                    }
                    println!("remove {} snapshots:", p.remove.len());
                    for (id, s) in &p.remove {
                        println!("  {}  {}  {}", id.short(), s.time, s.hostname);
                    }
                }
                remove.extend(p.remove.iter().map(|(id, _)| *id));
                report.push(json!({
                    "host": p.key.hostname, "paths": p.key.paths, "tags": p.key.tags,
                    "keep": p.keep.iter().map(|k| snapshot_json(&k.0, &k.1)).collect::<Vec<_>>(),
                    "remove": p.remove.iter().map(|r| snapshot_json(&r.0, &r.1)).collect::<Vec<_>>(),
                    "reasons": p.keep.iter().map(|k| json!({"snapshot": snapshot_json(&k.0, &k.1), "matches": k.2, "counters": k.3})).collect::<Vec<_>>(),
                }));
            }
        }
        lock.confirm().await?;
        if a.dry_run {
            if !g.json && !g.quiet {
                println!("would have removed {} snapshots", remove.len());
            }
        } else {
            repo.remove_all(FileType::Snapshot, &remove).await?;
            if !g.json && !g.quiet {
                println!("removed {} snapshots", remove.len());
            }
        }
        if g.json {
            g.print_json(&report);
        }
        if a.prune && !a.dry_run {
            super::prune::prune_locked(g, &repo, &a.prune_opts).await?;
        }
        anyhow::Ok(())
    }
    .await;
    lock.release().await?;
    res?;
    Ok(0)
}

//! `stash snapshots`

use serde_json::json;

use super::Global;

/// Arguments of `snapshots`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    filter: super::filter::FilterArgs,
    /// Only the latest n snapshots per host and paths.
    #[arg(long)]
    latest: Option<usize>,
}

/// A snapshot as restic's `--json` outputs show it: its fields, `id` and `short_id`.
pub(super) fn snapshot_json(
    id: &stash_repo_format::Id,
    s: &stash_repo_format::snapshot::Snapshot,
) -> serde_json::Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("id".into(), json!(id.to_string()));
        o.insert("short_id".into(), json!(id.short()));
    }
    v
}

pub async fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    let repo = g.open().await?;
    let filter = a.filter.filter();
    let mut snaps: Vec<_> = repo
        .snapshots()
        .await?
        .into_iter()
        .filter(|(_, s)| filter.matches(s))
        .collect();
    if let Some(n) = a.latest {
        let mut seen: std::collections::HashMap<(String, Vec<String>), usize> = Default::default();
        let mut keep = Vec::new();
        for (id, s) in snaps.into_iter().rev() {
            let mut p = s.paths.clone();
            p.sort();
            let c = seen.entry((s.hostname.clone(), p)).or_default();
            if *c < n {
                *c += 1;
                keep.push((id, s));
            }
        }
        keep.reverse();
        snaps = keep;
    }
    if g.json {
        let v: Vec<serde_json::Value> = snaps.iter().map(|(id, s)| snapshot_json(id, s)).collect();
        g.print_json(&v);
        return Ok(0);
    }
    println!(
        "{:<8}  {:<19}  {:<12}  {:<12}  Paths",
        "ID", "Time", "Host", "Tags"
    );
    println!("{}", "-".repeat(72));
    for (id, s) in &snaps {
        let time = s
            .time
            .datetime()
            .with_timezone(&chrono::Local)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string();
        let no_path = [String::new()];
        let paths = if s.paths.is_empty() {
            &no_path[..]
        } else {
            &s.paths[..]
        };
        for (i, p) in paths.iter().enumerate() {
            if i == 0 {
                println!(
                    "{:<8}  {:<19}  {:<12}  {:<12}  {}",
                    id.short(),
                    time,
                    s.hostname,
                    s.tags.join(","),
                    p
                );
            } else {
                println!("{:<8}  {:<19}  {:<12}  {:<12}  {}", "", "", "", "", p);
            }
        }
    }
    println!("{}", "-".repeat(72));
    println!("{} snapshots", snaps.len());
    Ok(0)
}

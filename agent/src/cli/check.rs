//! `stash check`

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use super::{progress, Global};
use crate::check::{check, warm_first_packs, ReadData};

/// Arguments of `check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Read and verify all data blobs.
    #[arg(long = "read-data")]
    read_data: bool,
    /// Read a subset of packs: `n/t` or `x%`.
    #[arg(long = "read-data-subset")]
    read_data_subset: Option<String>,
}

fn parse_subset(s: &str) -> anyhow::Result<ReadData> {
    if let Some(p) = s.strip_suffix('%') {
        let v: f64 = p
            .parse()
            .map_err(|_| anyhow::anyhow!("invalid --read-data-subset {s:?}"))?;
        anyhow::ensure!(
            v > 0.0 && v <= 100.0,
            "--read-data-subset percentage must be in (0, 100]"
        );
        return Ok(ReadData::Percent(v));
    }
    let (n, t) = s
        .split_once('/')
        .ok_or_else(|| anyhow::anyhow!("invalid --read-data-subset {s:?}: use n/t or x%"))?;
    let (n, t): (u32, u32) = (n.parse()?, t.parse()?);
    anyhow::ensure!(n >= 1 && n <= t, "--read-data-subset n/t needs 1 <= n <= t");
    Ok(ReadData::Subset(n, t))
}

pub async fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    let how = match (&a.read_data_subset, a.read_data) {
        (Some(s), _) => parse_subset(s)?,
        (None, true) => ReadData::All,
        (None, false) => ReadData::None,
    };
    let backend = g.backend(false).await?;
    // Detached: it only hints, and finishes long before the first pack is read.
    tokio::spawn({
        let backend = backend.clone();
        async move { warm_first_packs(&*backend, how).await }
    });
    let repo = g.open_backend(backend).await?;
    // The re-check for conflicting locks overlaps the checking; nothing is
    // reported before it succeeds.
    let mut lock = match g.no_lock() {
        true => None,
        false => Some(repo.lock_unconfirmed(true).await?),
    };
    let done = Arc::new(AtomicU64::new(0));
    let total = Arc::new(AtomicU64::new(0));
    let (d, t) = (done.clone(), total.clone());
    let bar = progress::start(g, move || {
        (
            d.load(Ordering::Relaxed),
            t.load(Ordering::Relaxed),
            "packs".into(),
        )
    });
    let (res, confirmed) = tokio::join!(
        check(
            &repo,
            how,
            Some(Arc::new(move |n, tot| {
                done.store(n, Ordering::Relaxed);
                total.store(tot, Ordering::Relaxed);
            })),
        ),
        async {
            match lock.as_mut() {
                Some(l) => l.confirm().await,
                None => Ok(()),
            }
        }
    );
    drop(bar);
    if let Some(lock) = lock {
        lock.release().await?;
    }
    confirmed?;
    let r = res?;
    if g.json {
        g.print_json(&r);
    } else {
        if !g.quiet {
            println!(
                "checked {} snapshots, read {} packs",
                r.snapshots, r.packs_read
            );
            for h in &r.hints {
                println!("hint: {h}");
            }
        }
        for e in &r.errors {
            eprintln!("error: {e}");
        }
        if !r.damaged_packs.is_empty() {
            eprintln!(
                "damaged packs: {}",
                r.damaged_packs
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if !r.damaged_snapshots.is_empty() {
            eprintln!(
                "affected snapshots: {}",
                r.damaged_snapshots
                    .iter()
                    .map(|i| i.short())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if r.errors.is_empty() && !g.quiet {
            println!("no errors were found");
        }
    }
    if !r.errors.is_empty() {
        eprintln!("Fatal: repository contains errors");
        return Ok(1);
    }
    Ok(0)
}

//! `stash sidecar`: the process in a workload's pod that watches the BackupSessions of
//! its configuration and, for each running session, backs up its host's directories
//! in-process with the engine (one snapshot per directory, as Stash), applies the
//! retention policy to its host's snapshots, and records the results on the session
//! and the Repository.
//!
//! The sidecar claims its host on the session before reading a byte, so of several
//! replicas sharing one host exactly one backs it up, and a sidecar that restarts
//! mid-backup finds its own claim and fails it with the reason instead of leaving the
//! session running.

use std::{
    collections::HashSet,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::Utc;
use futures::TryStreamExt;
use kube::{
    api::{ListParams, Patch, PatchParams},
    runtime::{watcher, WatchStreamExt},
    Api, Client, ResourceExt,
};
use serde_json::json;
use stash_agent::{
    backup::{backup, BackupOptions, Counters},
    repository::{files::SnapshotFilter, Repository as Engine},
};
use stash_repo_format::retention::{GroupBy, Policy};
use tokio::sync::watch;

use crate::{
    controller::invoker_name,
    crd::{
        backup_configuration::BackupConfiguration,
        backup_session::BackupSession,
        common::RetentionPolicy,
        repository::{Repository, RepositoryStatus},
    },
    runner::{open_repository, retry_locked, update_status, Pod, RunnerError},
    session::{self, DirectoryResult, RUNNING},
    time::to_k8s,
};

/// Who this sidecar is.
#[derive(Debug, Clone)]
pub struct SidecarOptions {
    pub configuration: String,
    pub pod: Pod,
}

/// Watches sessions until the process is stopped.
///
/// # Errors
/// Only when the watch cannot be set up; a failed backup fails its session instead.
pub async fn run(client: Client, opts: SidecarOptions) -> Result<(), RunnerError> {
    let api: Api<BackupSession> = Api::namespaced(client.clone(), &opts.pod.namespace);
    fail_interrupted(&client, &opts).await?;
    eprintln!(
        "stash sidecar of BackupConfiguration {}/{} ready",
        opts.pod.namespace, opts.configuration
    );
    let activity = release_pages_when_idle();
    let mut done: HashSet<String> = HashSet::new();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .applied_objects();
    futures::pin_mut!(stream);
    while let Some(bs) = stream.try_next().await.unwrap_or_else(|e| {
        tracing::warn!("watching BackupSessions: {e}");
        None
    }) {
        activity.send_replace(false);
        if invoker_name(&bs) != Some(opts.configuration.as_str()) {
            continue;
        }
        let Some(uid) = bs.uid() else {
            continue;
        };
        if done.contains(&uid)
            || bs.status.as_ref().and_then(|s| s.phase.as_deref()) != Some(RUNNING)
        {
            continue;
        }
        activity.send_replace(true);
        let worked = work(&client, &opts, &bs).await;
        activity.send_replace(false);
        match worked {
            Ok(true) => {
                done.insert(uid);
            }
            Ok(false) => {}
            Err(e) => eprintln!("error: BackupSession {}: {e}", bs.name_any()),
        }
    }
    Ok(())
}

/// How long the sidecar must see no session event before it gives back its pages,
/// and how often it does so again while idle: the API server's watch bookmarks and
/// keep-alives run code too, mapping pages again.
const IDLE: Duration = Duration::from_secs(15);

/// Starts a task that gives back the pages of the binary the sidecar's work touched
/// (`release_own_code_pages`) every [`IDLE`] without a mark on the returned sender,
/// unless the last mark said busy (`true`): between backups the sidecar then holds
/// little more than its heap instead of most of the binary, for one short system
/// call pass per [`IDLE`]. The task ends with the sender.
fn release_pages_when_idle() -> watch::Sender<bool> {
    let (tx, mut rx) = watch::channel(false);
    tokio::spawn(async move {
        loop {
            let busy = *rx.borrow_and_update();
            let marked = if busy {
                Ok(rx.changed().await)
            } else {
                tokio::time::timeout(IDLE, rx.changed()).await
            };
            match marked {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return,
                Err(_) => {
                    let _ =
                        tokio::task::spawn_blocking(stash_agent::sys::release_own_code_pages).await;
                }
            }
        }
    });
    tx
}

/// This pod's host for the configuration.
async fn my_host(
    client: &Client,
    opts: &SidecarOptions,
) -> Result<(BackupConfiguration, String), RunnerError> {
    let bc = Api::<BackupConfiguration>::namespaced(client.clone(), &opts.pod.namespace)
        .get(&opts.configuration)
        .await?;
    let target = bc.spec.target.clone().unwrap_or_default();
    let host = opts
        .pod
        .host(target.reference.as_ref(), target.alias.as_deref())?;
    Ok((bc, host))
}

/// Fails this host's entries that are still Running: they are this sidecar's own
/// claims from before a restart, whose backup will never finish.
async fn fail_interrupted(client: &Client, opts: &SidecarOptions) -> Result<(), RunnerError> {
    let (_, host) = my_host(client, opts).await?;
    let api: Api<BackupSession> = Api::namespaced(client.clone(), &opts.pod.namespace);
    for bs in api.list(&ListParams::default()).await?.items {
        if invoker_name(&bs) != Some(opts.configuration.as_str()) {
            continue;
        }
        let Some(status) = &bs.status else { continue };
        let mine =
            session::host(status, &host).is_some_and(|h| h.phase.as_deref() == Some(RUNNING));
        if status.phase.as_deref() == Some(RUNNING) && mine {
            let why = format!(
                "the backup process of {host} restarted before it finished (pod {})",
                opts.pod.name
            );
            let failed = session::host_stats(&host, "", &[], Some(why), Duration::ZERO);
            update_status(&api, &bs.name_any(), |s| {
                session::record(s, failed.clone(), Vec::new());
                Some(())
            })
            .await?;
        }
    }
    Ok(())
}

/// Backs up this host for `bs` if it is this sidecar's to do; returns whether the
/// session needs nothing more from this sidecar.
async fn work(
    client: &Client,
    opts: &SidecarOptions,
    bs: &BackupSession,
) -> Result<bool, RunnerError> {
    let (bc, host) = my_host(client, opts).await?;
    let api: Api<BackupSession> = Api::namespaced(client.clone(), &opts.pod.namespace);
    let name = bs.name_any();
    let claimed = update_status(&api, &name, |s| session::claim(s, &host).then_some(())).await?;
    if claimed.is_none() {
        return Ok(true);
    }
    let started = Instant::now();
    eprintln!("BackupSession {name}: backing up {host}");
    let (results, error) = match backup_host(client, opts, &bc, &host).await {
        Ok(r) => (r, None),
        Err((r, e)) => (r, Some(e.to_string())),
    };
    let repository = bc.spec.repository.name.clone();
    let stats = session::host_stats(
        &host,
        &repository,
        &results,
        error.clone(),
        started.elapsed(),
    );
    let seed = session::seed_stats(&host, &results);
    update_status(&api, &name, |s| {
        session::record(s, stats.clone(), seed.clone());
        Some(())
    })
    .await?;
    crate::push::backup_result(&opts.pod, &bc, &stats).await;
    match error {
        Some(e) => eprintln!("BackupSession {name}: {host} failed: {e}"),
        None => eprintln!(
            "BackupSession {name}: {host} done ({} snapshots)",
            results.len()
        ),
    }
    Ok(true)
}

/// What finished before a failure, and the failure.
pub(crate) type Partial = (Vec<DirectoryResult>, RunnerError);

async fn backup_host(
    client: &Client,
    opts: &SidecarOptions,
    bc: &BackupConfiguration,
    host: &str,
) -> Result<Vec<DirectoryResult>, Partial> {
    let (engine, repo) = open_repository(client, &opts.pod, &bc.spec.repository.name, true)
        .await
        .map_err(|e| (Vec::new(), e))?;
    let target = bc.spec.target.clone().unwrap_or_default();
    let results = backup_directories(&engine, target.directories(), host, &target.exclude).await?;
    let removed = match &bc.spec.retention_policy {
        Some(p) => apply_retention(&engine, p, host)
            .await
            .map_err(|e| (results.clone(), e))?,
        None => 0,
    };
    if let Err(e) = write_repository_status(client, &engine, &repo, removed).await {
        eprintln!("warning: updating Repository {}: {e}", repo.name_any());
    }
    Ok(results)
}

/// Backs up each of `directories` as a snapshot of its own under `host`, as Stash
/// runs restic; stops at the first failure.
pub(crate) async fn backup_directories(
    engine: &Engine,
    directories: &[String],
    host: &str,
    excludes: &[String],
) -> Result<Vec<DirectoryResult>, Partial> {
    let mut results = Vec::new();
    for dir in directories {
        let t0 = Instant::now();
        let o = BackupOptions {
            targets: vec![PathBuf::from(dir)],
            host: Some(host.to_string()),
            excludes: excludes.to_vec(),
            ..BackupOptions::default()
        };
        match retry_locked(|| backup(engine, &o, Arc::new(Counters::default()))).await {
            Ok(r) => {
                let s = &r.summary;
                results.push(DirectoryResult {
                    path: dir.clone(),
                    snapshot: r.snapshot_id.short(),
                    total_bytes: s.total_bytes_processed,
                    uploaded_bytes: s.data_added_packed,
                    processing: t0.elapsed(),
                    total_files: s.total_files_processed,
                    new_files: s.files_new,
                    changed_files: s.files_changed,
                    unmodified_files: s.files_unmodified,
                });
            }
            Err(e) => {
                return Err((
                    results,
                    RunnerError::Config(format!("backing up {dir}: {e}")),
                ))
            }
        }
    }
    Ok(results)
}

fn policy_of(p: &RetentionPolicy) -> Policy {
    Policy {
        last: p.keep_last.unwrap_or(0),
        hourly: p.keep_hourly.unwrap_or(0),
        daily: p.keep_daily.unwrap_or(0),
        weekly: p.keep_weekly.unwrap_or(0),
        monthly: p.keep_monthly.unwrap_or(0),
        yearly: p.keep_yearly.unwrap_or(0),
        tags: p.keep_tags.iter().map(|t| vec![t.clone()]).collect(),
        ..Policy::default()
    }
}

/// `forget` of this host's snapshots by the policy (per host and path, as Stash runs
/// restic), then `prune` when the policy asks; returns the number removed.
pub(crate) async fn apply_retention(
    engine: &Engine,
    p: &RetentionPolicy,
    host: &str,
) -> Result<i64, RunnerError> {
    let policy = policy_of(p);
    if policy.is_empty() || p.dry_run {
        return Ok(0);
    }
    let filter = SnapshotFilter {
        hosts: vec![host.to_string()],
        ..SnapshotFilter::default()
    };
    let by = GroupBy::parse("host,paths").map_err(|e| RunnerError::Config(e.to_string()))?;
    let plans = retry_locked(|| stash_agent::forget::forget(engine, &filter, &policy, by)).await?;
    let removed: usize = plans.iter().map(|g| g.remove.len()).sum();
    if p.prune && removed > 0 {
        let lock = retry_locked(|| engine.lock(true)).await?;
        let res = stash_agent::prune::prune(engine, &Default::default(), false).await;
        lock.release().await?;
        res?;
    }
    Ok(removed as i64)
}

/// Snapshot count, stored size and backup times on the Repository's status.
pub(crate) async fn write_repository_status(
    client: &Client,
    engine: &Engine,
    repo: &Repository,
    removed: i64,
) -> Result<(), RunnerError> {
    let snapshots = engine.snapshots().await?;
    let stored: u64 = engine
        .load_index_files()
        .await?
        .iter()
        .flat_map(|(_, f)| f.packs.iter())
        .flat_map(|p| p.blobs.iter())
        .map(|b| u64::from(b.length))
        .sum();
    let first = snapshots.iter().map(|(_, s)| s.time).min();
    let now = to_k8s(Utc::now());
    let status = RepositoryStatus {
        observed_generation: repo.metadata.generation,
        first_backup_time: first.and_then(|t| {
            chrono::DateTime::parse_from_rfc3339(&t.to_string())
                .ok()
                .map(|d| to_k8s(d.with_timezone(&Utc)))
        }),
        last_backup_time: Some(now),
        integrity: Some(true),
        total_size: Some(session::human_size(stored)),
        snapshot_count: Some(snapshots.len() as i64),
        snapshots_removed_on_last_cleanup: Some(removed),
        conditions: repo.status.clone().unwrap_or_default().conditions,
    };
    let ns = repo.namespace().ok_or_else(|| {
        RunnerError::Config(format!(
            "Repository {}: metadata.namespace is missing",
            repo.name_any()
        ))
    })?;
    Api::<Repository>::namespaced(client.clone(), &ns)
        .patch_status(
            &repo.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": status })),
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_maps_to_restics_policy() {
        let p = RetentionPolicy {
            keep_last: Some(5),
            keep_daily: Some(7),
            keep_tags: vec!["a".into()],
            prune: true,
            ..RetentionPolicy::default()
        };
        let policy = policy_of(&p);
        assert_eq!((policy.last, policy.daily, policy.hourly), (5, 7, 0));
        assert_eq!(policy.tags, vec![vec!["a".to_string()]]);
        assert!(policy_of(&RetentionPolicy::default()).is_empty());
    }
}

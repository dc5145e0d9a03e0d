//! `stash restore-init`: the init container the operator adds to a workload for a
//! RestoreSession. It claims its host on the session, restores the snapshots its rule
//! picks in-process with the engine, records the result, and lets the workload start.
//!
//! A host is restored once: a later start of the pod (a crash, a reschedule, a scale
//! up) finds the host's result recorded and exits at once. A failed restore is recorded
//! as the host's error and the workload still starts; the session says Failed.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use kube::{Api, Client};
use stash_agent::restore::{fetch::Progress, restore, RestoreOptions};

use crate::{
    crd::restore_session::RestoreSession,
    restore::{self, Claim, HostResult},
    runner::{open_repository, retry_locked, update_status, Pod, RunnerError},
    session::is_final,
};

/// How often a pod waiting for another pod's restore of the same host looks again.
const POLL: Duration = Duration::from_secs(2);

/// Restores this pod's host for `restore_session`, then returns so the workload's
/// containers start.
///
/// # Errors
/// Only when the session cannot be read or written; a failed restore is recorded on
/// the session instead.
pub async fn run(client: Client, pod: Pod, restore_session: &str) -> Result<(), RunnerError> {
    let api: Api<RestoreSession> = Api::namespaced(client.clone(), &pod.namespace);
    let Some(rs) = api.get_opt(restore_session).await? else {
        eprintln!("RestoreSession {restore_session:?} no longer exists: nothing to restore");
        return Ok(());
    };
    let target = rs.spec.target.clone().unwrap_or_default();
    let host = pod.host(target.reference.as_ref(), target.alias.as_deref())?;
    loop {
        let mut seen = Claim::NotRunning;
        update_status(&api, restore_session, |s| {
            seen = restore::claim(s, &host, &pod.name);
            (seen == Claim::Mine).then_some(())
        })
        .await?;
        match seen {
            Claim::Mine => break,
            Claim::Done => {
                eprintln!(
                    "RestoreSession {restore_session}: {host} is restored already; nothing to do"
                );
                return Ok(());
            }
            Claim::Busy { pod: other } => {
                eprintln!(
                    "RestoreSession {restore_session}: pod {other} restores {host}; waiting for it"
                );
            }
            Claim::NotRunning => {
                let phase = api
                    .get_status(restore_session)
                    .await?
                    .status
                    .and_then(|s| s.phase);
                if is_final(phase.as_deref()) {
                    eprintln!(
                        "RestoreSession {restore_session} is {}: nothing to restore",
                        phase.unwrap_or_default()
                    );
                    return Ok(());
                }
            }
        }
        tokio::time::sleep(POLL).await;
    }
    let started = Instant::now();
    eprintln!("RestoreSession {restore_session}: restoring {host}");
    let error = restore_host(&client, &pod, &rs, &host)
        .await
        .err()
        .map(|e| e.to_string());
    match &error {
        Some(e) => eprintln!("RestoreSession {restore_session}: {host} failed: {e}"),
        None => eprintln!("RestoreSession {restore_session}: {host} restored"),
    }
    let result = HostResult {
        took: started.elapsed(),
        error,
    };
    update_status(&api, restore_session, |s| {
        restore::record(s, &host, &pod.name, result.clone());
        Some(())
    })
    .await?;
    crate::push::restore_result(&pod, &rs, &host, &result).await;
    Ok(())
}

pub(crate) async fn restore_host(
    client: &Client,
    pod: &Pod,
    rs: &RestoreSession,
    host: &str,
) -> Result<(), RunnerError> {
    let Some(plan) = restore::plan(&rs.spec, host) else {
        eprintln!("no rule of the RestoreSession is for {host}: nothing restored");
        return Ok(());
    };
    let repository = &rs.spec.repository.name;
    let (engine, _) = open_repository(client, pod, repository, false).await?;
    let lock = retry_locked(|| engine.lock(false)).await?;
    let result = async {
        let snapshots = engine.snapshots().await?;
        let chosen = restore::select(&plan, &snapshots, repository)
            .map_err(|e| RunnerError::Config(e.to_string()))?;
        for (id, snapshot) in chosen {
            let tree = snapshot.tree.ok_or_else(|| {
                RunnerError::Config(format!("snapshot {} has no tree", id.short()))
            })?;
            let opts = RestoreOptions {
                target: PathBuf::from("/"),
                include: plan.include.clone(),
                exclude: plan.exclude.clone(),
                subpath: None,
                ..Default::default()
            };
            let s = restore(&engine, tree, &opts, Arc::new(Progress::default()))
                .await
                .map_err(|e| {
                    RunnerError::Config(format!("restoring snapshot {}: {e}", id.short()))
                })?;
            eprintln!(
                "restored snapshot {} of {} {:?}: {} files, {} bytes",
                id.short(),
                snapshot.hostname,
                snapshot.paths,
                s.files_restored,
                s.bytes_restored
            );
        }
        Ok(())
    }
    .await;
    lock.release().await?;
    result
}

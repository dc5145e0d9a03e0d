//! The BackupSession controller: starts a session (Running, the hosts it waits for,
//! its deadline) or skips it while another session of the same configuration runs,
//! ends it when every host has reported or the deadline passed, records the last
//! backup on the configuration, and keeps `backupHistoryLimit` finished sessions.
//!
//! The sidecars write the per-host results; this controller only judges them.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use kube::{
    api::{DeleteParams, ListParams, Patch, PatchParams},
    runtime::{controller::Action, events::EventType},
    Api, Resource, ResourceExt,
};
use serde_json::json;

use super::{resolve::resolve, task_job, workload::Workload, Context, Error};
use crate::{
    crd::{
        backup_configuration::BackupConfiguration,
        backup_session::{BackupSession, BackupSessionStatus},
        common::TargetRef,
    },
    host::TargetKind,
    job::outcome::JobOutcome,
    session::{self, DEFAULT_TIMEOUT, FAILED, RUNNING, SKIPPED, SUCCEEDED},
    time::{after, from_k8s, to_k8s},
    vars::Session,
};

/// The configuration a session names, in either spelling; the design's, when
/// present, is the newest word (see [`crate::canonical`]).
pub fn invoker_name(s: &BackupSession) -> Option<&str> {
    s.spec
        .backup_configuration
        .as_ref()
        .map(|b| b.name.as_str())
        .or(s
            .spec
            .invoker
            .as_ref()
            .filter(|i| i.kind == "BackupConfiguration")
            .map(|i| i.name.as_str()))
        .filter(|n| !n.is_empty())
}

fn phase(s: &BackupSession) -> Option<&str> {
    s.status.as_ref().and_then(|s| s.phase.as_deref())
}

pub async fn reconcile(bs: Arc<BackupSession>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics.reconciled("backupsession");
    if session::is_final(phase(&bs)) {
        return Ok(Action::await_change());
    }
    if super::canonicalize(
        bs.as_ref(),
        &ctx,
        crate::canonical::backup_session(&bs.spec),
    )
    .await?
    {
        return Ok(Action::await_change());
    }
    let ns = super::meta::namespace(&*bs)?;
    let Some(bc_name) = invoker_name(&bs) else {
        let why = "spec.invoker names no BackupConfiguration".to_string();
        return end(&bs, &ctx, FAILED, &why, None).await;
    };
    let Some(bc) = Api::<BackupConfiguration>::namespaced(ctx.client.clone(), &ns)
        .get_opt(bc_name)
        .await?
    else {
        let why = format!("BackupConfiguration {bc_name:?} not found in namespace {ns:?}");
        return end(&bs, &ctx, FAILED, &why, None).await;
    };
    match phase(&bs) {
        Some(RUNNING) => judge(&bs, &bc, &ctx).await,
        _ => start(&bs, &bc, &ctx).await,
    }
}

async fn start(
    bs: &BackupSession,
    bc: &BackupConfiguration,
    ctx: &Context,
) -> Result<Action, Error> {
    let ns = super::meta::namespace(bs)?;
    let sessions = Api::<BackupSession>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default())
        .await?;
    let busy = sessions.items.iter().find(|o| {
        o.uid() != bs.uid() && invoker_name(o) == Some(&bc.name_any()) && phase(o) == Some(RUNNING)
    });
    if let Some(other) = busy {
        let why = format!(
            "BackupSession {:?} of the same configuration is still running",
            other.name_any()
        );
        return end(bs, ctx, SKIPPED, &why, Some(bc)).await;
    }
    if bc.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Ready") {
        let detail = bc
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.status == "False"))
            .map(|c| c.message.clone())
            .unwrap_or_else(|| "it has not been reconciled yet".to_string());
        let why = format!(
            "BackupConfiguration {:?} is not ready: {detail}",
            bc.name_any()
        );
        return end(bs, ctx, FAILED, &why, Some(bc)).await;
    }
    let target = bc
        .spec
        .target
        .as_ref()
        .and_then(|t| t.reference.clone())
        .unwrap_or_default();
    let hosts = match target.kind.parse::<TargetKind>() {
        Ok(kind) => Workload::get(&ctx.client, kind, &ns, &target.name)
            .await?
            .map(|w| w.hosts())
            .unwrap_or(1),
        Err(_) => 1,
    };
    // An invalid timeOut makes the configuration NotReady, which failed above.
    let timeout = session::timeout(bc.spec.time_out.as_deref()).unwrap_or(DEFAULT_TIMEOUT);
    let deadline = after(super::created(bs), timeout);
    let mut status = bs.status.clone().unwrap_or_default();
    session::start(
        &mut status,
        TargetRef {
            namespace: None,
            ..target.clone()
        },
        hosts,
        to_k8s(deadline),
    );
    super::replace_status(bs, ctx, status).await?;
    ctx.event(
        &bs.object_ref(&()),
        EventType::Normal,
        "Running",
        format!(
            "backing up {} {:?}: waiting for {hosts} host(s)",
            target.kind, target.name
        ),
    )
    .await;
    Ok(Action::requeue(timeout))
}

/// Whether the configuration's sessions run as Jobs (a claim target).
fn job_model(bc: &BackupConfiguration) -> bool {
    match bc.spec.target.as_ref().and_then(|t| t.reference.as_ref()) {
        Some(r) => matches!(
            r.kind.parse::<TargetKind>(),
            Ok(TargetKind::PersistentVolumeClaim | TargetKind::AppBinding)
        ),
        // A cluster backup; a configuration without a target or Task is never Ready.
        None => bc
            .spec
            .task
            .as_ref()
            .and_then(|t| t.name.as_ref())
            .is_some(),
    }
}

/// The session's Job: created when missing, else where it stands.
async fn job_step(
    bs: &BackupSession,
    bc: &BackupConfiguration,
    ctx: &Context,
) -> Result<JobOutcome, Error> {
    let ns = super::meta::namespace(bs)?;
    let name = bs.name_any();
    if let Some(o) = task_job::outcome(&ctx.client, &ns, &name).await? {
        return Ok(o);
    }
    let r = resolve(&ctx.client, bc).await?;
    let (Some(repository), Some(location), Some(secret), true) =
        (&r.repository, &r.location, &r.secret, r.ok())
    else {
        let why = r
            .first_failure()
            .map(|c| c.message.clone())
            .unwrap_or_else(|| "the configuration's references did not resolve".into());
        return Ok(JobOutcome::Failed(why));
    };
    let kind = match (&r.claim, &r.app_binding) {
        (Some(_), _) => TargetKind::PersistentVolumeClaim,
        (None, Some(_)) => TargetKind::AppBinding,
        (None, None) => TargetKind::Cluster,
    };
    let mut params = task_job::params(bc.spec.task.as_ref());
    if let Some(ab) = &r.app_binding {
        match task_job::app_binding_params(ab) {
            Ok(p) => params.extend(p),
            Err(why) => return Ok(JobOutcome::Failed(why)),
        }
    }
    let target = bc.spec.target.clone().unwrap_or_default();
    let host = task_job::job_host(kind, target.alias.as_deref());
    let target_name = match (&r.claim, &r.app_binding) {
        (Some(c), _) => c.name_any(),
        (None, Some(a)) => a.name_any(),
        (None, None) => String::new(),
    };
    let configuration = bc.name_any();
    let req = task_job::Request {
        owner: bs,
        session: Session::Backup {
            session: &name,
            configuration: &configuration,
        },
        target: match kind {
            TargetKind::PersistentVolumeClaim => task_job::claim_target(&target_name, &ns),
            TargetKind::AppBinding => task_job::app_binding_target(&target_name, &ns),
            _ => task_job::cluster_target(&ns),
        },
        hostname: &host,
        repository,
        location,
        secret,
        claim: r.claim.as_ref(),
        mounts: target.claim_mounts(),
        params,
        retention: bc.spec.retention_policy.as_ref(),
        temp_dir: bc.spec.temp_dir.clone(),
        deadline_seconds: task_job::seconds_left(
            bs.status.as_ref().and_then(|s| s.session_deadline.as_ref()),
        ),
    };
    let task_name = task_job::task_name(bc.spec.task.as_ref(), kind, true);
    task_job::start(ctx, &req, &task_name).await
}

async fn judge(
    bs: &BackupSession,
    bc: &BackupConfiguration,
    ctx: &Context,
) -> Result<Action, Error> {
    let mut status = bs.status.clone().unwrap_or_default();
    let job = job_model(bc);
    if job && session::outcome(&status).is_none() {
        match job_step(bs, bc, ctx).await? {
            JobOutcome::Running => {}
            JobOutcome::Failed(why) => return end(bs, ctx, FAILED, &why, Some(bc)).await,
            JobOutcome::Complete => {
                // A Task without our post step says nothing itself: its Job's success
                // is the host's.
                let host = session::unfinished_hosts(&status)
                    .pop()
                    .unwrap_or_else(|| crate::host::DEFAULT_HOST.to_string());
                let stats =
                    session::host_stats(&host, &bc.spec.repository.name, &[], None, super::age(bs));
                session::record(&mut status, stats, Vec::new());
                let mut done = bs.clone();
                done.status = Some(status);
                return end(&done, ctx, SUCCEEDED, "", Some(bc)).await;
            }
        }
    }
    if let Some(outcome) = session::outcome(&status) {
        let why = status
            .targets
            .first()
            .into_iter()
            .flat_map(|t| t.stats.iter())
            .filter_map(|h| h.error.as_ref().map(|e| format!("{}: {e}", h.hostname)))
            .collect::<Vec<_>>()
            .join("; ");
        return end(bs, ctx, outcome, &why, Some(bc)).await;
    }
    let deadline = status.session_deadline.as_ref().map(from_k8s);
    let now = Utc::now();
    match deadline {
        Some(d) if d <= now => {
            let mut missing = session::unfinished_hosts(&status);
            let total = status
                .targets
                .first()
                .and_then(|t| t.total_hosts)
                .unwrap_or(0);
            let reported = status.targets.first().map_or(0, |t| t.stats.len());
            if missing.is_empty() || reported < total as usize {
                missing.push(format!(
                    "{} host(s) never started",
                    (total as usize).saturating_sub(reported)
                ));
            }
            let why = format!(
                "timed out at its deadline: no result from {}",
                missing.join(", ")
            );
            end(bs, ctx, FAILED, &why, Some(bc)).await
        }
        Some(d) => {
            let left = (d - now)
                .to_std()
                .unwrap_or_default()
                .max(Duration::from_secs(1));
            Ok(Action::requeue(if job {
                left.min(task_job::POLL)
            } else {
                left
            }))
        }
        None if job => Ok(Action::requeue(task_job::POLL)),
        None => Ok(Action::requeue(DEFAULT_TIMEOUT)),
    }
}

/// Ends `bs` in `phase` with `why`, then updates its configuration.
async fn end(
    bs: &BackupSession,
    ctx: &Context,
    phase: &str,
    why: &str,
    bc: Option<&BackupConfiguration>,
) -> Result<Action, Error> {
    let mut status = bs.status.clone().unwrap_or_default();
    let took = super::age(bs);
    let reason = (!why.is_empty()).then_some(why);
    session::finish(&mut status, phase, reason, took);
    set_reason(&mut status, phase, why);
    super::replace_status(bs, ctx, status).await?;
    ctx.metrics.session_finished(phase);
    let type_ = if phase == SUCCEEDED || phase == SKIPPED {
        EventType::Normal
    } else {
        EventType::Warning
    };
    let note = if why.is_empty() {
        format!("session {phase}")
    } else {
        format!("session {phase}: {why}")
    };
    ctx.event(&bs.object_ref(&()), type_, phase, note.clone())
        .await;
    if let Some(bc) = bc {
        ctx.event(
            &bc.object_ref(&()),
            type_,
            &format!("Session{phase}"),
            format!("BackupSession {:?}: {note}", bs.name_any()),
        )
        .await;
        if phase == SUCCEEDED {
            let patch = json!({"status": {"lastBackupTime": to_k8s(Utc::now())}});
            Api::<BackupConfiguration>::namespaced(
                ctx.client.clone(),
                &super::meta::namespace(bc)?,
            )
            .patch_status(
                &bc.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        }
        trim_history(bc, ctx).await?;
    }
    Ok(Action::await_change())
}

/// The session's `BackupSucceeded`/`BackupFailed`-style condition with the reason.
fn set_reason(status: &mut BackupSessionStatus, phase: &str, why: &str) {
    let check = crate::conditions::Check {
        type_: "SessionFinished",
        ok: phase == SUCCEEDED,
        reason: match phase {
            SUCCEEDED => "Succeeded",
            SKIPPED => "Skipped",
            _ => "Failed",
        },
        message: if why.is_empty() {
            format!("session {phase}")
        } else {
            why.to_string()
        },
    };
    crate::conditions::set(&mut status.conditions, &check, None, Utc::now());
}

/// Deletes the oldest finished sessions beyond the configuration's history limit
/// (default 1, as released Stash), except the newest successful one
/// ([`crate::backup_metrics`] reads its time).
async fn trim_history(bc: &BackupConfiguration, ctx: &Context) -> Result<(), Error> {
    let limit = bc.spec.backup_history_limit.unwrap_or(1).max(0) as usize;
    let ns = super::meta::namespace(bc)?;
    let api = Api::<BackupSession>::namespaced(ctx.client.clone(), &ns);
    let mut done: Vec<BackupSession> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|s| invoker_name(s) == Some(&bc.name_any()) && session::is_final(phase(s)))
        .collect();
    done.sort_by_key(|s| std::cmp::Reverse(s.meta().creation_timestamp.as_ref().map(from_k8s)));
    // The newest successful session stays too: its time is the last-success metric.
    let newest_ok = done.iter().position(|s| phase(s) == Some(SUCCEEDED));
    for (_, old) in done
        .iter()
        .enumerate()
        .skip(limit)
        .filter(|(i, _)| Some(*i) != newest_ok)
    {
        match api
            .delete(&old.name_any(), &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

//! The RestoreSession controller: resolves the session's references, puts the restore
//! init container into the target workload (the workload rolls once), marks the
//! session Running with the hosts it waits for and its deadline, and ends it when every
//! host has reported or the deadline passed. The finalizer takes the init container
//! out when the session is deleted.
//!
//! The init containers write the per-host results; this controller only judges them.
//! Nothing in the workload changes while a reference is broken: the session fails with
//! a condition naming the reference.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use kube::{
    runtime::{
        controller::Action,
        events::EventType,
        finalizer::{finalizer, Event as Finalizer},
    },
    Api, Resource, ResourceExt,
};

use super::{
    resolve::{resolve_refs, Refs, Resolved, RESTORE_TARGET_FOUND},
    task_job,
    workload::Workload,
    Context, Error,
};
use crate::{
    conditions::{self, Check},
    crd::restore_session::{RestoreSession, RestoreSessionStatus},
    host::TargetKind,
    init_container,
    job::outcome::JobOutcome,
    pod_template::Support,
    restore,
    session::{self, is_final, FAILED, RUNNING, SUCCEEDED},
    time::{after, from_k8s, to_k8s},
    vars::Session,
};

/// The finalizer that takes the init container out before the session goes.
pub const FINALIZER: &str = "stash.appscode.com/restore-init";
/// The condition of the init container's injection.
pub const INIT_INJECTED: &str = "StashInitContainerInjected";
/// The condition of the session's own settings.
pub const SETTINGS_VALID: &str = "SessionValid";

fn phase(rs: &RestoreSession) -> Option<&str> {
    rs.status.as_ref().and_then(|s| s.phase.as_deref())
}

pub async fn reconcile(rs: Arc<RestoreSession>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics.reconciled("restoresession");
    let ns = super::meta::namespace(&*rs)?;
    let api: Api<RestoreSession> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, rs, |event| async {
        match event {
            Finalizer::Apply(rs) => apply(&rs, &ctx).await,
            Finalizer::Cleanup(rs) => cleanup(&rs, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

async fn apply(rs: &RestoreSession, ctx: &Context) -> Result<Action, Error> {
    if is_final(phase(rs)) {
        return Ok(Action::await_change());
    }
    if super::canonicalize(rs, ctx, crate::canonical::restore_session(&rs.spec)).await? {
        return Ok(Action::await_change());
    }
    let now = Utc::now();
    let ns = super::meta::namespace(rs)?;
    let target = rs.spec.target.clone().unwrap_or_default();
    let refs = Refs {
        kind: "RestoreSession",
        namespace: &ns,
        repository: &rs.spec.repository,
        target: target.reference.as_ref(),
        target_condition: RESTORE_TARGET_FOUND,
        no_target: Some("spec.target.ref is not set: a restore needs a target (a workload or a PersistentVolumeClaim)"),
    };
    let mut r = resolve_refs(&ctx.client, &refs).await?;
    let timeout = session::timeout(rs.spec.time_out.as_deref());
    r.checks.push(match &timeout {
        Ok(_) => Check::ok(SETTINGS_VALID, "Valid", "the session's settings are valid"),
        Err(e) => Check::failed(SETTINGS_VALID, "InvalidTimeOut", e.clone()),
    });
    let job_model = r.claim.is_some() || r.app_binding.is_some();
    if r.ok() {
        if job_model {
            match &r.app_binding {
                Some(ab) => r.checks.push(task_job::app_binding_check(ab)),
                None => r
                    .checks
                    .push(task_job::mounts_check(&target.claim_mounts())),
            }
            let kind = r.kind.unwrap_or(TargetKind::PersistentVolumeClaim);
            let name = task_job::task_name(rs.spec.task.as_ref(), kind, false);
            r.checks
                .push(task_job::check(&task_job::load(&ctx.client, &name).await?));
        } else {
            r.checks.push(inject(rs, &r, ctx).await?);
        }
    }
    let mut status = rs.status.clone().unwrap_or_default();
    let generation = rs.metadata.generation;
    let mut changed = false;
    for c in &r.checks {
        changed |= conditions::set(&mut status.conditions, c, generation, now);
    }
    if let Some(failure) = r.first_failure() {
        let why = failure.message.clone();
        let reason = failure.reason;
        return end(rs, ctx, status, FAILED, reason, &why).await;
    }
    if phase(rs) != Some(RUNNING) {
        let hosts = r.workload.as_ref().map_or(1, Workload::hosts);
        let timeout = timeout.unwrap_or(session::DEFAULT_TIMEOUT);
        status.phase = Some(RUNNING.to_string());
        status.total_hosts = Some(hosts);
        status.session_deadline = Some(to_k8s(after(super::created(rs), timeout)));
        super::replace_status(rs, ctx, status).await?;
        let what = target
            .reference
            .as_ref()
            .map(|t| format!("{} {:?}", t.kind, t.name))
            .unwrap_or_default();
        ctx.event(
            &rs.object_ref(&()),
            EventType::Normal,
            "Running",
            format!("restoring into {what}: waiting for {hosts} host(s)"),
        )
        .await;
        return Ok(Action::requeue(timeout.min(Duration::from_secs(300))));
    }
    if changed {
        super::replace_status(rs, ctx, status.clone()).await?;
        return Ok(Action::await_change());
    }
    if job_model && restore::outcome(&status).is_none() {
        match job_step(rs, &r, ctx).await? {
            JobOutcome::Running => {}
            JobOutcome::Failed(why) => {
                return end(rs, ctx, status, FAILED, "JobFailed", &why).await
            }
            JobOutcome::Complete => {
                let host = task_job::job_host(job_kind(&r), target.alias.as_deref());
                let result = restore::HostResult {
                    took: super::age(rs),
                    error: None,
                };
                restore::record(&mut status, &host, "", result);
                return end(rs, ctx, status, SUCCEEDED, "Succeeded", "").await;
            }
        }
        let action = judge(rs, ctx, status).await?;
        return Ok(if action == Action::await_change() {
            action
        } else {
            Action::requeue(task_job::POLL)
        });
    }
    judge(rs, ctx, status).await
}

/// What a Job-model restore writes into: a database, else a claim.
fn job_kind(r: &Resolved) -> TargetKind {
    if r.app_binding.is_some() {
        TargetKind::AppBinding
    } else {
        TargetKind::PersistentVolumeClaim
    }
}

/// The session's Job: created when missing, else where it stands.
async fn job_step(rs: &RestoreSession, r: &Resolved, ctx: &Context) -> Result<JobOutcome, Error> {
    let ns = super::meta::namespace(rs)?;
    let name = rs.name_any();
    if let Some(o) = task_job::outcome(&ctx.client, &ns, &name).await? {
        return Ok(o);
    }
    let (Some(repository), Some(location), Some(secret)) = (&r.repository, &r.location, &r.secret)
    else {
        return Ok(JobOutcome::Failed(
            "the session's references did not resolve".into(),
        ));
    };
    let kind = job_kind(r);
    let mut params = task_job::params(rs.spec.task.as_ref());
    if let Some(ab) = &r.app_binding {
        match task_job::app_binding_params(ab) {
            Ok(p) => params.extend(p),
            Err(why) => return Ok(JobOutcome::Failed(why)),
        }
    }
    let target = rs.spec.target.clone().unwrap_or_default();
    let host = task_job::job_host(kind, target.alias.as_deref());
    let target_name = match (&r.claim, &r.app_binding) {
        (Some(c), _) => c.name_any(),
        (None, Some(a)) => a.name_any(),
        (None, None) => String::new(),
    };
    let req = task_job::Request {
        owner: rs,
        session: Session::Restore { session: &name },
        target: match kind {
            TargetKind::AppBinding => task_job::app_binding_target(&target_name, &ns),
            _ => task_job::claim_target(&target_name, &ns),
        },
        hostname: &host,
        repository,
        location,
        secret,
        claim: r.claim.as_ref(),
        mounts: target.claim_mounts(),
        params,
        retention: None,
        temp_dir: rs.spec.temp_dir.clone(),
        deadline_seconds: task_job::seconds_left(
            rs.status.as_ref().and_then(|s| s.session_deadline.as_ref()),
        ),
    };
    let task_name = task_job::task_name(rs.spec.task.as_ref(), kind, false);
    task_job::start(ctx, &req, &task_name).await
}

/// Puts the init container into the target (with the pods' Role first, so the new
/// pods can read their session at once); returns the [`INIT_INJECTED`] condition.
async fn inject(rs: &RestoreSession, r: &Resolved, ctx: &Context) -> Result<Check, Error> {
    let (Some(workload), Some(location), Some(secret)) = (&r.workload, &r.location, &r.secret)
    else {
        return Ok(Check::failed(
            INIT_INJECTED,
            "NotResolved",
            "references are not resolved",
        ));
    };
    let Some(template) = workload.template() else {
        return Ok(Check::failed(
            INIT_INJECTED,
            "NoTemplate",
            "the target has no pod template",
        ));
    };
    let target = rs.spec.target.clone().unwrap_or_default();
    let what = target
        .reference
        .as_ref()
        .map(|t| format!("{} {:?}", t.kind, t.name))
        .unwrap_or_default();
    let directories = restore::directories(&rs.spec);
    let mounts = if !target.volume_mounts.is_empty() {
        target.volume_mounts.clone()
    } else if directories.is_empty() {
        return Ok(Check::failed(
            INIT_INJECTED,
            "NoDirectories",
            "the session names no directory (target.directories or rules[].paths) and no target.volumeMounts: nothing says which volumes to restore into",
        ));
    } else {
        match init_container::mounts_for_directories(template, &directories) {
            Ok(m) => m,
            Err(e) => {
                return Ok(Check::failed(
                    INIT_INJECTED,
                    "NotOnAVolume",
                    format!("{what}: {e}"),
                ))
            }
        }
    };
    let inputs = init_container::Inputs {
        restore_session: rs.name_any(),
        image: ctx.image.clone(),
        volume_mounts: mounts,
        support: Support {
            pushgateway: ctx.pushgateway.clone(),
            storage_secret: secret.clone(),
            temp_dir: rs.spec.temp_dir.clone(),
            repository_volume: location.volume.clone(),
        },
    };
    let new = match init_container::inject(template, &inputs, &workload.claim_templates()) {
        Ok(n) => n,
        Err(e) => {
            return Ok(Check::failed(
                INIT_INJECTED,
                "InvalidTarget",
                format!("{what}: {e}"),
            ))
        }
    };
    super::pod_rbac::ensure(rs, ctx, &workload.service_account()).await?;
    if let Some(new) = new {
        workload.clone().replace_template(&ctx.client, new).await?;
        ctx.metrics.template_changed();
        ctx.event(
            &rs.object_ref(&()),
            EventType::Normal,
            "InitContainerInjected",
            format!("added the stash-init container to {what}; its pods roll once and restore"),
        )
        .await;
    }
    Ok(Check::ok(
        INIT_INJECTED,
        "Injected",
        format!("the stash-init container is in {what}"),
    ))
}

/// Ends the session once every host reported, or fails it at its deadline.
async fn judge(
    rs: &RestoreSession,
    ctx: &Context,
    status: RestoreSessionStatus,
) -> Result<Action, Error> {
    if let Some(outcome) = restore::outcome(&status) {
        let why = status
            .stats
            .iter()
            .filter_map(|h| h.error.as_ref().map(|e| format!("{}: {e}", h.hostname)))
            .collect::<Vec<_>>()
            .join("; ");
        let reason = if outcome == SUCCEEDED {
            "Succeeded"
        } else {
            "RestoreFailed"
        };
        return end(rs, ctx, status, outcome, reason, &why).await;
    }
    let now = Utc::now();
    match status.session_deadline.as_ref().map(from_k8s) {
        Some(d) if d <= now => {
            let why = format!(
                "timed out at its deadline: no result from {}",
                restore::unfinished(&status).join(", ")
            );
            end(rs, ctx, status, FAILED, "TimedOut", &why).await
        }
        Some(d) => Ok(Action::requeue(
            (d - now)
                .to_std()
                .unwrap_or_default()
                .clamp(Duration::from_secs(1), Duration::from_secs(300)),
        )),
        None => Ok(Action::requeue(Duration::from_secs(300))),
    }
}

/// Ends `rs` in `phase` with `why` (its `SessionFinished` condition, an Event).
async fn end(
    rs: &RestoreSession,
    ctx: &Context,
    mut status: RestoreSessionStatus,
    phase: &str,
    reason: &'static str,
    why: &str,
) -> Result<Action, Error> {
    let reason_text = (!why.is_empty()).then_some(why);
    restore::finish(&mut status, phase, reason_text, super::age(rs));
    let message = if why.is_empty() {
        format!("restore {phase}")
    } else {
        why.to_string()
    };
    let check = if phase == SUCCEEDED {
        Check::ok("SessionFinished", reason, message.clone())
    } else {
        Check::failed("SessionFinished", reason, message.clone())
    };
    conditions::set(
        &mut status.conditions,
        &check,
        rs.metadata.generation,
        Utc::now(),
    );
    super::replace_status(rs, ctx, status).await?;
    ctx.metrics.restore_finished(phase);
    let type_ = if phase == SUCCEEDED {
        EventType::Normal
    } else {
        EventType::Warning
    };
    ctx.event(
        &rs.object_ref(&()),
        type_,
        reason,
        format!("restore {phase}: {message}"),
    )
    .await;
    Ok(Action::await_change())
}

/// Takes this session's init container out of the target, if it is still there.
async fn cleanup(rs: &RestoreSession, ctx: &Context) -> Result<Action, Error> {
    let ns = super::meta::namespace(rs)?;
    let target = rs.spec.target.as_ref().and_then(|t| t.reference.as_ref());
    if let Some((t, w)) = Workload::of_target(&ctx.client, &ns, target).await? {
        if let Some(new) = w
            .template()
            .and_then(|tpl| init_container::remove(tpl, &rs.name_any()))
        {
            w.replace_template(&ctx.client, new).await?;
            ctx.metrics.template_changed();
            ctx.event(
                &rs.object_ref(&()),
                EventType::Normal,
                "InitContainerRemoved",
                format!(
                    "removed the stash-init container from {} {:?}",
                    t.kind, t.name
                ),
            )
            .await;
        }
    }
    Ok(Action::await_change())
}

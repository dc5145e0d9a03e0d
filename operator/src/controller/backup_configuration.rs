//! The BackupConfiguration controller: resolves the references, puts the sidecar into
//! the target's pod template (and takes it out again through the finalizer), keeps the
//! sidecar's Role bound to the workload's ServiceAccount, and creates a BackupSession
//! at each tick of the schedule.
//!
//! Nothing in the workload changes while a reference is broken, and the template is
//! written only when the sidecar's own inputs changed (see [`crate::sidecar`]), so the
//! target rolls once when the configuration is created and once when it is deleted.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use chrono::Utc;
use kube::{
    api::{ObjectMeta, Patch, PatchParams, PostParams},
    runtime::{
        controller::Action,
        events::EventType,
        finalizer::{finalizer, Event as Finalizer},
    },
    Api, Resource, ResourceExt,
};
use serde_json::json;

use super::{
    resolve::{resolve, Resolved, SIDECAR_INJECTED},
    task_job,
    workload::Workload,
    Context, Error, MANAGER,
};
use crate::{
    conditions::{self, Check},
    crd::{
        backup_configuration::{BackupConfiguration, BackupConfigurationStatus},
        backup_session::{BackupSession, BackupSessionSpec, InvokerRef},
    },
    host::TargetKind,
    pod_template::Support,
    sidecar,
    time::{from_k8s, to_k8s},
};

/// The finalizer that takes the sidecar out before the configuration goes.
pub const FINALIZER: &str = "stash.appscode.com/sidecar";
/// Label of the sessions the schedule creates: the configuration's name.
pub const INVOKER_LABEL: &str = "stash.appscode.com/invoker-name";

/// How often a configuration whose references are broken is looked at again; the
/// Repository, Secret and workload are not watched.
const RETRY_BROKEN: Duration = Duration::from_secs(20);
/// The longest sleep between two looks at a healthy configuration.
const RESYNC: Duration = Duration::from_secs(300);

pub async fn reconcile(bc: Arc<BackupConfiguration>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics.reconciled("backupconfiguration");
    let ns = super::meta::namespace(&*bc)?;
    let api: Api<BackupConfiguration> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, bc, |event| async {
        match event {
            Finalizer::Apply(bc) => apply(&bc, &ctx).await,
            Finalizer::Cleanup(bc) => cleanup(&bc, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

async fn apply(bc: &BackupConfiguration, ctx: &Context) -> Result<Action, Error> {
    if super::canonicalize(bc, ctx, crate::canonical::backup_configuration(&bc.spec)).await? {
        return Ok(Action::await_change());
    }
    let now = Utc::now();
    let mut r = resolve(&ctx.client, bc).await?;
    let job_model =
        r.claim.is_some() || r.app_binding.is_some() || r.kind == Some(TargetKind::Cluster);
    if r.ok() {
        if job_model {
            if r.claim.is_some() {
                let target = bc.spec.target.clone().unwrap_or_default();
                r.checks
                    .push(task_job::mounts_check(&target.claim_mounts()));
            }
            if let Some(ab) = &r.app_binding {
                r.checks.push(task_job::app_binding_check(ab));
            }
            let kind = r.kind.unwrap_or(TargetKind::PersistentVolumeClaim);
            let name = task_job::task_name(bc.spec.task.as_ref(), kind, true);
            r.checks
                .push(task_job::check(&task_job::load(&ctx.client, &name).await?));
        } else {
            r.checks.push(inject(bc, &r, ctx).await?);
        }
    }
    let mut status = bc.status.clone().unwrap_or_default();
    let generation = bc.metadata.generation;
    let mut changed = false;
    for c in &r.checks {
        changed |= conditions::set(&mut status.conditions, c, generation, now);
    }
    let ready = r.ok();
    let phase = if ready { "Ready" } else { "NotReady" };
    if status.phase.as_deref() != Some(phase) {
        status.phase = Some(phase.to_string());
        let (type_, reason, note) = match r.first_failure() {
            Some(c) => (EventType::Warning, c.reason, c.message.clone()),
            None if job_model => (
                EventType::Normal,
                "Ready",
                "every reference resolved; each session runs as a Job".to_string(),
            ),
            None => (
                EventType::Normal,
                "Ready",
                "every reference resolved; the sidecar is in place".to_string(),
            ),
        };
        ctx.event(&bc.object_ref(&()), type_, reason, note).await;
        changed = true;
    }
    let stale = status.observed_generation != generation;
    status.observed_generation = generation;
    let mut wait = if ready { RESYNC } else { RETRY_BROKEN };
    match (&r.schedule, ready && !bc.spec.paused) {
        (Some(schedule), true) => {
            let anchor = bc
                .meta()
                .creation_timestamp
                .as_ref()
                .map(from_k8s)
                .unwrap_or(now);
            let due = status
                .next_backup_time
                .as_ref()
                .map(from_k8s)
                .filter(|_| !stale)
                .or_else(|| schedule.next_after(now, anchor));
            let next = match due {
                Some(due) if due <= now => {
                    create_session(bc, ctx, due.timestamp()).await?;
                    schedule.next_after(now, anchor)
                }
                other => other,
            };
            if let Some(next) = next {
                wait = wait.min(
                    (next - now)
                        .to_std()
                        .unwrap_or_default()
                        .max(Duration::from_secs(1)),
                );
            }
            let next = next.map(to_k8s);
            changed |= status.next_backup_time != next;
            status.next_backup_time = next;
        }
        _ => {
            changed |= status.next_backup_time.is_some();
            status.next_backup_time = None;
        }
    }
    if changed || stale {
        write_status(bc, ctx, &status).await?;
    }
    Ok(Action::requeue(wait))
}

/// Puts the sidecar into the target (with its RBAC first, so the new pods can read
/// their sessions at once); returns the [`SIDECAR_INJECTED`] condition.
async fn inject(bc: &BackupConfiguration, r: &Resolved, ctx: &Context) -> Result<Check, Error> {
    let (Some(workload), Some(location), Some(secret)) = (&r.workload, &r.location, &r.secret)
    else {
        return Ok(Check::failed(
            SIDECAR_INJECTED,
            "NotResolved",
            "references are not resolved",
        ));
    };
    let Some(template) = workload.template() else {
        return Ok(Check::failed(
            SIDECAR_INJECTED,
            "NoTemplate",
            "the target has no pod template",
        ));
    };
    let target = bc.spec.target.clone().unwrap_or_default();
    let what = target
        .reference
        .as_ref()
        .map(|t| format!("{} {:?}", t.kind, t.name))
        .unwrap_or_default();
    let mounts = if target.volume_mounts.is_empty() {
        match sidecar::mounts_for_directories(template, target.directories()) {
            Ok(m) => m,
            Err(e) => {
                return Ok(Check::failed(
                    SIDECAR_INJECTED,
                    "NotOnAVolume",
                    format!("{what}: {e}"),
                ))
            }
        }
    } else {
        target.volume_mounts.clone()
    };
    let inputs = sidecar::Inputs {
        configuration: bc.name_any(),
        image: ctx.image.clone(),
        volume_mounts: mounts,
        support: Support {
            pushgateway: ctx.pushgateway.clone(),
            storage_secret: secret.clone(),
            temp_dir: bc.spec.temp_dir.clone(),
            repository_volume: location.volume.clone(),
        },
    };
    let new = match sidecar::inject(template, &inputs, &workload.claim_templates()) {
        Ok(n) => n,
        Err(e) => {
            return Ok(Check::failed(
                SIDECAR_INJECTED,
                "InvalidTarget",
                format!("{what}: {e}"),
            ))
        }
    };
    super::pod_rbac::ensure(bc, ctx, &workload.service_account()).await?;
    if let Some(new) = new {
        workload.clone().replace_template(&ctx.client, new).await?;
        ctx.metrics.template_changed();
        ctx.event(
            &bc.object_ref(&()),
            EventType::Normal,
            "SidecarInjected",
            format!("added the stash sidecar to {what}; its pods roll once"),
        )
        .await;
    }
    Ok(Check::ok(
        SIDECAR_INJECTED,
        "Injected",
        format!("the stash sidecar is in {what}"),
    ))
}

/// Takes the sidecar out of the target, if the target is still there.
async fn cleanup(bc: &BackupConfiguration, ctx: &Context) -> Result<Action, Error> {
    let ns = super::meta::namespace(bc)?;
    let target = bc.spec.target.as_ref().and_then(|t| t.reference.as_ref());
    if let Some((t, w)) = Workload::of_target(&ctx.client, &ns, target).await? {
        if let Some(new) = w.template().and_then(sidecar::remove) {
            w.replace_template(&ctx.client, new).await?;
            ctx.metrics.template_changed();
            ctx.event(
                &bc.object_ref(&()),
                EventType::Normal,
                "SidecarRemoved",
                format!("removed the stash sidecar from {} {:?}", t.kind, t.name),
            )
            .await;
        }
    }
    Ok(Action::await_change())
}

/// Creates the scheduled session of tick `tick` (seconds since the epoch); its name is
/// the tick's, so a repeated attempt finds it made already.
async fn create_session(bc: &BackupConfiguration, ctx: &Context, tick: i64) -> Result<(), Error> {
    let ns = super::meta::namespace(bc)?;
    let name = format!("{}-{tick}", bc.name_any());
    let session = BackupSession {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            labels: Some(BTreeMap::from([(INVOKER_LABEL.to_string(), bc.name_any())])),
            owner_references: bc.controller_owner_ref(&()).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: BackupSessionSpec {
            invoker: Some(InvokerRef {
                api_group: Some("stash.appscode.com".to_string()),
                kind: "BackupConfiguration".to_string(),
                name: bc.name_any(),
            }),
            ..BackupSessionSpec::default()
        },
        status: None,
    };
    let pp = PostParams {
        field_manager: Some(MANAGER.to_string()),
        ..PostParams::default()
    };
    match Api::<BackupSession>::namespaced(ctx.client.clone(), &ns)
        .create(&pp, &session)
        .await
    {
        Ok(_) => {
            ctx.metrics.session_created();
            ctx.event(
                &bc.object_ref(&()),
                EventType::Normal,
                "SessionCreated",
                format!("the schedule created BackupSession {name:?}"),
            )
            .await;
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn write_status(
    bc: &BackupConfiguration,
    ctx: &Context,
    status: &BackupConfigurationStatus,
) -> Result<(), Error> {
    let ns = super::meta::namespace(bc)?;
    let mut value = serde_json::to_value(status).map_err(Error::Json)?;
    if status.next_backup_time.is_none() {
        // A merge patch keeps what it does not mention: a paused schedule must clear it.
        value["nextBackupTime"] = serde_json::Value::Null;
    }
    let patch = json!({ "status": value });
    Api::<BackupConfiguration>::namespaced(ctx.client.clone(), &ns)
        .patch_status(
            &bc.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    Ok(())
}

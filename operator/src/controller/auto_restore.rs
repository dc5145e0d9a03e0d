//! Auto-restore: a workload annotated `stash.appscode.com/restorepolicy: OnRestart`
//! gets the [`crate::auto_restore`] init container once its Repository and Secret are
//! there (a Repository's creation reaches the workloads that name it); removing the
//! annotation takes the container out. Each change is one rollout.

use std::{fmt::Debug, sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use kube::{
    runtime::{
        controller::{Action, Controller},
        events::EventType,
        reflector::ObjectRef,
        watcher,
    },
    Resource, ResourceExt,
};
use serde::{de::DeserializeOwned, Serialize};

use super::{
    error_policy,
    resolve::{resolve_refs, Refs, RESTORE_TARGET_FOUND},
    workload::Workload,
    Context, Error,
};
use crate::{
    auto_restore::{self, Inputs},
    crd::{common, repository::Repository},
    host::TargetKind,
    pod_template::Support,
};

/// How long a workload waits for a missing Repository or Secret before looking again
/// (neither is watched for this).
const RETRY: Duration = Duration::from_secs(60);

/// Whether the cached `obj`'s pod template holds the init container (its hash).
fn carries_container<K: Serialize>(obj: &K) -> bool {
    serde_json::to_value(obj).ok().is_some_and(|v| {
        v.pointer("/spec/template/metadata/annotations")
            .and_then(|a| a.get(auto_restore::SLOT.hash_annotation))
            .is_some()
    })
}

/// Brings one workload's auto-restore init container in line with its annotations.
pub async fn reconcile<K>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()>
        + Clone
        + Debug
        + DeserializeOwned
        + Serialize
        + Send
        + Sync
        + 'static,
{
    if obj.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let regarding = obj.object_ref(&());
    let (ns, name) = (super::meta::namespace(&*obj)?, obj.name_any());
    let Ok(kind) = K::kind(&()).parse::<TargetKind>() else {
        return Ok(Action::await_change());
    };
    let warn = |reason: &'static str, note: String| {
        let (ctx, regarding) = (ctx.clone(), regarding.clone());
        async move {
            ctx.event(&regarding, EventType::Warning, reason, note)
                .await
        }
    };
    let request = match auto_restore::request(obj.annotations()) {
        Ok(Some(r)) => r,
        Ok(None) => {
            // Most workloads never had the container: no API call for them.
            if !carries_container(obj.as_ref()) {
                return Ok(Action::await_change());
            }
            let Some(workload) = Workload::get(&ctx.client, kind, &ns, &name).await? else {
                return Ok(Action::await_change());
            };
            if let Some(new) = workload.template().and_then(auto_restore::remove) {
                workload.replace_template(&ctx.client, new).await?;
                ctx.metrics.template_changed();
                ctx.event(
                    &regarding,
                    EventType::Normal,
                    "AutoRestoreRemoved",
                    format!(
                        "no {} annotation: took the {} init container out",
                        auto_restore::RESTORE_POLICY,
                        auto_restore::CONTAINER
                    ),
                )
                .await;
            }
            return Ok(Action::await_change());
        }
        Err(e) => {
            warn("AutoRestoreInvalid", e.to_string()).await;
            return Ok(Action::await_change());
        }
    };
    let repository = common::ObjectRef {
        name: request.repository.clone(),
        namespace: None,
    };
    let refs = Refs {
        kind: "workload",
        namespace: &ns,
        repository: &repository,
        target: None,
        target_condition: RESTORE_TARGET_FOUND,
        no_target: None,
    };
    let resolved = resolve_refs(&ctx.client, &refs).await?;
    if let Some(failed) = resolved.first_failure() {
        warn(
            "AutoRestoreNotReady",
            format!("no init container yet: {}", failed.message),
        )
        .await;
        return Ok(Action::requeue(RETRY));
    }
    let (Some(location), Some(secret)) = (resolved.location, resolved.secret) else {
        return Ok(Action::requeue(RETRY));
    };
    let Some(workload) = Workload::get(&ctx.client, kind, &ns, &name).await? else {
        return Ok(Action::await_change());
    };
    let Some(template) = workload.template() else {
        return Ok(Action::await_change());
    };
    let volume_mounts = match auto_restore::mounts_for_directories(template, &request.directories) {
        Ok(m) => m,
        Err(e) => {
            warn("AutoRestoreInvalid", e.to_string()).await;
            return Ok(Action::await_change());
        }
    };
    let inputs = Inputs {
        request,
        target_kind: K::kind(&()).into_owned(),
        image: ctx.image.clone(),
        volume_mounts,
        support: Support {
            pushgateway: None,
            storage_secret: secret,
            temp_dir: None,
            repository_volume: location.volume,
        },
    };
    let new = match auto_restore::inject(template, &inputs, &workload.claim_templates()) {
        Ok(n) => n,
        Err(e) => {
            warn("AutoRestoreInvalid", e.to_string()).await;
            return Ok(Action::await_change());
        }
    };
    super::pod_rbac::ensure(obj.as_ref(), &ctx, &workload.service_account()).await?;
    if let Some(new) = new {
        workload.replace_template(&ctx.client, new).await?;
        ctx.metrics.template_changed();
        ctx.event(
            &regarding,
            EventType::Normal,
            "AutoRestoreEnabled",
            format!(
                "added the {} init container: each pod restores {:?} from Repository {:?} when they are missing or empty{}",
                auto_restore::CONTAINER,
                inputs.request.directories,
                inputs.request.repository,
                if inputs.request.overwrite { ", and over existing data" } else { "" }
            ),
        )
        .await;
    }
    Ok(Action::await_change())
}

/// The controller of one workload kind.
pub fn run<K>(
    ctx: Arc<Context>,
    scope: Option<&str>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    name: &'static str,
) -> impl std::future::Future<Output = ()>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned
        + Serialize
        + Send
        + Sync
        + 'static,
{
    let client = ctx.client.clone();
    let controller = Controller::new(
        super::scoped::<K>(&client, scope),
        watcher::Config::default(),
    );
    let store = controller.store();
    // A Repository that appears (or changes) reaches the workloads waiting for it.
    let by_repository = move |repo: Repository| {
        let (ns, name) = (repo.namespace(), repo.name_any());
        store
            .state()
            .into_iter()
            .filter(|w| {
                w.namespace() == ns
                    && matches!(auto_restore::request(w.annotations()), Ok(Some(r)) if r.repository == name)
            })
            .map(|w| ObjectRef::from_obj(w.as_ref()))
            .collect::<Vec<_>>()
    };
    controller
        .watches(
            super::scoped::<Repository>(&client, scope),
            watcher::Config::default(),
            by_repository,
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile::<K>, error_policy(name), ctx)
        .for_each(|_| async {})
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::Deployment;

    use super::*;

    #[test]
    fn only_templates_with_the_hash_carry_the_container() {
        let with = |annotations: serde_json::Value| -> Deployment {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "d"},
                "spec": {
                    "selector": {},
                    "template": {"metadata": {"annotations": annotations}, "spec": {"containers": []}}
                }
            }))
            .unwrap()
        };
        let hash = auto_restore::SLOT.hash_annotation;
        assert!(carries_container(&with(serde_json::json!({ hash: "abc" }))));
        assert!(!carries_container(&with(serde_json::json!({"other": "x"}))));
    }
}

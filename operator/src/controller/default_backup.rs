//! Default backup: a target annotated with a template gets the template's Repository
//! and BackupConfiguration ([`crate::default_backup`]), applied in its namespace and
//! owned by it, so they go when it goes; removing the annotation deletes them. A
//! change of the template reaches every target that names it.

use std::{fmt::Debug, sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::{api::core::v1::Secret, NamespaceResourceScope};
use kube::{
    api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams},
    runtime::{
        controller::{Action, Controller},
        events::EventType,
        reflector::ObjectRef,
        watcher,
    },
    Api, Client, Resource, ResourceExt,
};
use serde::{de::DeserializeOwned, Serialize};

use super::{error_policy, Context, Error, MANAGER};
use crate::{
    crd::{
        backup_configuration::BackupConfiguration,
        blueprint::{BackupBlueprint, BackupBlueprintSpec},
        repository::Repository,
        BLUEPRINT_ALIAS_KIND,
    },
    default_backup::{self, Target, FROM_TEMPLATE},
};

/// How long a target waits for a missing template or Secret before looking again
/// (templates are watched; Secrets are not).
const RETRY: Duration = Duration::from_secs(60);

/// The seed's BackupTemplate: released Stash's BackupBlueprint under another kind.
fn template_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "stash.appscode.com",
        "v1beta1",
        BLUEPRINT_ALIAS_KIND,
    ))
}

/// The template `name`: a BackupTemplate (the seed's kind), else a BackupBlueprint.
async fn template(client: &Client, name: &str) -> Result<Option<BackupBlueprintSpec>, Error> {
    let templates = Api::<DynamicObject>::all_with(client.clone(), &template_resource());
    if let Some(t) = templates.get_opt(name).await? {
        let spec = t.data.get("spec").cloned().unwrap_or_default();
        return serde_json::from_value(spec).map(Some).map_err(Error::Json);
    }
    Ok(Api::<BackupBlueprint>::all(client.clone())
        .get_opt(name)
        .await?
        .map(|b| b.spec))
}

fn target_of<K: Resource<DynamicType = ()>>(obj: &K) -> Result<Target, Error> {
    Ok(Target {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        namespace: super::meta::namespace(obj)?,
        name: obj.name_any(),
        uid: super::meta::uid(obj)?,
    })
}

/// Whether `object` was generated for `target` (not a user's object of the same name).
fn generated_for<O: Resource>(object: &O, target: &Target) -> bool {
    object.labels().contains_key(FROM_TEMPLATE)
        && object
            .owner_references()
            .iter()
            .any(|o| o.uid == target.uid)
}

/// Deletes what was generated for `target`, if anything.
async fn remove(client: &Client, target: &Target) -> Result<bool, Error> {
    let name = default_backup::object_name(target);
    let configurations = Api::<BackupConfiguration>::namespaced(client.clone(), &target.namespace);
    let repositories = Api::<Repository>::namespaced(client.clone(), &target.namespace);
    let mut removed = false;
    if let Some(bc) = configurations.get_opt(&name).await? {
        if generated_for(&bc, target) {
            configurations
                .delete(&name, &DeleteParams::default())
                .await?;
            removed = true;
        }
    }
    if let Some(repo) = repositories.get_opt(&name).await? {
        if generated_for(&repo, target) {
            repositories.delete(&name, &DeleteParams::default()).await?;
            removed = true;
        }
    }
    Ok(removed)
}

async fn apply<O>(client: &Client, object: &O) -> Result<(), Error>
where
    O: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug,
{
    let api = Api::<O>::namespaced(client.clone(), &super::meta::namespace(object)?);
    let name = object.name_any();
    let mut object = serde_json::to_value(object).map_err(Error::Json)?;
    object["apiVersion"] = O::api_version(&()).into();
    object["kind"] = O::kind(&()).into();
    api.patch(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&object),
    )
    .await?;
    Ok(())
}

/// Brings one target's generated objects in line with its annotations and template.
pub async fn reconcile<K>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let target = target_of(obj.as_ref())?;
    let regarding = obj.object_ref(&());
    let request = match default_backup::request(obj.annotations()) {
        Ok(Some(r)) => r,
        Ok(None) => {
            if remove(&ctx.client, &target).await? {
                ctx.event(
                    &regarding,
                    EventType::Normal,
                    "DefaultBackupRemoved",
                    "no backup template annotation: deleted the generated Repository and BackupConfiguration".into(),
                )
                .await;
            }
            return Ok(Action::await_change());
        }
        Err(e) => {
            ctx.event(
                &regarding,
                EventType::Warning,
                "DefaultBackupInvalid",
                e.to_string(),
            )
            .await;
            return Ok(Action::await_change());
        }
    };
    if obj.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let Some(spec) = template(&ctx.client, &request.template).await? else {
        ctx.event(
            &regarding,
            EventType::Warning,
            "TemplateNotFound",
            format!(
                "no BackupTemplate or BackupBlueprint {:?}: nothing created",
                request.template
            ),
        )
        .await;
        return Ok(Action::requeue(RETRY));
    };
    let (repository, configuration) = match default_backup::desired(&target, &request, &spec) {
        Ok(d) => d,
        Err(e) => {
            ctx.event(
                &regarding,
                EventType::Warning,
                "DefaultBackupInvalid",
                e.to_string(),
            )
            .await;
            return Ok(Action::await_change());
        }
    };
    if let Some(secret) = &repository.spec.backend.storage_secret_name {
        let secrets = Api::<Secret>::namespaced(ctx.client.clone(), &target.namespace);
        if secrets.get_metadata_opt(secret).await?.is_none() {
            ctx.event(
                &regarding,
                EventType::Warning,
                "SecretNotFound",
                format!(
                    "template {:?} names Secret {secret:?}, which namespace {:?} does not have: nothing created",
                    request.template, target.namespace
                ),
            )
            .await;
            return Ok(Action::requeue(RETRY));
        }
    }
    let name = configuration.name_any();
    let existed = Api::<BackupConfiguration>::namespaced(ctx.client.clone(), &target.namespace)
        .get_metadata_opt(&name)
        .await?
        .is_some();
    apply(&ctx.client, &repository).await?;
    apply(&ctx.client, &configuration).await?;
    if !existed {
        ctx.event(
            &regarding,
            EventType::Normal,
            "DefaultBackupCreated",
            format!(
                "created Repository and BackupConfiguration {name:?} from template {:?}",
                request.template
            ),
        )
        .await;
    }
    Ok(Action::await_change())
}

/// The controller of one target kind: its objects in `scope`, the BackupConfigurations
/// they own, and both template kinds (a template's change reconciles every target that
/// names it).
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
    let by_template = move |template: String| {
        store
            .state()
            .into_iter()
            .filter(|t| {
                matches!(default_backup::request(t.annotations()), Ok(Some(r)) if r.template == template)
            })
            .map(|t| ObjectRef::from_obj(t.as_ref()))
            .collect::<Vec<_>>()
    };
    let by_alias = by_template.clone();
    controller
        .owns(
            super::scoped::<BackupConfiguration>(&client, scope),
            watcher::Config::default().labels(FROM_TEMPLATE),
        )
        .watches(
            Api::<BackupBlueprint>::all(client.clone()),
            watcher::Config::default(),
            move |b| by_template(b.name_any()),
        )
        .watches_with(
            Api::<DynamicObject>::all_with(client, &template_resource()),
            template_resource(),
            watcher::Config::default(),
            move |t| by_alias(t.name_any()),
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile::<K>, error_policy(name), ctx)
        .for_each(|_| async {})
}

//! `stash operator run`: the controllers in kube-runtime's shape (reconcile, error
//! policy, finalizers), started once this replica holds the leader Lease, beside the
//! `/healthz` and `/metrics` endpoint. SIGTERM stops the controllers, hands the
//! Lease over and exits 0.

mod auto_restore;
mod backup_configuration;
mod backup_session;
mod default_backup;
mod http;
mod leader;
mod meta;
mod metrics;
mod pod_rbac;
mod resolve;
mod restore_session;
mod task_job;
mod workload;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::api::{batch::v1::Job, core::v1::ObjectReference};
use kube::{
    api::{Patch, PatchParams, PostParams},
    core::object::HasStatus,
    runtime::{
        controller::{Action, Controller},
        events::{Event, EventType, Recorder, Reporter},
        watcher,
    },
    Api, Client, Resource, ResourceExt,
};

pub use crate::session::DEFAULT_TIMEOUT;
pub use backup_configuration::{FINALIZER, INVOKER_LABEL};
pub use backup_session::invoker_name;
pub use metrics::Metrics;

use crate::crd::{
    backup_configuration::BackupConfiguration,
    backup_session::BackupSession,
    restore_session::RestoreSession,
    task::{Function, Task},
};

/// The field manager and event reporter of every write the operator makes.
pub const MANAGER: &str = "stash-operator";
/// The leader Lease's name, in the operator's namespace.
pub const LEASE: &str = "stash-operator";

/// Why a reconciliation failed; the controller retries it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("encoding JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("{kind} {name}: metadata.{field} is missing")]
    MissingMetadata {
        kind: String,
        name: String,
        field: &'static str,
    },
}

/// What every reconciliation shares.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// Our image, for the sidecars.
    pub image: String,
    /// Where sidecars, init containers and Jobs push their hosts' results, if anywhere.
    pub pushgateway: Option<String>,
}

impl Context {
    /// Publishes an Event about `regarding`; a failure is logged, never fatal.
    pub async fn event(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let ev = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note),
            action: reason.to_string(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, regarding).await {
            tracing::warn!("publishing event {reason}: {e}");
        }
    }
}

/// Settings of `stash operator run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where the Lease lives (the operator's namespace).
    pub namespace: String,
    /// This replica's name in the Lease.
    pub identity: String,
    /// `/healthz` and `/metrics`.
    pub listen: SocketAddr,
    /// The namespaces whose objects the operator acts on; empty means every namespace.
    /// Only the cluster-scoped kinds (Functions, Tasks, templates) are then read
    /// cluster-wide, so the operator needs rights in these namespaces only.
    pub namespaces: Vec<String>,
    /// A Pushgateway for the runners' results (the seed's `pushgatewayURL`).
    pub pushgateway: Option<String>,
}

/// The API of namespaced `K` in `scope`: one namespace, or all of them.
pub(crate) fn scoped<K>(client: &Client, scope: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match scope {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The scopes to run the controllers in: `None` for all namespaces, else one per
/// watched namespace (duplicates and empty names dropped).
fn scopes(namespaces: &[String]) -> Vec<Option<String>> {
    let mut watched: Vec<String> = namespaces
        .iter()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect();
    watched.sort();
    watched.dedup();
    if watched.is_empty() {
        vec![None]
    } else {
        watched.into_iter().map(Some).collect()
    }
}

/// When `object` was created (now, for an object not read from the API server).
fn created<K: Resource>(object: &K) -> chrono::DateTime<chrono::Utc> {
    object
        .meta()
        .creation_timestamp
        .as_ref()
        .map(crate::time::from_k8s)
        .unwrap_or_else(chrono::Utc::now)
}

/// How long ago `object` was created.
fn age<K: Resource>(object: &K) -> Duration {
    (chrono::Utc::now() - created(object))
        .to_std()
        .unwrap_or_default()
}

/// Writes `status` over `object`'s, failing on a concurrent change (a pod's write),
/// which the controller retries with the fresh object.
async fn replace_status<K>(object: &K, ctx: &Context, status: K::Status) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + HasStatus
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let mut next = object.clone();
    *next.status_mut() = Some(status);
    next.meta_mut().managed_fields = None;
    let pp = PostParams {
        field_manager: Some(MANAGER.to_string()),
        ..PostParams::default()
    };
    Api::<K>::namespaced(ctx.client.clone(), &meta::namespace(object)?)
        .replace_status(&object.name_any(), &pp, &next)
        .await?;
    Ok(())
}

/// Rewrites `object`'s spec in its canonical form ([`crate::canonical`]) with `patch`;
/// returns whether it did, and then the reconciliation ends: the change brings the
/// object back in its new form.
async fn canonicalize<K>(
    object: &K,
    ctx: &Context,
    patch: Option<serde_json::Value>,
) -> Result<bool, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let Some(patch) = patch else {
        return Ok(false);
    };
    let pp = kube::api::PatchParams {
        field_manager: Some(MANAGER.to_string()),
        ..Default::default()
    };
    Api::<K>::namespaced(ctx.client.clone(), &meta::namespace(object)?)
        .patch(&object.name_any(), &pp, &kube::api::Patch::Merge(&patch))
        .await?;
    ctx.event(
        &object.object_ref(&()),
        EventType::Normal,
        "SpecRewritten",
        "rewrote the design's field names in released Stash's (the canonical form)".to_string(),
    )
    .await;
    Ok(true)
}

fn error_policy<K>(controller: &'static str) -> impl Fn(Arc<K>, &Error, Arc<Context>) -> Action {
    move |_, err, ctx| {
        ctx.metrics.failed(controller);
        tracing::warn!("{controller}: {err}");
        Action::requeue(Duration::from_secs(2))
    }
}

/// Applies the built-in Functions and Tasks ([`crate::builtin`]) with our image.
async fn install_builtins(client: &Client, image: &str) -> Result<(), kube::Error> {
    let pp = PatchParams::apply(MANAGER).force();
    let functions = Api::<Function>::all(client.clone());
    for f in crate::builtin::functions(image) {
        functions
            .patch(&f.name_any(), &pp, &Patch::Apply(&f))
            .await?;
    }
    let tasks = Api::<Task>::all(client.clone());
    for t in crate::builtin::tasks() {
        tasks.patch(&t.name_any(), &pp, &Patch::Apply(&t)).await?;
    }
    Ok(())
}

/// Runs the operator until `shutdown` resolves (then returns `Ok`) or the lease is
/// lost (then returns the reason: the process must exit, as client-go's do).
///
/// # Errors
/// The listen address cannot be bound, or leadership was lost.
pub async fn run(
    client: Client,
    opts: RunOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let metrics = Arc::new(Metrics::default());
    let (addr, server) = http::bind(opts.listen, metrics.clone())
        .await
        .map_err(|e| format!("listening on {}: {e}", opts.listen))?;
    tracing::info!("serving /healthz and /metrics on {addr}");
    let server = tokio::spawn(server);
    let elector = leader::Elector::new(client.clone(), &opts.namespace, LEASE, &opts.identity);
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));
    tokio::select! {
        _ = elector.acquire() => {}
        _ = shutdown.clone() => {
            server.abort();
            return Ok(());
        }
    }
    metrics.set_leader(true);
    eprintln!(
        "{} leads (lease {}/{LEASE})",
        elector.identity(),
        opts.namespace
    );
    let ctx = Arc::new(Context {
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: MANAGER.to_string(),
                instance: Some(opts.identity.clone()),
            },
        ),
        client: client.clone(),
        metrics: metrics.clone(),
        image: crate::image::image(),
        pushgateway: opts.pushgateway.clone(),
    });
    if let Err(e) = install_builtins(&client, &ctx.image).await {
        tracing::warn!("installing the built-in Functions and Tasks: {e}");
    }
    let scopes = scopes(&opts.namespaces);
    match &scopes[..] {
        [None] => eprintln!("watching all namespaces"),
        _ => eprintln!(
            "watching namespaces {}",
            scopes
                .iter()
                .flatten()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
    let controllers = futures::future::join_all(
        scopes
            .into_iter()
            .map(|scope| controllers(ctx.clone(), scope, shutdown.clone())),
    );
    let result = tokio::select! {
        _ = controllers => Ok(()),
        lost = elector.keep() => Err(lost),
    };
    metrics.set_leader(false);
    if result.is_ok() {
        elector.release().await;
    }
    server.abort();
    result
}

/// Every controller over `scope` (one namespace, or all of them), until `shutdown`.
async fn controllers<S>(ctx: Arc<Context>, scope: Option<String>, shutdown: S)
where
    S: std::future::Future<Output = ()> + Clone + Send + Sync + 'static,
{
    let client = ctx.client.clone();
    let scope = scope.as_deref();
    // Each controller watches its kind in the scope (sessions also their Jobs) and
    // stops with `shutdown`.
    macro_rules! control {
        ($kind:ty, $reconcile:path, $name:literal, owns Job) => {
            control!(@run Controller::new(
                scoped::<$kind>(&client, scope),
                watcher::Config::default(),
            )
            .owns(scoped::<Job>(&client, scope), watcher::Config::default()), $reconcile, $name)
        };
        (@run $controller:expr, $reconcile:path, $name:literal) => {
            $controller
            .graceful_shutdown_on(shutdown.clone())
            .run($reconcile, error_policy($name), ctx.clone())
            .for_each(|_| async {})
        };
    }
    let configurations = Controller::new(
        scoped::<BackupConfiguration>(&client, scope),
        watcher::Config::default(),
    );
    let sessions = Controller::new(
        scoped::<BackupSession>(&client, scope),
        watcher::Config::default(),
    )
    .owns(scoped::<Job>(&client, scope), watcher::Config::default());
    ctx.metrics
        .watch_backups(configurations.store(), sessions.store());
    let configurations =
        control!(@run configurations, backup_configuration::reconcile, "backupconfiguration");
    let sessions = control!(@run sessions, backup_session::reconcile, "backupsession");
    let restores = control!(
        RestoreSession,
        restore_session::reconcile,
        "restoresession",
        owns Job
    );
    // Default backup: one controller per kind a template annotation may sit on.
    let defaults = {
        use crate::crd::app_binding::AppBinding;
        use futures::FutureExt;
        use k8s_openapi::api::{
            apps::v1::{DaemonSet, Deployment, StatefulSet},
            core::v1::PersistentVolumeClaim,
        };
        let s = || shutdown.clone();
        let c = || ctx.clone();
        futures::future::join_all([
            default_backup::run::<Deployment>(c(), scope, s(), "default-backup/deployment").boxed(),
            default_backup::run::<StatefulSet>(c(), scope, s(), "default-backup/statefulset")
                .boxed(),
            default_backup::run::<DaemonSet>(c(), scope, s(), "default-backup/daemonset").boxed(),
            default_backup::run::<PersistentVolumeClaim>(c(), scope, s(), "default-backup/pvc")
                .boxed(),
            default_backup::run::<AppBinding>(c(), scope, s(), "default-backup/appbinding").boxed(),
        ])
    };
    // Auto-restore: one controller per workload kind its annotations may sit on.
    let auto_restores = {
        use futures::FutureExt;
        use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
        let s = || shutdown.clone();
        let c = || ctx.clone();
        futures::future::join_all([
            auto_restore::run::<Deployment>(c(), scope, s(), "auto-restore/deployment").boxed(),
            auto_restore::run::<StatefulSet>(c(), scope, s(), "auto-restore/statefulset").boxed(),
            auto_restore::run::<DaemonSet>(c(), scope, s(), "auto-restore/daemonset").boxed(),
        ])
    };
    futures::future::join5(configurations, sessions, restores, defaults, auto_restores).await;
}

#[cfg(test)]
mod tests {
    use super::scopes;

    #[test]
    fn no_namespace_means_all_and_names_are_cleaned() {
        assert_eq!(scopes(&[]), vec![None]);
        assert_eq!(scopes(&[" ".into()]), vec![None]);
        let named = scopes(&["b".into(), "a".into(), " b ".into(), String::new()]);
        assert_eq!(named, vec![Some("a".into()), Some("b".into())]);
    }
}

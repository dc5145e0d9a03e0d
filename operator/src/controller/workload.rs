//! The workloads a sidecar goes into, behind one small interface: read a pod
//! template, write it back under optimistic concurrency, and count the hosts a
//! BackupSession waits for.

use k8s_openapi::api::{
    apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet},
    core::v1::PodTemplateSpec,
};
use kube::{api::PostParams, Api, Client};

use crate::{crd::common::TargetRef, host::TargetKind};

/// A workload of one of the kinds the sidecar serves.
#[derive(Debug, Clone)]
pub enum Workload {
    Deployment(Deployment),
    StatefulSet(StatefulSet),
    DaemonSet(DaemonSet),
    ReplicaSet(ReplicaSet),
}

impl Workload {
    /// Reads `name` of `kind` in `namespace`; `Ok(None)` when it does not exist.
    ///
    /// # Errors
    /// API errors other than not-found; [`kube::Error`] only.
    pub async fn get(
        client: &Client,
        kind: TargetKind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Workload>, kube::Error> {
        let c = client.clone();
        Ok(match kind {
            TargetKind::Deployment => Api::<Deployment>::namespaced(c, namespace)
                .get_opt(name)
                .await?
                .map(Workload::Deployment),
            TargetKind::StatefulSet => Api::<StatefulSet>::namespaced(c, namespace)
                .get_opt(name)
                .await?
                .map(Workload::StatefulSet),
            TargetKind::DaemonSet => Api::<DaemonSet>::namespaced(c, namespace)
                .get_opt(name)
                .await?
                .map(Workload::DaemonSet),
            TargetKind::ReplicaSet => Api::<ReplicaSet>::namespaced(c, namespace)
                .get_opt(name)
                .await?
                .map(Workload::ReplicaSet),
            _ => None,
        })
    }

    /// The workload `target` names in `namespace`, for taking out what the operator put
    /// in: `None` when the reference is of another kind or namespace, or it is gone.
    ///
    /// # Errors
    /// API errors other than not-found.
    pub async fn of_target<'a>(
        client: &Client,
        namespace: &str,
        target: Option<&'a TargetRef>,
    ) -> Result<Option<(&'a TargetRef, Workload)>, kube::Error> {
        let Some(t) = target else { return Ok(None) };
        let kind = t.kind.parse().ok().filter(|k| Workload::supports(*k));
        let same_ns = super::resolve::other_namespace(t.namespace.as_deref(), namespace).is_none();
        let (Some(kind), true) = (kind, same_ns) else {
            return Ok(None);
        };
        Ok(Workload::get(client, kind, namespace, &t.name)
            .await?
            .map(|w| (t, w)))
    }

    /// Whether the sidecar can serve `kind` (the others are OpenShift kinds, volumes,
    /// databases and the cluster, which Jobs back up).
    pub fn supports(kind: TargetKind) -> bool {
        matches!(
            kind,
            TargetKind::Deployment
                | TargetKind::StatefulSet
                | TargetKind::DaemonSet
                | TargetKind::ReplicaSet
        )
    }

    /// The pod template.
    pub fn template(&self) -> Option<&PodTemplateSpec> {
        match self {
            Workload::Deployment(d) => Some(&d.spec.template),
            Workload::StatefulSet(s) => Some(&s.spec.template),
            Workload::DaemonSet(d) => Some(&d.spec.template),
            Workload::ReplicaSet(r) => r.spec.template.as_ref(),
        }
    }

    fn set_template(&mut self, t: PodTemplateSpec) {
        match self {
            Workload::Deployment(d) => d.spec.template = t,
            Workload::StatefulSet(s) => s.spec.template = t,
            Workload::DaemonSet(d) => d.spec.template = t,
            Workload::ReplicaSet(r) => r.spec.template = Some(t),
        }
    }

    /// The names of its volumeClaimTemplates: volumes of its pods that the template's
    /// own `volumes` do not list.
    pub fn claim_templates(&self) -> Vec<String> {
        match self {
            Workload::StatefulSet(s) => s
                .spec
                .volume_claim_templates
                .iter()
                .flatten()
                .filter_map(|c| c.metadata.name.clone())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The ServiceAccount its pods run as.
    pub fn service_account(&self) -> String {
        self.template()
            .and_then(|t| t.spec.as_ref())
            .and_then(|s| s.service_account_name.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".to_string())
    }

    /// The hosts a session of this workload waits for: one per StatefulSet replica,
    /// one per node a DaemonSet runs on, one for the others (their replicas share data
    /// and one of them backs it up).
    pub fn hosts(&self) -> i32 {
        match self {
            Workload::StatefulSet(s) => s.spec.replicas.unwrap_or(1),
            Workload::DaemonSet(d) => d
                .status
                .as_ref()
                .map(|s| s.desired_number_scheduled)
                .unwrap_or(0),
            _ => 1,
        }
    }

    /// Writes `template` back with the resourceVersion that was read, so a concurrent
    /// change makes this fail with a conflict instead of being overwritten.
    ///
    /// # Errors
    /// API errors, conflicts included.
    pub async fn replace_template(
        mut self,
        client: &Client,
        template: PodTemplateSpec,
    ) -> Result<(), super::Error> {
        self.set_template(template);
        let pp = PostParams {
            field_manager: Some(super::MANAGER.to_string()),
            ..PostParams::default()
        };
        let c = client.clone();
        match self {
            Workload::Deployment(d) => {
                let (ns, name) = names(&d)?;
                Api::<Deployment>::namespaced(c, &ns)
                    .replace(&name, &pp, &d)
                    .await?;
            }
            Workload::StatefulSet(s) => {
                let (ns, name) = names(&s)?;
                Api::<StatefulSet>::namespaced(c, &ns)
                    .replace(&name, &pp, &s)
                    .await?;
            }
            Workload::DaemonSet(d) => {
                let (ns, name) = names(&d)?;
                Api::<DaemonSet>::namespaced(c, &ns)
                    .replace(&name, &pp, &d)
                    .await?;
            }
            Workload::ReplicaSet(r) => {
                let (ns, name) = names(&r)?;
                Api::<ReplicaSet>::namespaced(c, &ns)
                    .replace(&name, &pp, &r)
                    .await?;
            }
        }
        Ok(())
    }
}

fn names<K: kube::Resource<DynamicType = ()>>(w: &K) -> Result<(String, String), super::Error> {
    Ok((super::meta::namespace(w)?, super::meta::name(w)?))
}

//! The objects `kubectl stash` creates, as plain functions of what it read: copies of
//! a Repository and its Secret for another namespace, and the claim of a volume.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimSpec, Secret,
    VolumeResourceRequirements,
};
use kube::api::ObjectMeta;

use crate::crd::repository::Repository;

/// Labels naming where a copy came from.
const COPIED_FROM: &str = "stash.appscode.com/copied-from";

/// The metadata of a copy of `meta` in namespace `to`: name, labels and annotations
/// (but not the ones the API server or kubectl set), plus where it came from.
fn copied_meta(meta: &ObjectMeta, to: &str) -> ObjectMeta {
    let mut labels = meta.labels.clone().unwrap_or_default();
    labels.insert(
        COPIED_FROM.to_string(),
        meta.namespace.clone().unwrap_or_default(),
    );
    let annotations: BTreeMap<String, String> = meta
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| !k.starts_with("kubectl.kubernetes.io/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    ObjectMeta {
        name: meta.name.clone(),
        namespace: Some(to.to_string()),
        labels: Some(labels),
        annotations: (!annotations.is_empty()).then_some(annotations),
        ..ObjectMeta::default()
    }
}

/// `secret` for namespace `to`: the same keys and type.
pub fn copied_secret(secret: &Secret, to: &str) -> Secret {
    Secret {
        metadata: copied_meta(&secret.metadata, to),
        data: secret.data.clone(),
        type_: secret.type_.clone(),
        ..Secret::default()
    }
}

/// `repo` for namespace `to`: the same storage, so the copy sees the same snapshots.
/// `wipeOut` is left off: deleting the copy must never delete the data.
pub fn copied_repository(repo: &Repository, to: &str) -> Repository {
    let mut spec = repo.spec.clone();
    spec.wipe_out = false;
    Repository {
        metadata: copied_meta(&repo.metadata, to),
        spec,
        status: None,
    }
}

/// A claim named `name` in `namespace` bound to `volume`.
///
/// # Errors
/// The volume is bound to a claim already, or is being deleted.
pub fn for_volume(
    volume: &PersistentVolume,
    name: &str,
    namespace: &str,
) -> Result<PersistentVolumeClaim, String> {
    let pv = volume.metadata.name.clone().unwrap_or_default();
    if volume.metadata.deletion_timestamp.is_some() {
        return Err(format!("PersistentVolume {pv} is being deleted"));
    }
    let spec = volume.spec.clone().unwrap_or_default();
    if let Some(c) = &spec.claim_ref {
        let bound_to = format!(
            "{}/{}",
            c.namespace.clone().unwrap_or_default(),
            c.name.clone().unwrap_or_default()
        );
        if bound_to != format!("{namespace}/{name}") {
            return Err(format!(
                "PersistentVolume {pv} is bound to claim {bound_to}: back that claim up instead"
            ));
        }
    }
    let storage = spec
        .capacity
        .as_ref()
        .and_then(|c| c.get("storage"))
        .cloned()
        .ok_or_else(|| format!("PersistentVolume {pv} has no capacity.storage"))?;
    Ok(PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([(
                "stash.appscode.com/persistent-volume".to_string(),
                pv.clone(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: spec.access_modes.clone(),
            // An empty class matches only volumes without one, as this volume may be.
            storage_class_name: Some(spec.storage_class_name.clone().unwrap_or_default()),
            volume_mode: spec.volume_mode.clone(),
            volume_name: Some(pv),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), storage)])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(claim: Option<(&str, &str)>) -> PersistentVolume {
        let mut v = serde_json::json!({
            "metadata": {"name": "pv-1"},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "hostPath": {"path": "/srv/pv-1"}
            }
        });
        if let Some((ns, name)) = claim {
            v["spec"]["claimRef"] = serde_json::json!({"namespace": ns, "name": name});
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_free_volume_gets_a_claim_naming_it() {
        let c = for_volume(&volume(None), "data", "demo").unwrap();
        let spec = c.spec.unwrap();
        assert_eq!(spec.volume_name.as_deref(), Some("pv-1"));
        assert_eq!(spec.storage_class_name.as_deref(), Some(""));
        assert_eq!(spec.access_modes.unwrap(), ["ReadWriteOnce"]);
        assert_eq!(
            spec.resources.unwrap().requests.unwrap()["storage"].0,
            "1Gi"
        );
        assert_eq!(c.metadata.namespace.as_deref(), Some("demo"));
    }

    #[test]
    fn a_volume_bound_elsewhere_is_refused() {
        let e = for_volume(&volume(Some(("prod", "db"))), "data", "demo").unwrap_err();
        assert!(e.contains("bound to claim prod/db"), "{e}");
        // Its own claim, asked for again, is fine (the binder wrote the claimRef).
        assert!(for_volume(&volume(Some(("demo", "data"))), "data", "demo").is_ok());
    }

    #[test]
    fn copies_keep_the_storage_and_never_wipe_it() {
        let repo: Repository = serde_json::from_value(serde_json::json!({
            "apiVersion": "stash.appscode.com/v1alpha1", "kind": "Repository",
            "metadata": {"name": "r", "namespace": "a", "uid": "u", "resourceVersion": "7",
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "team": "x"}},
            "spec": {"backend": {"gcs": {"bucket": "b"}, "storageSecretName": "s"}, "wipeOut": true}
        }))
        .unwrap();
        let c = copied_repository(&repo, "b");
        assert_eq!(c.metadata.namespace.as_deref(), Some("b"));
        assert_eq!(c.metadata.uid, None);
        assert_eq!(c.metadata.resource_version, None);
        assert_eq!(c.metadata.labels.unwrap()[COPIED_FROM], "a");
        assert_eq!(c.metadata.annotations.unwrap().len(), 1);
        assert!(!c.spec.wipe_out);
        assert_eq!(c.spec.backend, repo.spec.backend);
    }
}

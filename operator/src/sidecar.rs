//! The backup sidecar in a workload's pod template: its container, and its [`Slot`]
//! (see [`crate::pod_template`] for why only the sidecar's own inputs are hashed).

use k8s_openapi::api::core::v1::{Container, PodTemplateSpec, VolumeMount};
use serde::Serialize;

pub use crate::pod_template::SECRET_DIR;
use crate::pod_template::{self, Slot, Support, TemplateError};

/// The sidecar container's name (released Stash's).
pub const CONTAINER: &str = "stash";
/// The sidecar's place in the template.
pub const SLOT: Slot = Slot {
    container: CONTAINER,
    init: false,
    hash_annotation: "stash.appscode.com/last-applied-backup-invoker-hash",
    tmp_volume: "stash-tmp-dir",
    secret_volume: "stash-storage-secret",
    backend_volume: crate::location::LOCAL_VOLUME,
};

/// Everything the sidecar is built from; any change here rolls the workload once.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inputs {
    pub configuration: String,
    pub image: String,
    /// The target's volumes, as the sidecar mounts them (read-only).
    pub volume_mounts: Vec<VolumeMount>,
    #[serde(flatten)]
    pub support: Support,
}

/// The mounts the sidecar needs to read `directories` (read-only).
pub fn mounts_for_directories(
    template: &PodTemplateSpec,
    directories: &[String],
) -> Result<Vec<VolumeMount>, TemplateError> {
    pod_template::mounts_for_directories(
        template,
        directories,
        true,
        &[CONTAINER, crate::init_container::CONTAINER],
    )
}

/// The sidecar container for `inputs`.
pub fn container(inputs: &Inputs) -> Container {
    pod_template::our_container(
        &SLOT,
        &inputs.image,
        vec![
            "sidecar".to_string(),
            format!("--backup-configuration={}", inputs.configuration),
        ],
        inputs.volume_mounts.clone(),
        &inputs.support,
    )
}

/// The template with the sidecar for `inputs`, or `None` when it already has exactly
/// that sidecar: then nothing is patched.
///
/// `claims` names the workload's volumeClaimTemplates, pod volumes outside the template.
pub fn inject(
    template: &PodTemplateSpec,
    inputs: &Inputs,
    claims: &[String],
) -> Result<Option<PodTemplateSpec>, TemplateError> {
    let hash = pod_template::inputs_hash(inputs);
    pod_template::inject(
        template,
        &SLOT,
        container(inputs),
        &inputs.support,
        hash,
        claims,
    )
}

/// The template without the sidecar, or `None` when it has none (no rollout).
pub fn remove(template: &PodTemplateSpec) -> Option<PodTemplateSpec> {
    pod_template::remove(template, &SLOT)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's busybox Deployment template.
    fn seed_template() -> PodTemplateSpec {
        serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"app": "stash-demo"}, "name": "busybox"},
            "spec": {
                "containers": [{
                    "name": "busybox", "image": "busybox", "args": ["sleep", "3600"],
                    "volumeMounts": [{"mountPath": "/source/data", "name": "source-data"}]
                }],
                "volumes": [{"name": "source-data", "configMap": {"name": "stash-sample-data"}}]
            }
        }))
        .unwrap()
    }

    fn inputs(t: &PodTemplateSpec) -> Inputs {
        Inputs {
            configuration: "workload-data-backup".into(),
            image: "stash.appscode.dev/stash:v0.1.0".into(),
            volume_mounts: mounts_for_directories(t, &["/source/data".into()]).unwrap(),
            support: Support {
                pushgateway: None,
                storage_secret: "gcs-secret".into(),
                temp_dir: None,
                repository_volume: None,
            },
        }
    }

    #[test]
    fn directories_map_to_the_deepest_read_only_mount() {
        let t = seed_template();
        let m = mounts_for_directories(&t, &["/source/data/sub".into(), "/source/data".into()])
            .unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(
            (m[0].name.as_str(), m[0].mount_path.as_str()),
            ("source-data", "/source/data")
        );
        assert_eq!(m[0].read_only, Some(true));
        assert_eq!(
            mounts_for_directories(&t, &["/source/database".into()]),
            Err(TemplateError::NotOnAVolume {
                directory: "/source/database".into()
            })
        );
    }

    #[test]
    fn injection_is_idempotent_and_ignores_foreign_changes() {
        let t = seed_template();
        let i = inputs(&t);
        let injected = inject(&t, &i, &[])
            .unwrap()
            .expect("first injection changes the template");
        let spec = injected.spec.as_ref().unwrap();
        assert_eq!(spec.containers.len(), 2);
        let names: Vec<_> = spec
            .volumes
            .iter()
            .flatten()
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(names, ["source-data", SLOT.tmp_volume, SLOT.secret_volume]);
        assert_eq!(inject(&injected, &i, &[]).unwrap(), None);
        // Another controller adds an annotation and a container: still up to date.
        let mut foreign = injected.clone();
        foreign
            .metadata
            .get_or_insert_with(Default::default)
            .annotations
            .get_or_insert_with(Default::default)
            .insert("kubectl.kubernetes.io/restartedAt".into(), "now".into());
        foreign.spec.as_mut().unwrap().containers.insert(
            0,
            Container {
                name: "istio-proxy".into(),
                ..Container::default()
            },
        );
        assert_eq!(inject(&foreign, &i, &[]).unwrap(), None);
        // A changed input does change it, replacing (not duplicating) the sidecar.
        let mut i2 = i.clone();
        i2.support.storage_secret = "other".into();
        let again = inject(&injected, &i2, &[]).unwrap().unwrap();
        let spec = again.spec.unwrap();
        assert_eq!(
            spec.containers
                .iter()
                .filter(|c| c.name == CONTAINER)
                .count(),
            1
        );
        assert_eq!(spec.volumes.unwrap().len(), 3);
    }

    #[test]
    fn removal_restores_the_template_and_is_a_no_op_when_absent() {
        let t = seed_template();
        let injected = inject(&t, &inputs(&t), &[]).unwrap().unwrap();
        let removed = remove(&injected).unwrap();
        assert_eq!(removed.spec, t.spec);
        assert_eq!(remove(&t), None);
    }

    #[test]
    fn an_unknown_target_volume_is_refused() {
        let t = seed_template();
        let mut i = inputs(&t);
        i.volume_mounts[0].name = "nope".into();
        assert_eq!(
            inject(&t, &i, &[]),
            Err(TemplateError::UnknownVolume {
                volume: "nope".into()
            })
        );
    }

    #[test]
    fn a_statefulsets_claim_templates_count_as_volumes() {
        let mut t = seed_template();
        t.spec.as_mut().unwrap().volumes = None;
        let i = inputs(&t);
        assert!(inject(&t, &i, &[]).is_err());
        let injected = inject(&t, &i, &["source-data".into()]).unwrap().unwrap();
        let names: Vec<_> = injected
            .spec
            .unwrap()
            .volumes
            .unwrap()
            .into_iter()
            .map(|v| v.name)
            .collect();
        assert_eq!(names, [SLOT.tmp_volume, SLOT.secret_volume]);
    }

    #[test]
    fn the_hash_depends_only_on_the_inputs() {
        let t = seed_template();
        let i = inputs(&t);
        assert_eq!(
            pod_template::inputs_hash(&i),
            pod_template::inputs_hash(&i.clone())
        );
        let mut j = i.clone();
        j.image = "stash.appscode.dev/stash:v0.2.0".into();
        assert_ne!(pod_template::inputs_hash(&i), pod_template::inputs_hash(&j));
    }

    #[test]
    fn a_pushgateway_adds_the_metrics_flags_and_its_absence_keeps_old_hashes() {
        let t = seed_template();
        let i = inputs(&t);
        // Hashed inputs without the field are what operators before it hashed: an
        // upgrade without a Pushgateway rolls nothing.
        let json = serde_json::to_value(&i).unwrap();
        assert!(json.get("pushgateway").is_none(), "{json}");
        assert!(!container(&i)
            .args
            .unwrap()
            .iter()
            .any(|a| a.starts_with("--metrics")));
        let mut p = i.clone();
        p.support.pushgateway = Some("http://pushgateway:9091".into());
        assert_ne!(pod_template::inputs_hash(&i), pod_template::inputs_hash(&p));
        let args = container(&p).args.unwrap();
        assert!(args.contains(&"--metrics.enabled=true".to_string()));
        assert!(args.contains(&"--metrics.pushgateway-url=http://pushgateway:9091".to_string()));
    }
}

//! The backup sidecar in a workload's pod template: the container, its volumes, and the
//! hash that decides whether the template must change at all.
//!
//! Only the sidecar's own inputs are hashed (never the whole template), and an
//! up-to-date template is left untouched whatever else other controllers changed in
//! it, so neither an operator restart nor a foreign rewrite causes a rollout
//! (stashed/stash#1308 was an endless loop of exactly that).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, ObjectFieldSelector, PodTemplateSpec,
    SecretVolumeSource, Volume, VolumeMount,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::crd::common::EmptyDirSettings;

/// The sidecar container's name (released Stash's).
pub const CONTAINER: &str = "stash";
/// The sidecar's scratch emptyDir, mounted at `/tmp`.
pub const TMP_VOLUME: &str = "stash-tmp-dir";
/// The storage Secret's volume, mounted at [`SECRET_DIR`].
pub const SECRET_VOLUME: &str = "stash-storage-secret";
/// Where the sidecar reads the storage Secret's keys (`--secret-dir`).
pub const SECRET_DIR: &str = "/etc/stash/repository/secret";
/// Pod-template annotation holding the hash of the sidecar's inputs.
pub const HASH_ANNOTATION: &str = "stash.appscode.com/last-applied-backup-invoker-hash";

/// Everything the sidecar is built from; any change here rolls the workload once.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inputs {
    pub configuration: String,
    pub image: String,
    pub storage_secret: String,
    /// The target's volumes, as the sidecar mounts them (read-only).
    pub volume_mounts: Vec<VolumeMount>,
    pub temp_dir: Option<EmptyDirSettings>,
    /// A `local` backend's volume and its mount ([`crate::location`]).
    pub repository_volume: Option<(Volume, VolumeMount)>,
}

/// Why a sidecar cannot be built for a template.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SidecarError {
    #[error("directory {directory} is on no volume of the pod template: only volumes can be backed up by the sidecar")]
    NotOnAVolume { directory: String },
    #[error("volume {volume} named by the target is not a volume of the pod template")]
    UnknownVolume { volume: String },
}

/// The mounts the sidecar needs to see `directories` where the workload's containers
/// see them: for each directory, the deepest container mount holding it.
pub fn mounts_for_directories(
    template: &PodTemplateSpec,
    directories: &[String],
) -> Result<Vec<VolumeMount>, SidecarError> {
    let mounts: Vec<&VolumeMount> = template
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .filter(|c| c.name != CONTAINER)
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .collect();
    let mut out: Vec<VolumeMount> = Vec::new();
    for dir in directories {
        let holder = mounts
            .iter()
            .filter(|m| is_under(dir, &m.mount_path))
            .max_by_key(|m| m.mount_path.len())
            .ok_or_else(|| SidecarError::NotOnAVolume {
                directory: dir.clone(),
            })?;
        if !out.iter().any(|m| m.mount_path == holder.mount_path) {
            out.push(VolumeMount {
                name: holder.name.clone(),
                mount_path: holder.mount_path.clone(),
                sub_path: holder.sub_path.clone(),
                read_only: Some(true),
                ..VolumeMount::default()
            });
        }
    }
    Ok(out)
}

fn is_under(path: &str, mount: &str) -> bool {
    let mount = mount.trim_end_matches('/');
    path == mount
        || path
            .strip_prefix(mount)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The hash of the sidecar's inputs, as written to [`HASH_ANNOTATION`].
pub fn inputs_hash(inputs: &Inputs) -> String {
    let json = serde_json::to_vec(inputs).unwrap_or_default();
    hex::encode(&Sha256::digest(json)[..8])
}

/// The sidecar container for `inputs`.
pub fn container(inputs: &Inputs) -> Container {
    let field = |path: &str| EnvVarSource {
        field_ref: Some(ObjectFieldSelector {
            field_path: path.to_string(),
            ..ObjectFieldSelector::default()
        }),
        ..EnvVarSource::default()
    };
    let env = |name: &str, path: &str| EnvVar {
        name: name.to_string(),
        value_from: Some(field(path)),
        ..EnvVar::default()
    };
    let mut mounts = inputs.volume_mounts.clone();
    mounts.push(VolumeMount {
        name: TMP_VOLUME.to_string(),
        mount_path: "/tmp".to_string(),
        ..VolumeMount::default()
    });
    mounts.push(VolumeMount {
        name: SECRET_VOLUME.to_string(),
        mount_path: SECRET_DIR.to_string(),
        read_only: Some(true),
        ..VolumeMount::default()
    });
    if let Some((_, m)) = &inputs.repository_volume {
        mounts.push(m.clone());
    }
    Container {
        name: CONTAINER.to_string(),
        image: Some(inputs.image.clone()),
        args: Some(vec![
            "sidecar".to_string(),
            format!("--backup-configuration={}", inputs.configuration),
            format!("--secret-dir={SECRET_DIR}"),
        ]),
        env: Some(vec![
            env("NODE_NAME", "spec.nodeName"),
            env("POD_NAME", "metadata.name"),
            env("POD_NAMESPACE", "metadata.namespace"),
        ]),
        volume_mounts: Some(mounts),
        ..Container::default()
    }
}

fn volumes(inputs: &Inputs) -> Vec<Volume> {
    let settings = inputs.temp_dir.clone().unwrap_or_default();
    let mut out = vec![
        Volume {
            name: TMP_VOLUME.to_string(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: settings.medium,
                size_limit: settings.size_limit,
                ..EmptyDirVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: SECRET_VOLUME.to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(inputs.storage_secret.clone()),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        },
    ];
    out.extend(inputs.repository_volume.as_ref().map(|(v, _)| v.clone()));
    out
}

/// Whether a pod volume is one the sidecar brings (and takes away again).
fn own_volume(name: &str) -> bool {
    name == TMP_VOLUME || name == SECRET_VOLUME || name == crate::location::LOCAL_VOLUME
}

fn annotations(t: &mut PodTemplateSpec) -> &mut BTreeMap<String, String> {
    t.metadata
        .get_or_insert_with(Default::default)
        .annotations
        .get_or_insert_with(Default::default)
}

/// The template with the sidecar for `inputs`, or `None` when it already has exactly
/// that sidecar (same inputs hash, container present): then nothing is patched.
pub fn inject(
    template: &PodTemplateSpec,
    inputs: &Inputs,
) -> Result<Option<PodTemplateSpec>, SidecarError> {
    let hash = inputs_hash(inputs);
    let spec = template.spec.clone().unwrap_or_default();
    let current = template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(HASH_ANNOTATION));
    if current == Some(&hash) && spec.containers.iter().any(|c| c.name == CONTAINER) {
        return Ok(None);
    }
    let mut volumes_out: Vec<Volume> = spec
        .volumes
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|v| !own_volume(&v.name))
        .collect();
    for m in &inputs.volume_mounts {
        if !volumes_out.iter().any(|v| v.name == m.name) {
            return Err(SidecarError::UnknownVolume {
                volume: m.name.clone(),
            });
        }
    }
    volumes_out.extend(volumes(inputs));
    let mut out = template.clone();
    let out_spec = out.spec.get_or_insert_with(Default::default);
    out_spec.containers.retain(|c| c.name != CONTAINER);
    out_spec.containers.push(container(inputs));
    out_spec.volumes = Some(volumes_out);
    annotations(&mut out).insert(HASH_ANNOTATION.to_string(), hash);
    Ok(Some(out))
}

/// The template without any sidecar, or `None` when it has none (no rollout).
pub fn remove(template: &PodTemplateSpec) -> Option<PodTemplateSpec> {
    let spec = template.spec.as_ref()?;
    let has_annotation = template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref())
        .is_some_and(|a| a.contains_key(HASH_ANNOTATION));
    if !has_annotation && !spec.containers.iter().any(|c| c.name == CONTAINER) {
        return None;
    }
    let mut out = template.clone();
    if let Some(s) = out.spec.as_mut() {
        s.containers.retain(|c| c.name != CONTAINER);
        if let Some(v) = s.volumes.as_mut() {
            v.retain(|v| !own_volume(&v.name));
        }
    }
    if let Some(a) = out.metadata.as_mut().and_then(|m| m.annotations.as_mut()) {
        a.remove(HASH_ANNOTATION);
    }
    Some(out)
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
            storage_secret: "gcs-secret".into(),
            volume_mounts: mounts_for_directories(t, &["/source/data".into()]).unwrap(),
            temp_dir: None,
            repository_volume: None,
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
            Err(SidecarError::NotOnAVolume {
                directory: "/source/database".into()
            })
        );
    }

    #[test]
    fn injection_is_idempotent_and_ignores_foreign_changes() {
        let t = seed_template();
        let i = inputs(&t);
        let injected = inject(&t, &i)
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
        assert_eq!(names, ["source-data", TMP_VOLUME, SECRET_VOLUME]);
        assert_eq!(inject(&injected, &i).unwrap(), None);
        // Another controller adds an annotation and a container: still up to date.
        let mut foreign = injected.clone();
        annotations(&mut foreign).insert("kubectl.kubernetes.io/restartedAt".into(), "now".into());
        foreign.spec.as_mut().unwrap().containers.insert(
            0,
            Container {
                name: "istio-proxy".into(),
                ..Container::default()
            },
        );
        assert_eq!(inject(&foreign, &i).unwrap(), None);
        // A changed input does change it, replacing (not duplicating) the sidecar.
        let mut i2 = i.clone();
        i2.storage_secret = "other".into();
        let again = inject(&injected, &i2).unwrap().unwrap();
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
        let injected = inject(&t, &inputs(&t)).unwrap().unwrap();
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
            inject(&t, &i),
            Err(SidecarError::UnknownVolume {
                volume: "nope".into()
            })
        );
    }

    #[test]
    fn the_hash_depends_only_on_the_inputs() {
        let t = seed_template();
        let i = inputs(&t);
        assert_eq!(inputs_hash(&i), inputs_hash(&i.clone()));
        let mut j = i.clone();
        j.image = "stash.appscode.dev/stash:v0.2.0".into();
        assert_ne!(inputs_hash(&i), inputs_hash(&j));
    }
}

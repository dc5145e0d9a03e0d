//! Adding one of the operator's containers (the backup sidecar, the restore init
//! container) to a workload's pod template, and taking it out again.
//!
//! Each addition owns a [`Slot`]: a container name, the volumes it brings, and an
//! annotation holding the hash of its own inputs. Only those inputs are hashed (never
//! the whole template), and an up-to-date template is left untouched whatever else
//! other controllers changed in it, so neither an operator restart nor a foreign
//! rewrite causes a rollout (stashed/stash#1308 was an endless loop of exactly that).
//! Slots use disjoint names, so the sidecar and a restore init container live side by
//! side and removing one never takes the other's volumes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, ObjectFieldSelector, PodTemplateSpec,
    SecretVolumeSource, Volume, VolumeMount,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::crd::common::EmptyDirSettings;

/// Where the operator's containers read the storage Secret's keys (`--secret-dir`).
pub const SECRET_DIR: &str = "/etc/stash/repository/secret";

/// The place of one addition in a pod template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The container's name.
    pub container: &'static str,
    /// Whether it goes into `initContainers` (else `containers`).
    pub init: bool,
    /// Pod-template annotation holding the hash of the addition's inputs.
    pub hash_annotation: &'static str,
    /// The scratch emptyDir (mounted at `/tmp`).
    pub tmp_volume: &'static str,
    /// The storage Secret's volume (mounted at [`SECRET_DIR`]).
    pub secret_volume: &'static str,
    /// A `local` backend's volume.
    pub backend_volume: &'static str,
}

impl Slot {
    fn owns_volume(&self, name: &str) -> bool {
        name == self.tmp_volume || name == self.secret_volume || name == self.backend_volume
    }

    fn containers<'a>(&self, spec: &'a k8s_openapi::api::core::v1::PodSpec) -> &'a [Container] {
        if self.init {
            spec.init_containers.as_deref().unwrap_or_default()
        } else {
            &spec.containers
        }
    }

    fn containers_mut<'a>(
        &self,
        spec: &'a mut k8s_openapi::api::core::v1::PodSpec,
    ) -> &'a mut Vec<Container> {
        if self.init {
            spec.init_containers.get_or_insert_with(Vec::new)
        } else {
            &mut spec.containers
        }
    }
}

/// Why an addition cannot be made to a template.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("directory {directory} is on no volume of the pod template: only volumes can be backed up or restored")]
    NotOnAVolume { directory: String },
    #[error("volume {volume} named by the target is not a volume of the pod template")]
    UnknownVolume { volume: String },
}

/// What the addition shares with every slot: the storage Secret, a scratch dir, and
/// the `local` backend's volume, if any.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Support {
    pub storage_secret: String,
    pub temp_dir: Option<EmptyDirSettings>,
    /// A `local` backend's volume and its mount ([`crate::location`]).
    pub repository_volume: Option<(Volume, VolumeMount)>,
    /// The Pushgateway the container pushes its host's result to (`--pushgateway-url`
    /// of the operator); absent from the hash when unset, so templates made before the
    /// field existed are not rolled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pushgateway: Option<String>,
}

/// The mounts a container needs to see `directories` where the workload's containers
/// see them: for each directory, the deepest container mount holding it. Containers
/// named in `ours` (the operator's own) are not looked at.
pub fn mounts_for_directories(
    template: &PodTemplateSpec,
    directories: &[String],
    read_only: bool,
    ours: &[&str],
) -> Result<Vec<VolumeMount>, TemplateError> {
    let mounts: Vec<&VolumeMount> = template
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .filter(|c| !ours.contains(&c.name.as_str()))
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .collect();
    let mut out: Vec<VolumeMount> = Vec::new();
    for dir in directories {
        let holder = mounts
            .iter()
            .filter(|m| is_under(dir, &m.mount_path))
            .max_by_key(|m| m.mount_path.len())
            .ok_or_else(|| TemplateError::NotOnAVolume {
                directory: dir.clone(),
            })?;
        if !out.iter().any(|m| m.mount_path == holder.mount_path) {
            out.push(VolumeMount {
                name: holder.name.clone(),
                mount_path: holder.mount_path.clone(),
                sub_path: holder.sub_path.clone(),
                read_only: Some(read_only),
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

/// The hash of an addition's inputs, as written to its slot's annotation.
pub fn inputs_hash(inputs: &impl Serialize) -> String {
    let json = serde_json::to_vec(inputs).unwrap_or_default();
    hex::encode(&Sha256::digest(json)[..8])
}

/// `NODE_NAME`, `POD_NAME`, `POD_NAMESPACE` and `POD_UID` from the downward API: how
/// the operator's processes learn which host and which container they are.
pub fn downward_env() -> Vec<EnvVar> {
    let env = |name: &str, path: &str| EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_string(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    };
    vec![
        env("NODE_NAME", "spec.nodeName"),
        env("POD_NAME", "metadata.name"),
        env("POD_NAMESPACE", "metadata.namespace"),
        env("POD_UID", "metadata.uid"),
    ]
}

/// The slot's container: our `image` running `args` and `--secret-dir`, told its pod
/// by the downward API, with `target_mounts` and the slot's own volumes mounted.
pub fn our_container(
    slot: &Slot,
    image: &str,
    mut args: Vec<String>,
    target_mounts: Vec<VolumeMount>,
    support: &Support,
) -> Container {
    let (_, own) = support_volumes(slot, support);
    let mut mounts = target_mounts;
    mounts.extend(own);
    args.push(format!("--secret-dir={SECRET_DIR}"));
    if let Some(url) = &support.pushgateway {
        args.push("--metrics.enabled=true".to_string());
        args.push(format!("--metrics.pushgateway-url={url}"));
    }
    Container {
        name: slot.container.to_string(),
        image: Some(image.to_string()),
        args: Some(args),
        env: Some(downward_env()),
        volume_mounts: Some(mounts),
        ..Container::default()
    }
}

/// The slot's own volumes for `support`, and their mounts in its container.
pub fn support_volumes(slot: &Slot, support: &Support) -> (Vec<Volume>, Vec<VolumeMount>) {
    let settings = support.temp_dir.clone().unwrap_or_default();
    let mut volumes = vec![
        Volume {
            name: slot.tmp_volume.to_string(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: settings.medium,
                size_limit: settings.size_limit,
                ..EmptyDirVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: slot.secret_volume.to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(support.storage_secret.clone()),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        },
    ];
    let mut mounts = vec![
        VolumeMount {
            name: slot.tmp_volume.to_string(),
            mount_path: "/tmp".to_string(),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: slot.secret_volume.to_string(),
            mount_path: SECRET_DIR.to_string(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
    ];
    if let Some((v, m)) = &support.repository_volume {
        volumes.push(Volume {
            name: slot.backend_volume.to_string(),
            ..v.clone()
        });
        mounts.push(VolumeMount {
            name: slot.backend_volume.to_string(),
            ..m.clone()
        });
    }
    (volumes, mounts)
}

fn annotations(t: &mut PodTemplateSpec) -> &mut BTreeMap<String, String> {
    t.metadata
        .get_or_insert_with(Default::default)
        .annotations
        .get_or_insert_with(Default::default)
}

/// The hash recorded for `slot` in `template`.
pub fn current_hash<'a>(template: &'a PodTemplateSpec, slot: &Slot) -> Option<&'a String> {
    template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(slot.hash_annotation))
}

/// The slot's container in `template`, if there is one.
pub fn container<'a>(template: &'a PodTemplateSpec, slot: &Slot) -> Option<&'a Container> {
    template
        .spec
        .as_ref()
        .and_then(|s| slot.containers(s).iter().find(|c| c.name == slot.container))
}

/// The template with `container` (and the slot's volumes for `support`) in `slot`, or
/// `None` when it holds that addition already (same `hash`, container present): then
/// nothing is patched. The target volumes `container` mounts besides its own must be in
/// the template or among `claims` (a StatefulSet's volumeClaimTemplates, which are pod
/// volumes too).
pub fn inject(
    template: &PodTemplateSpec,
    slot: &Slot,
    container: Container,
    support: &Support,
    hash: String,
    claims: &[String],
) -> Result<Option<PodTemplateSpec>, TemplateError> {
    let (volumes, _) = support_volumes(slot, support);
    if current_hash(template, slot) == Some(&hash) && self::container(template, slot).is_some() {
        return Ok(None);
    }
    let spec = template.spec.clone().unwrap_or_default();
    let mut volumes_out: Vec<Volume> = spec
        .volumes
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|v| !slot.owns_volume(&v.name))
        .collect();
    for m in container.volume_mounts.iter().flatten() {
        let own = volumes.iter().any(|v| v.name == m.name) || claims.contains(&m.name);
        if !own && !volumes_out.iter().any(|v| v.name == m.name) {
            return Err(TemplateError::UnknownVolume {
                volume: m.name.clone(),
            });
        }
    }
    volumes_out.extend(volumes);
    let mut out = template.clone();
    let out_spec = out.spec.get_or_insert_with(Default::default);
    let list = slot.containers_mut(out_spec);
    list.retain(|c| c.name != slot.container);
    list.push(container);
    out_spec.volumes = Some(volumes_out);
    annotations(&mut out).insert(slot.hash_annotation.to_string(), hash);
    Ok(Some(out))
}

/// The template without the slot's container, or `None` when it has none (no rollout).
pub fn remove(template: &PodTemplateSpec, slot: &Slot) -> Option<PodTemplateSpec> {
    template.spec.as_ref()?;
    if current_hash(template, slot).is_none() && container(template, slot).is_none() {
        return None;
    }
    let mut out = template.clone();
    if let Some(s) = out.spec.as_mut() {
        slot.containers_mut(s).retain(|c| c.name != slot.container);
        if slot.init && s.init_containers.as_ref().is_some_and(Vec::is_empty) {
            s.init_containers = None;
        }
        if let Some(v) = s.volumes.as_mut() {
            v.retain(|v| !slot.owns_volume(&v.name));
        }
    }
    if let Some(a) = out.metadata.as_mut().and_then(|m| m.annotations.as_mut()) {
        a.remove(slot.hash_annotation);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_map_to_the_deepest_mount_with_the_asked_access() {
        let t: PodTemplateSpec = serde_json::from_value(serde_json::json!({
            "spec": {
                "containers": [{
                    "name": "app",
                    "volumeMounts": [
                        {"mountPath": "/data", "name": "outer"},
                        {"mountPath": "/data/inner/", "name": "inner"}
                    ]
                }, {
                    "name": "stash",
                    "volumeMounts": [{"mountPath": "/other", "name": "ours"}]
                }]
            }
        }))
        .unwrap();
        let m = mounts_for_directories(&t, &["/data/inner/x".into()], false, &["stash"]).unwrap();
        assert_eq!((m[0].name.as_str(), m[0].read_only), ("inner", Some(false)));
        let m = mounts_for_directories(&t, &["/data/innerx".into()], true, &["stash"]).unwrap();
        assert_eq!((m[0].name.as_str(), m[0].read_only), ("outer", Some(true)));
        assert_eq!(
            mounts_for_directories(&t, &["/other".into()], true, &["stash"]),
            Err(TemplateError::NotOnAVolume {
                directory: "/other".into()
            })
        );
    }
}

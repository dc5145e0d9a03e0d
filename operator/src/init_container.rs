//! The restore init container in a workload's pod template: `stash restore-init` runs
//! before the workload's containers, restores its host's data per the RestoreSession's
//! rules, and records the result on the session.
//!
//! It stays in the template after the restore: taking it out would restart the pods a
//! second time. On later starts it finds its host's result recorded and exits at once
//! without touching the data; deleting the RestoreSession takes it out (one rollout).

use k8s_openapi::api::core::v1::{Container, PodTemplateSpec, VolumeMount};
use serde::Serialize;

use crate::pod_template::{self, Slot, Support, TemplateError};

/// The init container's name (released Stash's).
pub const CONTAINER: &str = "stash-init";
/// The init container's place in the template; its volumes are its own, so the
/// sidecar's removal never takes them.
pub const SLOT: Slot = Slot {
    container: CONTAINER,
    init: true,
    hash_annotation: "stash.appscode.com/last-applied-restore-invoker-hash",
    tmp_volume: "stash-restore-tmp-dir",
    secret_volume: "stash-restore-storage-secret",
    backend_volume: "stash-restore-local-backend",
};

/// Everything the init container is built from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inputs {
    pub restore_session: String,
    pub image: String,
    /// The target's volumes, as the init container writes them.
    pub volume_mounts: Vec<VolumeMount>,
    #[serde(flatten)]
    pub support: Support,
}

/// The writable mounts the init container needs to restore `directories`.
pub fn mounts_for_directories(
    template: &PodTemplateSpec,
    directories: &[String],
) -> Result<Vec<VolumeMount>, TemplateError> {
    pod_template::mounts_for_directories(
        template,
        directories,
        false,
        &[CONTAINER, crate::sidecar::CONTAINER],
    )
}

/// The argument that names the RestoreSession.
fn session_arg(name: &str) -> String {
    format!("--restore-session={name}")
}

/// The init container for `inputs`: it writes the target volumes.
pub fn container(inputs: &Inputs) -> Container {
    let writable = inputs
        .volume_mounts
        .iter()
        .map(|m| VolumeMount {
            read_only: None,
            ..m.clone()
        })
        .collect();
    pod_template::our_container(
        &SLOT,
        &inputs.image,
        vec![
            "restore-init".to_string(),
            session_arg(&inputs.restore_session),
        ],
        writable,
        &inputs.support,
    )
}

/// The template with the init container for `inputs` (replacing one of an earlier
/// session), or `None` when it is there already.
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

/// The template without the init container of `restore_session`, or `None` when it
/// has none, or has another session's (which that session's deletion removes).
pub fn remove(template: &PodTemplateSpec, restore_session: &str) -> Option<PodTemplateSpec> {
    let ours = pod_template::container(template, &SLOT)
        .and_then(|c| c.args.as_ref())
        .is_some_and(|a| a.contains(&session_arg(restore_session)));
    if !ours {
        return None;
    }
    pod_template::remove(template, &SLOT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> PodTemplateSpec {
        serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"app": "stash-demo"}},
            "spec": {
                "containers": [{
                    "name": "busybox", "image": "busybox",
                    "volumeMounts": [{"mountPath": "/source/data", "name": "source-data"}]
                }],
                "volumes": [{"name": "source-data", "hostPath": {"path": "/srv/data"}}]
            }
        }))
        .unwrap()
    }

    fn inputs(t: &PodTemplateSpec, session: &str) -> Inputs {
        Inputs {
            restore_session: session.into(),
            image: "stash:test".into(),
            volume_mounts: mounts_for_directories(t, &["/source/data".into()]).unwrap(),
            support: Support {
                pushgateway: None,
                storage_secret: "s3-secret".into(),
                temp_dir: None,
                repository_volume: None,
            },
        }
    }

    #[test]
    fn the_init_container_writes_the_target_volumes_and_is_injected_once() {
        let t = template();
        let injected = inject(&t, &inputs(&t, "restore-1"), &[]).unwrap().unwrap();
        let spec = injected.spec.as_ref().unwrap();
        let init = &spec.init_containers.as_ref().unwrap()[0];
        assert_eq!(init.name, CONTAINER);
        let data = init
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.mount_path == "/source/data")
            .unwrap();
        assert_ne!(data.read_only, Some(true));
        assert_eq!(spec.containers.len(), 1, "the workload's containers stay");
        assert_eq!(
            inject(&injected, &inputs(&t, "restore-1"), &[]).unwrap(),
            None
        );
        // A new session replaces the old one's container.
        let next = inject(&injected, &inputs(&t, "restore-2"), &[])
            .unwrap()
            .unwrap();
        assert_eq!(next.spec.unwrap().init_containers.unwrap().len(), 1);
    }

    #[test]
    fn only_the_sessions_own_container_is_removed() {
        let t = template();
        let injected = inject(&t, &inputs(&t, "restore-1"), &[]).unwrap().unwrap();
        assert_eq!(remove(&injected, "restore-2"), None);
        let removed = remove(&injected, "restore-1").unwrap();
        assert_eq!(removed.spec, t.spec);
    }

    #[test]
    fn sidecar_and_init_container_live_side_by_side() {
        let t = template();
        let with_init = inject(&t, &inputs(&t, "r"), &[]).unwrap().unwrap();
        let sidecar = crate::sidecar::Inputs {
            configuration: "bc".into(),
            image: "stash:test".into(),
            volume_mounts: crate::sidecar::mounts_for_directories(
                &with_init,
                &["/source/data".into()],
            )
            .unwrap(),
            support: inputs(&t, "r").support,
        };
        let both = crate::sidecar::inject(&with_init, &sidecar, &[])
            .unwrap()
            .unwrap();
        let without_sidecar = crate::sidecar::remove(&both).unwrap();
        assert_eq!(without_sidecar.spec, with_init.spec);
        let without_init = remove(&both, "r").unwrap();
        assert!(without_init
            .spec
            .unwrap()
            .volumes
            .unwrap()
            .iter()
            .any(|v| v.name == crate::sidecar::SLOT.secret_volume));
    }
}

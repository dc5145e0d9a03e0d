//! The engine verbs of `kubectl stash` (`snapshots`, `check`, `unlock`, `restore`): the
//! Repository and its Secret are read with the user's rights, the Secret's keys are
//! written to a private directory that lives as long as the command, and this binary's
//! restic-compatible verb runs on the Repository's storage from this machine.

use std::{
    collections::BTreeMap,
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
};

use anyhow::{bail, Context as _};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use super::api_error;
use crate::{
    crd::repository::Repository,
    location::{engine_location, EngineLocation},
};

/// Where this machine reaches the repository: a `local` backend on a hostPath is that
/// host directory (this machine must be, or see, the node); object stores are as
/// they are.
///
/// # Errors
/// A `local` backend on a claim or NFS volume, reachable only from pods.
pub fn here(location: &EngineLocation) -> Result<String, String> {
    let Some((volume, mount)) = &location.volume else {
        return Ok(location.location.clone());
    };
    let Some(host) = &volume.host_path else {
        let kind = if volume.nfs.is_some() {
            "an NFS volume"
        } else {
            "a PersistentVolumeClaim"
        };
        return Err(format!(
            "the repository is on {kind}, which only pods reach: run this where the volume is mounted, or use an object store"
        ));
    };
    let rest = location
        .location
        .strip_prefix(mount.mount_path.trim_end_matches('/'))
        .unwrap_or_default();
    Ok(format!("{}{rest}", host.path.trim_end_matches('/')))
}

/// Writes `data` as files of a fresh directory only this user can read.
fn secret_dir(data: &BTreeMap<String, Vec<u8>>) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("kubectl-stash-")
        .tempdir()
        .context("creating a private directory for the storage Secret")?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
    for (key, value) in data {
        if key.contains('/') || key.starts_with('.') {
            continue;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dir.path().join(key))
            .with_context(|| format!("writing Secret key {key}"))?;
        f.write_all(value)?;
    }
    Ok(dir)
}

/// Runs `stash <verb> <args>` on Repository `name` of `ns`; its exit code.
///
/// # Errors
/// The Repository or its Secret cannot be read, or its storage is not reachable here.
pub async fn run(
    client: &Client,
    ns: &str,
    name: &str,
    verb: &str,
    args: &[String],
) -> anyhow::Result<i32> {
    let repo = Api::<Repository>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .map_err(|e| api_error(e, &format!("reading Repository {ns}/{name}")))?;
    let location =
        engine_location(&repo.spec).map_err(|e| anyhow::anyhow!("Repository {ns}/{name}: {e}"))?;
    let target = here(&location).map_err(|e| anyhow::anyhow!("Repository {ns}/{name}: {e}"))?;
    let Some(secret_name) = repo
        .spec
        .backend
        .storage_secret_name
        .clone()
        .filter(|s| !s.is_empty())
    else {
        bail!("Repository {ns}/{name} names no storage Secret (spec.backend.storageSecretName)");
    };
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get(&secret_name)
        .await
        .map_err(|e| api_error(e, &format!("reading Secret {ns}/{secret_name}")))?;
    let mut data: BTreeMap<String, Vec<u8>> = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    for (k, v) in secret.string_data.unwrap_or_default() {
        data.insert(k, v.into_bytes());
    }
    if !data.contains_key("RESTIC_PASSWORD") {
        bail!("Secret {ns}/{secret_name} has no RESTIC_PASSWORD key");
    }
    let dir = secret_dir(&data)?;
    let mut cmd = tokio::process::Command::new(
        std::env::current_exe().context("finding this program to run the engine")?,
    );
    cmd.arg("--secret-dir")
        .arg(dir.path())
        .arg("-r")
        .arg(&target)
        .arg(verb)
        .args(args);
    // The Secret's settings win over this shell's, and the repository is the Secret's.
    for k in data.keys() {
        cmd.env_remove(k);
    }
    cmd.env_remove("RESTIC_PASSWORD")
        .env_remove("RESTIC_PASSWORD_FILE")
        .env_remove("RESTIC_REPOSITORY");
    for (k, v) in &location.defaults {
        if !data.contains_key(k) {
            cmd.env(k, v);
        }
    }
    let status = cmd.status().await.context("running the engine")?;
    drop(dir);
    Ok(status.code().unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::repository::{Backend, LocalSpec};
    use k8s_openapi::api::core::v1::{HostPathVolumeSource, PersistentVolumeClaimVolumeSource};

    fn local(host: Option<&str>, sub: Option<&str>) -> EngineLocation {
        let spec = crate::crd::repository::RepositorySpec {
            backend: Backend {
                local: Some(LocalSpec {
                    host_path: host.map(|p| HostPathVolumeSource {
                        path: p.into(),
                        ..HostPathVolumeSource::default()
                    }),
                    persistent_volume_claim: host.is_none().then(|| {
                        PersistentVolumeClaimVolumeSource {
                            claim_name: "c".into(),
                            ..PersistentVolumeClaimVolumeSource::default()
                        }
                    }),
                    mount_path: "/safe/data/".into(),
                    sub_path: sub.map(str::to_string),
                    ..LocalSpec::default()
                }),
                storage_secret_name: Some("s".into()),
                ..Backend::default()
            },
            ..Default::default()
        };
        engine_location(&spec).unwrap()
    }

    #[test]
    fn a_host_path_repository_is_reached_at_the_host_directory() {
        assert_eq!(here(&local(Some("/srv/repo/"), None)).unwrap(), "/srv/repo");
        assert_eq!(
            here(&local(Some("/srv/repo"), Some("demo/app"))).unwrap(),
            "/srv/repo/demo/app"
        );
        let e = here(&local(None, None)).unwrap_err();
        assert!(e.contains("PersistentVolumeClaim"), "{e}");
    }

    #[test]
    fn the_secret_directory_is_private() {
        let data = BTreeMap::from([
            ("RESTIC_PASSWORD".to_string(), b"pw".to_vec()),
            ("../escape".to_string(), b"x".to_vec()),
        ]);
        let dir = secret_dir(&data).unwrap();
        let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert_eq!(
            std::fs::read(dir.path().join("RESTIC_PASSWORD")).unwrap(),
            b"pw"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

//! A pod's volumes as host directories: emptyDir under the pod's directory, a claim's
//! directory (or its PersistentVolume's hostPath), hostPath as itself, and Secret,
//! ConfigMap, downward API and projected volumes (service-account token included) written
//! out as files. The sandbox bind-mounts them into each container.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    os::unix::fs::PermissionsExt,
    path::{Component, Path, PathBuf},
};

use anyhow::{anyhow, bail, Context as _, Result};
use k8s_openapi::api::{
    authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec},
    core::v1::{
        Container, DownwardAPIVolumeFile, KeyToPath, PersistentVolume, PersistentVolumeClaim, Pod,
        ServiceAccount, Volume,
    },
};
use kube::{api::PostParams, Api, Client};

use crate::env::{field_ref, Sources};

/// One bind mount of a container.
#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    pub host: PathBuf,
    pub container: String,
    pub read_only: bool,
}

/// Where the kubelet keeps per-pod and per-claim directories.
pub struct Layout {
    pub pods: PathBuf,
    pub claims: PathBuf,
}

impl Layout {
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.pods.join(uid)
    }
}

/// A relative path inside a volume; `..` and absolute paths are refused.
fn inside(base: &Path, rel: &str) -> Result<PathBuf> {
    let p = Path::new(rel);
    if p.components().any(|c| !matches!(c, Component::Normal(_))) {
        bail!("path {rel:?} leaves its volume");
    }
    Ok(base.join(p))
}

fn write_file(dir: &Path, rel: &str, data: &[u8], mode: u32) -> Result<()> {
    let path = inside(dir, rel)?;
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    }
    fs::write(&path, data).with_context(|| format!("write {}", path.display()))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok(())
}

/// Writes the selected keys (`items`, or all) of a Secret or ConfigMap into `dir`.
fn write_keys(
    dir: &Path,
    what: &str,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: u32,
) -> Result<()> {
    match items {
        Some(items) => {
            for item in items {
                let value = data
                    .get(&item.key)
                    .ok_or_else(|| anyhow!("{what} has no key {:?}", item.key))?;
                let mode = item.mode.map(|m| m as u32).unwrap_or(default_mode);
                write_file(dir, &item.path, value, mode)?;
            }
        }
        None => {
            for (k, v) in data {
                write_file(dir, k, v, default_mode)?;
            }
        }
    }
    Ok(())
}

/// Writes a Secret's or ConfigMap's keys, or nothing when it is missing but optional.
fn write_found(
    dir: &Path,
    kind: &str,
    name: &str,
    found: Option<BTreeMap<String, Vec<u8>>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: u32,
    optional: Option<bool>,
) -> Result<()> {
    match found {
        Some(data) => write_keys(dir, &format!("{kind} {name}"), &data, items, default_mode),
        None if optional == Some(true) => Ok(()),
        None => bail!("{kind} {name:?} not found"),
    }
}

/// Writes downward-API items (field references of the pod).
fn write_downward(
    dir: &Path,
    pod: &Pod,
    items: Option<&[DownwardAPIVolumeFile]>,
    default_mode: u32,
) -> Result<()> {
    for item in items.into_iter().flatten() {
        let value = match &item.field_ref {
            Some(f) => field_ref(pod, &f.field_path)?,
            None => String::new(),
        };
        let m = item.mode.map(|m| m as u32).unwrap_or(default_mode);
        write_file(dir, &item.path, value.as_bytes(), m)?;
    }
    Ok(())
}

fn mode(m: Option<i32>) -> u32 {
    m.map(|m| m as u32).unwrap_or(0o644)
}

/// The names of the pod's volumes whose files come from the API.
pub fn api_backed(pod: &Pod) -> BTreeSet<String> {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter(|v| {
            v.secret.is_some()
                || v.config_map.is_some()
                || v.downward_api.is_some()
                || v.projected.is_some()
        })
        .map(|v| v.name.clone())
        .collect()
}

/// Materialises every volume of `pod` and returns its host directory by volume name.
pub async fn prepare(
    client: &Client,
    layout: &Layout,
    pod: &Pod,
) -> Result<BTreeMap<String, PathBuf>> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let sources = Sources::new(client.clone(), &ns);
    let vol_root = layout.pod_dir(&uid).join("volumes");
    let mut out = BTreeMap::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let dir = vol_root.join(&v.name);
        let path = materialise(client, layout, &sources, pod, v, &dir)
            .await
            .with_context(|| format!("volume {:?}", v.name))?;
        out.insert(v.name.clone(), path);
    }
    Ok(out)
}

/// Writes files for a volume whose content comes from the API (Secrets, ConfigMaps,
/// tokens) into a fresh directory, so a restarted pod never sees stale keys.
fn fresh(dir: &Path) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("clear {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))
}

async fn materialise(
    client: &Client,
    layout: &Layout,
    sources: &Sources,
    pod: &Pod,
    v: &Volume,
    dir: &Path,
) -> Result<PathBuf> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    if v.empty_dir.is_some() {
        fs::create_dir_all(dir)?;
        return Ok(dir.to_path_buf());
    }
    if let Some(h) = &v.host_path {
        let path = PathBuf::from(&h.path);
        match h.type_.as_deref().unwrap_or("") {
            "" | "DirectoryOrCreate" if !path.exists() => {
                fs::create_dir_all(&path).with_context(|| format!("hostPath {}", h.path))?
            }
            "FileOrCreate" if !path.exists() => {
                if let Some(p) = path.parent() {
                    fs::create_dir_all(p)?;
                }
                fs::write(&path, b"")?;
            }
            "Directory" if !path.is_dir() => bail!("hostPath {} is not a directory", h.path),
            "File" if !path.is_file() => bail!("hostPath {} is not a file", h.path),
            _ => {}
        }
        return Ok(path);
    }
    if let Some(c) = &v.persistent_volume_claim {
        return claim_dir(client, layout, &ns, &c.claim_name).await;
    }
    if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        fresh(dir)?;
        let found = sources.secret(&name).await?;
        let mode = mode(s.default_mode);
        write_found(
            dir,
            "Secret",
            &name,
            found,
            s.items.as_ref(),
            mode,
            s.optional,
        )?;
        return Ok(dir.to_path_buf());
    }
    if let Some(c) = &v.config_map {
        fresh(dir)?;
        let found = sources.config_map(&c.name).await?;
        let mode = mode(c.default_mode);
        write_found(
            dir,
            "ConfigMap",
            &c.name,
            found,
            c.items.as_ref(),
            mode,
            c.optional,
        )?;
        return Ok(dir.to_path_buf());
    }
    if let Some(d) = &v.downward_api {
        fresh(dir)?;
        write_downward(dir, pod, d.items.as_deref(), mode(d.default_mode))?;
        return Ok(dir.to_path_buf());
    }
    if let Some(p) = &v.projected {
        fresh(dir)?;
        let default_mode = mode(p.default_mode);
        for src in p.sources.iter().flatten() {
            if let Some(s) = &src.secret {
                let found = sources.secret(&s.name).await?;
                let items = s.items.as_ref();
                write_found(
                    dir,
                    "Secret",
                    &s.name,
                    found,
                    items,
                    default_mode,
                    s.optional,
                )?;
            }
            if let Some(c) = &src.config_map {
                let found = sources.config_map(&c.name).await?;
                let items = c.items.as_ref();
                write_found(
                    dir,
                    "ConfigMap",
                    &c.name,
                    found,
                    items,
                    default_mode,
                    c.optional,
                )?;
            }
            if let Some(d) = &src.downward_api {
                write_downward(dir, pod, d.items.as_deref(), default_mode)?;
            }
            if let Some(t) = &src.service_account_token {
                let token =
                    service_account_token(client, pod, t.audience.clone(), t.expiration_seconds)
                        .await?;
                write_file(dir, &t.path, token.as_bytes(), default_mode)?;
            }
        }
        return Ok(dir.to_path_buf());
    }
    bail!("unsupported volume type")
}

/// A token for the pod's ServiceAccount, bound to the pod, from the TokenRequest API.
async fn service_account_token(
    client: &Client,
    pod: &Pod,
    audience: Option<String>,
    expiration: Option<i64>,
) -> Result<String> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    let req = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: audience.map(|a| vec![a]),
            expiration_seconds: expiration,
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let resp = api
        .create_token_request(&sa, &PostParams::default(), &req)
        .await
        .with_context(|| format!("token for ServiceAccount {ns}/{sa}"))?;
    resp.status
        .and_then(|s| s.token)
        .ok_or_else(|| anyhow!("TokenRequest for {ns}/{sa} returned no token"))
}

/// The host directory of a claim: its bound PersistentVolume's hostPath or local path when
/// it has one, else a directory of its own per namespace and claim name (the test
/// cluster has no provisioner; the directory stands for the provisioned volume).
async fn claim_dir(client: &Client, layout: &Layout, ns: &str, claim: &str) -> Result<PathBuf> {
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let pvc = pvcs
        .get_opt(claim)
        .await?
        .ok_or_else(|| anyhow!("PersistentVolumeClaim {ns}/{claim} not found"))?;
    if let Some(pv_name) = pvc.spec.as_ref().and_then(|s| s.volume_name.clone()) {
        let pvs: Api<PersistentVolume> = Api::all(client.clone());
        if let Some(pv) = pvs.get_opt(&pv_name).await? {
            let spec = pv.spec.unwrap_or_default();
            if let Some(h) = spec.host_path {
                fs::create_dir_all(&h.path)?;
                return Ok(PathBuf::from(h.path));
            }
            if let Some(l) = spec.local {
                return Ok(PathBuf::from(l.path));
            }
        }
    }
    let dir = layout.claims.join(ns).join(claim);
    fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(dir)
}

/// The bind mounts of one container from its `volumeMounts`. Volumes written from the API
/// (`api_backed`: Secret, ConfigMap, downward API, projected) are always read-only.
pub fn mounts(
    container: &Container,
    volumes: &BTreeMap<String, PathBuf>,
    api_backed: &BTreeSet<String>,
) -> Result<Vec<Mount>> {
    let mut out = Vec::new();
    for vm in container.volume_mounts.iter().flatten() {
        let base = volumes
            .get(&vm.name)
            .ok_or_else(|| anyhow!("volumeMount {:?} names no volume of the pod", vm.name))?;
        if vm.sub_path_expr.as_deref().is_some_and(|s| !s.is_empty()) {
            bail!("volumeMount {:?}: subPathExpr is not supported", vm.name);
        }
        let host = match vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => sub_path(base, sub)?,
            None => base.clone(),
        };
        if !vm.mount_path.starts_with('/') {
            bail!("mountPath {:?} is not absolute", vm.mount_path);
        }
        out.push(Mount {
            host,
            container: vm.mount_path.clone(),
            read_only: vm.read_only == Some(true) || api_backed.contains(&vm.name),
        });
    }
    // Parents before children, so a volume mounted inside another stays visible.
    out.sort_by_key(|m| Path::new(&m.container).components().count());
    Ok(out)
}

/// A subPath inside its volume: made when missing, and refused when a symlink on the way
/// (a container may write one into the volume) would lead outside it.
fn sub_path(base: &Path, sub: &str) -> Result<PathBuf> {
    let p = inside(base, sub)?;
    let mut cur = base.to_path_buf();
    for c in Path::new(sub).components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => bail!("subPath {sub:?} crosses a symlink"),
            Ok(_) => {}
            Err(_) => fs::create_dir(&cur).with_context(|| format!("create {}", cur.display()))?,
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::VolumeMount;

    #[test]
    fn paths_cannot_leave_their_volume() {
        let base = Path::new("/v");
        assert_eq!(inside(base, "a/b").unwrap(), PathBuf::from("/v/a/b"));
        assert!(inside(base, "../etc/passwd").is_err());
        assert!(inside(base, "/etc/passwd").is_err());
        assert!(inside(base, "a/../../b").is_err());
    }

    #[test]
    fn mounts_follow_volume_mounts() {
        let tmp = std::env::temp_dir().join(format!("kubelet-mounts-{}", std::process::id()));
        fs::create_dir_all(&tmp).unwrap();
        let vols: BTreeMap<String, PathBuf> = [("data".to_string(), tmp.clone())].into();
        let c = Container {
            name: "c".into(),
            volume_mounts: Some(vec![
                VolumeMount {
                    name: "data".into(),
                    mount_path: "/source/data".into(),
                    read_only: Some(true),
                    ..VolumeMount::default()
                },
                VolumeMount {
                    name: "data".into(),
                    mount_path: "/sub".into(),
                    sub_path: Some("x".into()),
                    ..VolumeMount::default()
                },
            ]),
            ..Container::default()
        };
        let m = mounts(&c, &vols, &BTreeSet::new()).unwrap();
        // Sorted parents first: /sub (depth 1) before /source/data (depth 2).
        assert_eq!(m[1].host, tmp);
        assert!(m[1].read_only);
        assert_eq!(m[0].container, "/sub");
        assert_eq!(m[0].host, tmp.join("x"));
        assert!(tmp.join("x").is_dir());
        let bad = Container {
            volume_mounts: Some(vec![VolumeMount {
                name: "missing".into(),
                mount_path: "/m".into(),
                ..VolumeMount::default()
            }]),
            ..c.clone()
        };
        assert!(mounts(&bad, &vols, &BTreeSet::new()).is_err());
        let api: BTreeSet<String> = ["data".to_string()].into();
        assert!(mounts(&c, &vols, &api).unwrap().iter().all(|m| m.read_only));
        std::os::unix::fs::symlink("/etc", tmp.join("link")).unwrap();
        let through_link = Container {
            volume_mounts: Some(vec![VolumeMount {
                name: "data".into(),
                mount_path: "/m".into(),
                sub_path: Some("link/x".into()),
                ..VolumeMount::default()
            }]),
            ..Container::default()
        };
        assert!(mounts(&through_link, &vols, &BTreeSet::new()).is_err());
        assert!(!Path::new("/etc/x").exists());
        fs::remove_dir_all(tmp).unwrap();
    }
}

//! A container's environment as a kubelet builds it: the service variables of the API
//! server, `envFrom`, then `env` in order with `$(VAR)` references to earlier variables,
//! and `valueFrom` resolved from the pod (downward API), Secrets and ConfigMaps.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context as _, Result};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::{Api, Client};

/// Expands `$(NAME)` with the value of `NAME` where it is defined, as Kubernetes does in
/// `env` values, `command` and `args`: `$$` is a literal `$`, and a reference to an
/// undefined name stays as written.
pub fn expand(input: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 1..];
        if let Some(after) = tail.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(inner) = tail.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match vars.get(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str(&rest[at..]);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// The value of a downward-API field path of a pod (`metadata.name`,
/// `metadata.labels['app']`, `spec.nodeName`, ...).
pub fn field_ref(pod: &Pod, path: &str) -> Result<String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let keyed = |prefix: &str| -> Option<String> {
        path.strip_prefix(prefix)?
            .strip_prefix("['")?
            .strip_suffix("']")
            .map(str::to_string)
    };
    if let Some(key) = keyed("metadata.labels") {
        return Ok(meta
            .labels
            .as_ref()
            .and_then(|l| l.get(&key).cloned())
            .unwrap_or_default());
    }
    if let Some(key) = keyed("metadata.annotations") {
        return Ok(meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(&key).cloned())
            .unwrap_or_default());
    }
    let value = match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
        "status.hostIP" | "status.podIP" | "status.hostIPs" | "status.podIPs" => {
            Some(crate::status::LOOPBACK.to_string())
        }
        _ => bail!("unsupported fieldRef {path:?}"),
    };
    Ok(value.unwrap_or_default())
}

/// Reads Secrets and ConfigMaps of one namespace for `valueFrom` and `envFrom`.
pub struct Sources {
    secrets: Api<Secret>,
    config_maps: Api<ConfigMap>,
}

impl Sources {
    pub fn new(client: Client, namespace: &str) -> Self {
        Sources {
            secrets: Api::namespaced(client.clone(), namespace),
            config_maps: Api::namespaced(client, namespace),
        }
    }

    /// All keys of a Secret as UTF-8 text; `None` when it does not exist.
    pub async fn secret(&self, name: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>> {
        let Some(s) = self.secrets.get_opt(name).await? else {
            return Ok(None);
        };
        let mut out: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (k, v) in s.string_data.unwrap_or_default() {
            out.insert(k, v.into_bytes());
        }
        for (k, v) in s.data.unwrap_or_default() {
            out.insert(k, v.0);
        }
        Ok(Some(out))
    }

    pub async fn config_map(&self, name: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>> {
        let Some(c) = self.config_maps.get_opt(name).await? else {
            return Ok(None);
        };
        let mut out: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (k, v) in c.data.unwrap_or_default() {
            out.insert(k, v.into_bytes());
        }
        for (k, v) in c.binary_data.unwrap_or_default() {
            out.insert(k, v.0);
        }
        Ok(Some(out))
    }
}

fn text(kind: &str, name: &str, key: &str, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|_| anyhow!("{kind} {name} key {key} is not UTF-8"))
}

/// The container's environment, in the order a kubelet builds it.
pub async fn container_env(
    pod: &Pod,
    container: &Container,
    sources: &Sources,
    base: &[(String, String)],
) -> Result<BTreeMap<String, String>> {
    let mut vars: BTreeMap<String, String> = base.iter().cloned().collect();
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (kind, name, optional, found) = if let Some(r) = &from.secret_ref {
            let found = sources.secret(&r.name).await?;
            ("Secret", r.name.clone(), r.optional == Some(true), found)
        } else if let Some(r) = &from.config_map_ref {
            let found = sources.config_map(&r.name).await?;
            ("ConfigMap", r.name.clone(), r.optional == Some(true), found)
        } else {
            continue;
        };
        match found {
            Some(data) => {
                for (k, v) in data {
                    let v = text(kind, &name, &k, v)?;
                    vars.insert(format!("{prefix}{k}"), v);
                }
            }
            None if optional => {}
            None => bail!("{kind} {name:?} not found (envFrom)"),
        }
    }
    for e in container.env.iter().flatten() {
        let value = if let Some(v) = &e.value {
            expand(v, &vars)
        } else if let Some(from) = &e.value_from {
            if let Some(f) = &from.field_ref {
                field_ref(pod, &f.field_path)?
            } else if let Some(s) = &from.secret_key_ref {
                let data = sources.secret(&s.name).await?;
                match data.and_then(|mut d| d.remove(&s.key)) {
                    Some(v) => text("Secret", &s.name, &s.key, v)?,
                    None if s.optional == Some(true) => continue,
                    None => bail!(
                        "Secret {:?} key {:?} not found (env {})",
                        s.name,
                        s.key,
                        e.name
                    ),
                }
            } else if let Some(c) = &from.config_map_key_ref {
                let data = sources.config_map(&c.name).await?;
                match data.and_then(|mut d| d.remove(&c.key)) {
                    Some(v) => text("ConfigMap", &c.name, &c.key, v)?,
                    None if c.optional == Some(true) => continue,
                    None => {
                        bail!(
                            "ConfigMap {:?} key {:?} not found (env {})",
                            c.name,
                            c.key,
                            e.name
                        )
                    }
                }
            } else if let Some(r) = &from.resource_field_ref {
                resource_field(container, &r.resource).with_context(|| format!("env {}", e.name))?
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        vars.insert(e.name.clone(), value);
    }
    Ok(vars)
}

/// `resourceFieldRef`: the container's limit or request, else the node's capacity, in the
/// divisor's default unit (cores rounded up, bytes).
fn resource_field(container: &Container, resource: &str) -> Result<String> {
    let (section, name) = resource
        .split_once('.')
        .ok_or_else(|| anyhow!("unsupported resourceFieldRef {resource:?}"))?;
    let res = container.resources.as_ref();
    let set = match section {
        "limits" => res.and_then(|r| r.limits.as_ref()),
        "requests" => res.and_then(|r| r.requests.as_ref()),
        _ => bail!("unsupported resourceFieldRef {resource:?}"),
    };
    if let Some(q) = set.and_then(|s| s.get(name)) {
        return Ok(q.0.clone());
    }
    Ok(match name {
        "cpu" => crate::node::CPU.to_string(),
        "memory" => crate::node::MEMORY_BYTES.to_string(),
        "ephemeral-storage" => crate::node::MEMORY_BYTES.to_string(),
        _ => bail!("unsupported resourceFieldRef {resource:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn expands_like_kubernetes() {
        let vars: BTreeMap<String, String> = [("A", "1"), ("B", "two")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(expand("$(A)-$(B)", &vars), "1-two");
        assert_eq!(expand("$$(A)", &vars), "$(A)");
        assert_eq!(expand("$(C)", &vars), "$(C)");
        assert_eq!(expand("cost $5 $(A", &vars), "cost $5 $(A");
        assert_eq!(expand("plain", &vars), "plain");
        assert_eq!(expand("ünï$(B)ç", &vars), "ünïtwoç");
    }

    #[test]
    fn downward_api_fields() {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..ObjectMeta::default()
            },
            spec: Some(k8s_openapi::api::core::v1::PodSpec {
                node_name: Some("node-2".into()),
                ..Default::default()
            }),
            ..Pod::default()
        };
        assert_eq!(field_ref(&pod, "metadata.name").unwrap(), "p");
        assert_eq!(field_ref(&pod, "metadata.namespace").unwrap(), "ns");
        assert_eq!(field_ref(&pod, "spec.nodeName").unwrap(), "node-2");
        assert_eq!(field_ref(&pod, "metadata.labels['app']").unwrap(), "web");
        assert_eq!(field_ref(&pod, "metadata.labels['none']").unwrap(), "");
        assert!(field_ref(&pod, "status.phase").is_err());
    }
}

//! The cluster backup's reading side: every kind the API server serves (discovery,
//! one preferred version per group), every object of it this process may list,
//! written as sanitized YAML ([`crate::cluster_yaml`]) under a directory.
//!
//! "May list" is decided by the API server: a kind refused across all namespaces is
//! listed in the process's own namespace instead, and one refused there too is left
//! out and counted. Events are left out (they are not state), Secrets unless asked,
//! and objects a controller made (their owner makes them again).

use std::path::Path;

use kube::{
    api::{DynamicObject, ListParams},
    discovery::{verbs, Discovery, Scope},
    Api, Client,
};

use crate::{cluster_yaml, runner::RunnerError};

/// What a dump wrote and skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dumped {
    pub objects: usize,
    /// Kinds the API server refused to list to this process.
    pub refused: Vec<String>,
}

fn io(path: &Path, e: impl std::fmt::Display) -> RunnerError {
    RunnerError::Config(format!("writing {}: {e}", path.display()))
}

/// Writes the objects into `dir` (see the module docs).
///
/// # Errors
/// Discovery fails, an API error other than "forbidden", or a file cannot be written.
pub async fn dump(
    client: &Client,
    own_namespace: &str,
    dir: &Path,
    secrets: bool,
) -> Result<Dumped, RunnerError> {
    let discovery = Discovery::new(client.clone()).run().await?;
    let mut out = Dumped::default();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if !caps.supports_operation(verbs::LIST)
                || ar.kind == "Event"
                || (ar.kind == "Secret" && ar.group.is_empty() && !secrets)
            {
                continue;
            }
            let namespaced = matches!(caps.scope, Scope::Namespaced);
            let all: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
            let list = match all.list(&ListParams::default()).await {
                Ok(l) => l,
                Err(kube::Error::Api(e)) if e.code == 403 && namespaced => {
                    let own: Api<DynamicObject> =
                        Api::namespaced_with(client.clone(), own_namespace, &ar);
                    match own.list(&ListParams::default()).await {
                        Ok(l) => l,
                        Err(kube::Error::Api(e)) if e.code == 403 => {
                            out.refused.push(format!("{}/{}", ar.api_version, ar.kind));
                            continue;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(kube::Error::Api(e)) if e.code == 403 || e.code == 405 => {
                    out.refused.push(format!("{}/{}", ar.api_version, ar.kind));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            for obj in list.items {
                let namespace = obj.metadata.namespace.clone();
                let name = obj.metadata.name.clone().unwrap_or_default();
                let mut value = serde_json::to_value(&obj)
                    .map_err(|e| RunnerError::Config(format!("{} {name}: {e}", ar.kind)))?;
                value["apiVersion"] = ar.api_version.clone().into();
                value["kind"] = ar.kind.clone().into();
                if cluster_yaml::controlled(&value) {
                    continue;
                }
                cluster_yaml::sanitize(&mut value);
                let path = dir.join(cluster_yaml::file_of(
                    &ar.group,
                    &ar.kind,
                    namespace.as_deref(),
                    &name,
                ));
                let yaml = serde_yaml::to_string(&value).map_err(|e| io(&path, e))?;
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
                }
                std::fs::write(&path, yaml).map_err(|e| io(&path, e))?;
                out.objects += 1;
            }
        }
    }
    Ok(out)
}

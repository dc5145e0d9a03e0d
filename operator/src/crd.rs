//! The custom resources: Rust types, and the CustomResourceDefinitions generated from
//! them (`stash operator crds`), checked in as `operator/deploy/crds.yaml`.
//!
//! Two kinds of the seed design are served as aliases with the schema of their released
//! names, so its samples apply as written: `Repository` in `v1alpha2` (same schema,
//! stored as `v1alpha1`) and `BackupTemplate` (a second kind shaped as
//! `BackupBlueprint`).

// Each `printcolumn(...)` repeats `type_ = ...`, which this lint takes for a duplicate.
#![allow(clippy::duplicated_attributes)]

pub mod app_binding;
pub mod backup_configuration;
pub mod backup_session;
pub mod blueprint;
pub mod common;
pub mod repository;
pub mod restore_session;
pub mod task;

pub use app_binding::AppBinding;
pub use backup_configuration::BackupConfiguration;
pub use backup_session::BackupSession;
pub use blueprint::BackupBlueprint;
pub use repository::Repository;
pub use restore_session::RestoreSession;
pub use task::{Function, Task};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The seed's spelling of the Repository version.
pub const REPOSITORY_ALIAS_VERSION: &str = "v1alpha2";
/// The seed's name of `BackupBlueprint`.
pub const BLUEPRINT_ALIAS_KIND: &str = "BackupTemplate";

/// Every CRD the operator needs, in install order.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        with_alias_version(Repository::crd(), REPOSITORY_ALIAS_VERSION),
        BackupConfiguration::crd(),
        BackupSession::crd(),
        RestoreSession::crd(),
        BackupBlueprint::crd(),
        as_alias_kind(BackupBlueprint::crd(), BLUEPRINT_ALIAS_KIND, "bt"),
        Function::crd(),
        Task::crd(),
        AppBinding::crd(),
    ]
}

/// All CRDs as one multi-document YAML stream.
pub fn all_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in all() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}

/// `crd` also served under `version`, with the same schema and no conversion, so
/// objects written in either version are stored in the first.
fn with_alias_version(
    mut crd: CustomResourceDefinition,
    version: &str,
) -> CustomResourceDefinition {
    if let Some(first) = crd.spec.versions.first() {
        let mut alias = first.clone();
        alias.name = version.to_string();
        alias.storage = false;
        alias.deprecated = Some(true);
        alias.deprecation_warning = Some(format!(
            "{}/{version} {} is the design's spelling of {}: it is served with the same \
             schema and stored as {}",
            crd.spec.group, crd.spec.names.kind, first.name, first.name
        ));
        crd.spec.versions.push(alias);
    }
    crd
}

/// `crd` renamed to `kind` (plural and singular in lower case), for a second kind with
/// the same schema.
fn as_alias_kind(
    mut crd: CustomResourceDefinition,
    kind: &str,
    short: &str,
) -> CustomResourceDefinition {
    let singular = kind.to_ascii_lowercase();
    let plural = format!("{singular}s");
    crd.metadata.name = Some(format!("{plural}.{}", crd.spec.group));
    let names = &mut crd.spec.names;
    names.kind = kind.to_string();
    names.list_kind = Some(format!("{kind}List"));
    names.singular = Some(singular);
    names.plural = plural;
    names.short_names = Some(vec![short.to_string()]);
    crd
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `STASH_UPDATE_CRDS=1 cargo test -p stash-operator crd` rewrites the file.
    #[test]
    fn the_checked_in_crds_are_the_generated_ones() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/crds.yaml");
        let generated = all_yaml().unwrap();
        if std::env::var_os("STASH_UPDATE_CRDS").is_some() {
            std::fs::write(path, &generated).unwrap();
        }
        let checked_in = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "{path} is out of date: run `STASH_UPDATE_CRDS=1 cargo test -p stash-operator crd`"
        );
    }

    #[test]
    fn every_kind_has_a_unique_name_and_status_where_it_has_results() {
        let crds = all();
        let mut names: Vec<_> = crds
            .iter()
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), crds.len());
        for crd in &crds {
            for v in &crd.spec.versions {
                let has_status = v
                    .subresources
                    .as_ref()
                    .and_then(|s| s.status.as_ref())
                    .is_some();
                let needs = matches!(
                    crd.spec.names.kind.as_str(),
                    "Repository" | "BackupConfiguration" | "BackupSession" | "RestoreSession"
                );
                assert_eq!(has_status, needs, "{} {}", crd.spec.names.kind, v.name);
            }
        }
    }

    #[test]
    fn aliases_share_the_schema() {
        let crds = all();
        let repo = &crds[0];
        assert_eq!(repo.spec.versions.len(), 2);
        assert_eq!(repo.spec.versions[0].schema, repo.spec.versions[1].schema);
        assert!(repo.spec.versions[0].storage && !repo.spec.versions[1].storage);
        let template = crds
            .iter()
            .find(|c| c.spec.names.kind == "BackupTemplate")
            .unwrap();
        assert_eq!(
            template.metadata.name.as_deref(),
            Some("backuptemplates.stash.appscode.com")
        );
        assert_eq!(template.spec.scope, "Cluster");
    }
}

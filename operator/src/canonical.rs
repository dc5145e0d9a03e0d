//! The canonical form of the resources: the design's spellings rewritten in released
//! Stash's, which existing tooling (`kubectl stash`, dashboards, status readers)
//! understands. Each function returns the JSON merge patch that rewrites a spec, or
//! `None` when it is canonical already; the controllers apply it before anything else.
//!
//! A design field present next to a canonical one is the newest word (the operator
//! removed it when it last wrote the canonical one, so the user applied it since): it
//! overwrites the canonical field, and the readers prefer it the same way.
//!
//! Every rewrite keeps the meaning: the readers of both spellings
//! ([`crate::crd::common::BackupTarget::directories`], [`crate::restore::rules`],
//! [`crate::controller::invoker_name`]) see the same thing before and after.

use serde_json::{json, Map, Value};

use crate::crd::{
    backup_configuration::BackupConfigurationSpec,
    backup_session::BackupSessionSpec,
    common::{Param, Rule},
    restore_session::RestoreSessionSpec,
};

fn patch(spec: Map<String, Value>) -> Option<Value> {
    (!spec.is_empty()).then(|| json!({ "spec": spec }))
}

/// `target.directories` → `target.paths`; `task.inputs` → `task.params`.
pub fn backup_configuration(spec: &BackupConfigurationSpec) -> Option<Value> {
    let mut out = Map::new();
    if let Some(t) = spec.target.as_ref().filter(|t| !t.directories.is_empty()) {
        let mut target = Map::new();
        target.insert("paths".into(), json!(t.directories));
        target.insert("directories".into(), Value::Null);
        out.insert("target".into(), Value::Object(target));
    }
    if let Some(task) = spec.task.as_ref().filter(|t| !t.inputs.is_empty()) {
        let mut params: Vec<Param> = task
            .params
            .iter()
            .filter(|p| !task.inputs.contains_key(&p.name))
            .cloned()
            .collect();
        params.extend(task.inputs.iter().map(|(name, value)| Param {
            name: name.clone(),
            value: value.clone(),
        }));
        out.insert("task".into(), json!({ "params": params, "inputs": null }));
    }
    patch(out)
}

/// `spec.backupConfiguration` → `spec.invoker`.
pub fn backup_session(spec: &BackupSessionSpec) -> Option<Value> {
    let seed = spec.backup_configuration.as_ref()?;
    let mut out = Map::new();
    out.insert(
        "invoker".into(),
        json!({"apiGroup": "stash.appscode.com", "kind": "BackupConfiguration", "name": seed.name}),
    );
    out.insert("backupConfiguration".into(), Value::Null);
    patch(out)
}

/// `target.directories`, the top-level `rules` and `rules[].hosts` → `target.rules[]`
/// with `paths` and `targetHosts`.
pub fn restore_session(spec: &RestoreSessionSpec) -> Option<Value> {
    let Some(target) = &spec.target else {
        return None;
    };
    let seed_hosts = |r: &Rule| !r.hosts.is_empty();
    let needed = !target.directories.is_empty()
        || !spec.rules.is_empty()
        || target.rules.iter().any(seed_hosts);
    if !needed {
        return None;
    }
    let rules: Vec<Rule> = crate::restore::rules(spec)
        .into_iter()
        .map(|mut r| {
            if r.target_hosts.is_empty() {
                r.target_hosts = std::mem::take(&mut r.hosts);
            }
            r.hosts.clear();
            r
        })
        .collect();
    let mut t = Map::new();
    t.insert("rules".into(), json!(rules));
    if !target.directories.is_empty() {
        t.insert("directories".into(), Value::Null);
    }
    let mut out = Map::new();
    out.insert("target".into(), Value::Object(t));
    if !spec.rules.is_empty() {
        out.insert("rules".into(), Value::Null);
    }
    patch(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies a JSON merge patch (RFC 7386) to `doc`.
    fn merge(doc: &mut Value, patch: &Value) {
        match (doc, patch) {
            (Value::Object(d), Value::Object(p)) => {
                for (k, v) in p {
                    if v.is_null() {
                        d.remove(k);
                    } else {
                        merge(d.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
            (d, p) => *d = p.clone(),
        }
    }

    fn rewritten<T: serde::Serialize + serde::de::DeserializeOwned>(
        spec: &T,
        f: impl Fn(&T) -> Option<Value>,
    ) -> T {
        let mut doc = json!({ "spec": spec });
        merge(&mut doc, &f(spec).expect("a rewrite"));
        let out: T = serde_json::from_value(doc["spec"].clone()).unwrap();
        assert_eq!(f(&out), None, "the rewrite is canonical");
        out
    }

    #[test]
    fn the_seeds_backup_configuration_becomes_released_stashs() {
        let seed: BackupConfigurationSpec = serde_yaml::from_str(
            "repository: {name: r}
target:
  ref: {apiVersion: apps/v1, kind: Deployment, name: d}
  directories: [/source/data]
task: {name: pgBackup, inputs: {database: app}}
",
        )
        .unwrap();
        let out = rewritten(&seed, backup_configuration);
        let target = out.target.unwrap();
        assert_eq!(target.paths, ["/source/data"]);
        assert!(target.directories.is_empty());
        let task = out.task.unwrap();
        assert_eq!(
            task.params,
            [Param {
                name: "database".into(),
                value: "app".into()
            }]
        );
        assert!(task.inputs.is_empty());
        let released: BackupConfigurationSpec = serde_yaml::from_str(
            "repository: {name: r}\ntarget: {ref: {kind: Deployment, name: d}, paths: [/a]}\n",
        )
        .unwrap();
        assert_eq!(backup_configuration(&released), None);
    }

    #[test]
    fn the_seeds_session_names_its_invoker() {
        let seed: BackupSessionSpec =
            serde_yaml::from_str("backupConfiguration: {name: volume-backup-demo}").unwrap();
        let out = rewritten(&seed, backup_session);
        let invoker = out.invoker.unwrap();
        assert_eq!(
            (invoker.kind.as_str(), invoker.name.as_str()),
            ("BackupConfiguration", "volume-backup-demo")
        );
        assert!(out.backup_configuration.is_none());
    }

    /// The seed file applied again after a rewrite, naming another configuration (what
    /// `kubectl apply` does: the design's field comes back beside our invoker).
    #[test]
    fn a_reapplied_design_field_is_the_newest_word() {
        let both: BackupSessionSpec = serde_yaml::from_str(
            "backupConfiguration: {name: new}\ninvoker: {apiGroup: stash.appscode.com, kind: BackupConfiguration, name: old}",
        )
        .unwrap();
        let out = rewritten(&both, backup_session);
        assert_eq!(out.invoker.unwrap().name, "new");
        let bc: BackupConfigurationSpec = serde_yaml::from_str(
            "repository: {name: r}\ntarget: {ref: {kind: Deployment, name: d}, paths: [/old], directories: [/new]}\ntask: {name: t, params: [{name: a, value: old}], inputs: {a: new}}\n",
        )
        .unwrap();
        assert_eq!(bc.target.as_ref().unwrap().directories(), ["/new"]);
        let out = rewritten(&bc, backup_configuration);
        assert_eq!(out.target.unwrap().paths, ["/new"]);
        assert_eq!(out.task.unwrap().params[0].value, "new");
    }

    #[test]
    fn restore_rules_keep_their_meaning() {
        for yaml in [
            "repository: {name: r}\ntarget:\n  ref: {kind: Deployment, name: d}\n  directories: [/source/data]\n",
            "repository: {name: r}\ntarget: {ref: {kind: StatefulSet, name: s}}\nrules:\n- hosts: [host-2]\n  sourceHost: host-1\n  paths: [/d]\n- paths: [/d]\n",
        ] {
            let seed: RestoreSessionSpec = serde_yaml::from_str(yaml).unwrap();
            let out = rewritten(&seed, restore_session);
            for host in ["host-0", "host-1", "host-2", "host-3"] {
                assert_eq!(
                    crate::restore::plan(&out, host),
                    crate::restore::plan(&seed, host),
                    "{host} in {yaml}"
                );
            }
            assert_eq!(
                crate::restore::directories(&out),
                crate::restore::directories(&seed)
            );
            assert!(out.rules.is_empty());
            let target = out.target.unwrap();
            assert!(target.directories.is_empty());
            assert!(target.rules.iter().all(|r| r.hosts.is_empty()));
        }
    }
}

//! What the processes the operator puts into users' pods may do: one Role per
//! namespace holding exactly the calls the sidecar and the restore init container make,
//! bound to the ServiceAccount of each workload that carries them.
//!
//! The storage Secret is not in the Role: it reaches the pod as a mounted volume, so
//! the pod's identity never needs to read Secrets.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::ObjectMeta;

/// The Role's name, in every namespace with a sidecar.
pub const ROLE: &str = "stash-sidecar";
/// Label on every object this module describes.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "stash-operator");

fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_string()]),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..PolicyRule::default()
    }
}

fn meta(name: &str, namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        labels: Some(BTreeMap::from([(
            MANAGED_BY.0.to_string(),
            MANAGED_BY.1.to_string(),
        )])),
        ..ObjectMeta::default()
    }
}

/// The sidecar's and init container's Role in `namespace`.
pub fn role(namespace: &str) -> Role {
    const READ: &[&str] = &["get", "list", "watch"];
    const WRITE_STATUS: &[&str] = &["get", "update", "patch"];
    Role {
        metadata: meta(ROLE, namespace),
        rules: Some(vec![
            rule(
                "stash.appscode.com",
                &[
                    "backupconfigurations",
                    "backupsessions",
                    "restoresessions",
                    "repositories",
                ],
                READ,
            ),
            rule(
                "stash.appscode.com",
                &[
                    "backupsessions/status",
                    "restoresessions/status",
                    "repositories/status",
                ],
                WRITE_STATUS,
            ),
            rule("events.k8s.io", &["events"], &["create", "patch"]),
        ]),
    }
}

/// The binding's name for `service_account` (one per account, so removing one
/// workload's binding never touches another's).
pub fn binding_name(service_account: &str) -> String {
    format!("{ROLE}-{service_account}")
}

/// Binds the Role to `service_account` of `namespace`.
pub fn binding(namespace: &str, service_account: &str) -> RoleBinding {
    RoleBinding {
        metadata: meta(&binding_name(service_account), namespace),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_string()),
            kind: "Role".to_string(),
            name: ROLE.to_string(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_string(),
            name: service_account.to_string(),
            namespace: Some(namespace.to_string()),
            ..Subject::default()
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_grants_no_secrets_and_no_writes_beyond_status() {
        let r = role("demo");
        let rules = r.rules.unwrap();
        for rule in &rules {
            let res = rule.resources.as_ref().unwrap();
            assert!(!res.iter().any(|r| r == "secrets"));
            let writes = rule.verbs.iter().any(|v| v == "update" || v == "patch");
            if rule.api_groups.as_ref().unwrap()[0] == "stash.appscode.com" && writes {
                assert!(res.iter().all(|r| r.ends_with("/status")), "{res:?}");
            }
            assert!(!rule.verbs.iter().any(|v| v == "delete" || v == "*"));
        }
        assert_eq!(r.metadata.namespace.as_deref(), Some("demo"));
    }

    #[test]
    fn bindings_are_per_service_account() {
        let b = binding("demo", "default");
        assert_eq!(b.metadata.name.as_deref(), Some("stash-sidecar-default"));
        let s = &b.subjects.unwrap()[0];
        assert_eq!(
            (s.name.as_str(), s.namespace.as_deref()),
            ("default", Some("demo"))
        );
        assert_eq!(b.role_ref.name, ROLE);
    }
}

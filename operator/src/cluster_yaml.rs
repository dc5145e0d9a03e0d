//! What a cluster backup keeps of an object, as plain data: the object without the
//! fields the API server sets (so `kubectl apply` of the file creates it again,
//! elsewhere too), and the file it is stored in, laid out by group, kind, namespace
//! and name.

use std::path::PathBuf;

use serde_json::Value;

/// The directory of cluster-scoped objects, where a namespace would be.
pub const CLUSTER_SCOPED: &str = "_cluster";

/// Annotation prefixes the API server or a controller writes.
const SERVER_ANNOTATIONS: &[&str] = &["deployment.kubernetes.io/"];

/// Whether a controller made `object` (a controller owner reference): its owner
/// makes it again, so a backup of it would only come back as a duplicate.
pub fn controlled(object: &Value) -> bool {
    object["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| refs.iter().any(|r| r["controller"] == Value::Bool(true)))
}

/// `object` without server-set fields: `status`, `metadata.uid`, `resourceVersion`,
/// `managedFields`, `generation`, `creationTimestamp`, `selfLink`, the
/// `deployment.kubernetes.io/*` annotations, and the namespace (the file's place
/// keeps it, and `kubectl apply -n other` then works). A Service loses its cluster
/// IPs, which are allocated per cluster.
pub fn sanitize(object: &mut Value) {
    if let Some(o) = object.as_object_mut() {
        o.remove("status");
    }
    if let Some(m) = object["metadata"].as_object_mut() {
        for field in [
            "uid",
            "resourceVersion",
            "managedFields",
            "generation",
            "creationTimestamp",
            "selfLink",
            "namespace",
        ] {
            m.remove(field);
        }
        if let Some(a) = m.get_mut("annotations").and_then(Value::as_object_mut) {
            a.retain(|k, _| !SERVER_ANNOTATIONS.iter().any(|p| k.starts_with(p)));
            if a.is_empty() {
                m.remove("annotations");
            }
        }
    }
    if object["kind"] == "Service" && object["apiVersion"] == "v1" {
        if let Some(spec) = object["spec"].as_object_mut() {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
    }
}

/// The file of an object: `<group>/<Kind>/<namespace>/<name>.yaml`, the core group
/// as `core` and cluster-scoped objects under [`CLUSTER_SCOPED`].
pub fn file_of(group: &str, kind: &str, namespace: Option<&str>, name: &str) -> PathBuf {
    let group = if group.is_empty() { "core" } else { group };
    let ns = namespace
        .filter(|n| !n.is_empty())
        .unwrap_or(CLUSTER_SCOPED);
    // Names are DNS subdomains or path segments already; a `/` (never valid) or a
    // leading dot could still leave the directory.
    let safe = |s: &str| s.replace('/', "_").trim_start_matches('.').to_string();
    [
        safe(group),
        safe(kind),
        safe(ns),
        format!("{}.yaml", safe(name)),
    ]
    .iter()
    .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn server_fields_go_and_the_spec_stays() {
        let mut d = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web", "namespace": "demo", "uid": "u", "resourceVersion": "9",
                "generation": 2, "creationTimestamp": "2026-01-01T00:00:00Z",
                "managedFields": [{}], "labels": {"app": "web"},
                "annotations": {"deployment.kubernetes.io/revision": "1"}
            },
            "spec": {"replicas": 1},
            "status": {"readyReplicas": 1}
        });
        sanitize(&mut d);
        assert_eq!(
            d,
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web", "labels": {"app": "web"}},
                "spec": {"replicas": 1}
            })
        );
        let mut svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "annotations": {"keep": "me"}},
            "spec": {"clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"], "ports": [{"port": 80}]}
        });
        sanitize(&mut svc);
        assert_eq!(svc["spec"], json!({"ports": [{"port": 80}]}));
        assert_eq!(svc["metadata"]["annotations"], json!({"keep": "me"}));
    }

    #[test]
    fn controlled_objects_are_told_apart() {
        let rs =
            json!({"metadata": {"ownerReferences": [{"kind": "Deployment", "controller": true}]}});
        let cm = json!({"metadata": {"ownerReferences": [{"kind": "Foo"}]}});
        assert!(controlled(&rs));
        assert!(!controlled(&cm));
        assert!(!controlled(&json!({"metadata": {}})));
    }

    #[test]
    fn files_are_laid_out_by_group_kind_namespace_and_name() {
        assert_eq!(
            file_of("apps", "Deployment", Some("demo"), "web"),
            PathBuf::from("apps/Deployment/demo/web.yaml")
        );
        assert_eq!(
            file_of("", "Namespace", None, "demo"),
            PathBuf::from("core/Namespace/_cluster/demo.yaml")
        );
        assert_eq!(
            file_of(
                "rbac.authorization.k8s.io",
                "ClusterRole",
                None,
                "system:x/../y"
            ),
            PathBuf::from("rbac.authorization.k8s.io/ClusterRole/_cluster/system:x_.._y.yaml")
        );
    }
}

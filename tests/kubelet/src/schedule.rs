//! Binding unscheduled pods to our nodes, as the scheduler would for the cases the tests
//! need: `nodeName`, `nodeSelector` on labels, required node affinity (DaemonSet pods pin
//! themselves by `metadata.name`), a ReadWriteOnce claim already in use on a node, and
//! otherwise the node with the fewest pods.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, Pod};

/// What the choice depends on besides the pod.
pub struct Cluster<'a> {
    pub nodes: &'a [String],
    /// Pods per node, bound ones and those being bound.
    pub load: &'a BTreeMap<String, usize>,
    /// `(namespace, claim)` -> node, for claims that are not ReadWriteMany and are used by
    /// a live pod.
    pub claims_on: &'a BTreeMap<(String, String), String>,
}

/// Labels every node carries: `kubernetes.io/hostname` and the OS and architecture.
pub fn node_labels(node: &str) -> BTreeMap<String, String> {
    [
        ("kubernetes.io/hostname", node),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn matches(req: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => !value.is_some_and(|v| values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        _ => false,
    }
}

/// Whether `node` satisfies the pod's nodeSelector and required node affinity.
pub fn fits(pod: &Pod, node: &str) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    let labels = node_labels(node);
    if let Some(sel) = &spec.node_selector {
        if sel.iter().any(|(k, v)| labels.get(k) != Some(v)) {
            return false;
        }
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    let Some(required) = required else {
        return true;
    };
    // Terms are ORed; the requirements within a term are ANDed.
    required.node_selector_terms.iter().any(|term| {
        let fields = term.match_fields.iter().flatten().all(|r| {
            let v = (r.key == "metadata.name").then_some(node);
            matches(r, v)
        });
        let exprs = term
            .match_expressions
            .iter()
            .flatten()
            .all(|r| matches(r, labels.get(&r.key).map(String::as_str)));
        fields && exprs
    })
}

/// The claims a pod mounts, as `(namespace, claim)`.
pub fn claims(pod: &Pod) -> BTreeSet<(String, String)> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| (ns.clone(), c.claim_name.clone()))
        .collect()
}

/// The node to bind `pod` to, or `None` when no node fits.
pub fn choose(pod: &Pod, cluster: &Cluster) -> Option<String> {
    let pinned: BTreeSet<&String> = claims(pod)
        .iter()
        .filter_map(|c| cluster.claims_on.get(c))
        .collect();
    if pinned.len() > 1 {
        return None;
    }
    cluster
        .nodes
        .iter()
        .filter(|n| fits(pod, n))
        .filter(|n| pinned.iter().all(|p| p == n))
        .min_by_key(|n| (cluster.load.get(*n).copied().unwrap_or(0), (*n).clone()))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Affinity, NodeAffinity, NodeSelector, NodeSelectorTerm, PersistentVolumeClaimVolumeSource,
        PodSpec, Volume,
    };

    fn nodes() -> Vec<String> {
        vec!["node-1".into(), "node-2".into(), "node-3".into()]
    }

    fn pod(spec: PodSpec) -> Pod {
        Pod {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                namespace: Some("ns".into()),
                ..Default::default()
            },
            spec: Some(spec),
            ..Pod::default()
        }
    }

    #[test]
    fn least_loaded_node_wins() {
        let load = [("node-1".to_string(), 2), ("node-2".to_string(), 1)].into();
        let c = Cluster {
            nodes: &nodes(),
            load: &load,
            claims_on: &BTreeMap::new(),
        };
        assert_eq!(
            choose(&pod(PodSpec::default()), &c).as_deref(),
            Some("node-3")
        );
    }

    #[test]
    fn daemonset_affinity_pins_the_node() {
        let spec = PodSpec {
            affinity: Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                        node_selector_terms: vec![NodeSelectorTerm {
                            match_fields: Some(vec![NodeSelectorRequirement {
                                key: "metadata.name".into(),
                                operator: "In".into(),
                                values: Some(vec!["node-2".into()]),
                            }]),
                            ..Default::default()
                        }],
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..PodSpec::default()
        };
        let c = Cluster {
            nodes: &nodes(),
            load: &BTreeMap::new(),
            claims_on: &BTreeMap::new(),
        };
        assert_eq!(choose(&pod(spec), &c).as_deref(), Some("node-2"));
    }

    #[test]
    fn node_selector_and_claims_restrict_the_choice() {
        let sel = PodSpec {
            node_selector: Some(
                [("kubernetes.io/hostname".to_string(), "node-3".to_string())].into(),
            ),
            ..PodSpec::default()
        };
        let empty = BTreeMap::new();
        let no_claims = BTreeMap::new();
        let c = Cluster {
            nodes: &nodes(),
            load: &empty,
            claims_on: &no_claims,
        };
        assert_eq!(choose(&pod(sel), &c).as_deref(), Some("node-3"));

        let with_claim = PodSpec {
            volumes: Some(vec![Volume {
                name: "d".into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: "data".into(),
                    read_only: None,
                }),
                ..Volume::default()
            }]),
            ..PodSpec::default()
        };
        let claims_on = [(("ns".to_string(), "data".to_string()), "node-2".to_string())].into();
        let c = Cluster {
            nodes: &nodes(),
            load: &empty,
            claims_on: &claims_on,
        };
        assert_eq!(choose(&pod(with_claim), &c).as_deref(), Some("node-2"));
    }
}

//! The restic `--host` a backup or restore process records in, and looks up, snapshots.
//!
//! The names follow released Stash (v1beta1) exactly, because restic groups snapshots
//! by host: a repository written by released Stash only restores, and deduplicates
//! its parent snapshots, with ours if both pick the same name for the same target.

use std::{fmt, str::FromStr};

/// The host of every target that has a single writer (one replica set of pods, a
/// volume, a database, the cluster), whatever the number of pods behind it.
pub const DEFAULT_HOST: &str = "host-0";

/// `spec.target.ref.kind` of a backup or restore target, spelled as Kubernetes does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetKind {
    Deployment,
    DeploymentConfig,
    ReplicaSet,
    ReplicationController,
    StatefulSet,
    DaemonSet,
    PersistentVolumeClaim,
    AppBinding,
    /// No target: a cluster backup. Stash writes this kind as `EmptyTarget`.
    Cluster,
}

/// Why no host name could be chosen; each message names the kind, pod or node at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("unknown target kind {kind:?} (expected Deployment, DeploymentConfig, ReplicaSet, ReplicationController, StatefulSet, DaemonSet, PersistentVolumeClaim, AppBinding or EmptyTarget)")]
    UnknownKind { kind: String },
    #[error("{kind} pod {pod:?} has no \"-<ordinal>\" suffix to take the host name from")]
    NoOrdinal { kind: TargetKind, pod: String },
    #[error("{kind} pod {pod:?} has an empty node name, which its host name is made of")]
    NoNode { kind: TargetKind, pod: String },
}

impl TargetKind {
    /// The kind as it appears in `spec.target.ref.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Deployment => "Deployment",
            TargetKind::DeploymentConfig => "DeploymentConfig",
            TargetKind::ReplicaSet => "ReplicaSet",
            TargetKind::ReplicationController => "ReplicationController",
            TargetKind::StatefulSet => "StatefulSet",
            TargetKind::DaemonSet => "DaemonSet",
            TargetKind::PersistentVolumeClaim => "PersistentVolumeClaim",
            TargetKind::AppBinding => "AppBinding",
            TargetKind::Cluster => "EmptyTarget",
        }
    }

    /// Whether the target runs pods that can carry the backup sidecar or restore
    /// init-container, rather than needing a job of their own.
    pub fn is_workload(&self) -> bool {
        matches!(
            self,
            TargetKind::Deployment
                | TargetKind::DeploymentConfig
                | TargetKind::ReplicaSet
                | TargetKind::ReplicationController
                | TargetKind::StatefulSet
                | TargetKind::DaemonSet
        )
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TargetKind {
    type Err = HostError;

    /// Exact, case-sensitive kinds, as the API server compares them. An empty kind
    /// and `EmptyTarget` both mean a cluster backup.
    fn from_str(kind: &str) -> Result<Self, HostError> {
        Ok(match kind {
            "Deployment" => TargetKind::Deployment,
            "DeploymentConfig" => TargetKind::DeploymentConfig,
            "ReplicaSet" => TargetKind::ReplicaSet,
            "ReplicationController" => TargetKind::ReplicationController,
            "StatefulSet" => TargetKind::StatefulSet,
            "DaemonSet" => TargetKind::DaemonSet,
            "PersistentVolumeClaim" => TargetKind::PersistentVolumeClaim,
            "AppBinding" => TargetKind::AppBinding,
            "" | "EmptyTarget" => TargetKind::Cluster,
            _ => {
                return Err(HostError::UnknownKind {
                    kind: kind.to_owned(),
                })
            }
        })
    }
}

/// The host for a process backing up or restoring `kind` from pod `pod_name` on node
/// `node_name`, with the target's optional `alias` (empty counts as none). Each
/// StatefulSet replica and each DaemonSet node has its own data, so gets its own host
/// (`host-<ordinal>` / the node name); every other target is one host. An alias
/// replaces the `host` part so that several targets can share one repository.
///
/// The StatefulSet ordinal is the pod name's digits after its last `-`, kept verbatim
/// as Stash does; `pod_name` is only read for StatefulSets, `node_name` for DaemonSets.
pub fn host_name(
    kind: TargetKind,
    alias: Option<&str>,
    pod_name: &str,
    node_name: &str,
) -> Result<String, HostError> {
    let alias = alias.filter(|a| !a.is_empty());
    match kind {
        TargetKind::StatefulSet => {
            let ordinal = pod_name
                .rsplit_once('-')
                .map(|(_, o)| o)
                .filter(|o| !o.is_empty() && o.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| HostError::NoOrdinal {
                    kind,
                    pod: pod_name.to_owned(),
                })?;
            Ok(ordinal_host(alias, ordinal))
        }
        TargetKind::DaemonSet if node_name.is_empty() => Err(HostError::NoNode {
            kind,
            pod: pod_name.to_owned(),
        }),
        TargetKind::DaemonSet => Ok(match alias {
            Some(alias) => format!("{alias}-{node_name}"),
            None => node_name.to_owned(),
        }),
        _ => Ok(alias.unwrap_or(DEFAULT_HOST).to_owned()),
    }
}

/// The host for the restore job of replica `ordinal` when a restore recreates a
/// StatefulSet's volumes from `volumeClaimTemplates` with `replicas` set: the same
/// name the replica's own sidecar used, so each replica gets its own data back.
pub fn ordinal_host_name(alias: Option<&str>, ordinal: u32) -> String {
    ordinal_host(alias.filter(|a| !a.is_empty()), &ordinal.to_string())
}

fn ordinal_host(alias: Option<&str>, ordinal: &str) -> String {
    format!("{}-{ordinal}", alias.unwrap_or("host"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use TargetKind::*;

    const ALL: [TargetKind; 9] = [
        Deployment,
        DeploymentConfig,
        ReplicaSet,
        ReplicationController,
        StatefulSet,
        DaemonSet,
        PersistentVolumeClaim,
        AppBinding,
        Cluster,
    ];

    fn host(kind: TargetKind, alias: Option<&str>, pod: &str, node: &str) -> String {
        host_name(kind, alias, pod, node).unwrap()
    }

    #[test]
    fn kinds_parse_as_kubernetes_spells_them_and_print_back() {
        for kind in ALL {
            assert_eq!(kind.as_str().parse::<TargetKind>(), Ok(kind));
            assert_eq!(kind.to_string(), kind.as_str());
        }
        assert_eq!("".parse::<TargetKind>(), Ok(Cluster));
        for bad in ["deployment", "Pod", "CronJob", " Deployment"] {
            let err = bad.parse::<TargetKind>().unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("unknown target kind {bad:?}")),
                "{err}"
            );
        }
    }

    #[test]
    fn only_pod_running_kinds_are_workloads() {
        let workloads: Vec<_> = ALL.into_iter().filter(TargetKind::is_workload).collect();
        assert_eq!(
            workloads,
            [
                Deployment,
                DeploymentConfig,
                ReplicaSet,
                ReplicationController,
                StatefulSet,
                DaemonSet
            ]
        );
    }

    #[test]
    fn single_host_kinds_use_host_0_or_the_alias() {
        for kind in [
            Deployment,
            DeploymentConfig,
            ReplicaSet,
            ReplicationController,
            PersistentVolumeClaim,
            AppBinding,
            Cluster,
        ] {
            assert_eq!(
                host(kind, None, "web-7d9f-abcde", "node-a"),
                "host-0",
                "{kind}"
            );
            assert_eq!(host(kind, Some(""), "", ""), "host-0", "{kind}");
            assert_eq!(host(kind, Some("app"), "", ""), "app", "{kind}");
        }
    }

    #[test]
    fn statefulset_hosts_carry_the_pod_ordinal() {
        assert_eq!(host(StatefulSet, None, "db-2", ""), "host-2");
        assert_eq!(host(StatefulSet, None, "my-db-10", "node-a"), "host-10");
        assert_eq!(host(StatefulSet, Some(""), "db-0", ""), "host-0");
        assert_eq!(host(StatefulSet, Some("pg"), "db-2", ""), "pg-2");
        for bad in ["db", "db-", "db-x", "db-2a", "", "7"] {
            let err = host_name(StatefulSet, None, bad, "node-a").unwrap_err();
            assert_eq!(
                err,
                HostError::NoOrdinal {
                    kind: StatefulSet,
                    pod: bad.into()
                }
            );
            assert!(
                err.to_string()
                    .starts_with(&format!("StatefulSet pod {bad:?} has no")),
                "{err}"
            );
        }
    }

    #[test]
    fn daemonset_hosts_are_the_node_name() {
        assert_eq!(host(DaemonSet, None, "agent-x7k2p", "node-a"), "node-a");
        assert_eq!(host(DaemonSet, Some(""), "agent-x7k2p", "node-a"), "node-a");
        assert_eq!(
            host(DaemonSet, Some("logs"), "agent-x7k2p", "node-a"),
            "logs-node-a"
        );
        let err = host_name(DaemonSet, Some("logs"), "agent-x7k2p", "")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            r#"DaemonSet pod "agent-x7k2p" has an empty node name, which its host name is made of"#
        );
    }

    #[test]
    fn restore_replicas_use_the_statefulset_rule_with_the_given_ordinal() {
        assert_eq!(ordinal_host_name(None, 0), "host-0");
        assert_eq!(ordinal_host_name(Some(""), 3), "host-3");
        assert_eq!(ordinal_host_name(Some("pg"), 3), "pg-3");
        assert_eq!(
            ordinal_host_name(Some("pg"), 3),
            host(StatefulSet, Some("pg"), "db-3", "")
        );
    }
}

//! Our Nodes: registered Ready with their capacity, their Ready condition and Lease in
//! `kube-node-lease` renewed every few seconds, as a kubelet's heartbeat does.

use std::time::Duration;

use anyhow::{Context as _, Result};
use k8s_openapi::{
    api::{coordination::v1::Lease, core::v1::Node},
    apimachinery::pkg::apis::meta::v1::{MicroTime, Time},
    jiff::Timestamp,
};
use kube::{
    api::{Patch, PatchParams},
    Api, Client,
};
use serde_json::json;

use crate::schedule::node_labels;

/// Cores each node reports.
pub const CPU: &str = "2";
/// Memory each node reports, in bytes (8 GiB).
pub const MEMORY_BYTES: u64 = 8 << 30;
const MANAGER: &str = "stash-test-kubelet";
const HEARTBEAT: Duration = Duration::from_secs(10);

fn status(name: &str, version: &str) -> serde_json::Value {
    let now = Time(Timestamp::now());
    let resources = json!({
        "cpu": CPU, "memory": MEMORY_BYTES.to_string(), "pods": "110",
        "ephemeral-storage": "100Gi",
    });
    let cond = |kind: &str, status: &str, reason: &str| {
        json!({
            "type": kind, "status": status, "reason": reason,
            "lastHeartbeatTime": now, "lastTransitionTime": now,
        })
    };
    json!({
        "apiVersion": "v1", "kind": "Node", "metadata": { "name": name },
        "status": {
            "capacity": resources, "allocatable": resources,
            "conditions": [
                cond("Ready", "True", "KubeletReady"),
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID"),
            ],
            "addresses": [
                { "type": "InternalIP", "address": crate::status::LOOPBACK },
                { "type": "Hostname", "address": name },
            ],
            "daemonEndpoints": { "kubeletEndpoint": { "Port": 10250 } },
            "nodeInfo": {
                "architecture": "amd64", "bootID": name, "containerRuntimeVersion": "stash-test://1",
                "kernelVersion": "", "kubeProxyVersion": version, "kubeletVersion": version,
                "machineID": name, "operatingSystem": "linux", "osImage": "stash test node",
                "systemUUID": name,
            },
        },
    })
}

/// Creates (or takes over) the Node objects and marks them Ready.
pub async fn register(client: &Client, names: &[String], version: &str) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let pp = PatchParams::apply(MANAGER).force();
    for name in names {
        let node = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": { "name": name, "labels": node_labels(name) },
        });
        nodes
            .patch(name, &pp, &Patch::Apply(&node))
            .await
            .with_context(|| format!("register node {name}"))?;
        nodes
            .patch_status(name, &pp, &Patch::Apply(&status(name, version)))
            .await
            .with_context(|| format!("status of node {name}"))?;
        // The TaintNodesByCondition admission plugin taints a new node not-ready; the
        // node lifecycle controller (not run here) would lift it once the node is Ready,
        // and DaemonSet pods do not tolerate it.
        nodes
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": { "taints": null } })),
            )
            .await
            .with_context(|| format!("untaint node {name}"))?;
    }
    Ok(())
}

async fn renew(client: &Client, name: &str, version: &str) -> Result<()> {
    let pp = PatchParams::apply(MANAGER).force();
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": { "name": name },
        "spec": {
            "holderIdentity": name, "leaseDurationSeconds": 40,
            "renewTime": MicroTime(Timestamp::now()),
        },
    });
    leases.patch(name, &pp, &Patch::Apply(&lease)).await?;
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .patch_status(name, &pp, &Patch::Apply(&status(name, version)))
        .await?;
    Ok(())
}

/// Renews every node's Lease and Ready condition until the process ends.
pub async fn heartbeat(client: Client, names: Vec<String>, version: String) {
    loop {
        for name in &names {
            if let Err(e) = renew(&client, name, &version).await {
                tracing::warn!(node = %name, "heartbeat: {e}");
            }
        }
        tokio::time::sleep(HEARTBEAT).await;
    }
}

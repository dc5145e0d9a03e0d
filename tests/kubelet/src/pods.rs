//! The pod watch: binds unscheduled pods to our nodes and hands each pod bound to one of
//! them to a worker of its own, which learns of later changes through a watch channel.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
};

use anyhow::Result;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::{
    api::PostParams,
    runtime::{watcher, WatchStreamExt},
    Api,
};
use serde_json::json;
use tokio::sync::watch;

use crate::{schedule, status::finished, worker, Kubelet};

fn uid(p: &Pod) -> String {
    p.metadata.uid.clone().unwrap_or_default()
}

struct Pods {
    kubelet: Arc<Kubelet>,
    /// Every pod known, by uid.
    known: HashMap<String, Arc<Pod>>,
    /// Pods being bound: uid -> node, counted as load until the watch shows them bound.
    binding: HashMap<String, String>,
    workers: HashMap<String, watch::Sender<Option<Arc<Pod>>>>,
}

impl Pods {
    fn node_of<'a>(&'a self, p: &'a Pod) -> Option<&'a String> {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .or_else(|| self.binding.get(&uid(p)))
    }

    fn load(&self) -> BTreeMap<String, usize> {
        let mut load = BTreeMap::new();
        for p in self.known.values() {
            if let Some(n) = self.node_of(p) {
                *load.entry(n.clone()).or_default() += 1;
            }
        }
        load
    }

    /// Claims in use by live pods, and where.
    fn claims_on(&self) -> BTreeMap<(String, String), String> {
        let mut out = BTreeMap::new();
        for p in self.known.values().filter(|p| !finished(p)) {
            if let Some(n) = self.node_of(p) {
                for c in schedule::claims(p) {
                    out.insert(c, n.clone());
                }
            }
        }
        out
    }

    async fn schedule(&mut self, pod: &Pod) {
        if pod.metadata.deletion_timestamp.is_some() || self.binding.contains_key(&uid(pod)) {
            return;
        }
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        // Claims that every node may mount at once do not pin a pod.
        let mut claims_on = self.claims_on();
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(self.kubelet.client.clone(), &ns);
        for c in schedule::claims(pod) {
            if let Ok(Some(pvc)) = pvcs.get_opt(&c.1).await {
                let modes = pvc.spec.and_then(|s| s.access_modes).unwrap_or_default();
                if modes
                    .iter()
                    .any(|m| m == "ReadWriteMany" || m == "ReadOnlyMany")
                {
                    claims_on.remove(&c);
                }
            }
        }
        let load = self.load();
        let cluster = schedule::Cluster {
            nodes: &self.kubelet.nodes,
            load: &load,
            claims_on: &claims_on,
        };
        let Some(node) = schedule::choose(pod, &cluster) else {
            tracing::info!(pod = ?pod.metadata.name, "no node fits");
            return;
        };
        self.binding.insert(uid(pod), node.clone());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.kubelet.client.clone(), &ns);
        let binding = json!({
            "apiVersion": "v1", "kind": "Binding",
            "metadata": { "name": name, "uid": uid(pod) },
            "target": { "apiVersion": "v1", "kind": "Node", "name": node },
        });
        let r: kube::Result<serde_json::Value> = api
            .create_subresource("binding", &name, &PostParams::default(), &binding)
            .await;
        if let Err(e) = r {
            tracing::info!(pod = %name, %node, "binding: {e}");
            self.binding.remove(&uid(pod));
        }
    }

    fn dispatch(&mut self, pod: Arc<Pod>) {
        let id = uid(&pod);
        if let Some(tx) = self.workers.get(&id) {
            if !tx.is_closed() {
                let _ = tx.send(Some(pod));
                return;
            }
            // Its worker ended but the pod is still there (its final delete failed): a
            // new worker finishes the deletion.
        }
        let (tx, rx) = watch::channel(Some(pod));
        tokio::spawn(worker::run(self.kubelet.clone(), rx));
        self.workers.insert(id, tx);
    }

    async fn applied(&mut self, pod: Pod) {
        let pod = Arc::new(pod);
        let id = uid(&pod);
        self.known.insert(id.clone(), pod.clone());
        match pod.spec.as_ref().and_then(|s| s.node_name.clone()) {
            None => self.schedule(&pod).await,
            Some(node) => {
                self.binding.remove(&id);
                if self.kubelet.nodes.contains(&node) {
                    self.dispatch(pod);
                }
            }
        }
    }

    fn deleted(&mut self, pod: &Pod) {
        let id = uid(pod);
        self.known.remove(&id);
        self.binding.remove(&id);
        if let Some(tx) = self.workers.remove(&id) {
            let _ = tx.send(None);
        }
    }
}

/// Watches every pod until the kubelet shuts down.
pub async fn run(kubelet: Arc<Kubelet>) -> Result<()> {
    let api: Api<Pod> = Api::all(kubelet.client.clone());
    let mut stream = std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
    let mut pods = Pods {
        kubelet: kubelet.clone(),
        known: HashMap::new(),
        binding: HashMap::new(),
        workers: HashMap::new(),
    };
    let mut shutdown = kubelet.shutdown.clone();
    // Uids listed since the watch last (re)started: a pod missing from a full list was
    // deleted while the watch was down.
    let mut relisted: Option<HashSet<String>> = None;
    loop {
        let event = tokio::select! {
            e = stream.next() => e,
            _ = shutdown.changed() => break,
        };
        match event {
            None => break,
            Some(Err(e)) => {
                // The watcher re-lists after errors (410 Gone after compaction and the
                // like); the kubelet carries on.
                tracing::info!("pod watch: {e}");
            }
            Some(Ok(watcher::Event::Apply(p))) => pods.applied(p).await,
            Some(Ok(watcher::Event::Init)) => relisted = Some(HashSet::new()),
            Some(Ok(watcher::Event::InitApply(p))) => {
                if let Some(seen) = relisted.as_mut() {
                    seen.insert(uid(&p));
                }
                pods.applied(p).await
            }
            Some(Ok(watcher::Event::InitDone)) => {
                if let Some(seen) = relisted.take() {
                    let gone: Vec<Arc<Pod>> = pods
                        .known
                        .iter()
                        .filter(|(id, _)| !seen.contains(*id))
                        .map(|(_, p)| p.clone())
                        .collect();
                    for p in gone {
                        pods.deleted(&p);
                    }
                }
            }
            Some(Ok(watcher::Event::Delete(p))) => pods.deleted(&p),
        }
    }
    // Workers see the shutdown themselves; wait until their processes are gone.
    for (_, tx) in pods.workers.drain() {
        tx.closed().await;
    }
    Ok(())
}

//! One pod on one of our nodes: volumes, init containers in order, then the main
//! containers; status written back on every change; on deletion every container gets
//! SIGTERM, then SIGKILL after the grace period, and the pod object is removed.

use std::{fs, path::PathBuf, sync::Arc, time::Duration};

use k8s_openapi::{
    api::core::v1::{Pod, PodCondition, Service},
    jiff::Timestamp,
};
use kube::{
    api::{DeleteParams, ListParams, Patch, PatchParams, Preconditions},
    Api,
};
use serde_json::json;
use tokio::{
    sync::{mpsc, watch},
    task::JoinSet,
};

use crate::{
    container::{self, Restart, Slot, Spec, Update},
    status::{self, Record, State},
    volumes, Kubelet,
};

/// How a pod worker learns what happened to its pod.
pub type PodUpdates = watch::Receiver<Option<Arc<Pod>>>;

enum Ending {
    /// The pod has a deletion timestamp: stop within its grace period, then remove it.
    Terminating(Duration),
    /// The object is gone (force-deleted): stop at once.
    Gone,
    /// The kubelet is shutting down: stop, leave the object as it is.
    Shutdown,
}

async fn ending(rx: &mut PodUpdates, shutdown: &mut watch::Receiver<bool>) -> Ending {
    loop {
        if *shutdown.borrow_and_update() {
            return Ending::Shutdown;
        }
        {
            let cur = rx.borrow_and_update();
            match cur.as_deref() {
                None => return Ending::Gone,
                Some(p) if p.metadata.deletion_timestamp.is_some() => {
                    let grace = p.metadata.deletion_grace_period_seconds.unwrap_or(30);
                    return Ending::Terminating(Duration::from_secs(grace.max(0) as u64));
                }
                Some(_) => {}
            }
        }
        tokio::select! {
            r = rx.changed() => if r.is_err() { return Ending::Gone },
            r = shutdown.changed() => if r.is_err() { return Ending::Shutdown },
        }
    }
}

/// `/etc/hosts` of a pod: its own name and every Service's DNS names on loopback, the
/// way cluster DNS would answer them (containers share the host's network).
pub fn hosts_file(pod_ns: &str, hostname: &str, services: &[(String, String)]) -> String {
    let mut out = format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost\n");
    for (ns, name) in services {
        out.push_str(&format!(
            "127.0.0.1\t{name}.{ns}.svc.cluster.local {name}.{ns}.svc {name}.{ns}"
        ));
        if ns == pod_ns {
            out.push_str(&format!(" {name}"));
        }
        out.push('\n');
    }
    out
}

struct Worker {
    kubelet: Arc<Kubelet>,
    pod: Arc<Pod>,
    api: Api<Pod>,
    name: String,
    uid: String,
    restart_policy: String,
    init: Vec<Record>,
    main: Vec<Record>,
    start_time: Timestamp,
    conditions: Vec<PodCondition>,
    published: Option<serde_json::Value>,
}

impl Worker {
    fn new(kubelet: Arc<Kubelet>, pod: Arc<Pod>) -> Self {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let record = |c: &k8s_openapi::api::core::v1::Container, sidecar| {
            Record::new(&c.name, c.image.as_deref().unwrap_or_default(), sidecar)
        };
        Worker {
            api: Api::namespaced(kubelet.client.clone(), &ns),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            restart_policy: spec
                .restart_policy
                .clone()
                .unwrap_or_else(|| "Always".into()),
            init: spec
                .init_containers
                .iter()
                .flatten()
                .map(|c| record(c, c.restart_policy.as_deref() == Some("Always")))
                .collect(),
            main: spec.containers.iter().map(|c| record(c, false)).collect(),
            start_time: Timestamp::now(),
            conditions: Vec::new(),
            published: None,
            kubelet,
            pod,
        }
    }

    fn apply(&mut self, u: Update) {
        let rec = match u.slot {
            Slot::Init(i) => self.init.get_mut(i),
            Slot::Main(i) => self.main.get_mut(i),
        };
        let Some(rec) = rec else { return };
        if matches!(rec.state, State::Terminated { .. })
            && !matches!(u.state, State::Terminated { .. })
        {
            rec.last = Some(rec.state.clone());
        }
        rec.restarts = u.restarts;
        rec.state = u.state;
    }

    /// Writes the status when it changed; false when that write failed (retried later).
    async fn publish(&mut self) -> bool {
        let st = status::pod_status(
            &self.uid,
            &self.restart_policy,
            &self.init,
            &self.main,
            self.start_time,
            &self.conditions,
        );
        self.conditions = st.conditions.clone().unwrap_or_default();
        let body = json!({ "status": st });
        if self.published.as_ref() == Some(&body) {
            return true;
        }
        match self
            .api
            .patch_status(
                &self.name,
                &PatchParams::default(),
                &Patch::Strategic(&body),
            )
            .await
        {
            Ok(_) => {
                self.published = Some(body);
                true
            }
            Err(e) => {
                tracing::info!(pod = %self.name, "status: {e}");
                false
            }
        }
    }

    fn policy_for(&self, slot: Slot) -> Restart {
        let pod = match self.restart_policy.as_str() {
            "Never" => Restart::Never,
            "OnFailure" => Restart::OnFailure,
            _ => Restart::Always,
        };
        match slot {
            Slot::Init(i) if self.init[i].sidecar => Restart::Always,
            Slot::Init(_) if pod == Restart::Never => Restart::Never,
            Slot::Init(_) => Restart::OnFailure,
            Slot::Main(_) => pod,
        }
    }

    async fn hosts(&self) -> anyhow::Result<PathBuf> {
        let services: Api<Service> = Api::all(self.kubelet.client.clone());
        let list = services.list(&ListParams::default()).await?;
        let names: Vec<(String, String)> = list
            .items
            .iter()
            .filter_map(|s| Some((s.metadata.namespace.clone()?, s.metadata.name.clone()?)))
            .collect();
        let ns = self.pod.metadata.namespace.clone().unwrap_or_default();
        let hostname = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.hostname.clone())
            .unwrap_or_else(|| self.name.clone());
        let path = self.kubelet.layout.pod_dir(&self.uid).join("hosts");
        fs::create_dir_all(self.kubelet.layout.pod_dir(&self.uid))?;
        fs::write(&path, hosts_file(&ns, &hostname, &names))?;
        Ok(path)
    }

    async fn finish(&self, ending: Ending) {
        match ending {
            Ending::Terminating(_) => {
                let dp = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions {
                        uid: Some(self.uid.clone()),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                // Retried: a pod left Terminating would never go away.
                for _ in 0..60 {
                    match self.api.delete(&self.name, &dp).await {
                        Ok(_) => break,
                        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => break,
                        Err(e) => tracing::info!(pod = %self.name, "final delete: {e}"),
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                let _ = fs::remove_dir_all(self.kubelet.layout.pod_dir(&self.uid));
            }
            Ending::Gone => {
                let _ = fs::remove_dir_all(self.kubelet.layout.pod_dir(&self.uid));
            }
            Ending::Shutdown => {}
        }
    }
}

/// Runs one pod until it is deleted or the kubelet stops.
pub async fn run(kubelet: Arc<Kubelet>, mut rx: PodUpdates) {
    let Some(pod) = rx.borrow_and_update().clone() else {
        return;
    };
    let mut shutdown = kubelet.shutdown.clone();
    let mut w = Worker::new(kubelet.clone(), pod.clone());
    if status::finished(&pod) {
        // Finished before this kubelet saw it: only its deletion is left to do.
        let end = ending(&mut rx, &mut shutdown).await;
        w.finish(end).await;
        return;
    }
    w.publish().await;

    // Volumes and /etc/hosts, retried until they can be made (a Secret may come later).
    let prepared = loop {
        let attempt = async {
            let vols = volumes::prepare(&kubelet.client, &kubelet.layout, &pod).await?;
            let hosts = w.hosts().await?;
            anyhow::Ok((vols, hosts))
        };
        tokio::select! {
            r = attempt => match r {
                Ok(v) => break v,
                Err(e) => {
                    let msg = format!("{e:#}");
                    tracing::info!(pod = %w.name, "volumes: {msg}");
                    for rec in w.init.iter_mut().chain(w.main.iter_mut()) {
                        rec.state = State::Waiting { reason: "ContainerCreating".into(), message: Some(msg.clone()) };
                    }
                    w.publish().await;
                }
            },
            end = ending(&mut rx, &mut shutdown) => { w.finish(end).await; return; }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            end = ending(&mut rx, &mut shutdown) => { w.finish(end).await; return; }
        }
    };
    let (vols, hosts_file) = prepared;
    let vols = Arc::new(vols);
    let spec = pod.spec.clone().unwrap_or_default();
    let init_specs = spec.init_containers.clone().unwrap_or_default();

    let (tx, mut updates) = mpsc::unbounded_channel::<Update>();
    let (stop_tx, stop_rx) = watch::channel(None::<Duration>);
    let mut tasks = JoinSet::new();
    let mut next_init = 0;
    let mut main_started = false;
    let start =
        |slot: Slot, c: &k8s_openapi::api::core::v1::Container, tasks: &mut JoinSet<()>, policy| {
            let s = Spec {
                kubelet: kubelet.clone(),
                pod: pod.clone(),
                container: c.clone(),
                slot,
                restart: policy,
                volumes: vols.clone(),
                hosts_file: hosts_file.clone(),
            };
            tasks.spawn(container::supervise(s, tx.clone(), stop_rx.clone()));
        };
    let end = loop {
        if next_init < init_specs.len() && w.init[..next_init].iter().all(Record::init_done) {
            let slot = Slot::Init(next_init);
            start(slot, &init_specs[next_init], &mut tasks, w.policy_for(slot));
            next_init += 1;
        }
        if !main_started && next_init == init_specs.len() && w.init.iter().all(Record::init_done) {
            for (i, c) in spec.containers.iter().enumerate() {
                let slot = Slot::Main(i);
                start(slot, c, &mut tasks, w.policy_for(slot));
            }
            main_started = true;
        }
        let published = w.publish().await;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)), if !published => {}
            Some(u) = updates.recv() => {
                w.apply(u);
                while let Ok(u) = updates.try_recv() { w.apply(u); }
            }
            end = ending(&mut rx, &mut shutdown) => break end,
        }
    };
    let grace = match end {
        Ending::Terminating(g) => g,
        Ending::Gone => Duration::ZERO,
        Ending::Shutdown => Duration::from_secs(5),
    };
    let _ = stop_tx.send(Some(grace));
    drop(tx);
    while tasks.join_next().await.is_some() {}
    while let Ok(u) = updates.try_recv() {
        w.apply(u);
    }
    if matches!(end, Ending::Terminating(_)) {
        // Nothing restarts a deleted pod: its last status is terminal (Succeeded when
        // every container exited 0, else Failed), as kubelets report since 1.27; the
        // Job controller counts such pods.
        w.restart_policy = "Never".into();
        w.publish().await;
    }
    w.finish(end).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_name_services_like_cluster_dns() {
        let h = hosts_file(
            "demo",
            "web-0",
            &[("demo".into(), "pg".into()), ("other".into(), "s3".into())],
        );
        assert!(h.contains("localhost web-0\n"));
        assert!(h.contains("pg.demo.svc.cluster.local pg.demo.svc pg.demo pg\n"));
        assert!(h.contains("s3.other.svc.cluster.local s3.other.svc s3.other\n"));
    }
}

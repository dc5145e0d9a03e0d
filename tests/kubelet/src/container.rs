//! One container's life: resolve its environment and command, run it in a sandbox,
//! restart it per policy with a growing back-off, and stop it with SIGTERM then SIGKILL.
//! Every change of state goes to the pod worker as an [`Update`].

use std::{collections::BTreeMap, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Result;
use k8s_openapi::{
    api::core::v1::{Container, Pod},
    jiff::Timestamp,
};
use tokio::sync::{mpsc, watch};

use crate::{
    env::{container_env, expand, Sources},
    process::{self, Sandbox},
    status::State,
    volumes, Kubelet,
};

/// Init or main container, and its index in the pod's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Init(usize),
    Main(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    Always,
    OnFailure,
    Never,
}

impl Restart {
    fn again(self, exit_code: i32) -> bool {
        match self {
            Restart::Always => true,
            Restart::OnFailure => exit_code != 0,
            Restart::Never => false,
        }
    }
}

#[derive(Debug)]
pub struct Update {
    pub slot: Slot,
    pub state: State,
    /// How many times the container has been started before this start.
    pub restarts: i32,
}

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What the supervisor of one container needs.
pub struct Spec {
    pub kubelet: Arc<Kubelet>,
    pub pod: Arc<Pod>,
    pub container: Container,
    pub slot: Slot,
    pub restart: Restart,
    pub volumes: Arc<BTreeMap<String, PathBuf>>,
    pub hosts_file: PathBuf,
}

impl Spec {
    fn ours(&self) -> bool {
        self.container.image.as_deref() == Some(self.kubelet.image.as_str())
    }

    fn hostname(&self) -> String {
        let spec = self.pod.spec.as_ref();
        spec.and_then(|s| s.hostname.clone())
            .or_else(|| self.pod.metadata.name.clone())
            .unwrap_or_default()
    }

    /// The environment a container of this pod starts with, before its own `env`.
    fn base_env(&self) -> Vec<(String, String)> {
        let k = &self.kubelet;
        let (host, port) = (k.api_host.clone(), k.api_port.to_string());
        let tcp = format!("tcp://{host}:{port}");
        vec![
            ("PATH".into(), PATH.into()),
            ("HOME".into(), "/root".into()),
            ("HOSTNAME".into(), self.hostname()),
            ("KUBERNETES_SERVICE_HOST".into(), host.clone()),
            ("KUBERNETES_SERVICE_PORT".into(), port.clone()),
            ("KUBERNETES_SERVICE_PORT_HTTPS".into(), port.clone()),
            ("KUBERNETES_PORT".into(), tcp.clone()),
            (format!("KUBERNETES_PORT_{port}_TCP"), tcp),
            (format!("KUBERNETES_PORT_{port}_TCP_ADDR"), host),
        ]
    }

    /// The command line: our image's entrypoint is the `stash` binary, so a missing
    /// command or one named `stash` runs the kubelet's `stash`.
    fn command(&self, env: &BTreeMap<String, String>) -> Vec<String> {
        let c = &self.container;
        let mut argv: Vec<String> = c.command.clone().unwrap_or_default();
        let stash = self.kubelet.stash_bin.display().to_string();
        match argv.first() {
            None => argv.push(stash),
            Some(first) if first.rsplit('/').next() == Some("stash") => argv[0] = stash,
            Some(_) => {}
        }
        argv.extend(c.args.clone().unwrap_or_default());
        argv.iter()
            .enumerate()
            .map(|(i, a)| if i == 0 { a.clone() } else { expand(a, env) })
            .collect()
    }

    async fn sandbox(&self) -> Result<(Sandbox, Vec<String>)> {
        let ns = self.pod.metadata.namespace.clone().unwrap_or_default();
        let sources = Sources::new(self.kubelet.client.clone(), &ns);
        let env = container_env(&self.pod, &self.container, &sources, &self.base_env()).await?;
        let command = self.command(&env);
        let uid = self.pod.metadata.uid.clone().unwrap_or_default();
        let name = &self.container.name;
        let sb = Sandbox {
            dir: self.kubelet.layout.pod_dir(&uid).join("sandbox").join(name),
            hostname: self.hostname(),
            hosts_file: self.hosts_file.clone(),
            workdir: self
                .container
                .working_dir
                .clone()
                .unwrap_or_else(|| "/".into()),
            mounts: volumes::mounts(
                &self.container,
                &self.volumes,
                &volumes::api_backed(&self.pod),
            )?,
            env,
            log: self.kubelet.log_path(&self.pod, name),
        };
        Ok((sb, command))
    }
}

/// Why `image` cannot be pulled: its registry is under `.invalid`, a name that never
/// resolves (RFC 2606), as a real kubelet would find; every other image "pulls".
fn unpullable(image: &str) -> Option<String> {
    let (registry, _) = image.split_once('/')?;
    let host = registry.split(':').next().unwrap_or(registry);
    host.ends_with(".invalid")
        .then(|| format!("failed to pull image {image:?}: dial tcp: lookup {host}: no such host"))
}

fn exit_code(status: &std::process::ExitStatus) -> (i32, Option<i32>) {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => (c, None),
        (None, Some(s)) => (128 + s, Some(s)),
        _ => (255, None),
    }
}

/// Resolves when the worker asks the container to stop, with the grace period.
async fn stop_requested(stop: &mut watch::Receiver<Option<Duration>>) -> Duration {
    loop {
        if let Some(g) = *stop.borrow_and_update() {
            return g;
        }
        if stop.changed().await.is_err() {
            return Duration::ZERO;
        }
    }
}

/// Runs the container until it ends for good or the worker stops it.
pub async fn supervise(
    spec: Spec,
    updates: mpsc::UnboundedSender<Update>,
    mut stop: watch::Receiver<Option<Duration>>,
) {
    let slot = spec.slot;
    let send = |state: State, restarts: i32| {
        let _ = updates.send(Update {
            slot,
            state,
            restarts,
        });
    };
    if let Some(why) = spec.container.image.as_deref().and_then(unpullable) {
        send(
            State::Waiting {
                reason: "ErrImagePull".into(),
                message: Some(why),
            },
            0,
        );
        stop_requested(&mut stop).await;
        return;
    }
    if !spec.ours() {
        // Other images (busybox, postgres) have no process here: an init container
        // completes at once, any other counts as running until it is stopped.
        let completes = matches!(slot, Slot::Init(_)) && spec.restart != Restart::Always;
        let started = Timestamp::now();
        if !completes {
            send(State::Running { started }, 0);
            stop_requested(&mut stop).await;
        }
        let finished = Timestamp::now();
        send(
            State::Terminated {
                exit_code: 0,
                signal: None,
                started,
                finished,
            },
            0,
        );
        return;
    }
    let mut restarts = 0;
    let mut backoff = Duration::from_secs(1);
    loop {
        let outcome = match spec.sandbox().await {
            Err(e) => {
                send(
                    State::Waiting {
                        reason: "CreateContainerConfigError".into(),
                        message: Some(format!("{e:#}")),
                    },
                    restarts,
                );
                None
            }
            Ok((sb, command)) => match process::spawn(&spec.kubelet.script, &sb, &command) {
                Err(e) => {
                    send(
                        State::Waiting {
                            reason: "RunContainerError".into(),
                            message: Some(format!("{e:#}")),
                        },
                        restarts,
                    );
                    None
                }
                Ok(mut child) => {
                    let started = Timestamp::now();
                    let pgid = child.id().unwrap_or_default();
                    send(State::Running { started }, restarts);
                    let (status, stopped) = tokio::select! {
                        s = process::wait(&mut child, pgid) => (s, false),
                        grace = stop_requested(&mut stop) => (process::stop(&mut child, pgid, grace).await, true),
                    };
                    let (code, signal) = status.as_ref().map(exit_code).unwrap_or((255, None));
                    send(
                        State::Terminated {
                            exit_code: code,
                            signal,
                            started,
                            finished: Timestamp::now(),
                        },
                        restarts,
                    );
                    if stopped {
                        return;
                    }
                    Some(code)
                }
            },
        };
        if let Some(code) = outcome {
            if !spec.restart.again(code) {
                return;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop_requested(&mut stop) => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
        if outcome.is_some() {
            restarts += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::unpullable;

    #[test]
    fn only_invalid_registries_fail_to_pull() {
        assert!(unpullable("registry.invalid/nope:1").is_some());
        assert!(unpullable("registry.invalid:5000/a/b").is_some());
        assert!(unpullable("busybox").is_none());
        assert!(unpullable("docker.io/library/busybox:1").is_none());
        assert!(
            unpullable("invalid/image").is_none(),
            "a Docker Hub account"
        );
    }
}

//! The test cluster for tests: one real control plane per test process (started by
//! `tests/kube/cluster up`, torn down when the process exits), a namespace of its own per
//! test, a `kube::Client`, and waits with deadlines that print the namespace's objects,
//! events and container logs when they fail.
//!
//! `STASH_TEST_KUBECONFIG` points the tests at a cluster that is already up instead (its
//! `STASH_TEST_KUBELET_STATE` gives the kubelet's directory, for logs and claims).

use std::{
    fmt::Debug,
    future::Future,
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        OnceLock,
    },
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::core::v1::{Namespace, ServiceAccount},
    NamespaceResourceScope,
};
use kube::{
    api::PostParams,
    config::{KubeConfigOptions, Kubeconfig},
    Api, Client, Config, Resource,
};
use serde::de::DeserializeOwned;

/// Our image, as the kubelet and the operator know it.
pub fn image() -> String {
    stash_operator::image::image()
}

/// Where kubectl and the other upstream binaries are.
fn bin_dir() -> PathBuf {
    std::env::var_os("KUBE_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/kube/bin"))
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn run_checked(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn newest_mtime(path: &Path, newest: &mut std::time::SystemTime) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_dir() {
        for e in std::fs::read_dir(path).into_iter().flatten().flatten() {
            newest_mtime(&e.path(), newest);
        }
    } else if let Ok(t) = meta.modified() {
        *newest = (*newest).max(t);
    }
}

/// The newest modification time of what `stash` and the kubelet are built from.
fn newest_source(root: &Path) -> std::time::SystemTime {
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    for p in [
        "Cargo.toml",
        "Cargo.lock",
        "agent",
        "repo-format/src",
        "chunker/src",
        "operator/src",
        "tests/kubelet",
    ] {
        newest_mtime(&root.join(p), &mut newest);
    }
    newest
}

/// A running cluster.
#[derive(Debug)]
pub struct Cluster {
    pub kubeconfig: PathBuf,
    /// The kubelet's state directory: `logs/<ns>/<pod>/<container>.log`, `claims/<ns>/<claim>`.
    pub kubelet_state: PathBuf,
    /// Where kubectl and the other upstream binaries are.
    pub bin: PathBuf,
    crds: OnceLock<()>,
}

impl Cluster {
    /// The cluster of this test process, started on first use.
    pub fn shared() -> &'static Cluster {
        // A failed start is remembered: the other tests fail at once with its message
        // instead of each trying again.
        static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
        let r = CLUSTER.get_or_init(|| {
            std::panic::catch_unwind(Cluster::start).map_err(|e| {
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "the test cluster did not start".into())
            })
        });
        match r {
            Ok(c) => c,
            Err(e) => panic!("test cluster: {e}"),
        }
    }

    fn start() -> Cluster {
        if let Some(kc) = std::env::var_os("STASH_TEST_KUBECONFIG") {
            let state = std::env::var_os("STASH_TEST_KUBELET_STATE")
                .expect("STASH_TEST_KUBELET_STATE must accompany STASH_TEST_KUBECONFIG");
            return Cluster {
                kubeconfig: kc.into(),
                kubelet_state: state.into(),
                bin: bin_dir(),
                crds: OnceLock::new(),
            };
        }
        Cluster::up(&format!("test-{}", std::process::id()))
    }

    /// A cluster of the calling test alone (for an install the shared cluster's
    /// operator would interfere with), torn down with the test process; `name`
    /// tells it apart from the shared one.
    pub fn start_private(name: &str) -> &'static Cluster {
        Box::leak(Box::new(Cluster::up(&format!(
            "test-{}-{name}",
            std::process::id()
        ))))
    }

    fn up(name: &str) -> Cluster {
        let root = workspace_root();
        let bin = bin_dir();
        // Up to date binaries: each step returns at once when nothing changed.
        run_checked(
            Command::new("bash").arg(root.join("tests/kube/build.sh")),
            "tests/kube/build.sh",
        );
        // tests/run.sh builds the binaries before the tests; a local run builds them
        // here when they are missing or older than their sources.
        let target = root.join("target/debug");
        let bins = [target.join("stash"), target.join("stash-test-kubelet")];
        let newest = newest_source(&root);
        let stale = bins.iter().any(|b| {
            std::fs::metadata(b)
                .and_then(|m| m.modified())
                .map(|t| t < newest)
                .unwrap_or(true)
        });
        if stale {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let args = [
                "build",
                "-p",
                "stash-operator",
                "-p",
                "stash-test-kubelet",
                "--bins",
            ];
            run_checked(
                Command::new(&cargo).current_dir(&root).args(args),
                &format!("cargo {}", args.join(" ")),
            );
        }
        let dir = root.join("target/kube/clusters").join(name);
        let t0 = Instant::now();
        // Free ports are picked before they are bound: another process may take one in
        // between, so a failed start is tried again on new ports.
        let mut tries = 0;
        loop {
            tries += 1;
            let out = Command::new("bash")
                .arg(root.join("tests/kube/cluster"))
                .args(["up", "--dir"])
                .arg(&dir)
                .args(["--owner", &std::process::id().to_string()])
                .output()
                .expect("running tests/kube/cluster up");
            if out.status.success() {
                break;
            }
            let why = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                tries < 3,
                "tests/kube/cluster up failed {tries} times:\n{why}"
            );
            eprintln!("tests/kube/cluster up failed, trying again:\n{why}");
        }
        eprintln!(
            "test cluster up in {:.1} s: {}",
            t0.elapsed().as_secs_f64(),
            dir.display()
        );
        Cluster {
            kubeconfig: dir.join("kubeconfig"),
            kubelet_state: dir.join("kubelet"),
            bin,
            crds: OnceLock::new(),
        }
    }

    /// A client of the cluster's admin, for the runtime of the calling test.
    pub async fn client(&self) -> Client {
        let kc = Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .expect("kubeconfig");
        Client::try_from(config).expect("client")
    }

    /// Installs the operator's CRDs (`operator/deploy/crds.yaml`) once per cluster and
    /// waits until the API server serves them.
    pub fn install_crds(&self) {
        self.crds.get_or_init(|| {
            let crds = workspace_root().join("operator/deploy/crds.yaml");
            let crds = crds.to_string_lossy();
            for args in [
                &["apply", "--server-side", "--force-conflicts", "-f", &crds][..],
                &[
                    "wait",
                    "--for=condition=Established",
                    "--timeout=60s",
                    "-f",
                    &crds,
                ][..],
            ] {
                let out = self.kubectl(args, None);
                assert!(
                    out.status.success(),
                    "kubectl {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        });
    }

    /// Runs our kubectl against the cluster, with `stdin` as its input.
    /// `helm` (built from tests/kube/helm) on this cluster.
    pub fn helm(&self, args: &[&str]) -> Output {
        Command::new(self.bin.join("helm"))
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HELM_CACHE_HOME", self.bin.join("../helm/cache"))
            .env("HELM_CONFIG_HOME", self.bin.join("../helm/config"))
            .env("HELM_DATA_HOME", self.bin.join("../helm/data"))
            .output()
            .expect("run helm (tests/kube/build.sh builds it)")
    }

    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(self.bin.join("kubectl"))
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kubectl");
        if let Some(input) = stdin {
            let mut w = child.stdin.take().expect("stdin");
            w.write_all(input.as_bytes()).expect("write kubectl stdin");
        }
        child.wait_with_output().expect("kubectl output")
    }
}

/// A namespace of one test; deleted (in the background) when dropped.
pub struct TestNs {
    pub cluster: &'static Cluster,
    pub client: Client,
    pub name: String,
}

impl TestNs {
    /// A fresh namespace of the shared cluster whose `default` ServiceAccount exists
    /// (pods need it).
    pub async fn new(prefix: &str) -> TestNs {
        TestNs::new_in(Cluster::shared(), prefix).await
    }

    /// A fresh namespace of `cluster`, as [`TestNs::new`].
    pub async fn new_in(cluster: &'static Cluster, prefix: &str) -> TestNs {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let client = cluster.client().await;
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": { "name": name }
        }))
        .expect("namespace object");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
        let t = TestNs {
            cluster,
            client,
            name,
        };
        t.wait_for::<ServiceAccount>(
            "default",
            "default ServiceAccount",
            Duration::from_secs(60),
            |_| true,
        )
        .await;
        t
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// `kubectl apply` of YAML into this namespace; panics with kubectl's words on failure.
    pub fn apply(&self, yaml: &str) {
        let out = self
            .cluster
            .kubectl(&["apply", "-n", &self.name, "-f", "-"], Some(yaml));
        assert!(
            out.status.success(),
            "kubectl apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The log of a container of a pod of this namespace (all its runs), or "".
    pub fn log(&self, pod: &str, container: &str) -> String {
        let path = self.log_path(pod, container);
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// The logs of every pod's `container` of this namespace, one after the other.
    pub fn logs_of(&self, container: &str) -> String {
        let dir = self.cluster.kubelet_state.join("logs").join(&self.name);
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|pod| self.log(&pod.file_name().to_string_lossy(), container))
            .collect()
    }

    pub fn log_path(&self, pod: &str, container: &str) -> PathBuf {
        self.cluster
            .kubelet_state
            .join("logs")
            .join(&self.name)
            .join(pod)
            .join(format!("{container}.log"))
    }

    /// The host directory that stands for a claim of this namespace.
    pub fn claim_dir(&self, claim: &str) -> PathBuf {
        self.cluster
            .kubelet_state
            .join("claims")
            .join(&self.name)
            .join(claim)
    }

    /// Objects, events and every container log of the namespace, for a failure message.
    pub fn diagnostics(&self) -> String {
        let mut s = String::new();
        for args in [
            &["get", "all,pvc,events", "-o", "wide", "-n", &self.name][..],
            &["get", "pods", "-o", "yaml", "-n", &self.name][..],
            &[
                "get",
                "backupconfigurations,backupsessions,restoresessions,jobs",
                "-o",
                "yaml",
                "-n",
                &self.name,
            ][..],
            &["get", "functions,tasks"][..],
        ] {
            let out = self.cluster.kubectl(args, None);
            s.push_str(&format!("--- kubectl {}\n", args.join(" ")));
            s.push_str(&String::from_utf8_lossy(&out.stdout));
            s.push_str(&String::from_utf8_lossy(&out.stderr));
        }
        let logs = self.cluster.kubelet_state.join("logs").join(&self.name);
        for pod in std::fs::read_dir(&logs).into_iter().flatten().flatten() {
            for file in std::fs::read_dir(pod.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let text = std::fs::read_to_string(file.path()).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                s.push_str(&format!("--- log {}\n", file.path().display()));
                for l in tail.iter().rev() {
                    s.push_str(l);
                    s.push('\n');
                }
            }
        }
        s
    }

    /// Polls `check` until it returns `Some`, or panics after `timeout` with what it
    /// waited for and the namespace's diagnostics.
    pub async fn eventually<T, F, Fut>(&self, what: &str, timeout: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = check().await {
                return v;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what} in namespace {}\n{}",
                    self.name,
                    self.diagnostics()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits until object `name` of this namespace exists and satisfies `pred`.
    pub async fn wait_for<K>(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&K) -> bool,
    ) -> K
    where
        K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
        K::DynamicType: Default,
    {
        let api = self.api::<K>();
        self.eventually(what, timeout, || {
            let api = api.clone();
            let pred = &pred;
            async move { api.get_opt(name).await.ok().flatten().filter(|o| pred(o)) }
        })
        .await
    }

    /// Waits until object `name` of this namespace no longer exists.
    pub async fn wait_gone<K>(&self, name: &str, timeout: Duration)
    where
        K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
        K::DynamicType: Default,
    {
        let api = self.api::<K>();
        self.eventually(&format!("{name} to be gone"), timeout, || {
            let api = api.clone();
            async move { matches!(api.get_opt(name).await, Ok(None)).then_some(()) }
        })
        .await
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Keep the namespace of a failed test for a look; the cluster goes anyway.
            return;
        }
        let _ = self
            .cluster
            .kubectl(&["delete", "namespace", &self.name, "--wait=false"], None);
    }
}

//! The test cluster itself: the upstream control plane and our stand-in kubelet behave as
//! a real cluster does for what the operator relies on (rollouts, StatefulSet claims,
//! DaemonSets, Jobs, CronJobs, Secrets and ConfigMaps, in-cluster credentials under RBAC,
//! SIGTERM on deletion, init containers). Each test has a namespace of its own on the
//! process's one cluster.

mod operator;
mod resources;

use std::time::Duration;

use k8s_openapi::api::{
    apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet},
    batch::v1::Job,
    core::v1::Pod,
};
use kube::api::{DeleteParams, ListParams};
use stash_tests::kube::{image, TestNs};

const MINUTE: Duration = Duration::from_secs(60);

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn job_condition(j: &Job, kind: &str) -> Option<String> {
    j.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind && c.status == "True")
        .map(|c| c.reason.clone().unwrap_or_default())
}

async fn pods(ns: &TestNs, selector: &str) -> Vec<Pod> {
    ns.api::<Pod>()
        .list(&ListParams::default().labels(selector))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

#[tokio::test]
async fn deployment_rolls_out_and_its_pods_are_garbage_collected() {
    let ns = TestNs::new("deploy").await;
    ns.apply(&format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: app
        image: {image}
        command: ["sh", "-c", "echo started as $(hostname); exec sleep 3600"]
"#,
        image = image()
    ));
    ns.wait_for::<Deployment>("web", "2 available replicas", MINUTE, |d| {
        d.status.as_ref().and_then(|s| s.available_replicas) == Some(2)
    })
    .await;
    let running = pods(&ns, "app=web").await;
    assert_eq!(running.len(), 2);
    for p in &running {
        assert_eq!(phase(p), "Running");
        assert!(ready(p));
        let name = p.metadata.name.as_deref().unwrap();
        // The container's hostname is its pod's name, as in a real pod.
        let log = ns
            .eventually("the pod's first line", MINUTE, || async {
                Some(ns.log(name, "app")).filter(|l| l.ends_with('\n'))
            })
            .await;
        assert_eq!(log.trim(), format!("started as {name}"));
    }
    let rs = ns
        .api::<ReplicaSet>()
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(rs.items.len(), 1);

    ns.api::<Deployment>()
        .delete("web", &DeleteParams::background())
        .await
        .unwrap();
    ns.eventually("ReplicaSets and Pods to be collected", MINUTE, || async {
        let rs = ns
            .api::<ReplicaSet>()
            .list(&ListParams::default())
            .await
            .ok()?;
        (rs.items.is_empty() && pods(&ns, "app=web").await.is_empty()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn statefulset_pods_get_their_own_claims() {
    let ns = TestNs::new("sts").await;
    ns.apply(&format!(
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db}}
spec:
  replicas: 3
  serviceName: db
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata: {{labels: {{app: db}}}}
    spec:
      containers:
      - name: app
        image: {image}
        command: ["sh", "-c", "hostname > /data/owner; exec sleep 3600"]
        volumeMounts: [{{name: data, mountPath: /data}}]
  volumeClaimTemplates:
  - metadata: {{name: data}}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {{requests: {{storage: 1Gi}}}}
"#,
        image = image()
    ));
    ns.wait_for::<StatefulSet>("db", "3 ready replicas", 2 * MINUTE, |s| {
        s.status.as_ref().and_then(|s| s.ready_replicas) == Some(3)
    })
    .await;
    for i in 0..3 {
        let pod = format!("db-{i}");
        let owner = ns
            .eventually(&format!("{pod} to write its claim"), MINUTE, || async {
                std::fs::read_to_string(ns.claim_dir(&format!("data-{pod}")).join("owner")).ok()
            })
            .await;
        assert_eq!(owner.trim(), pod);
    }
}

#[tokio::test]
async fn daemonset_runs_one_pod_on_each_node() {
    let ns = TestNs::new("ds").await;
    ns.apply(&format!(
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: agent}}
spec:
  selector: {{matchLabels: {{app: agent}}}}
  template:
    metadata: {{labels: {{app: agent}}}}
    spec:
      containers:
      - name: app
        image: {image}
        command: ["sh", "-c", "echo node=$NODE; exec sleep 3600"]
        env:
        - name: NODE
          valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}
"#,
        image = image()
    ));
    let nodes = ns
        .cluster
        .kubectl(&["get", "nodes", "-o", "name"], None)
        .stdout;
    let nodes = String::from_utf8_lossy(&nodes).lines().count() as i32;
    assert!(nodes >= 2, "the test cluster has several nodes");
    ns.wait_for::<DaemonSet>("agent", "a ready pod per node", MINUTE, |d| {
        d.status.as_ref().map(|s| s.number_ready) == Some(nodes)
    })
    .await;
    let mut on: Vec<String> = pods(&ns, "app=agent")
        .await
        .iter()
        .map(|p| p.spec.as_ref().unwrap().node_name.clone().unwrap())
        .collect();
    on.sort();
    on.dedup();
    assert_eq!(on.len() as i32, nodes);
    for p in pods(&ns, "app=agent").await {
        let node = p.spec.as_ref().unwrap().node_name.clone().unwrap();
        let name = p.metadata.name.as_deref().unwrap();
        // Ready means started (no probes): the first line may still be on its way.
        let log = ns
            .eventually("the pod's first line", MINUTE, || async {
                Some(ns.log(name, "app")).filter(|l| l.ends_with('\n'))
            })
            .await;
        assert_eq!(log.trim(), format!("node={node}"));
    }
}

fn job_yaml(name: &str, args: &str) -> String {
    format!(
        r#"
apiVersion: batch/v1
kind: Job
metadata: {{name: {name}}}
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: stash
        image: {image}
        args: {args}
"#,
        image = image()
    )
}

#[tokio::test]
async fn jobs_of_our_image_complete_or_fail_by_exit_code() {
    let ns = TestNs::new("job").await;
    ns.apply(&job_yaml("version", r#"["version"]"#));
    ns.apply(&job_yaml("broken", r#"["no-such-verb"]"#));
    ns.wait_for::<Job>("version", "Job version Complete", MINUTE, |j| {
        job_condition(j, "Complete").is_some()
    })
    .await;
    let pod = pods(&ns, "job-name=version").await.remove(0);
    let log = ns.log(pod.metadata.name.as_deref().unwrap(), "stash");
    assert!(
        log.starts_with(&format!(
            "stash {} compiled with",
            env!("CARGO_PKG_VERSION")
        )),
        "{log}"
    );
    assert_eq!(phase(&pod), "Succeeded");

    let failed = ns
        .wait_for::<Job>("broken", "Job broken Failed", 2 * MINUTE, |j| {
            job_condition(j, "Failed").is_some()
        })
        .await;
    assert_eq!(
        job_condition(&failed, "Failed").as_deref(),
        Some("BackoffLimitExceeded")
    );
    // backoffLimit 1: the first pod and one retry, both Failed with clap's exit code.
    let tries = pods(&ns, "job-name=broken").await;
    assert_eq!(
        tries.len(),
        2,
        "{:?}",
        tries.iter().map(phase).collect::<Vec<_>>()
    );
    for p in &tries {
        assert_eq!(phase(p), "Failed");
        let st = &p
            .status
            .as_ref()
            .unwrap()
            .container_statuses
            .as_ref()
            .unwrap()[0];
        let code = st
            .state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .exit_code;
        assert_eq!(code, 2);
    }
}

#[tokio::test]
async fn cronjob_creates_a_job_within_its_minute() {
    let ns = TestNs::new("cron").await;
    ns.apply(&format!(
        r#"
apiVersion: batch/v1
kind: CronJob
metadata: {{name: tick}}
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: stash
            image: {image}
            args: ["version"]
"#,
        image = image()
    ));
    let job = ns
        .eventually(
            "a Job of the CronJob",
            80 * Duration::from_secs(1),
            || async {
                let jobs = ns.api::<Job>().list(&ListParams::default()).await.ok()?;
                jobs.items.into_iter().find(|j| {
                    j.metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .any(|o| o.kind == "CronJob" && o.name == "tick")
                })
            },
        )
        .await;
    let name = job.metadata.name.unwrap();
    ns.wait_for::<Job>(&name, "the CronJob's Job Complete", MINUTE, |j| {
        job_condition(j, "Complete").is_some()
    })
    .await;
}

#[tokio::test]
async fn pods_read_secrets_and_config_maps_and_call_the_api_under_rbac() {
    let ns = TestNs::new("rbac").await;
    let kubectl = ns.cluster.bin.join("kubectl");
    let pod = |name: &str, sa: &str| {
        format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  serviceAccountName: {sa}
  restartPolicy: Never
  containers:
  - name: app
    image: {image}
    command: ["sh", "-c"]
    args:
    - cat /etc/creds/password; echo; cat /etc/conf/greeting; echo; echo env=$PASSWORD;
      grep -w db /etc/hosts; exec {kubectl} get pods -o name
    env:
    - name: PASSWORD
      valueFrom: {{secretKeyRef: {{name: creds, key: password}}}}
    - name: HOME
      value: /tmp
    volumeMounts:
    - {{name: creds, mountPath: /etc/creds, readOnly: true}}
    - {{name: conf, mountPath: /etc/conf}}
  volumes:
  - name: creds
    secret: {{secretName: creds}}
  - name: conf
    configMap: {{name: conf}}
"#,
            image = image(),
            kubectl = kubectl.display()
        )
    };
    ns.apply(
        r#"
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: s3cr3t}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: conf}
data: {greeting: hello}
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  ports: [{port: 5432}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: reader}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: nobody}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
subjects:
- {kind: ServiceAccount, name: reader}
"#,
    );
    ns.apply(&pod("allowed", "reader"));
    ns.apply(&pod("refused", "nobody"));
    let done = |p: &Pod| matches!(phase(p), "Succeeded" | "Failed");
    let allowed = ns
        .wait_for::<Pod>("allowed", "pod allowed to end", MINUTE, done)
        .await;
    let refused = ns
        .wait_for::<Pod>("refused", "pod refused to end", MINUTE, done)
        .await;

    let log = ns.log("allowed", "app");
    assert_eq!(phase(&allowed), "Succeeded", "{log}");
    assert!(log.starts_with("s3cr3t\nhello\nenv=s3cr3t\n"), "{log}");
    // Service names resolve to loopback, as cluster DNS would resolve them.
    let ns_name = &ns.name;
    let hosts =
        format!("127.0.0.1\tdb.{ns_name}.svc.cluster.local db.{ns_name}.svc db.{ns_name} db\n");
    assert!(log.contains(&hosts), "{log}");
    assert!(log.contains("pod/allowed"), "{log}");
    // Mount points were made inside the containers' own roots, never on the host's.
    for path in [
        "/etc/creds",
        "/etc/conf",
        "/var/run/secrets/kubernetes.io/serviceaccount/token",
    ] {
        assert!(
            !std::path::Path::new(path).exists(),
            "{path} appeared on the host"
        );
    }

    let log = ns.log("refused", "app");
    assert_eq!(phase(&refused), "Failed", "{log}");
    assert!(log.contains("Forbidden"), "{log}");
    assert!(
        log.contains(&format!("system:serviceaccount:{}:nobody", ns.name)),
        "{log}"
    );
}

/// Starts a pod `name` whose container runs `trap TRAP TERM` and then loops, waits until
/// it runs, deletes it, and returns the time from the delete until the pod was gone
/// (`check_after_1s` runs one second after the delete, while the pod may still be there).
async fn delete_trapping_pod(
    ns: &TestNs,
    name: &str,
    grace_seconds: u32,
    trap: &str,
    check_after_1s: Option<fn(bool)>,
) -> Duration {
    ns.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: {grace_seconds}
  containers:
  - name: app
    image: {image}
    command: ["sh", "-c"]
    args: ["trap '{trap}' TERM; echo running; while true; do sleep 0.1; done"]
"#,
        image = image()
    ));
    ns.wait_for::<Pod>(name, "pod Running", MINUTE, ready).await;
    ns.eventually("the process to start", MINUTE, || async {
        ns.log(name, "app").contains("running").then_some(())
    })
    .await;
    let t0 = std::time::Instant::now();
    ns.api::<Pod>()
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
    if let Some(check) = check_after_1s {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        check(ns.api::<Pod>().get_opt(name).await.unwrap().is_some());
    }
    ns.wait_gone::<Pod>(name, Duration::from_secs(30)).await;
    t0.elapsed()
}

#[tokio::test]
async fn deleting_a_pod_terminates_its_process_first() {
    let ns = TestNs::new("term").await;
    // The pod stays while the process handles SIGTERM, and goes once it has exited,
    // long before the 60 s grace period.
    let elapsed = delete_trapping_pod(
        &ns,
        "worker",
        60,
        "echo got SIGTERM; sleep 2; echo clean exit; exit 0",
        Some(|present| assert!(present, "the pod went before its process exited")),
    )
    .await;
    let log = ns.log("worker", "app");
    assert!(log.contains("got SIGTERM\nclean exit\n"), "{log}");
    assert!(elapsed >= Duration::from_secs(2), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");

    // A process that ignores SIGTERM is killed once the grace period is over.
    let elapsed = delete_trapping_pod(&ns, "stubborn", 3, "echo ignoring SIGTERM", None).await;
    assert!(ns.log("stubborn", "app").contains("ignoring SIGTERM"));
    assert!(elapsed >= Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn a_failing_init_container_keeps_the_main_containers_from_starting() {
    let ns = TestNs::new("init").await;
    let pod = |name: &str, policy: &str| {
        format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: {policy}
  initContainers:
  - name: first
    image: {image}
    command: ["sh", "-c", "echo first ran"]
  - name: second
    image: {image}
    command: ["sh", "-c", "echo second failed; exit 1"]
  containers:
  - name: main
    image: {image}
    command: ["sh", "-c", "echo main ran; exec sleep 3600"]
"#,
            image = image()
        )
    };
    ns.apply(&pod("once", "Never"));
    ns.apply(&pod("again", "Always"));
    let once = ns
        .wait_for::<Pod>("once", "pod once Failed", MINUTE, |p| phase(p) == "Failed")
        .await;
    let st = once.status.unwrap();
    let init = st.init_container_statuses.unwrap();
    let exit = |i: usize| {
        init[i]
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .map(|t| t.exit_code)
    };
    assert_eq!((exit(0), exit(1)), (Some(0), Some(1)));
    let main = &st.container_statuses.unwrap()[0];
    assert!(main.state.as_ref().unwrap().waiting.is_some());

    // restartPolicy Always: the failed init container is retried; main still never runs.
    let again = ns
        .wait_for::<Pod>("again", "init container retried", MINUTE, |p| {
            p.status
                .as_ref()
                .and_then(|s| s.init_container_statuses.as_ref())
                .is_some_and(|i| i[1].restart_count >= 1)
        })
        .await;
    assert_eq!(phase(&again), "Pending");
    // An init container of another image has nothing to run here and completes.
    ns.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: other}}
spec:
  initContainers:
  - {{name: prepare, image: busybox, command: ["true"]}}
  containers:
  - {{name: main, image: {image}, command: ["sh", "-c", "echo main ran; exec sleep 3600"]}}
"#,
        image = image()
    ));
    ns.wait_for::<Pod>("other", "pod other Ready", MINUTE, ready)
        .await;
    for pod in ["once", "again"] {
        assert_eq!(ns.log(pod, "first"), "first ran\n");
        assert!(ns.log(pod, "second").starts_with("second failed\n"));
        assert!(!ns.log_path(pod, "main").exists(), "main of {pod} ran");
    }
}

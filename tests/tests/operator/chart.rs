//! The Helm chart (`operator/chart`): it lints, its default rendering is exactly
//! `operator/deploy/install.yaml` (the install without Helm), its copies of the CRDs and
//! alert rules are the originals, its switches render what they say, and the release
//! every operator test runs against is the chart installed by `helm upgrade --install`.

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use stash_tests::kube::Cluster;

use super::support::{install_operator, root};

fn helm(cluster: &Cluster, args: &[&str]) -> String {
    let out = cluster.helm(args);
    assert!(
        out.status.success(),
        "helm {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_lints_renders_the_plain_install_and_is_what_runs() {
    let cluster = Cluster::shared();
    let chart = root().join("operator/chart");
    let chart = chart.to_string_lossy();
    helm(cluster, &["lint", "--strict", &chart]);

    let rendered = helm(
        cluster,
        &["template", "stash", &chart, "--namespace", "stash-system"],
    );
    let install = read("operator/deploy/install.yaml");
    let body = install
        .split_once("  name: stash-system\n")
        .expect("install.yaml starts with the Namespace")
        .1;
    assert_eq!(
        body, rendered,
        "install.yaml is the chart's default rendering: regenerate it as its header says"
    );
    assert_eq!(
        read("operator/chart/crds/stash.yaml"),
        read("operator/deploy/crds.yaml")
    );
    assert_eq!(
        read("operator/chart/files/alerts.yaml"),
        read("operator/deploy/monitoring/alerts.yaml")
    );

    let monitored = helm(
        cluster,
        &[
            "template",
            "stash",
            &chart,
            "--namespace",
            "stash-system",
            "--set",
            "monitoring.serviceMonitor.enabled=true",
            "--set",
            "monitoring.prometheusRule.enabled=true",
            "--set",
            "leaderElection.enabled=false",
            "--set",
            "image.repository=registry.example.com/stash",
            "--set",
            "image.tag=v9",
        ],
    );
    for want in [
        "kind: ServiceMonitor",
        "kind: PrometheusRule",
        "- alert: StashBackupTooOld",
        "summary: \"Backup {{ $labels.namespace }}/{{ $labels.invoker_name }} failed\"",
        "replicas: 1",
        "image: registry.example.com/stash:v9",
        "value: registry.example.com/stash:v9",
    ] {
        assert!(monitored.contains(want), "{want} in\n{monitored}");
    }
    assert!(!rendered.contains("kind: ServiceMonitor"), "off by default");

    // The release the operator tests use.
    install_operator(cluster);
    let status = helm(cluster, &["status", "stash", "--namespace", "stash-system"]);
    assert!(status.contains("STATUS: deployed"), "{status}");
    let client = cluster.client().await;
    let d = Api::<Deployment>::namespaced(client, "stash-system")
        .get("stash-operator")
        .await
        .expect("the operator's Deployment");
    let labels = d.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("Helm")
    );
    assert_eq!(d.spec.replicas, Some(2));
}

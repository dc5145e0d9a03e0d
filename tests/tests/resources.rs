//! The resources' install: every YAML sample of the seed design and manifests written
//! for released Stash are accepted by the real API server with strict field
//! validation, and what they say is kept (nothing pruned).

use std::path::{Path, PathBuf};

use stash_tests::kube::{Cluster, TestNs};

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("fixture entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

/// `kubectl apply` with strict field validation (kubectl's default): Ok or kubectl's error.
fn apply(cluster: &Cluster, ns: Option<&str>, yaml: &str) -> Result<(), String> {
    let mut args = vec!["apply", "--validate=strict", "-f", "-"];
    if let Some(ns) = ns {
        args.extend(["-n", ns]);
    }
    let out = cluster.kubectl(&args, Some(yaml));
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn get(cluster: &Cluster, ns: &str, what: &str, jsonpath: &str) -> String {
    let jp = format!("jsonpath={jsonpath}");
    let out = cluster.kubectl(&["get", "-n", ns, what, "-o", &jp], None);
    assert!(
        out.status.success(),
        "kubectl get {what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The seed's samples, in its namespace `demo`. Two kinds of sample no API server
/// accepts, whatever the CRDs: Function and Task samples named in camelCase (object
/// names must be lower-case RFC 1123 subdomains), and the default-backup AppBinding
/// whose `annotations` sit inside `labels`. Those are asserted refused for that
/// reason, then applied with just that mended, so their schema is proven too.
#[tokio::test]
async fn the_seed_samples_apply_as_written() {
    let cluster = Cluster::shared();
    cluster.install_crds();
    let demo = r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"demo"}}"#;
    apply(cluster, None, demo).expect("namespace demo");
    for file in fixtures("seed") {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let yaml = std::fs::read_to_string(&file).unwrap();
        let camel = yaml
            .lines()
            .find_map(|l| l.strip_prefix("  name: "))
            .filter(|n| n.trim().chars().any(|c| c.is_ascii_uppercase()));
        let labels_hold_annotations = yaml.contains("    annotations:\n      stash.appscode.com");
        if yaml.contains("\nkind: BackupTemplate\n") {
            // Cluster-scoped and live: a stored template would give the annotated seed
            // targets of the operator tests sharing this cluster a default backup.
            let out = cluster.kubectl(
                &[
                    "apply",
                    "--validate=strict",
                    "--dry-run=server",
                    "-o",
                    "jsonpath={.spec.backend.gcs.prefix}",
                    "-f",
                    "-",
                ],
                Some(&yaml),
            );
            assert!(
                out.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                "${target.namespace}/${target.name}",
                "{name}"
            );
            continue;
        }
        match apply(cluster, None, &yaml) {
            Ok(()) => assert!(
                camel.is_none() && !labels_hold_annotations,
                "{name}: expected the API server to refuse it"
            ),
            Err(e) if camel.is_some() => {
                assert!(e.contains("RFC 1123 subdomain"), "{name}: {e}");
                let name_line = format!("  name: {}", camel.unwrap());
                let mended = yaml.replacen(&name_line, &name_line.to_ascii_lowercase(), 1);
                apply(cluster, None, &mended)
                    .unwrap_or_else(|e| panic!("{name} (lower-case name): {e}"));
            }
            Err(e) if labels_hold_annotations => {
                assert!(e.contains("labels"), "{name}: {e}");
                let mended =
                    yaml.replace("    annotations:\n      stash", "  annotations:\n    stash");
                apply(cluster, None, &mended)
                    .unwrap_or_else(|e| panic!("{name} (annotations mended): {e}"));
            }
            Err(e) => panic!("{name}: {e}"),
        }
    }
    // Kept as written, in both spellings of the Repository version; where the design's
    // spelling differs from released Stash's, an operator running in this cluster (the
    // operator tests share it) may have written the canonical one back: either reads.
    assert_eq!(
        get(
            cluster,
            "demo",
            "repositories.v1alpha2.stash.appscode.com/stash-backup-repo",
            "{.spec.backend.gcs.prefix}"
        ),
        "default/deployment/stash-demo"
    );
    let either = |what: &str, design: &str, released: &str| {
        let d = get(cluster, "demo", what, design);
        if d.is_empty() {
            get(cluster, "demo", what, released)
        } else {
            d
        }
    };
    assert_eq!(
        either(
            "backupconfiguration/workload-data-backup",
            "{.spec.target.directories[0]}",
            "{.spec.target.paths[0]}"
        ),
        "/source/data"
    );
    assert_eq!(
        get(
            cluster,
            "demo",
            "backupconfiguration/workload-data-backup",
            "{.spec.retentionPolicy.keepLast} {.spec.schedule}"
        ),
        "5 @every 1h"
    );
    assert_eq!(
        get(
            cluster,
            "demo",
            "backupconfiguration/database-backup-demo",
            "{.spec.task.database}"
        ),
        "my-postgres"
    );
    assert_eq!(
        get(
            cluster,
            "demo",
            "restoresession/recovery-volume-demo",
            "{.spec.target.mountPath}"
        ),
        "/source/data"
    );
    assert_eq!(
        either(
            "backupsession/demo-volume-backup-session",
            "{.spec.backupConfiguration.name}",
            "{.spec.invoker.name}"
        ),
        "volume-backup-demo"
    );
    assert_eq!(
        get(
            cluster,
            "",
            "task/pgbackup",
            "{.spec.functions[1].inputs.outputJsonDir}"
        ),
        "${output-dir}"
    );
    let out = cluster.kubectl(&["delete", "namespace", "demo", "--wait=false"], None);
    assert!(out.status.success());
}

#[tokio::test]
async fn released_stash_manifests_apply() {
    let ns = TestNs::new("released").await;
    ns.cluster.install_crds();
    for file in fixtures("released") {
        let yaml = std::fs::read_to_string(&file).unwrap();
        apply(ns.cluster, Some(&ns.name), &yaml)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
    let n = ns.name.as_str();
    assert_eq!(
        get(ns.cluster, n, "bc/sample-deployment-backup", "{.spec.target.paths[0]} {.spec.target.volumeMounts[0].name} {.spec.retentionPolicy.name} {.spec.tempDir.sizeLimit}"),
        "/source/data source-data keep-last-5 2Gi"
    );
    assert_eq!(
        get(
            ns.cluster,
            n,
            "bs/sample-deployment-backup-1700000000",
            "{.spec.invoker.kind}/{.spec.invoker.name}"
        ),
        "BackupConfiguration/sample-deployment-backup"
    );
    assert_eq!(
        get(
            ns.cluster,
            n,
            "restore/sample-statefulset-restore",
            "{.spec.target.rules[0].sourceHost}"
        ),
        "host-1"
    );
    assert_eq!(
        get(
            ns.cluster,
            n,
            "repo/local-repo",
            "{.spec.backend.local.persistentVolumeClaim.claimName}"
        ),
        "repo-pvc"
    );
    assert_eq!(
        get(
            ns.cluster,
            n,
            "app/sample-postgres",
            "{.spec.secret.kind}/{.spec.secret.name}"
        ),
        "Secret/sample-postgres-auth"
    );
    assert_eq!(
        get(
            ns.cluster,
            "",
            "fn/pvc-backup",
            "{.spec.runtimeSettings.env[0].value}"
        ),
        "bar"
    );
    // An unknown field is refused, not silently dropped.
    let typo = "apiVersion: stash.appscode.com/v1beta1\nkind: BackupConfiguration\nmetadata: {name: typo}\nspec:\n  repository: {name: r}\n  shedule: '@daily'\n";
    let err = apply(ns.cluster, Some(n), typo).expect_err("unknown field accepted");
    assert!(err.contains("shedule"), "{err}");
}

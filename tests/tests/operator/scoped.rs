//! An install for some namespaces only, with a Pushgateway: the chart installed with
//! `watchNamespaces` and `monitoring.pushgateway.url` into a cluster of this test's own
//! (the shared cluster's operator watches everything). In the two watched namespaces
//! the seed's workload backup (sidecar) and volume backup and restore (Jobs) run and
//! push their hosts' results to a real Pushgateway; a configuration in a third
//! namespace is never touched; the operator's account may not even list objects
//! outside its namespaces.

use std::{
    io::{Read, Write},
    net::TcpStream,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use k8s_openapi::api::apps::v1::Deployment;
use stash_operator::crd::{
    backup_configuration::BackupConfiguration, backup_session::BackupSession,
    restore_session::RestoreSession,
};
use stash_tests::kube::{Cluster, TestNs};

use super::support::{finished, install_chart, local_repository, ready, sample_data, seed};

const WAIT: Duration = Duration::from_secs(180);

/// A Pushgateway on a free loopback port, stopped when dropped.
struct Pushgateway {
    child: Child,
    addr: String,
}

impl Pushgateway {
    fn start() -> Pushgateway {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new("prometheus-pushgateway")
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-pushgateway (tests/run.sh installs it)");
        let p = Pushgateway { child, addr };
        let deadline = Instant::now() + Duration::from_secs(30);
        while p.get("/-/ready").is_none() {
            assert!(Instant::now() < deadline, "the Pushgateway did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    /// The body of `GET path`, if the answer is 200.
    fn get(&self, path: &str) -> Option<String> {
        let mut conn = TcpStream::connect(&self.addr).ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(conn, "GET {path} HTTP/1.0\r\n\r\n").ok()?;
        let mut text = String::new();
        conn.read_to_string(&mut text).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        let ok = head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200");
        ok.then(|| body.to_string())
    }

    /// The value of the sample of `metric` whose labels include all of `labels`.
    fn sample(&self, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let text = self.get("/metrics")?;
        text.lines()
            .filter(|l| l.starts_with(&format!("{metric}{{")))
            .find(|l| {
                labels
                    .iter()
                    .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
            })
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }
}

impl Drop for Pushgateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kubectl_ok(cluster: &Cluster, args: &[&str]) -> String {
    let out = cluster.kubectl(args, None);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespaced_install_acts_only_in_its_namespaces_and_pushes_results() {
    let cluster = Cluster::start_private("scoped");
    cluster.install_crds();
    let (a, b) = (
        TestNs::new_in(cluster, "team-a").await,
        TestNs::new_in(cluster, "team-b").await,
    );
    let outside = TestNs::new_in(cluster, "other").await;
    let gateway = Pushgateway::start();
    let watched = format!("watchNamespaces={{{},{}}}", a.name, b.name);
    let pushing = format!("monitoring.pushgateway.url=http://{}", gateway.addr);
    install_chart(
        cluster,
        &["leaderElection.enabled=false", &watched, &pushing],
    );

    // The operator's account: the namespaced kinds in its namespaces only.
    let account = "system:serviceaccount:stash-system:stash-operator";
    let can = |ns: &str| {
        kubectl_ok(
            cluster,
            &[
                "auth",
                "can-i",
                "list",
                "backupconfigurations.stash.appscode.com",
                "-n",
                ns,
                "--as",
                account,
            ],
        )
    };
    assert_eq!(can(&a.name), "yes");
    assert_eq!(can(&b.name), "yes");
    assert_eq!(can(&outside.name), "no");
    assert_eq!(
        kubectl_ok(
            cluster,
            &[
                "auth",
                "can-i",
                "list",
                "backupconfigurations.stash.appscode.com",
                "-A",
                "--as",
                account
            ],
        ),
        "no"
    );

    // Team A: the seed's workload backup through the sidecar.
    let work = tempfile::tempdir().expect("temp dir");
    let (repo_a, repo_b, repo_out) = (
        work.path().join("a"),
        work.path().join("b"),
        work.path().join("out"),
    );
    for (ns, dir) in [(&a, &repo_a), (&b, &repo_b), (&outside, &repo_out)] {
        std::fs::create_dir_all(dir).expect("repo dir");
        local_repository(ns, dir);
    }
    sample_data(
        &a,
        &[("index.html", "<h1>team a</h1>\n"), ("notes.txt", "1\n")],
    );
    a.apply(&seed("13-deployment-stash-demo.yaml", &a.name));
    a.apply(&seed(
        "02-backupconfiguration-workload-data-backup.yaml",
        &a.name,
    ));
    // The same configuration where the operator does not look.
    sample_data(&outside, &[("index.html", "not watched\n")]);
    outside.apply(&seed("13-deployment-stash-demo.yaml", &outside.name));
    outside.apply(&seed(
        "02-backupconfiguration-workload-data-backup.yaml",
        &outside.name,
    ));
    ready(&a, "workload-data-backup").await;
    a.wait_for::<Deployment>("stash-demo", "the sidecar", Duration::from_secs(60), |d| {
        d.spec
            .template
            .spec
            .as_ref()
            .is_some_and(|s| s.containers.iter().any(|c| c.name == "stash"))
    })
    .await;
    let trigger = seed("11-backupsession-demo-volume-backup-session.yaml", &a.name)
        .replace("name: volume-backup-demo", "name: workload-data-backup");
    a.apply(&trigger);

    // Team B: the seed's claim backup and restore as Jobs.
    b.apply(&seed("15-persistentvolumeclaim-demo-pvc.yaml", &b.name));
    let claim = b.claim_dir("demo-pvc");
    std::fs::create_dir_all(&claim).expect("claim dir");
    std::fs::write(claim.join("data.txt"), "team b\n").expect("claim data");
    b.apply(&seed(
        "05-backupconfiguration-volume-backup-demo.yaml",
        &b.name,
    ));
    ready(&b, "volume-backup-demo").await;
    b.apply(&seed(
        "11-backupsession-demo-volume-backup-session.yaml",
        &b.name,
    ));

    for ns in [&a, &b] {
        let bs = ns
            .wait_for::<BackupSession>(
                "demo-volume-backup-session",
                "a finished backup",
                WAIT,
                |s| finished(s.status.as_ref().and_then(|s| s.phase.as_deref())),
            )
            .await;
        let status = bs.status.expect("status");
        assert_eq!(
            status.phase.as_deref(),
            Some("Succeeded"),
            "{status:?}\n{}",
            ns.diagnostics()
        );
    }
    std::fs::remove_file(claim.join("data.txt")).expect("empty the claim");
    b.apply(&seed(
        "06-restoresession-recovery-volume-demo.yaml",
        &b.name,
    ));
    let rs = b
        .wait_for::<RestoreSession>("recovery-volume-demo", "a finished restore", WAIT, |r| {
            finished(r.status.as_ref().and_then(|s| s.phase.as_deref()))
        })
        .await;
    assert_eq!(
        rs.status.and_then(|s| s.phase).as_deref(),
        Some("Succeeded"),
        "{}",
        b.diagnostics()
    );
    assert_eq!(
        std::fs::read_to_string(claim.join("data.txt")).expect("restored"),
        "team b\n"
    );

    // Each host's result reached the Pushgateway: the sidecar's, the backup Job's
    // and the restore Job's.
    let pushed = |metric: &'static str, ns: &TestNs, invoker: &'static str| {
        let labels = [
            (
                "job",
                if metric.contains("restore") {
                    "stash-restore"
                } else {
                    "stash-backup"
                },
            ),
            ("namespace", ns.name.as_str()),
            ("invoker_name", invoker),
            ("host", "host-0"),
        ];
        gateway.sample(metric, &labels)
    };
    assert_eq!(
        pushed(
            "stash_backup_host_backup_success",
            &a,
            "workload-data-backup"
        ),
        Some(1.0),
        "{:?}",
        gateway.get("/metrics")
    );
    assert_eq!(
        pushed("stash_backup_host_files_total", &a, "workload-data-backup"),
        Some(2.0)
    );
    assert_eq!(
        pushed("stash_backup_host_backup_success", &b, "volume-backup-demo"),
        Some(1.0)
    );
    assert_eq!(
        pushed(
            "stash_restore_host_restore_success",
            &b,
            "recovery-volume-demo"
        ),
        Some(1.0),
        "{:?}",
        gateway.get("/metrics")
    );

    // Outside: no finalizer, no status, no sidecar, no Role: never touched.
    let untouched = outside
        .api::<BackupConfiguration>()
        .get("workload-data-backup")
        .await
        .expect("the configuration outside");
    assert!(untouched.metadata.finalizers.unwrap_or_default().is_empty());
    assert!(untouched.status.is_none(), "{:?}", untouched.status);
    let deployment = outside
        .api::<Deployment>()
        .get("stash-demo")
        .await
        .expect("the deployment outside");
    assert!(deployment
        .spec
        .template
        .spec
        .is_some_and(|s| s.containers.iter().all(|c| c.name != "stash")));
    assert!(!repo_out.join("config").exists());

    // The operator said what it watches and was refused nothing.
    let logs = cluster.kubelet_state.join("logs/stash-system");
    let log: String = std::fs::read_dir(logs)
        .into_iter()
        .flatten()
        .flatten()
        .map(|pod| std::fs::read_to_string(pod.path().join("operator.log")).unwrap_or_default())
        .collect();
    let mut watched = [a.name.clone(), b.name.clone()];
    watched.sort();
    assert!(
        log.contains(&format!("watching namespaces {}", watched.join(", "))),
        "{log}"
    );
    assert!(!log.to_lowercase().contains("forbidden"), "{log}");
}

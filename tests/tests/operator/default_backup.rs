//! Default backup: the seed's PVC template and annotated claim make a Repository and a
//! BackupConfiguration named `persistentvolumeclaim-demo-pvc` in the claim's namespace,
//! whose backup lands where the template's `${target.*}` say; a change of the template
//! reaches the configuration; removing the annotation deletes both; a template whose
//! Secret the namespace lacks creates nothing and says so.

use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use stash_operator::crd::{backup_configuration::BackupConfiguration, repository::Repository};
use stash_tests::kube::TestNs;

use super::support::{back_up, ready, restic, seed, setup, Setup};

const WAIT: Duration = Duration::from_secs(90);
const GENERATED: &str = "persistentvolumeclaim-demo-pvc";

/// The seed's volume template under `name`, with a hostPath backend under `dir`
/// instead of GCS; its schedule `schedule` and Secret `secret`.
fn template(name: &str, dir: &std::path::Path, schedule: &str, secret: &str) -> String {
    let seed = seed("14-backuptemplate-volume-backup-template.yaml", "unused");
    let spec = seed.split_once("  schedule:").expect("a schedule").1;
    format!(
        "apiVersion: stash.appscode.com/v1beta1
kind: BackupTemplate
metadata:
  name: {name}
spec:
  backend:
    local:
      hostPath:
        path: {dir}
      mountPath: /safe/data
      subPath: ${{target.namespace}}/${{target.name}}
    storageSecretName: {secret}
  schedule: '{schedule}'
{rest}",
        dir = dir.display(),
        rest = spec.split_once('\n').expect("more lines").1,
    )
}

fn claim(ns: &TestNs, name: &str, template: Option<&str>) {
    let mut yaml = seed("15-persistentvolumeclaim-demo-pvc.yaml", &ns.name)
        .replace("name: demo-pvc", &format!("name: {name}"));
    yaml = match template {
        Some(t) => yaml.replace("\"volume-backup-template\"", &format!("{t:?}")),
        None => yaml
            .lines()
            .filter(|l| !l.contains("annotations:") && !l.contains("backuptemplate"))
            .collect::<Vec<_>>()
            .join("\n"),
    };
    ns.apply(&yaml);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_template_backs_up_an_annotated_claim_until_the_annotation_goes() {
    let Setup { ns, work, .. } = setup("op-default").await;
    let name = format!("{}-volume", ns.name);
    let dir = work.path().join("repos");
    ns.apply(&template(&name, &dir, "@every 1h", "gcs-secret"));
    claim(&ns, "demo-pvc", Some(&name));

    let bc = ready(&ns, GENERATED).await;
    assert_eq!(bc.spec.repository.name, GENERATED);
    let target = bc.spec.target.clone().expect("target");
    assert_eq!(target.mount_path.as_deref(), Some("/demo-pvc"));
    let repo = ns
        .wait_for::<Repository>(GENERATED, "the generated Repository", WAIT, |_| true)
        .await;
    let local = repo.spec.backend.local.expect("local");
    let sub = format!("{}/demo-pvc", ns.name);
    assert_eq!(local.sub_path.as_deref(), Some(sub.as_str()));

    let data = ns.claim_dir("demo-pvc");
    std::fs::create_dir_all(&data).expect("the claim's directory");
    std::fs::write(data.join("a.txt"), b"by default\n").expect("write");
    let bs = back_up(&ns, "auto-1", GENERATED).await;
    let status = bs.status.expect("status");
    assert_eq!(
        status.phase.as_deref(),
        Some("Succeeded"),
        "{status:?}\n{}",
        ns.diagnostics()
    );
    let out = restic(&dir.join(&sub), &["ls", "latest"]);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("/demo-pvc/a.txt"), "{listing}");

    // The template's change reaches the configuration.
    ns.apply(&template(&name, &dir, "@every 2h", "gcs-secret"));
    ns.wait_for::<BackupConfiguration>(GENERATED, "the new schedule", WAIT, |bc| {
        bc.spec.schedule.as_deref() == Some("@every 2h")
    })
    .await;

    // Without the annotation, both generated objects go.
    claim(&ns, "demo-pvc", None);
    ns.wait_gone::<BackupConfiguration>(GENERATED, WAIT).await;
    ns.wait_gone::<Repository>(GENERATED, WAIT).await;

    // A template whose Secret this namespace lacks: an Event on the claim, nothing made.
    let missing = format!("{}-missing", ns.name);
    ns.apply(&template(&missing, &dir, "@every 1h", "no-such-secret"));
    claim(&ns, "other-pvc", Some(&missing));
    let events = ns.api::<Event>();
    let note = ns
        .eventually("a SecretNotFound Event", WAIT, || {
            let events = events.clone();
            async move {
                let list = events.list(&Default::default()).await.ok()?;
                list.items.into_iter().find_map(|e| {
                    (e.reason.as_deref() == Some("SecretNotFound")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref())
                            == Some("other-pvc"))
                    .then(|| e.note.unwrap_or_default())
                })
            }
        })
        .await;
    assert!(note.contains("no-such-secret"), "{note}");
    let bcs = ns.api::<BackupConfiguration>();
    assert!(bcs
        .get_opt("persistentvolumeclaim-other-pvc")
        .await
        .expect("get")
        .is_none());
}

use super::*;

fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The seed's sample Deployment's annotations.
fn seed() -> BTreeMap<String, String> {
    annotations(&[
        (RESTORE_POLICY, "OnRestart"),
        (REPOSITORY, "demo-backup-repo"),
        (DIRECTORIES, "[/source/data]"),
    ])
}

fn template() -> PodTemplateSpec {
    serde_json::from_value(serde_json::json!({
        "metadata": {"labels": {"app": "stash-demo"}},
        "spec": {
            "containers": [{
                "name": "busybox", "image": "busybox",
                "volumeMounts": [{"mountPath": "/source/data", "name": "source-data"}]
            }],
            "volumes": [{"name": "source-data", "emptyDir": {}}]
        }
    }))
    .unwrap()
}

fn inputs(t: &PodTemplateSpec, request: Request) -> Inputs {
    Inputs {
        volume_mounts: mounts_for_directories(t, &request.directories).unwrap(),
        request,
        target_kind: "Deployment".into(),
        image: "stash:test".into(),
        support: Support {
            pushgateway: None,
            storage_secret: "s3-secret".into(),
            temp_dir: None,
            repository_volume: None,
        },
    }
}

#[test]
fn the_seed_annotations_ask_for_a_restore_of_empty_directories() {
    let r = request(&seed()).unwrap().unwrap();
    assert_eq!(
        r,
        Request {
            repository: "demo-backup-repo".into(),
            directories: vec!["/source/data".into()],
            overwrite: false,
        }
    );
    let mut a = seed();
    a.insert(DIRECTORIES.into(), "/a, /b".into());
    a.insert(OVERWRITE.into(), "true".into());
    let r = request(&a).unwrap().unwrap();
    assert_eq!(r.directories, ["/a", "/b"]);
    assert!(r.overwrite);
    assert_eq!(request(&annotations(&[(REPOSITORY, "r")])), Ok(None));
}

#[test]
fn bad_annotations_name_the_annotation() {
    let with = |k: &str, v: &str| {
        let mut a = seed();
        if v.is_empty() {
            a.remove(k);
        } else {
            a.insert(k.into(), v.into());
        }
        request(&a).unwrap_err().to_string()
    };
    assert!(with(RESTORE_POLICY, "Always").contains(RESTORE_POLICY));
    assert!(with(REPOSITORY, "").contains(REPOSITORY));
    assert!(with(DIRECTORIES, "").contains(DIRECTORIES));
    assert!(with(DIRECTORIES, "[]").contains("lists no directory"));
    assert!(with(DIRECTORIES, "[source/data]").contains("not an absolute path"));
    assert!(with(DIRECTORIES, "[/a").contains("not a list"));
    assert!(with(OVERWRITE, "yes").contains(OVERWRITE));
}

#[test]
fn data_is_overwritten_only_when_asked() {
    assert!(restores(DirState::Missing, false));
    assert!(restores(DirState::Empty, false));
    assert!(!restores(DirState::HasData, false));
    assert!(restores(DirState::HasData, true));
    assert!(empty_listing([]));
    assert!(empty_listing(["lost+found"]));
    assert!(!empty_listing(["lost+found", "db"]));
}

#[test]
fn the_init_container_restores_the_annotated_directories_once_per_input() {
    let t = template();
    let r = request(&seed()).unwrap().unwrap();
    let injected = inject(&t, &inputs(&t, r.clone()), &[]).unwrap().unwrap();
    let spec = injected.spec.as_ref().unwrap();
    let init = &spec.init_containers.as_ref().unwrap()[0];
    assert_eq!(init.name, CONTAINER);
    let args = init.args.as_ref().unwrap();
    for a in [
        "auto-restore",
        "--repository=demo-backup-repo",
        "--target-kind=Deployment",
        "--directory=/source/data",
    ] {
        assert!(args.iter().any(|x| x == a), "{a} in {args:?}");
    }
    assert!(!args.iter().any(|x| x == "--overwrite"));
    let data = init
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == "/source/data")
        .unwrap();
    assert_eq!(data.read_only, Some(false));
    assert_eq!(
        inject(&injected, &inputs(&t, r.clone()), &[]).unwrap(),
        None
    );

    // A changed annotation changes the container (one rollout), never adds a second.
    let again = inject(
        &injected,
        &inputs(
            &t,
            Request {
                overwrite: true,
                ..r
            },
        ),
        &[],
    )
    .unwrap()
    .unwrap();
    let inits = again.spec.unwrap().init_containers.unwrap();
    assert_eq!(inits.len(), 1);
    assert!(inits[0]
        .args
        .as_ref()
        .unwrap()
        .contains(&"--overwrite".to_string()));

    assert_eq!(remove(&injected).unwrap().spec, t.spec);
    assert_eq!(remove(&t), None);
}

#[test]
fn a_directory_on_no_volume_is_refused() {
    let t = template();
    assert_eq!(
        mounts_for_directories(&t, &["/var/lib/db".into()]),
        Err(TemplateError::NotOnAVolume {
            directory: "/var/lib/db".into()
        })
    );
}

#[test]
fn it_lives_beside_a_restore_sessions_init_container() {
    let t = template();
    let session = crate::init_container::Inputs {
        restore_session: "r".into(),
        image: "stash:test".into(),
        volume_mounts: crate::init_container::mounts_for_directories(&t, &["/source/data".into()])
            .unwrap(),
        support: inputs(&t, request(&seed()).unwrap().unwrap()).support,
    };
    let with_session = crate::init_container::inject(&t, &session, &[])
        .unwrap()
        .unwrap();
    let r = request(&seed()).unwrap().unwrap();
    let both = inject(&with_session, &inputs(&t, r), &[]).unwrap().unwrap();
    let names: Vec<_> = both
        .spec
        .as_ref()
        .unwrap()
        .init_containers
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, [crate::init_container::CONTAINER, CONTAINER]);
    assert_eq!(remove(&both).unwrap().spec, with_session.spec);
}

//! The container image built without a daemon (`operator/deploy/image.sh`): umoci
//! unpacks its OCI layout as a runtime would, and from that root file system, as the
//! image's non-root user, `stash version` and the PostgreSQL client run with nothing
//! but what the image holds.

use std::process::Command;

use super::util::stash_bin;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_image_runs_stash_version_as_its_non_root_user() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let work = tempfile::tempdir().expect("temp dir");
    let layout = work.path().join("layout");
    let bundle = work.path().join("bundle");
    run(Command::new(root.join("operator/deploy/image.sh"))
        .arg("--binary")
        .arg(stash_bin())
        .arg("--tag")
        .arg("test")
        .arg("--out")
        .arg(&layout));
    run(Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:test", layout.display()))
        .arg(&bundle));

    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(bundle.join("config.json")).expect("runtime config"),
    )
    .expect("JSON");
    let process = &config["process"];
    assert_eq!(process["user"]["uid"], 65532, "{process}");
    assert_eq!(process["user"]["gid"], 65532, "{process}");
    assert_eq!(process["args"][0], "/usr/local/bin/stash");

    let rootfs = bundle.join("rootfs");
    assert!(!rootfs.join("bin/sh").exists(), "no shell in the image");
    let in_image = |args: &[&str]| {
        run(Command::new("unshare")
            .arg(format!("--root={}", rootfs.display()))
            .args(["--setuid", "65532", "--setgid", "65532"])
            .args(args))
    };
    let version = in_image(&["/usr/local/bin/stash", "version"]);
    assert!(
        version.starts_with(&format!("stash {} ", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    let pg = in_image(&["/usr/local/bin/pg_dump", "--version"]);
    assert!(pg.contains("PostgreSQL"), "{pg}");
}

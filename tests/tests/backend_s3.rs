//! S3 against moto's server: the conformance suite, and restic ⇄ stash through one
//! bucket.

use std::{path::Path, time::Instant};

use stash_agent::backend::{cloud::Vars, conformance};
use stash_repo_format::file_type::FileType;

use crate::backend_support::*;

fn s3_vars() -> Vars {
    Vars::from_pairs(s3_env())
}

fn env_with<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut e = s3_env();
    e.extend_from_slice(extra);
    e
}

fn pack_bytes(location: &str) -> u64 {
    let (b, _) = cloud_backend(location, &s3_vars());
    rt().block_on(b.list(FileType::Pack))
        .expect("list packs")
        .iter()
        .map(|(_, n)| n)
        .sum()
}

#[test]
fn s3_conformance() {
    let moto = start_moto();
    s3_create_bucket(&moto, "conf");
    let rt = rt();
    for loc in [
        format!("s3:http://127.0.0.1:{}/conf/some/prefix", moto.port),
        format!("s3:http://127.0.0.1:{}/conf", moto.port),
    ] {
        let (b, raw) = cloud_backend(&loc, &s3_vars());
        rt.block_on(conformance::run(b, Some(raw)));
    }
}

/// With conditional puts turned off (servers without `If-None-Match`), writes fall
/// back to overwrites for content-addressed files and a checked write of the config.
#[test]
fn s3_conformance_without_conditional_put() {
    let moto = start_moto();
    s3_create_bucket(&moto, "nocond");
    let mut vars = s3_env();
    vars.push(("AWS_CONDITIONAL_PUT", "disabled"));
    let loc = format!("s3:http://127.0.0.1:{}/nocond/p", moto.port);
    let (b, raw) = cloud_backend(&loc, &Vars::from_pairs(vars));
    rt().block_on(conformance::run(b, Some(raw)));
}

/// A test CA, and a certificate it signed for 127.0.0.1 (valid for 100 years).
const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBlzCCAT2gAwIBAgIUZKjhKOgW5oApZAqaqT4r0s/NOhAwCgYIKoZIzj0EAwIw
GDEWMBQGA1UEAwwNc3Rhc2ggdGVzdCBDQTAgFw0yNjExMjQyMzQ2MzRaGA8yMTI2
MTAzMTIzNDYzNFowGDEWMBQGA1UEAwwNc3Rhc2ggdGVzdCBDQTBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABPUxif86S8yjr6U/KeZOsyN8FojKSrNBzyFyYIZWd3+L
nfA8L+zpzjOBVYKY+qsY6kZMXyFQbKMq4NszeW0nuRmjYzBhMB0GA1UdDgQWBBTC
kuzePZ0IzM3teBazZSL4iMx7pzAfBgNVHSMEGDAWgBTCkuzePZ0IzM3teBazZSL4
iMx7pzAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwIBBjAKBggqhkjOPQQD
AgNIADBFAiEA+LXWtHvtM+LAsp+8O9CYwRGTuld8nvyP5+dD+SAqNwACICHrSzeJ
XaWP8mWv7BMLw27i1exb2yQgzPnJHt1IDdYg
-----END CERTIFICATE-----
";
const TEST_LEAF: &str = "-----BEGIN CERTIFICATE-----
MIIBxDCCAWmgAwIBAgIUDifU7emaRaTXNsEaZ85L2doNmdkwCgYIKoZIzj0EAwIw
GDEWMBQGA1UEAwwNc3Rhc2ggdGVzdCBDQTAgFw0yNjExMjQyMzQ2MzRaGA8yMTI2
MTAzMTIzNDYzNFowFDESMBAGA1UEAwwJMTI3LjAuMC4xMFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAE1I27HK8YFLIrPBnyORAv9q1zw6suCFku9CHeq84FnHQ1szDy
kNSJVjCtImmCcezc6ygZzf8UBGglc3FDIKOxzqOBkjCBjzAaBgNVHREEEzARhwR/
AAABgglsb2NhbGhvc3QwDAYDVR0TAQH/BAIwADATBgNVHSUEDDAKBggrBgEFBQcD
ATAOBgNVHQ8BAf8EBAMCB4AwHQYDVR0OBBYEFCc+EJN1bMrIWcxC/ZhiHDq/4Cod
MB8GA1UdIwQYMBaAFMKS7N49nQjMze14FrNlIviIzHunMAoGCCqGSM49BAMCA0kA
MEYCIQCkC5naiPMCshXc5RBQA3Lws97UwG++HH/BfZnNW9bONQIhAJfZaw1dn+NY
0wYWcAU/yHyFLVJvXXRd0jOJFesb51n/
-----END CERTIFICATE-----
";
const TEST_LEAF_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgU4bsQVgHQ/nGgoo7
5qpMHCilrbnd10Z0rBt4JprQopahRANCAATUjbscrxgUsis8GfI5EC/2rXPDqy4I
WS70Id6rzgWcdDWzMPKQ1IlWMK0iaYJx7NzrKBnN/xQEaCVzcUMgo7HO
-----END PRIVATE KEY-----
";

/// S3 over https with a server certificate from a private CA, trusted through
/// `CA_CERT_DATA`; without it the connection is refused at once (not retried).
#[test]
fn s3_https_with_custom_ca() {
    let tls = tempfile::tempdir().unwrap();
    let (cert, key, ca) = (
        tls.path().join("leaf.pem"),
        tls.path().join("leaf.key"),
        tls.path().join("ca.pem"),
    );
    std::fs::write(&cert, TEST_LEAF).unwrap();
    std::fs::write(&key, TEST_LEAF_KEY).unwrap();
    std::fs::write(&ca, TEST_CA).unwrap();
    let prog =
        which("moto_server").expect("moto_server is not installed; pip install 'moto[server]'");
    let moto = start(
        "moto_server (https)",
        &prog,
        &[
            "-H",
            "127.0.0.1",
            "-p",
            "{port}",
            "-s",
            "-c",
            cert.to_str().unwrap(),
            "-k",
            key.to_str().unwrap(),
        ],
        "pip install 'moto[server]'",
    );
    // Create the bucket over TLS with Python's client.
    let py = format!(
        "import ssl, urllib.request as u\n\
         c = ssl.create_default_context(cafile={ca:?})\n\
         u.urlopen(u.Request('https://127.0.0.1:{}/tlsbucket', method='PUT'), context=c)",
        moto.port
    );
    run_ok(&which("python3").expect("python3"), &["-c", &py], &[]);
    let loc = format!("s3:https://127.0.0.1:{}/tlsbucket/repo", moto.port);
    let mut vars = s3_env();
    vars.push(("CA_CERT_DATA", TEST_CA));
    let (b, raw) = cloud_backend(&loc, &Vars::from_pairs(vars));
    rt().block_on(conformance::run(b, Some(raw)));

    let (b, _) = cloud_backend(&loc, &s3_vars());
    let t = Instant::now();
    let e = rt().block_on(b.has_config()).unwrap_err();
    assert!(!e.is_transient(), "{e}");
    assert!(
        format!("{e:?}")
            .to_ascii_lowercase()
            .contains("certificate"),
        "{e:?}"
    );
    assert!(
        t.elapsed().as_secs() < 20,
        "an untrusted certificate was retried: {e}"
    );

    // Through the CLI: the CA from a secret directory.
    let secrets = tls.path().join("secret");
    std::fs::create_dir(&secrets).unwrap();
    std::fs::write(secrets.join("CA_CERT_DATA"), TEST_CA).unwrap();
    std::fs::write(secrets.join("AWS_ACCESS_KEY_ID"), "test").unwrap();
    std::fs::write(secrets.join("AWS_SECRET_ACCESS_KEY"), "test").unwrap();
    let sd = secrets.to_str().unwrap();
    run_ok(stash_bin(), &["--secret-dir", sd, "-r", &loc, "init"], &[]);
    run_ok(
        stash_bin(),
        &["--secret-dir", sd, "-r", &loc, "snapshots"],
        &[],
    );

    // Through the CLI flags: --cacert trusts the CA, --insecure-tls any certificate;
    // neither, and the certificate is refused.
    let keys = s3_env();
    let ca_file = ca.to_str().unwrap();
    run_ok(
        stash_bin(),
        &["--cacert", ca_file, "-r", &loc, "snapshots"],
        &keys,
    );
    run_ok(
        stash_bin(),
        &["--insecure-tls", "-r", &loc, "snapshots"],
        &keys,
    );
    let refused = run(stash_bin(), &["-r", &loc, "snapshots"], &keys);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .to_ascii_lowercase()
            .contains("certificate"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

/// Keys and region from an AWS profile in the shared files, without any AWS_*
/// credential in the environment; a profile that is not there is a clear error.
#[test]
fn s3_credentials_from_an_aws_profile() {
    let moto = start_moto();
    s3_create_bucket(&moto, "profiled");
    let loc = format!("s3:http://127.0.0.1:{}/profiled/repo", moto.port);
    let aws = tempfile::tempdir().unwrap();
    let (creds, config) = (aws.path().join("credentials"), aws.path().join("config"));
    std::fs::write(
        &creds,
        "[default]\naws_access_key_id = wrong\n[moto]\naws_access_key_id = test\n\
         aws_secret_access_key = test\n",
    )
    .unwrap();
    std::fs::write(&config, "[profile moto]\nregion = us-east-1\n").unwrap();
    let env = |profile: &'static str| {
        vec![
            ("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap()),
            ("AWS_CONFIG_FILE", config.to_str().unwrap()),
            ("AWS_PROFILE", profile),
        ]
    };
    run_ok(stash_bin(), &["-r", &loc, "init"], &env("moto"));
    run_ok(stash_bin(), &["-r", &loc, "snapshots"], &env("moto"));
    let missing = run(stash_bin(), &["-r", &loc, "snapshots"], &env("absent"));
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("AWS_PROFILE \"absent\": no such profile"),
        "{err}"
    );
}

#[test]
fn s3_missing_bucket_is_a_clear_error() {
    let moto = start_moto();
    let repo = format!("s3:http://127.0.0.1:{}/no-such-bucket/p", moto.port);
    let out = run(stash_bin(), &["-r", &repo, "snapshots"], &s3_env());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no repository at s3:"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // Without keys to sign with, init cannot create the bucket and says so.
    let out = run(
        stash_bin(),
        &["-r", &repo, "init"],
        &[("AWS_DEFAULT_REGION", "us-east-1")],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "\"no-such-bucket\" does not exist and cannot be created without AWS_ACCESS_KEY_ID"
        ),
        "{err}"
    );
}

#[test]
fn s3_restic_repository_restored_and_extended_by_stash() {
    let moto = start_moto();
    s3_create_bucket(&moto, "xrepo");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, 11, 24 << 20);
    let repo = format!("s3:http://127.0.0.1:{}/xrepo/made-by-restic", moto.port);
    let restic = restic_bin();
    let srcs = src.to_str().unwrap();
    run_ok(&restic, &["-r", &repo, "init"], &s3_env());
    run_ok(&restic, &["-r", &repo, "backup", srcs], &s3_env());

    // stash restores restic's snapshot identically.
    let t1 = tmp.path().join("t1");
    run_ok(
        stash_bin(),
        &[
            "-r",
            &repo,
            "restore",
            "latest",
            "--target",
            t1.to_str().unwrap(),
        ],
        &s3_env(),
    );
    assert_same_tree(&src, &restored(&t1, &src));

    // stash adds a snapshot reading every file again: everything deduplicates,
    // the packs grow by the new tree blobs only.
    let before = pack_bytes(&repo);
    let out = run_ok(
        stash_bin(),
        &["-r", &repo, "--json", "backup", "--force", srcs],
        &s3_env(),
    );
    let after = pack_bytes(&repo);
    let summary: serde_json::Value = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message_type"] == "summary")
        .expect("a JSON summary line");
    assert_eq!(summary["data_blobs"], 0, "{summary}");
    let growth = after - before;
    assert!(
        growth < 256 << 10,
        "packs grew by {growth} bytes (from {before}) for an unchanged tree"
    );

    // restic reads the result.
    run_ok(&restic, &["-r", &repo, "check", "--read-data"], &s3_env());
    let snaps = run_ok(&restic, &["-r", &repo, "snapshots", "--json"], &s3_env());
    let snaps: serde_json::Value = serde_json::from_slice(&snaps.stdout).unwrap();
    assert_eq!(snaps.as_array().map(Vec::len), Some(2), "{snaps}");
    let t2 = tmp.path().join("t2");
    run_ok(
        &restic,
        &[
            "-r",
            &repo,
            "restore",
            "latest",
            "--target",
            t2.to_str().unwrap(),
        ],
        &s3_env(),
    );
    assert_same_tree(&src, &restored(&t2, &src));
}

/// stash writes to S3 with credentials from a secret directory only; restic checks
/// every byte and restores it identically.
#[test]
fn s3_stash_repository_checked_and_restored_by_restic() {
    let moto = start_moto();
    s3_create_bucket(&moto, "srepo");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, 12, 24 << 20);
    let secrets = tmp.path().join("secret");
    std::fs::create_dir(&secrets).unwrap();
    std::fs::write(secrets.join("AWS_ACCESS_KEY_ID"), "test\n").unwrap();
    std::fs::write(secrets.join("AWS_SECRET_ACCESS_KEY"), "test\n").unwrap();
    let repo = format!("s3:http://127.0.0.1:{}/srepo/made/by/stash", moto.port);
    let sd = secrets.to_str().unwrap();
    let srcs = src.to_str().unwrap();
    run_ok(stash_bin(), &["--secret-dir", sd, "-r", &repo, "init"], &[]);
    run_ok(
        stash_bin(),
        &["--secret-dir", sd, "-r", &repo, "backup", srcs],
        &[],
    );
    // A second, incremental backup after a change.
    std::fs::write(src.join("d0/new-file"), b"added between the backups").unwrap();
    run_ok(
        stash_bin(),
        &["--secret-dir", sd, "-r", &repo, "backup", srcs],
        &[],
    );
    run_ok(
        stash_bin(),
        &["--secret-dir", sd, "-r", &repo, "check", "--read-data"],
        &[],
    );

    let restic = restic_bin();
    run_ok(&restic, &["-r", &repo, "check", "--read-data"], &s3_env());
    let t = tmp.path().join("t");
    run_ok(
        &restic,
        &[
            "-r",
            &repo,
            "restore",
            "latest",
            "--target",
            t.to_str().unwrap(),
        ],
        &s3_env(),
    );
    assert_same_tree(&src, &restored(&t, &src));
    // The keys really are under the prefix.
    let (b, _) = cloud_backend(&repo, &s3_vars());
    assert!(rt().block_on(b.has_config()).unwrap());
}

/// Measures a ~200 MB backup to moto by stash and by restic (fresh prefixes in one
/// bucket, same server). Prints the times and the ratio; run with
/// `cargo test -p stash-tests --test backends -- --ignored s3_throughput --nocapture`.
#[test]
#[ignore = "a measurement, not a check: takes minutes"]
fn s3_throughput_vs_restic() {
    let moto = start_moto();
    s3_create_bucket(&moto, "speed");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let mb: usize = std::env::var("STASH_THROUGHPUT_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    make_tree(&src, 13, mb << 20);
    let srcs = src.to_str().unwrap();
    let restic = restic_bin();
    let time = |prog: &Path, repo: &str| {
        run_ok(prog, &["-r", repo, "init"], &env_with(&[]));
        let t = Instant::now();
        run_ok(prog, &["-r", repo, "backup", srcs], &env_with(&[]));
        t.elapsed().as_secs_f64()
    };
    let mut results = Vec::new();
    for round in 0..2 {
        let r = time(
            &restic,
            &format!("s3:http://127.0.0.1:{}/speed/restic{round}", moto.port),
        );
        let s = time(
            stash_bin(),
            &format!("s3:http://127.0.0.1:{}/speed/stash{round}", moto.port),
        );
        println!(
            "round {round}: restic {r:.1} s, stash {s:.1} s, restic/stash {:.2}",
            r / s
        );
        results.push((r, s));
    }
    let (r, s) = results
        .iter()
        .fold((0.0, 0.0), |(a, b), (r, s)| (a + r, b + s));
    println!(
        "{mb} MB to moto: restic {:.1} s, stash {:.1} s (means of {}); stash is {:.2}x restic's speed",
        r / results.len() as f64,
        s / results.len() as f64,
        results.len(),
        r / s
    );
}

/// A cloud repository is cached by default under `$XDG_CACHE_HOME/stash`: with the
/// tree packs gone from the bucket, `ls` still answers from the cache, and
/// `--no-cache` shows the cache was what answered.
#[test]
fn s3_cache_serves_snapshots_index_and_trees() {
    let moto = start_moto();
    s3_create_bucket(&moto, "cached");
    let loc = format!("s3:http://127.0.0.1:{}/cached/repo", moto.port);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, 5, 2 << 20);
    let xdg = tmp.path().join("xdg");
    let env = env_with(&[
        ("RESTIC_PASSWORD", "pw"),
        // Empty: unset, so the default under XDG_CACHE_HOME applies.
        ("RESTIC_CACHE_DIR", ""),
        ("XDG_CACHE_HOME", xdg.to_str().unwrap()),
    ]);
    run_ok(stash_bin(), &["-r", &loc, "init"], &env);
    run_ok(
        stash_bin(),
        &["-r", &loc, "backup", src.to_str().unwrap()],
        &env,
    );
    let listed = |extra: &[&str]| {
        let mut args = vec!["-r", loc.as_str(), "ls", "latest"];
        args.extend_from_slice(extra);
        run(stash_bin(), &args, &env)
    };
    let first = listed(&[]);
    assert!(first.status.success(), "{first:?}");

    let cache = std::fs::read_dir(xdg.join("stash"))
        .unwrap()
        .flatten()
        .find(|e| e.path().is_dir())
        .expect("a repository cache")
        .path();
    for dir in ["snapshots", "index"] {
        assert_eq!(
            std::fs::read_dir(cache.join(dir)).unwrap().count(),
            1,
            "{dir}"
        );
    }
    let mut tree_packs = Vec::new();
    for sub in std::fs::read_dir(cache.join("data")).unwrap().flatten() {
        for f in std::fs::read_dir(sub.path()).unwrap().flatten() {
            tree_packs.push(f.file_name().to_string_lossy().into_owned());
        }
    }
    assert!(!tree_packs.is_empty(), "no tree pack cached");
    assert!(
        tree_packs.len() < pack_count(&loc),
        "data packs were cached"
    );
    let (store, _) = cloud_backend(&loc, &s3_vars());
    for id in &tree_packs {
        let id = stash_repo_format::Id::from_hex(id).unwrap();
        rt().block_on(store.remove(FileType::Pack, &id)).unwrap();
    }
    let again = listed(&[]);
    assert!(again.status.success(), "{again:?}");
    assert_eq!(again.stdout, first.stdout);
    assert!(!listed(&["--no-cache"]).status.success());
}

fn pack_count(location: &str) -> usize {
    let (b, _) = cloud_backend(location, &s3_vars());
    rt().block_on(b.list(FileType::Pack))
        .expect("list packs")
        .len()
}

/// `init` creates a missing bucket (in the configured region, with a signed
/// request), and the bucket names its region to an unauthenticated HEAD, which is
/// how a location on AWS without a configured region finds it.
#[test]
fn s3_init_creates_the_bucket_in_its_region() {
    let moto = start_moto();
    let loc = format!("s3:http://127.0.0.1:{}/made-by-init/repo", moto.port);
    let env = env_with(&[("AWS_DEFAULT_REGION", "eu-west-1")]);
    let out = run_ok(stash_bin(), &["-r", &loc, "init"], &env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("created bucket made-by-init"), "{err}");
    run_ok(stash_bin(), &["-r", &loc, "snapshots"], &env);
    // A second repository in the same bucket: nothing to create.
    let other = format!("s3:http://127.0.0.1:{}/made-by-init/other", moto.port);
    let out = run_ok(stash_bin(), &["-r", &other, "init"], &env);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("created bucket"));
    run_ok(&restic_bin(), &["-r", &loc, "snapshots"], &env);

    let base = format!("http://127.0.0.1:{}", moto.port);
    let region = rt()
        .block_on(stash_agent::backend::s3_bucket::bucket_region(
            &base,
            "made-by-init",
            &s3_vars(),
        ))
        .unwrap();
    assert_eq!(region.as_deref(), Some("eu-west-1"));
}

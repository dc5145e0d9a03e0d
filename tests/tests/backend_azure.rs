//! Azure Blob Storage against Azurite: the conformance suite, and a stash round trip
//! with the account from a secret directory.

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use sha2::{Digest, Sha256};
use stash_agent::backend::{cloud::Vars, conformance};

use crate::backend_support::*;

/// Azurite's well-known development account.
const ACCOUNT: &str = "devstoreaccount1";
const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .into()
}

/// Creates a container with a Shared Key signed request (object_store has no
/// container API; restic's `init` would create it).
fn create_container(server: &Server, name: &str) {
    let date = chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let version = "2021-08-06";
    let string_to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{ACCOUNT}/{ACCOUNT}/{name}\nrestype:container"
    );
    let sig = B64.encode(hmac_sha256(
        &B64.decode(KEY).unwrap(),
        string_to_sign.as_bytes(),
    ));
    let (st, body) = http(
        server.port,
        "PUT",
        &format!("/{ACCOUNT}/{name}?restype=container"),
        &[
            ("x-ms-date", date),
            ("x-ms-version", version.into()),
            ("Authorization", format!("SharedKey {ACCOUNT}:{sig}")),
        ],
        b"",
    );
    assert_eq!(
        st,
        201,
        "creating container {name}: {}",
        String::from_utf8_lossy(&body)
    );
}

fn endpoint(server: &Server) -> String {
    format!("{}/{ACCOUNT}", server.url())
}

#[test]
fn azure_conformance() {
    let az = start_azurite();
    create_container(&az, "conf");
    let vars = Vars::from_pairs([
        ("AZURE_ACCOUNT_NAME", ACCOUNT.to_string()),
        ("AZURE_ACCOUNT_KEY", KEY.to_string()),
        ("AZURE_ENDPOINT", endpoint(&az)),
    ]);
    let rt = rt();
    for loc in ["azure:conf:/some/prefix", "azure:conf:/"] {
        let (b, raw) = cloud_backend(loc, &vars);
        rt.block_on(conformance::run(b, Some(raw)));
    }
}

#[test]
fn azure_wrong_key_is_a_permanent_error() {
    let az = start_azurite();
    create_container(&az, "wrongkey");
    let vars = Vars::from_pairs([
        ("AZURE_ACCOUNT_NAME", ACCOUNT.to_string()),
        // A valid base64 key that is not the account's.
        ("AZURE_ACCOUNT_KEY", B64.encode([7u8; 64])),
        ("AZURE_ENDPOINT", endpoint(&az)),
    ]);
    let (b, _) = cloud_backend("azure:wrongkey:/p", &vars);
    let t = std::time::Instant::now();
    let e = rt().block_on(b.has_config()).unwrap_err();
    assert!(!e.is_transient(), "{e}");
    assert!(
        t.elapsed().as_secs() < 20,
        "a permanent error was retried: {e}"
    );
}

#[test]
fn azure_stash_round_trip_with_secret_dir() {
    let az = start_azurite();
    create_container(&az, "repo");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, 21, 12 << 20);
    let secrets = tmp.path().join("secret");
    std::fs::create_dir(&secrets).unwrap();
    std::fs::write(secrets.join("AZURE_ACCOUNT_NAME"), ACCOUNT).unwrap();
    std::fs::write(secrets.join("AZURE_ACCOUNT_KEY"), format!("{KEY}\n")).unwrap();
    let sd = secrets.to_str().unwrap();
    let ep = endpoint(&az);
    let env = [("AZURE_ENDPOINT", ep.as_str())];
    let repo = "azure:repo:/stash/here";
    let srcs = src.to_str().unwrap();
    run_ok(stash_bin(), &["--secret-dir", sd, "-r", repo, "init"], &env);
    run_ok(
        stash_bin(),
        &["--secret-dir", sd, "-r", repo, "backup", srcs],
        &env,
    );
    run_ok(
        stash_bin(),
        &["--secret-dir", sd, "-r", repo, "backup", "--force", srcs],
        &env,
    );
    run_ok(
        stash_bin(),
        &["--secret-dir", sd, "-r", repo, "check", "--read-data"],
        &env,
    );
    let t = tmp.path().join("t");
    run_ok(
        stash_bin(),
        &[
            "--secret-dir",
            sd,
            "-r",
            repo,
            "restore",
            "latest",
            "--target",
            t.to_str().unwrap(),
        ],
        &env,
    );
    assert_same_tree(&src, &restored(&t, &src));
    // Without the secret directory there is no account: a clear error.
    let out = run(stash_bin(), &["-r", repo, "snapshots"], &env);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("AZURE_ACCOUNT_NAME"), "{err}");
}

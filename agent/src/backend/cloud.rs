//! Cloud stores (S3, GCS, Azure) through `object_store`, configured the way restic
//! and Stash users configure them.
//!
//! Credentials and settings come from a [`Vars`] map: the process environment
//! (every `AWS_*`, `GOOGLE_*`, `AZURE_*` variable and `CA_CERT_DATA`), then the files
//! of a Stash storage Secret directory ([`super::secret_dir`]) for names the
//! environment does not set. **The environment wins** over the secret directory, so a
//! value can be overridden for one run without editing the mounted Secret.
//!
//! | store | variables read |
//! | --- | --- |
//! | S3 | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_DEFAULT_REGION` / `AWS_REGION`, and every other `AWS_*` name `object_store` knows (web identity / IRSA, container credentials, `AWS_CONDITIONAL_PUT`, ...); without keys, instance credentials |
//! | GCS | `GOOGLE_SERVICE_ACCOUNT_JSON_KEY` (the key's JSON, Stash's name), `GOOGLE_APPLICATION_CREDENTIALS` (a key file, as restic), `GOOGLE_ACCESS_TOKEN` (as restic), `GOOGLE_SERVICE_ACCOUNT` / `GOOGLE_SERVICE_ACCOUNT_KEY` (`object_store`'s names); `GOOGLE_PROJECT_ID` is accepted and unused (restic needs it only to create buckets); without any, the instance's metadata server |
//! | Azure | `AZURE_ACCOUNT_NAME`, `AZURE_ACCOUNT_KEY`, `AZURE_ACCOUNT_SAS`, `AZURE_ENDPOINT_SUFFIX`, `AZURE_FORCE_CLI_CREDENTIAL` (restic's names), `AZURE_ENDPOINT` (a full account URL, e.g. Azurite's `http://127.0.0.1:10000/devstoreaccount1`), and every `AZURE_STORAGE_*` / `AZURE_*` name `object_store` knows (client secret, workload identity, managed identity) |
//! | all | `CA_CERT_DATA`: PEM certificates trusted in addition to the system roots |
//!
//! Plain http is used only when asked for explicitly: `s3:http://...`, an
//! `http://` Azure endpoint, or an `http://` `gcs_base_url` in a service account key.
//!
//! Writes are create-only where the store supports it: S3 with `If-None-Match: *`
//! (AWS, MinIO, R2, moto; `AWS_CONDITIONAL_PUT=disabled` turns it off for servers
//! that reject the header), GCS and Azure natively. Where it is off,
//! [`super::ObjectStoreBackend`] falls back to an overwrite, which is harmless for
//! content-addressed files (same name, same bytes).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use object_store::{
    aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut},
    azure::{AzureConfigKey, MicrosoftAzureBuilder},
    gcp::{GcpCredential, GoogleCloudStorageBuilder, GoogleConfigKey},
    BackoffConfig, Certificate, ClientOptions, ObjectStore, RetryConfig, StaticCredentialProvider,
};

use super::{
    location::{Location, S3Location},
    secret_dir::SecretDir,
};
use crate::error::{Error, Result};

/// Set to `true` (by `--insecure-tls`, or a Repository's `insecureTLS`): any
/// certificate the server presents is accepted.
pub const INSECURE_TLS: &str = "STASH_INSECURE_TLS";

/// Settings and credentials for cloud stores, by environment-variable name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars {
    pub(crate) values: BTreeMap<String, String>,
}

/// Whether an environment variable is one [`Vars::from_env`] collects.
fn relevant(name: &str) -> bool {
    name.starts_with("AWS_")
        || name.starts_with("GOOGLE_")
        || name.starts_with("AZURE_")
        || name == "CA_CERT_DATA"
}

impl Vars {
    /// Variables from explicit pairs (later pairs win).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Vars {
            values: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// Merges `env` (filtered to the relevant names) with the secret directory's
    /// values; the environment wins. Empty values count as unset.
    pub fn merge<K: Into<String>, V: Into<String>>(
        env: impl IntoIterator<Item = (K, V)>,
        secrets: Option<&SecretDir>,
    ) -> Self {
        let mut values = BTreeMap::new();
        for (k, v) in env {
            let (k, v) = (k.into(), v.into());
            if relevant(&k) && !v.is_empty() {
                values.insert(k, v);
            }
        }
        if let Some(s) = secrets {
            for (k, v) in &s.values {
                if !v.is_empty() && k != "RESTIC_PASSWORD" {
                    values.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
        Vars { values }
    }

    /// The process environment, then `secrets` (see the module docs).
    pub fn from_env(secrets: Option<&SecretDir>) -> Self {
        let env = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        Self::merge(env, secrets)
    }

    /// A value, if set and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Names and values with a prefix.
    fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.values
            .iter()
            .filter(move |(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// The location for messages (restic's syntax; never holds credentials).
pub fn display(location: &str) -> String {
    location.to_string()
}

fn config_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Usage(format!("{what}: {e}"))
}

/// HTTP client settings shared by all stores: extra CA certificates, no overall
/// request timeout (the timeout decorator bounds requests by size instead, so a
/// slow link can still upload a 16 MiB pack), and plain http only when asked.
///
/// # Errors
/// [`Error::Usage`] for a `CA_CERT_DATA` that is not PEM.
pub fn client_options(vars: &Vars, allow_http: bool) -> Result<ClientOptions> {
    let mut opts = ClientOptions::new()
        .with_timeout_disabled()
        .with_connect_timeout(Duration::from_secs(15))
        .with_allow_http(allow_http);
    if vars.get(INSECURE_TLS) == Some("true") {
        opts = opts.with_allow_invalid_certificates(true);
    }
    if let Some(pem) = vars.get("CA_CERT_DATA") {
        let certs = Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(|e| config_err("CA_CERT_DATA", e))?;
        if certs.is_empty() {
            return Err(config_err("CA_CERT_DATA", "no PEM certificate found"));
        }
        for c in certs {
            opts = opts.with_root_certificate(c);
        }
    }
    Ok(opts)
}

/// `object_store`'s own retries: few and short, the retry decorator does the rest.
fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 3,
        retry_timeout: Duration::from_secs(60),
    }
}

/// The region in an AWS S3 host name (`s3.eu-west-1.amazonaws.com`,
/// `s3-eu-west-1.amazonaws.com`, `s3.dualstack.eu-west-1.amazonaws.com`), and
/// whether the host is AWS at all.
pub fn aws_host_region(host: &str) -> (bool, Option<String>) {
    let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
    let Some(head) = host.strip_suffix(".amazonaws.com") else {
        return (false, None);
    };
    let head = head.strip_suffix(".dualstack").unwrap_or(head);
    if head == "s3" || head == "s3-external-1" {
        return (true, None);
    }
    let region = head
        .strip_prefix("s3.dualstack.")
        .or_else(|| head.strip_prefix("s3."))
        .or_else(|| head.strip_prefix("s3-"));
    match region {
        Some(r) if !r.is_empty() && !r.contains('.') => (true, Some(r.to_string())),
        _ => (true, None),
    }
}

/// The S3 builder for a location (pure: no I/O, nothing read from the process).
///
/// # Errors
/// [`Error::Usage`] for a bad `CA_CERT_DATA`.
pub fn s3_builder(loc: &S3Location, vars: &Vars) -> Result<AmazonS3Builder> {
    let mut b = AmazonS3Builder::new()
        .with_client_options(client_options(vars, loc.use_http)?)
        .with_retry(retry_config())
        .with_conditional_put(S3ConditionalPut::ETagMatch);
    for (k, v) in vars.with_prefix("AWS_") {
        if let Ok(key) = k.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
            b = b.with_config(key, v);
        }
    }
    let (is_aws, host_region) = aws_host_region(&loc.endpoint);
    if b.get_config_value(&AmazonS3ConfigKey::Region).is_none() {
        b = b.with_region(host_region.as_deref().unwrap_or("us-east-1"));
    }
    let endpoint = if is_aws && !loc.use_http {
        // Path-style requests must go to the bucket's own region.
        let region = b
            .get_config_value(&AmazonS3ConfigKey::Region)
            .unwrap_or_else(|| "us-east-1".into());
        format!("https://s3.{region}.amazonaws.com")
    } else {
        let scheme = if loc.use_http { "http" } else { "https" };
        format!("{scheme}://{}", loc.endpoint)
    };
    Ok(b.with_endpoint(endpoint)
        .with_virtual_hosted_style_request(false)
        .with_allow_http(loc.use_http)
        .with_bucket_name(&loc.bucket))
}

/// The `gcs_base_url` of a service account key, if it sets one.
fn gcs_base_url(key_json: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(key_json).ok()?;
    v.get("gcs_base_url")?.as_str().map(str::to_string)
}

/// The GCS builder for a bucket (pure).
///
/// # Errors
/// [`Error::Usage`] for a bad `CA_CERT_DATA`, an unparsable
/// `GOOGLE_SERVICE_ACCOUNT_JSON_KEY`, or two service account sources at once.
pub fn gcs_builder(bucket: &str, vars: &Vars) -> Result<GoogleCloudStorageBuilder> {
    let json_key = vars.get("GOOGLE_SERVICE_ACCOUNT_JSON_KEY");
    if let Some(k) = json_key {
        serde_json::from_str::<serde_json::Value>(k)
            .map_err(|e| config_err("GOOGLE_SERVICE_ACCOUNT_JSON_KEY is not JSON", e))?;
    }
    let key = json_key.or_else(|| vars.get("GOOGLE_SERVICE_ACCOUNT_KEY"));
    let allow_http = key
        .and_then(gcs_base_url)
        .is_some_and(|u| u.starts_with("http://"));
    let mut b = GoogleCloudStorageBuilder::new()
        .with_client_options(client_options(vars, allow_http)?)
        .with_retry(retry_config());
    for (k, v) in vars.with_prefix("GOOGLE_") {
        if k == "GOOGLE_SERVICE_ACCOUNT_JSON_KEY" {
            continue;
        }
        if let Ok(key) = k.to_ascii_lowercase().parse::<GoogleConfigKey>() {
            b = b.with_config(key, v);
        }
    }
    if let Some(k) = json_key {
        if b.get_config_value(&GoogleConfigKey::ServiceAccount)
            .is_some()
        {
            return Err(config_err(
                "GCS credentials",
                "both GOOGLE_SERVICE_ACCOUNT_JSON_KEY and GOOGLE_SERVICE_ACCOUNT are set",
            ));
        }
        b = b.with_service_account_key(k);
    }
    if let Some(token) = vars.get("GOOGLE_ACCESS_TOKEN") {
        b = b.with_credentials(Arc::new(StaticCredentialProvider::new(GcpCredential {
            bearer: token.to_string(),
        })));
    }
    Ok(b.with_bucket_name(bucket))
}

/// The Azure builder for a container (pure).
///
/// # Errors
/// [`Error::Usage`] for a bad `CA_CERT_DATA`, or an endpoint suffix without an
/// account name.
pub fn azure_builder(container: &str, vars: &Vars) -> Result<MicrosoftAzureBuilder> {
    let endpoint = vars
        .get("AZURE_ENDPOINT")
        .or_else(|| vars.get("AZURE_STORAGE_ENDPOINT"))
        .map(str::to_string);
    let allow_http = endpoint
        .as_deref()
        .is_some_and(|u| u.starts_with("http://"));
    let mut b = MicrosoftAzureBuilder::new()
        .with_client_options(client_options(vars, allow_http)?)
        .with_retry(retry_config());
    for (k, v) in vars.with_prefix("AZURE_") {
        if let Ok(key) = k.to_ascii_lowercase().parse::<AzureConfigKey>() {
            b = b.with_config(key, v);
        }
    }
    // restic's names.
    if let Some(v) = vars.get("AZURE_ACCOUNT_NAME") {
        b = b.with_account(v);
    }
    if let Some(v) = vars.get("AZURE_ACCOUNT_KEY") {
        b = b.with_access_key(v);
    }
    if let Some(v) = vars.get("AZURE_ACCOUNT_SAS") {
        b = b.with_config(AzureConfigKey::SasKey, v.trim_start_matches('?'));
    }
    if vars
        .get("AZURE_FORCE_CLI_CREDENTIAL")
        .is_some_and(|v| v == "true" || v == "1")
    {
        b = b.with_use_azure_cli(true);
    }
    match (endpoint, vars.get("AZURE_ENDPOINT_SUFFIX")) {
        (Some(e), _) => b = b.with_endpoint(e),
        (None, Some(suffix)) => {
            let account = b
                .get_config_value(&AzureConfigKey::AccountName)
                .ok_or_else(|| {
                    config_err("AZURE_ENDPOINT_SUFFIX", "AZURE_ACCOUNT_NAME is not set")
                })?;
            b = b.with_endpoint(format!("https://{account}.blob.{suffix}"));
        }
        (None, None) => {}
    }
    Ok(b.with_allow_http(allow_http).with_container_name(container))
}

/// Builds the store for a cloud location and returns it with the key prefix.
///
/// # Errors
/// [`Error::Usage`] for a non-cloud location or incomplete configuration.
pub fn open_store(loc: &Location, vars: &Vars) -> Result<(Arc<dyn ObjectStore>, String)> {
    match loc {
        Location::S3(s3) => {
            let store = s3_builder(s3, vars)?
                .build()
                .map_err(|e| config_err("S3", e))?;
            Ok((Arc::new(store), s3.prefix.clone()))
        }
        Location::Gcs { bucket, prefix } => {
            let store = gcs_builder(bucket, vars)?
                .build()
                .map_err(|e| config_err("GCS", e))?;
            Ok((Arc::new(store), prefix.clone()))
        }
        Location::Azure { container, prefix } => {
            let store = azure_builder(container, vars)?.build().map_err(|e| {
                config_err(
                    "Azure (set AZURE_ACCOUNT_NAME and AZURE_ACCOUNT_KEY or another credential)",
                    e,
                )
            })?;
            Ok((Arc::new(store), prefix.clone()))
        }
        Location::Local(_) | Location::Memory(_) => {
            Err(Error::Usage(format!("{loc:?} is not a cloud location")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(endpoint: &str, use_http: bool) -> S3Location {
        S3Location {
            endpoint: endpoint.into(),
            use_http,
            bucket: "bkt".into(),
            prefix: "p".into(),
        }
    }

    fn s3(l: &S3Location, vars: &Vars, key: AmazonS3ConfigKey) -> Option<String> {
        s3_builder(l, vars).unwrap().get_config_value(&key)
    }

    #[test]
    fn aws_hosts_and_regions() {
        assert_eq!(aws_host_region("s3.amazonaws.com"), (true, None));
        assert_eq!(
            aws_host_region("s3.eu-west-1.amazonaws.com"),
            (true, Some("eu-west-1".into()))
        );
        assert_eq!(
            aws_host_region("s3-eu-west-1.amazonaws.com"),
            (true, Some("eu-west-1".into()))
        );
        assert_eq!(
            aws_host_region("s3.dualstack.us-east-2.amazonaws.com"),
            (true, Some("us-east-2".into()))
        );
        assert_eq!(
            aws_host_region("S3.AP-South-1.AMAZONAWS.COM:443"),
            (true, Some("ap-south-1".into()))
        );
        assert_eq!(aws_host_region("minio.local:9000"), (false, None));
        assert_eq!(aws_host_region("127.0.0.1:5000"), (false, None));
    }

    #[test]
    fn s3_endpoint_region_and_credentials() {
        let vars = Vars::from_pairs([
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "SECRET"),
            ("AWS_SESSION_TOKEN", "TOKEN"),
        ]);
        let l = loc("127.0.0.1:9000", true);
        assert_eq!(
            s3(&l, &vars, AmazonS3ConfigKey::Endpoint).as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(
            s3(&l, &vars, AmazonS3ConfigKey::AccessKeyId).as_deref(),
            Some("AKID")
        );
        assert_eq!(
            s3(&l, &vars, AmazonS3ConfigKey::SecretAccessKey).as_deref(),
            Some("SECRET")
        );
        assert_eq!(
            s3(&l, &vars, AmazonS3ConfigKey::Token).as_deref(),
            Some("TOKEN")
        );
        assert_eq!(
            s3(&l, &vars, AmazonS3ConfigKey::Bucket).as_deref(),
            Some("bkt")
        );
        assert_eq!(
            s3(&l, &vars, AmazonS3ConfigKey::Region).as_deref(),
            Some("us-east-1")
        );
        assert_eq!(
            s3(&l, &vars, AmazonS3ConfigKey::VirtualHostedStyleRequest).as_deref(),
            Some("false")
        );
        assert_eq!(
            s3(&l, &vars, AmazonS3ConfigKey::ConditionalPut).as_deref(),
            Some("etag")
        );
        assert_eq!(
            s3(
                &l,
                &vars,
                AmazonS3ConfigKey::Client(object_store::ClientConfigKey::AllowHttp)
            )
            .as_deref(),
            Some("true")
        );
        let https = loc("minio.example:9000", false);
        assert_eq!(
            s3(&https, &vars, AmazonS3ConfigKey::Endpoint).as_deref(),
            Some("https://minio.example:9000")
        );
        assert_eq!(
            s3(
                &https,
                &vars,
                AmazonS3ConfigKey::Client(object_store::ClientConfigKey::AllowHttp)
            )
            .as_deref(),
            Some("false")
        );
        // AWS: the region from the host, or the configured one.
        let aws = loc("s3.eu-central-1.amazonaws.com", false);
        assert_eq!(
            s3(&aws, &vars, AmazonS3ConfigKey::Region).as_deref(),
            Some("eu-central-1")
        );
        assert_eq!(
            s3(&aws, &vars, AmazonS3ConfigKey::Endpoint).as_deref(),
            Some("https://s3.eu-central-1.amazonaws.com")
        );
        let generic = loc("s3.amazonaws.com", false);
        let with_region = Vars::from_pairs([("AWS_DEFAULT_REGION", "ap-northeast-1")]);
        assert_eq!(
            s3(&generic, &with_region, AmazonS3ConfigKey::Region).as_deref(),
            Some("ap-northeast-1")
        );
        assert_eq!(
            s3(&generic, &with_region, AmazonS3ConfigKey::Endpoint).as_deref(),
            Some("https://s3.ap-northeast-1.amazonaws.com")
        );
        assert_eq!(
            s3(&generic, &Vars::default(), AmazonS3ConfigKey::Region).as_deref(),
            Some("us-east-1")
        );
        // AWS_REGION beats AWS_DEFAULT_REGION, as in the AWS SDKs.
        let both = Vars::from_pairs([("AWS_DEFAULT_REGION", "a-1"), ("AWS_REGION", "b-2")]);
        assert_eq!(
            s3(&generic, &both, AmazonS3ConfigKey::Region).as_deref(),
            Some("b-2")
        );
        // The location's host beats AWS_ENDPOINT.
        let ep = Vars::from_pairs([("AWS_ENDPOINT", "https://elsewhere")]);
        assert_eq!(
            s3(&https, &ep, AmazonS3ConfigKey::Endpoint).as_deref(),
            Some("https://minio.example:9000")
        );
        // Conditional put can be turned off for servers without If-None-Match.
        let off = Vars::from_pairs([("AWS_CONDITIONAL_PUT", "disabled")]);
        assert_eq!(
            s3(&https, &off, AmazonS3ConfigKey::ConditionalPut).as_deref(),
            Some("disabled")
        );
        // Builds without I/O.
        open_store(&Location::S3(l), &vars).unwrap();
    }

    #[test]
    fn env_wins_over_secret_dir_and_password_is_not_a_cloud_var() {
        let secrets = SecretDir {
            values: BTreeMap::from([
                ("AWS_ACCESS_KEY_ID".into(), "from-secret".into()),
                ("AWS_SECRET_ACCESS_KEY".into(), "secret-from-secret".into()),
                ("RESTIC_PASSWORD".into(), "pw".into()),
            ]),
        };
        let vars = Vars::merge(
            [
                ("AWS_ACCESS_KEY_ID", "from-env"),
                ("AWS_SECRET_ACCESS_KEY", ""),
                ("HOME", "/root"),
            ],
            Some(&secrets),
        );
        assert_eq!(vars.get("AWS_ACCESS_KEY_ID"), Some("from-env"));
        // An empty environment value counts as unset.
        assert_eq!(
            vars.get("AWS_SECRET_ACCESS_KEY"),
            Some("secret-from-secret")
        );
        assert_eq!(vars.get("HOME"), None);
        assert_eq!(vars.get("RESTIC_PASSWORD"), None);
    }

    const TEST_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBgDCCASWgAwIBAgIUD86Lif/qMtj8SzH5oV2wXDhzD1YwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyNDIzMDQ0OFoYDzIxMjYxMDMx
MjMwNDQ4WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAQWk4cuu0j1FWNuy2mWSUR2I4bOPojrZ46/sUIsjNIbzIC9AosdCEpE
7hnen7EhOn60RzN/KeNKHI0Zjp7+NEEHo1MwUTAdBgNVHQ4EFgQUDZ128kwZc36Z
Xc9sKiy56hHJrnUwHwYDVR0jBBgwFoAUDZ128kwZc36ZXc9sKiy56hHJrnUwDwYD
VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBGAiEAqQu+eUnFDULgeckzLrNY
4TfUm+wa9Cgs8i8w0sYfF6ECIQDJt3GGRfIOrdZuwvcBsIS+divM6O3/AF6C+f84
nHBOyA==
-----END CERTIFICATE-----
";

    #[test]
    fn ca_cert_data() {
        let bad = Vars::from_pairs([("CA_CERT_DATA", "not a certificate")]);
        let e = client_options(&bad, false).unwrap_err().to_string();
        assert!(e.contains("CA_CERT_DATA"), "{e}");
        // A real (self-signed) certificate; the store builds with it.
        let ok = Vars::from_pairs([("CA_CERT_DATA", TEST_CERT)]);
        client_options(&ok, false).unwrap();
        open_store(&Location::S3(loc("h", false)), &ok).unwrap();
        assert!(s3_builder(&loc("h", false), &bad).is_err());
        assert!(gcs_builder("b", &bad).is_err());
        assert!(azure_builder("c", &bad).is_err());
    }

    fn gcs(vars: &Vars, key: GoogleConfigKey) -> Option<String> {
        gcs_builder("bkt", vars).unwrap().get_config_value(&key)
    }

    const FAKE_KEY: &str = r#"{"type":"service_account","private_key":"","private_key_id":"","client_email":"x@y","gcs_base_url":"http://127.0.0.1:4443","disable_oauth":true}"#;

    #[test]
    fn gcs_credentials() {
        // restic's GOOGLE_APPLICATION_CREDENTIALS: a key file, used as ADC.
        let adc = Vars::from_pairs([
            ("GOOGLE_APPLICATION_CREDENTIALS", "/secret/key.json"),
            ("GOOGLE_PROJECT_ID", "proj"),
        ]);
        assert_eq!(
            gcs(&adc, GoogleConfigKey::ApplicationCredentials).as_deref(),
            Some("/secret/key.json")
        );
        assert_eq!(gcs(&adc, GoogleConfigKey::Bucket).as_deref(), Some("bkt"));
        // Stash's GOOGLE_SERVICE_ACCOUNT_JSON_KEY: the key's JSON itself.
        let json = Vars::from_pairs([("GOOGLE_SERVICE_ACCOUNT_JSON_KEY", FAKE_KEY)]);
        assert_eq!(
            gcs(&json, GoogleConfigKey::ServiceAccountKey).as_deref(),
            Some(FAKE_KEY)
        );
        // Its http gcs_base_url allows plain http, and it builds without I/O.
        assert_eq!(
            gcs(
                &json,
                GoogleConfigKey::Client(object_store::ClientConfigKey::AllowHttp)
            )
            .as_deref(),
            Some("true")
        );
        open_store(
            &Location::Gcs {
                bucket: "bkt".into(),
                prefix: "p".into(),
            },
            &json,
        )
        .unwrap();
        // object_store's own names.
        let path = Vars::from_pairs([("GOOGLE_SERVICE_ACCOUNT", "/k.json")]);
        assert_eq!(
            gcs(&path, GoogleConfigKey::ServiceAccount).as_deref(),
            Some("/k.json")
        );
        assert_eq!(
            gcs(
                &path,
                GoogleConfigKey::Client(object_store::ClientConfigKey::AllowHttp)
            )
            .as_deref(),
            Some("false")
        );
        // Errors: a key that is not JSON, two service accounts at once.
        let bad = Vars::from_pairs([("GOOGLE_SERVICE_ACCOUNT_JSON_KEY", "{nope")]);
        assert!(gcs_builder("b", &bad)
            .unwrap_err()
            .to_string()
            .contains("not JSON"));
        let two = Vars::from_pairs([
            ("GOOGLE_SERVICE_ACCOUNT_JSON_KEY", FAKE_KEY),
            ("GOOGLE_SERVICE_ACCOUNT", "/k.json"),
        ]);
        assert!(gcs_builder("b", &two).is_err());
        // A static access token (restic's GOOGLE_ACCESS_TOKEN) builds without a key.
        let token = Vars::from_pairs([("GOOGLE_ACCESS_TOKEN", "ya29.x")]);
        gcs_builder("b", &token).unwrap().build().unwrap();
    }

    fn az(vars: &Vars, key: AzureConfigKey) -> Option<String> {
        azure_builder("ctr", vars).unwrap().get_config_value(&key)
    }

    const DEV_KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    #[test]
    fn azure_credentials_and_endpoints() {
        let restic = Vars::from_pairs([
            ("AZURE_ACCOUNT_NAME", "acct"),
            ("AZURE_ACCOUNT_KEY", DEV_KEY),
        ]);
        assert_eq!(
            az(&restic, AzureConfigKey::AccountName).as_deref(),
            Some("acct")
        );
        assert_eq!(
            az(&restic, AzureConfigKey::AccessKey).as_deref(),
            Some(DEV_KEY)
        );
        assert_eq!(
            az(&restic, AzureConfigKey::ContainerName).as_deref(),
            Some("ctr")
        );
        assert_eq!(az(&restic, AzureConfigKey::Endpoint), None);
        // restic's endpoint suffix.
        let mut v = restic.clone();
        v.values.insert(
            "AZURE_ENDPOINT_SUFFIX".into(),
            "core.chinacloudapi.cn".into(),
        );
        assert_eq!(
            az(&v, AzureConfigKey::Endpoint).as_deref(),
            Some("https://acct.blob.core.chinacloudapi.cn")
        );
        // A full endpoint (Azurite), which may be plain http.
        let mut v = restic.clone();
        v.values.insert(
            "AZURE_ENDPOINT".into(),
            "http://127.0.0.1:10000/devstoreaccount1".into(),
        );
        assert_eq!(
            az(&v, AzureConfigKey::Endpoint).as_deref(),
            Some("http://127.0.0.1:10000/devstoreaccount1")
        );
        assert_eq!(
            az(
                &v,
                AzureConfigKey::Client(object_store::ClientConfigKey::AllowHttp)
            )
            .as_deref(),
            Some("true")
        );
        open_store(
            &Location::Azure {
                container: "ctr".into(),
                prefix: "".into(),
            },
            &v,
        )
        .unwrap();
        // object_store's names and a SAS token with restic's leading '?'.
        let sas = Vars::from_pairs([
            ("AZURE_STORAGE_ACCOUNT_NAME", "acct2"),
            ("AZURE_ACCOUNT_SAS", "?sv=2022&sig=abc"),
        ]);
        assert_eq!(
            az(&sas, AzureConfigKey::AccountName).as_deref(),
            Some("acct2")
        );
        assert_eq!(
            az(&sas, AzureConfigKey::SasKey).as_deref(),
            Some("sv=2022&sig=abc")
        );
        // A suffix needs an account name.
        let e = azure_builder(
            "c",
            &Vars::from_pairs([("AZURE_ENDPOINT_SUFFIX", "core.windows.net")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("AZURE_ACCOUNT_NAME"), "{e}");
        // No account at all: a clear error at build time.
        let e = open_store(
            &Location::Azure {
                container: "c".into(),
                prefix: "".into(),
            },
            &Vars::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("AZURE_ACCOUNT_NAME"), "{e}");
    }
}

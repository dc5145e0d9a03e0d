//! What `object_store` does not do for an S3 location: find the region of a bucket
//! on AWS when none is configured (S3 names it in the `x-amz-bucket-region` header
//! of any answer about the bucket, even an unauthenticated one), and create the
//! bucket for `init` when it does not exist (a request signed with AWS Signature
//! Version 4, [`sign_v4`]).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::{
    cloud::{aws_host_region, Vars, INSECURE_TLS},
    location::S3Location,
};
use crate::error::{Error, Result};

/// The region variables, in the order the S3 builder reads them.
const REGION_VARS: [&str; 2] = ["AWS_DEFAULT_REGION", "AWS_REGION"];

/// The configured region, if any.
pub fn configured_region(vars: &Vars) -> Option<&str> {
    REGION_VARS.iter().find_map(|k| vars.get(k))
}

/// Whether the region must be asked for: an AWS host that names none, and no
/// region configured.
pub fn needs_region(loc: &S3Location, vars: &Vars) -> bool {
    matches!(aws_host_region(&loc.endpoint), (true, None))
        && !loc.use_http
        && configured_region(vars).is_none()
}

fn client(vars: &Vars) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(15))
        .timeout(std::time::Duration::from_secs(60));
    if vars.get(INSECURE_TLS) == Some("true") {
        b = b.danger_accept_invalid_certs(true);
    }
    if let Some(pem) = vars.get("CA_CERT_DATA") {
        for c in reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(|e| Error::Usage(format!("CA_CERT_DATA: {e}")))?
        {
            b = b.add_root_certificate(c);
        }
    }
    b.build()
        .map_err(|e| Error::Usage(format!("S3 client: {e}")))
}

fn request_err(what: String, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Backend {
        op: "head",
        path: what,
        source: Box::new(e),
        transient: true,
    }
}

/// The region of `bucket` as the server at `base` (`https://s3.amazonaws.com`)
/// names it; `None` when it names none.
///
/// # Errors
/// The request fails.
pub async fn bucket_region(base: &str, bucket: &str, vars: &Vars) -> Result<Option<String>> {
    let url = format!("{}/{bucket}", base.trim_end_matches('/'));
    let resp = client(vars)?
        .head(&url)
        .send()
        .await
        .map_err(|e| request_err(url.clone(), e))?;
    Ok(resp
        .headers()
        .get("x-amz-bucket-region")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string))
}

/// The endpoint requests for `loc` go to (as [`super::cloud::s3_builder`] sets it).
pub fn endpoint_url(loc: &S3Location, region: &str) -> String {
    let (is_aws, _) = aws_host_region(&loc.endpoint);
    if is_aws && !loc.use_http {
        format!("https://s3.{region}.amazonaws.com")
    } else {
        let scheme = if loc.use_http { "http" } else { "https" };
        format!("{scheme}://{}", loc.endpoint)
    }
}

/// Creates the bucket of `loc` unless it exists; returns whether it was created.
///
/// # Errors
/// No access keys to sign with, or the server refuses.
pub async fn create_bucket(loc: &S3Location, vars: &Vars) -> Result<bool> {
    let region = configured_region(vars)
        .map(str::to_string)
        .or_else(|| aws_host_region(&loc.endpoint).1)
        .unwrap_or_else(|| "us-east-1".into());
    let base = endpoint_url(loc, &region);
    let url = format!("{base}/{}", loc.bucket);
    let http = client(vars)?;
    let head = http
        .head(&url)
        .send()
        .await
        .map_err(|e| request_err(url.clone(), e))?;
    // 403: it exists and is not ours to look at unsigned; 301: in another region.
    if head.status() != reqwest::StatusCode::NOT_FOUND {
        return Ok(false);
    }
    let (Some(key_id), Some(secret)) = (
        vars.get("AWS_ACCESS_KEY_ID"),
        vars.get("AWS_SECRET_ACCESS_KEY"),
    ) else {
        return Err(Error::Usage(format!(
            "bucket {:?} does not exist and cannot be created without AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; create it first",
            loc.bucket
        )));
    };
    let body = if region == "us-east-1" {
        String::new()
    } else {
        format!(
            "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <LocationConstraint>{region}</LocationConstraint></CreateBucketConfiguration>"
        )
    };
    let host = base
        .split_once("://")
        .map_or(base.as_str(), |(_, h)| h)
        .to_string();
    let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let payload = hex::encode(Sha256::digest(body.as_bytes()));
    let mut headers = vec![
        ("host".to_string(), host),
        ("x-amz-content-sha256".to_string(), payload.clone()),
        ("x-amz-date".to_string(), amz_date.clone()),
    ];
    if let Some(token) = vars.get("AWS_SESSION_TOKEN") {
        headers.push(("x-amz-security-token".to_string(), token.to_string()));
    }
    let auth = sign_v4(&SignInput {
        method: "PUT",
        path: &format!("/{}", loc.bucket),
        query: "",
        headers: &headers,
        payload_hash: &payload,
        region: &region,
        service: "s3",
        key_id,
        secret,
        amz_date: &amz_date,
    });
    let mut req = http.put(&url).header("authorization", auth).body(body);
    for (k, v) in headers.iter().filter(|(k, _)| k != "host") {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = req.send().await.map_err(|e| request_err(url.clone(), e))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if status.is_success() || text.contains("BucketAlreadyOwnedByYou") {
        return Ok(status.is_success());
    }
    Err(Error::Usage(format!(
        "creating bucket {:?} at {base}: {status}: {}",
        loc.bucket,
        text.trim()
    )))
}

/// What a Signature Version 4 signs. `headers` are lower-case names with their
/// values, and must include `host`.
pub struct SignInput<'a> {
    pub method: &'a str,
    /// The URI-encoded path.
    pub path: &'a str,
    /// The canonical query string (sorted, encoded).
    pub query: &'a str,
    pub headers: &'a [(String, String)],
    /// Hex SHA-256 of the body.
    pub payload_hash: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    pub key_id: &'a str,
    pub secret: &'a str,
    /// `YYYYMMDDTHHMMSSZ`.
    pub amz_date: &'a str,
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// The `Authorization` header of a request signed with AWS Signature Version 4.
pub fn sign_v4(i: &SignInput) -> String {
    let mut headers: Vec<(&str, String)> = i
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed: Vec<&str> = headers.iter().map(|(k, _)| *k).collect();
    let signed = signed.join(";");
    let canonical = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed}\n{}",
        i.method, i.path, i.query, i.payload_hash
    );
    let date = &i.amz_date[..8.min(i.amz_date.len())];
    let scope = format!("{date}/{}/{}/aws4_request", i.region, i.service);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
        i.amz_date,
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{}", i.secret).as_bytes(), date.as_bytes());
    for part in [i.region, i.service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex::encode(hmac(&key, to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
        i.key_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `get-vanilla` case of AWS's Signature Version 4 test suite.
    #[test]
    fn signs_as_the_aws_test_suite_expects() {
        let headers = vec![
            ("host".to_string(), "example.amazonaws.com".to_string()),
            ("x-amz-date".to_string(), "20150830T123600Z".to_string()),
        ];
        let auth = sign_v4(&SignInput {
            method: "GET",
            path: "/",
            query: "",
            headers: &headers,
            payload_hash: &hex::encode(Sha256::digest(b"")),
            region: "us-east-1",
            service: "service",
            key_id: "AKIDEXAMPLE",
            secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            amz_date: "20150830T123600Z",
        });
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn a_region_is_asked_for_only_on_aws_without_one() {
        let loc = |endpoint: &str| S3Location {
            endpoint: endpoint.into(),
            use_http: false,
            bucket: "b".into(),
            prefix: String::new(),
        };
        let none = Vars::from_pairs(Vec::<(String, String)>::new());
        let set = Vars::from_pairs([("AWS_REGION", "eu-west-1")]);
        assert!(needs_region(&loc("s3.amazonaws.com"), &none));
        assert!(!needs_region(&loc("s3.amazonaws.com"), &set));
        assert!(!needs_region(&loc("s3.eu-west-2.amazonaws.com"), &none));
        assert!(!needs_region(&loc("minio.local:9000"), &none));
        assert_eq!(
            endpoint_url(&loc("s3.amazonaws.com"), "eu-west-1"),
            "https://s3.eu-west-1.amazonaws.com"
        );
        assert_eq!(endpoint_url(&loc("minio:9000"), "x"), "https://minio:9000");
    }
}

//! `parse_location` on arbitrary UTF-8: an error or a location, never a panic. What
//! parses is consistent: S3 has a non-empty host without `@` and a non-empty bucket
//! without `/`; GCS buckets and Azure containers are non-empty without `/`; every
//! prefix is clean (no empty, `.` or `..` segment, so no leading or trailing slash);
//! local paths and memory names are the input less the scheme. Writing a parsed
//! location back in canonical form parses to the same location, and the unsupported
//! schemes are refused.
#![no_main]
use libfuzzer_sys::fuzz_target;
use stash_agent::backend::location::{parse_location, Location, S3Location};

fn clean(prefix: &str) {
    if prefix.is_empty() {
        return;
    }
    for seg in prefix.split('/') {
        assert!(!matches!(seg, "" | "." | ".."), "unclean prefix {prefix:?}");
    }
}

fn canonical(input: &str, l: &Location) -> String {
    match l {
        Location::Local(p) => format!("local:{p}"),
        Location::Memory(n) => format!("memory:{n}"),
        Location::S3(S3Location {
            endpoint,
            use_http,
            bucket,
            prefix,
        }) => {
            // The form the input used: the URL form refuses `?` and `#` in the host,
            // the bare form a host starting with `http`.
            if input.starts_with("s3:http") {
                let scheme = if *use_http { "http" } else { "https" };
                format!("s3:{scheme}://{endpoint}/{bucket}/{prefix}")
            } else {
                format!("s3:{endpoint}/{bucket}/{prefix}")
            }
        }
        Location::Gcs { bucket, prefix } => format!("gs:{bucket}:/{prefix}"),
        Location::Azure { container, prefix } => format!("azure:{container}:/{prefix}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = parse_location(input);
    for scheme in ["b2:", "sftp:", "rest:", "rclone:", "swift:"] {
        if input.starts_with(scheme) {
            assert!(parsed.is_err(), "{input:?} uses an unsupported scheme");
        }
    }
    let Ok(loc) = parsed else {
        return;
    };
    match &loc {
        Location::Local(p) => {
            assert!(!p.is_empty());
            assert!(input == p || input.strip_prefix("local:") == Some(p.as_str()));
        }
        Location::Memory(n) => assert_eq!(input.strip_prefix("memory:"), Some(n.as_str())),
        Location::S3(s) => {
            assert!(input.starts_with("s3:"));
            assert!(
                !s.endpoint.is_empty() && !s.endpoint.contains(['@', '/']),
                "{s:?}"
            );
            assert!(!s.bucket.is_empty() && !s.bucket.contains('/'), "{s:?}");
            assert_eq!(s.use_http, input.starts_with("s3:http://"));
            clean(&s.prefix);
        }
        Location::Gcs { bucket, prefix } => {
            assert!(input.starts_with("gs:"));
            assert!(!bucket.is_empty() && !bucket.contains(['/', ':']));
            clean(prefix);
        }
        Location::Azure { container, prefix } => {
            assert!(input.starts_with("azure:"));
            assert!(!container.is_empty() && !container.contains(['/', ':']));
            clean(prefix);
        }
    }
    let again = canonical(input, &loc);
    match parse_location(&again) {
        Ok(l) => assert_eq!(l, loc, "{input:?} -> {again:?}"),
        Err(e) => {
            panic!("{input:?} parsed as {loc:?}, but its canonical form {again:?} fails: {e}")
        }
    }
});

//! AWS's shared files for S3 locations, as the AWS CLI and restic's minio client read
//! them: a profile's keys from `~/.aws/credentials` (or `AWS_SHARED_CREDENTIALS_FILE`)
//! and its region from `~/.aws/config` (or `AWS_CONFIG_FILE`; `[profile NAME]`
//! sections there), for the profile `AWS_PROFILE` names or `default`. They only fill
//! what the environment and the secret directory leave unset, and keys are taken
//! as a set, never mixed with keys from elsewhere. A profile asked for by name that
//! neither file has is an error, not a silent fall-back to instance credentials.

use std::{collections::BTreeMap, path::PathBuf};

use super::cloud::Vars;
use crate::error::{Error, Result};

const KEYS: [(&str, &str); 3] = [
    ("aws_access_key_id", "AWS_ACCESS_KEY_ID"),
    ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
    ("aws_session_token", "AWS_SESSION_TOKEN"),
];

/// The `key = value` pairs of section `name` of an INI text, if it has one.
pub fn section(text: &str, name: &str) -> Option<BTreeMap<String, String>> {
    let mut found: Option<BTreeMap<String, String>> = None;
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = header.trim() == name;
            if inside {
                found.get_or_insert_with(BTreeMap::new);
            }
        } else if let (true, Some((k, v))) = (inside, line.split_once('=')) {
            found
                .get_or_insert_with(BTreeMap::new)
                .insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    found
}

/// Fills `vars` from the profile's files (see the module docs).
///
/// # Errors
/// [`Error::Usage`] when `AWS_PROFILE` names a profile neither file has.
pub fn apply(vars: &mut Vars) -> Result<()> {
    let explicit = vars.get("AWS_PROFILE").map(str::to_string);
    let profile = explicit.clone().unwrap_or_else(|| "default".into());
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let file = |var: &str, rel: &str| {
        vars.get(var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(rel)))
    };
    let creds_path = file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
    let config_path = file("AWS_CONFIG_FILE", ".aws/config");
    let read = |p: &Option<PathBuf>| p.as_ref().and_then(|p| std::fs::read_to_string(p).ok());
    let config_section = if profile == "default" {
        "default".to_string()
    } else {
        format!("profile {profile}")
    };
    let creds = read(&creds_path).and_then(|t| section(&t, &profile));
    let config = read(&config_path).and_then(|t| section(&t, &config_section));
    if creds.is_none() && config.is_none() {
        return match explicit {
            Some(p) => Err(Error::Usage(format!(
                "AWS_PROFILE {p:?}: no such profile in {} or {}",
                shown(&creds_path),
                shown(&config_path)
            ))),
            None => Ok(()),
        };
    }
    if vars.get("AWS_ACCESS_KEY_ID").is_none() {
        let source = [&creds, &config]
            .into_iter()
            .flatten()
            .find(|s| s.contains_key("aws_access_key_id"));
        for (key, var) in KEYS {
            if let Some(v) = source.and_then(|s| s.get(key)) {
                vars.values.insert(var.to_string(), v.clone());
            }
        }
    }
    if vars.get("AWS_DEFAULT_REGION").is_none() && vars.get("AWS_REGION").is_none() {
        if let Some(r) = config.as_ref().and_then(|c| c.get("region")) {
            vars.values.insert("AWS_DEFAULT_REGION".into(), r.clone());
        }
    }
    Ok(())
}

fn shown(p: &Option<PathBuf>) -> String {
    p.as_ref()
        .map_or_else(|| "(no HOME)".into(), |p| p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(creds: &str, config: &str) -> (tempfile::TempDir, Vec<(String, String)>) {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("credentials"), creds).unwrap();
        std::fs::write(d.path().join("config"), config).unwrap();
        let env = vec![
            (
                "AWS_SHARED_CREDENTIALS_FILE".to_string(),
                d.path().join("credentials").display().to_string(),
            ),
            (
                "AWS_CONFIG_FILE".to_string(),
                d.path().join("config").display().to_string(),
            ),
        ];
        (d, env)
    }

    const CREDS: &str = "[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key = s1\n\n\
                         # a comment\n[work]\naws_access_key_id=AKWORK\naws_secret_access_key=s2\n\
                         aws_session_token = tok\n";
    const CONFIG: &str = "[default]\nregion = us-west-2\n[profile work]\nregion = eu-north-1\n";

    #[test]
    fn a_profile_fills_what_is_unset() {
        let (_d, mut env) = files(CREDS, CONFIG);
        env.push(("AWS_PROFILE".into(), "work".into()));
        let mut v = Vars::merge(env.clone(), None);
        apply(&mut v).unwrap();
        assert_eq!(v.get("AWS_ACCESS_KEY_ID"), Some("AKWORK"));
        assert_eq!(v.get("AWS_SESSION_TOKEN"), Some("tok"));
        assert_eq!(v.get("AWS_DEFAULT_REGION"), Some("eu-north-1"));

        // Keys and region from the environment win; keys are never mixed.
        env.push(("AWS_ACCESS_KEY_ID".into(), "AKENV".into()));
        env.push(("AWS_REGION".into(), "ap-south-1".into()));
        let mut v = Vars::merge(env, None);
        apply(&mut v).unwrap();
        assert_eq!(v.get("AWS_ACCESS_KEY_ID"), Some("AKENV"));
        assert_eq!(v.get("AWS_SECRET_ACCESS_KEY"), None);
        assert_eq!(v.get("AWS_DEFAULT_REGION"), None);
    }

    #[test]
    fn the_default_profile_and_a_missing_one() {
        let (_d, env) = files(CREDS, CONFIG);
        let mut v = Vars::merge(env.clone(), None);
        apply(&mut v).unwrap();
        assert_eq!(v.get("AWS_ACCESS_KEY_ID"), Some("AKDEFAULT"));
        assert_eq!(v.get("AWS_DEFAULT_REGION"), Some("us-west-2"));
        let mut env = env;
        env.push(("AWS_PROFILE".into(), "nope".into()));
        let mut v = Vars::merge(env, None);
        let e = apply(&mut v).unwrap_err().to_string();
        assert!(e.contains("AWS_PROFILE \"nope\": no such profile"), "{e}");
    }
}

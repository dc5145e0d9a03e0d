//! A Stash storage Secret mounted as files (`--secret-dir DIR`): one file per key,
//! named like the environment variable it stands for (`RESTIC_PASSWORD`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `GOOGLE_SERVICE_ACCOUNT_JSON_KEY`,
//! `GOOGLE_PROJECT_ID`, `AZURE_ACCOUNT_NAME`, `AZURE_ACCOUNT_KEY`, `CA_CERT_DATA`, ...).
//!
//! Every regular file (or symlink to one, as Kubernetes mounts them) whose name is an
//! environment-variable name (`[A-Z0-9_]`, not starting with a digit) is read; other
//! entries (Kubernetes' `..data` links and timestamped directories, dotfiles) are
//! ignored. Values are trimmed of surrounding whitespace, as restic trims a password
//! file, so a trailing newline from `echo` or an editor does not end up in a key.
//!
//! Precedence (see [`super::cloud::Vars`]): an environment variable wins over the
//! file of the same name.

use std::{collections::BTreeMap, path::Path};

use crate::error::{Error, Result};

/// The values of a secret directory, by file name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretDir {
    /// File name to trimmed contents.
    pub values: BTreeMap<String, String>,
}

impl SecretDir {
    /// A value, if the file exists and is not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The repository password (`RESTIC_PASSWORD` file), if present.
    pub fn password(&self) -> Option<&str> {
        self.get("RESTIC_PASSWORD")
    }
}

/// Whether a file name looks like an environment variable.
pub fn is_var_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Reads a secret directory.
///
/// # Errors
/// [`Error::Usage`] if `dir` is not a readable directory, or a file in it that
/// looks like a key is unreadable or not UTF-8.
pub fn read(dir: &Path) -> Result<SecretDir> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::Usage(format!("--secret-dir {}: {e}", dir.display())))?;
    let mut values = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !is_var_name(&name) {
            continue;
        }
        let path = entry.path();
        // Follows symlinks: Kubernetes mounts keys as links into `..data/`.
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => {}
            _ => continue,
        }
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let s = String::from_utf8(bytes).map_err(|_| {
            Error::Usage(format!(
                "--secret-dir: {} is not UTF-8 text",
                path.display()
            ))
        })?;
        values.insert(name, s.trim().to_string());
    }
    Ok(SecretDir { values })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_var_name("AWS_ACCESS_KEY_ID"));
        assert!(is_var_name("CA_CERT_DATA"));
        assert!(!is_var_name("..data"));
        assert!(!is_var_name(".hidden"));
        assert!(!is_var_name("lower"));
        assert!(!is_var_name("1ABC"));
        assert!(!is_var_name(""));
    }

    #[test]
    fn reads_a_kubernetes_style_mount() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // Kubernetes: real files in a timestamped dir, `..data` links to it, and each
        // key is a link through `..data`.
        let ts = d.join("..2024_01_01_00_00_00.123");
        std::fs::create_dir(&ts).unwrap();
        std::fs::write(ts.join("RESTIC_PASSWORD"), "hunter2\n").unwrap();
        std::fs::write(ts.join("AWS_ACCESS_KEY_ID"), "  AKID \n").unwrap();
        std::fs::write(ts.join("CA_CERT_DATA"), "-----BEGIN CERTIFICATE-----\nx\n").unwrap();
        std::os::unix::fs::symlink(&ts, d.join("..data")).unwrap();
        for k in ["RESTIC_PASSWORD", "AWS_ACCESS_KEY_ID", "CA_CERT_DATA"] {
            std::os::unix::fs::symlink(format!("..data/{k}"), d.join(k)).unwrap();
        }
        std::fs::write(d.join("EMPTY"), "\n").unwrap();
        std::fs::write(d.join("notes.txt"), "ignored").unwrap();
        std::fs::create_dir(d.join("SUBDIR")).unwrap();
        let s = read(d).unwrap();
        assert_eq!(s.password(), Some("hunter2"));
        assert_eq!(s.get("AWS_ACCESS_KEY_ID"), Some("AKID"));
        assert_eq!(
            s.get("CA_CERT_DATA"),
            Some("-----BEGIN CERTIFICATE-----\nx")
        );
        assert_eq!(s.get("EMPTY"), None);
        assert_eq!(
            s.values.keys().cloned().collect::<Vec<_>>(),
            [
                "AWS_ACCESS_KEY_ID",
                "CA_CERT_DATA",
                "EMPTY",
                "RESTIC_PASSWORD"
            ]
        );
    }

    #[test]
    fn missing_dir_and_binary_file_are_errors() {
        let e = read(Path::new("/nonexistent/secret")).unwrap_err();
        assert!(e.to_string().contains("--secret-dir"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("AZURE_ACCOUNT_KEY"), [0xff, 0xfe]).unwrap();
        let e = read(dir.path()).unwrap_err();
        assert!(e.to_string().contains("not UTF-8"), "{e}");
    }
}

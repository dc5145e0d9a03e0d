//! Snapshot documents (`snapshots/<id>`, spec §8.1).
//!
//! Unlike trees, snapshot bytes need not match restic's: the file id is the hash of the
//! *encrypted* file and therefore random anyway. Keys are still written in Go struct
//! order with restic's omit rules so the documents look like restic's. Reading is
//! permissive: every field may be absent or `null` (restic 0.17's `summary` lacks fields
//! other tools expected; older snapshots lack `summary` and `program_version`). Unknown
//! fields are ignored and, like restic, dropped when the snapshot is re-written.

use serde::{Deserialize, Deserializer, Serialize};

use crate::{
    error::{FormatError, Result},
    gotime::GoTime,
    id::Id,
};

/// `null` (or absent, with `#[serde(default)]`) reads as the zero value, as in Go.
fn null_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// One snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// Backup start time, in the writer's zone.
    #[serde(default, deserialize_with = "null_default")]
    pub time: GoTime,
    /// The snapshot this backup used as parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Id>,
    /// Root tree; always written (`null` only in broken snapshots).
    #[serde(default)]
    pub tree: Option<Id>,
    /// Absolute paths given to backup.
    #[serde(default, deserialize_with = "null_default")]
    pub paths: Vec<String>,
    /// Host name.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub hostname: String,
    /// User name.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub username: String,
    /// Uid of the backing-up user (absent for root).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub uid: u32,
    /// Gid of the backing-up user (absent for root).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub gid: u32,
    /// Exclude patterns used.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub excludes: Vec<String>,
    /// Tags.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tags: Vec<String>,
    /// Id of the first version of a rewritten snapshot (kept across later rewrites).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<Id>,
    /// Writer, e.g. `restic 0.17.0` (restic >= 0.16).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub program_version: String,
    /// Backup statistics (restic >= 0.17).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<SnapshotSummary>,
}

/// `summary` of a snapshot. restic writes every field; all default to zero on read.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SnapshotSummary {
    /// When the backup started.
    #[serde(deserialize_with = "null_default")]
    pub backup_start: GoTime,
    /// When the backup finished.
    #[serde(deserialize_with = "null_default")]
    pub backup_end: GoTime,
    /// Files not in the parent snapshot.
    #[serde(deserialize_with = "null_default")]
    pub files_new: u64,
    /// Files changed since the parent.
    #[serde(deserialize_with = "null_default")]
    pub files_changed: u64,
    /// Files unchanged since the parent.
    #[serde(deserialize_with = "null_default")]
    pub files_unmodified: u64,
    /// Directories not in the parent.
    #[serde(deserialize_with = "null_default")]
    pub dirs_new: u64,
    /// Directories changed.
    #[serde(deserialize_with = "null_default")]
    pub dirs_changed: u64,
    /// Directories unchanged.
    #[serde(deserialize_with = "null_default")]
    pub dirs_unmodified: u64,
    /// Data blobs added (a Go `int`).
    #[serde(deserialize_with = "null_default")]
    pub data_blobs: i64,
    /// Tree blobs added (a Go `int`).
    #[serde(deserialize_with = "null_default")]
    pub tree_blobs: i64,
    /// Bytes added before compression.
    #[serde(deserialize_with = "null_default")]
    pub data_added: u64,
    /// Bytes added as stored in packs.
    #[serde(deserialize_with = "null_default")]
    pub data_added_packed: u64,
    /// Files read.
    #[serde(deserialize_with = "null_default")]
    pub total_files_processed: u64,
    /// Bytes read.
    #[serde(deserialize_with = "null_default")]
    pub total_bytes_processed: u64,
}

impl Snapshot {
    /// A snapshot of `paths` with root `tree` taken at `time`; other fields empty.
    pub fn new(time: GoTime, tree: Id, paths: Vec<String>) -> Self {
        Snapshot {
            time,
            tree: Some(tree),
            paths,
            ..Snapshot::default()
        }
    }

    /// Compact JSON (no trailing newline, like restic), ready for the unpacked encoding.
    ///
    /// # Errors
    /// Only if serialization itself fails, which the field types rule out.
    pub fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| FormatError::json("snapshot", e))
    }

    /// Parses a snapshot document.
    ///
    /// # Errors
    /// [`FormatError::Json`] for malformed JSON, wrong types, bad ids or times;
    /// [`FormatError::Invalid`] for a top-level array.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        // serde's derived reader would also take a JSON array as a struct; Go does not.
        if bytes.trim_ascii_start().first() == Some(&b'[') {
            return Err(FormatError::invalid("snapshot", "not a JSON object"));
        }
        serde_json::from_slice(bytes).map_err(|e| FormatError::json("snapshot", e))
    }

    /// restic's `HasTags`: every tag in `tags` is present; the empty tag matches a
    /// snapshot without tags (and makes the whole list match it).
    pub fn has_tags<S: AsRef<str>>(&self, tags: &[S]) -> bool {
        for tag in tags {
            let tag = tag.as_ref();
            if tag.is_empty() && self.tags.is_empty() {
                return true;
            }
            if !self.tags.iter().any(|t| t == tag) {
                return false;
            }
        }
        true
    }

    /// restic's `HasTagList`: no lists, or at least one list fully matched (each inner list
    /// is one `--tag a,b` argument).
    pub fn has_tag_list<S: AsRef<str>>(&self, lists: &[Vec<S>]) -> bool {
        lists.is_empty() || lists.iter().any(|l| self.has_tags(l))
    }

    /// restic's `HasPaths`: every path in `paths` is one of the snapshot's paths.
    pub fn has_paths<S: AsRef<str>>(&self, paths: &[S]) -> bool {
        paths
            .iter()
            .all(|p| self.paths.iter().any(|sp| sp == p.as_ref()))
    }

    /// restic's `HasHostname`: no host filter, or the hostname is one of `hosts`.
    pub fn has_hostname<S: AsRef<str>>(&self, hosts: &[S]) -> bool {
        hosts.is_empty() || hosts.iter().any(|h| h.as_ref() == self.hostname)
    }

    /// restic's snapshot filter (`--host`, `--tag`, `--path`): all three must match.
    pub fn matches<S: AsRef<str>>(&self, hosts: &[S], tag_lists: &[Vec<S>], paths: &[S]) -> bool {
        self.has_hostname(hosts) && self.has_tag_list(tag_lists) && self.has_paths(paths)
    }

    /// Adds tags not yet present, in order; returns whether anything changed.
    pub fn add_tags<S: AsRef<str>>(&mut self, tags: &[S]) -> bool {
        let before = self.tags.len();
        for t in tags {
            let t = t.as_ref();
            if !t.is_empty() && !self.tags.iter().any(|x| x == t) {
                self.tags.push(t.to_owned());
            }
        }
        self.tags.len() != before
    }

    /// Removes every occurrence of the given tags; returns whether anything changed.
    pub fn remove_tags<S: AsRef<str>>(&mut self, tags: &[S]) -> bool {
        let before = self.tags.len();
        self.tags.retain(|t| !tags.iter().any(|r| r.as_ref() == t));
        self.tags.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn golden(name: &str) -> Vec<u8> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
        std::fs::read(dir.join(name)).unwrap()
    }

    #[test]
    fn restic_snapshots_decode() {
        let s = Snapshot::decode(&golden("snapshot-21dc7d04.json")).unwrap();
        assert_eq!(s.time.to_string(), "2026-11-24T23:30:47.821145405+01:00");
        assert_eq!(
            s.tree.unwrap().to_hex(),
            "a0281507667900ce1172c7ad34a13f18afb72f8487c88000a54b24a4742d2aba"
        );
        assert_eq!(s.paths, ["/tmp/fixture-src/src"]);
        assert_eq!((s.hostname.as_str(), s.username.as_str()), ("vm", "root"));
        assert_eq!((s.uid, s.gid), (0, 0));
        assert_eq!(s.excludes, ["*.tmp"]);
        assert_eq!(s.tags, ["t1", "golden"]);
        assert_eq!(
            (s.parent, s.original, s.summary.as_ref()),
            (None, None, None)
        );

        let t = Snapshot::decode(&golden("snapshot-9ae9edf4-tagged.json")).unwrap();
        assert_eq!(t.parent.unwrap().short(), "cde0c450");
        assert_eq!(t.original.unwrap().short(), "f8351098");
        assert_eq!(t.tags, ["extra"]);
        // Re-encoding keeps Go key order and omit rules.
        let j = String::from_utf8(t.encode().unwrap()).unwrap();
        assert_eq!(
            j,
            format!(
                r#"{{"time":"2026-11-24T22:30:35.090944098Z","parent":"{}","tree":"{}","paths":["/tmp/fixture-src/src"],"hostname":"vm","username":"root","tags":["extra"],"original":"{}"}}"#,
                t.parent.unwrap(),
                t.tree.unwrap(),
                t.original.unwrap()
            )
        );
        assert_eq!(Snapshot::decode(j.as_bytes()).unwrap(), t);
    }

    #[test]
    fn summary_and_nulls() {
        let j = br#"{"time":"2024-05-01T10:00:00.5+02:00","tree":null,"paths":null,
            "hostname":null,"uid":1000,"gid":1000,"tags":null,"program_version":"restic 0.17.0",
            "summary":{"backup_start":"2024-05-01T10:00:00.5+02:00","files_new":3,
                       "data_blobs":-1,"total_dirs_processed":9},
            "labels":{"x":"y"}}"#;
        let s = Snapshot::decode(j).unwrap();
        assert_eq!(s.tree, None);
        assert!(s.paths.is_empty() && s.tags.is_empty() && s.hostname.is_empty());
        assert_eq!((s.uid, s.gid), (1000, 1000));
        let sum = s.summary.as_ref().unwrap();
        assert_eq!((sum.files_new, sum.data_blobs, sum.dirs_new), (3, -1, 0));
        assert!(sum.backup_end.is_go_zero());
        let out = String::from_utf8(s.encode().unwrap()).unwrap();
        assert!(out.starts_with(r#"{"time":"2024-05-01T10:00:00.5+02:00","tree":null,"paths":[],"uid":1000,"gid":1000,"program_version":"restic 0.17.0","summary":{"backup_start":"2024-05-01T10:00:00.5+02:00","backup_end":"0001-01-01T00:00:00Z","files_new":3,"#), "{out}");
        assert!(!out.contains("labels") && !out.contains("total_dirs"));
        assert_eq!(Snapshot::decode(out.as_bytes()).unwrap(), s);
    }

    #[test]
    fn malformed_snapshots() {
        for bad in [
            &b""[..],
            b"[]",
            b"{\"time\":\"now\"}",
            b"{\"tree\":\"abc\"}",
            b"{\"paths\":\"/\"}",
            b"{\"uid\":-1}",
            b"{\"time\":\"2024-05-01T10:00:00Z\"",
        ] {
            assert!(
                Snapshot::decode(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(Snapshot::decode(b"{}").is_ok());
    }

    #[test]
    fn filters_like_restic() {
        let mut s = Snapshot::new(
            GoTime::default(),
            Id::hash(b"t"),
            vec!["/a".into(), "/b".into()],
        );
        s.hostname = "h1".into();
        s.tags = vec!["x".into(), "y".into()];
        let none: &[&str] = &[];
        assert!(s.has_tags(&["x", "y"]) && !s.has_tags(&["x", "z"]) && s.has_tags(none));
        assert!(!s.has_tags(&[""]));
        assert!(s.has_tag_list(&[vec!["z"], vec!["y"]]) && !s.has_tag_list(&[vec!["z"]]));
        assert!(s.has_paths(&["/b"]) && !s.has_paths(&["/a", "/c"]));
        assert!(s.has_hostname(&["h0", "h1"]) && !s.has_hostname(&["h0"]) && s.has_hostname(none));
        assert!(s.matches(&["h1"], &[vec!["x"]], &["/a"]));
        assert!(!s.matches(&["h1"], &[vec!["q"]], &["/a"]));
        assert!(s.add_tags(&["z", "x", ""]) && s.tags == ["x", "y", "z"]);
        assert!(!s.add_tags(&["x"]));
        assert!(s.remove_tags(&["x", "q"]) && s.tags == ["y", "z"]);
        s.tags.clear();
        assert!(s.has_tags(&[""]) && s.has_tag_list(&[vec![""]]));
    }
}

//! `--files-from` lines expanded as restic expands them (Go's `filepath.Glob`): `*`,
//! `?` and `[...]` match within one path component against the directory's entries;
//! a line without them names itself if it exists. Matches come sorted per directory.

use std::path::{Component, Path, PathBuf};

use globset::GlobBuilder;

fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The existing paths `pattern` names.
///
/// # Errors
/// An invalid pattern, named.
pub fn expand(pattern: &str) -> anyhow::Result<Vec<PathBuf>> {
    if !has_meta(pattern) {
        let p = PathBuf::from(pattern);
        return Ok(std::fs::symlink_metadata(&p)
            .map(|_| vec![p])
            .unwrap_or_default());
    }
    let mut found = vec![PathBuf::new()];
    for comp in Path::new(pattern).components() {
        let part = match comp {
            Component::Normal(s) => s.to_string_lossy().into_owned(),
            other => {
                found.iter_mut().for_each(|p| p.push(other.as_os_str()));
                continue;
            }
        };
        if !has_meta(&part) {
            found.iter_mut().for_each(|p| p.push(&part));
            continue;
        }
        let glob = GlobBuilder::new(&part)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| anyhow::anyhow!("invalid pattern {pattern:?}: {e}"))?
            .compile_matcher();
        let mut next = Vec::new();
        for dir in &found {
            let listing = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            let Ok(entries) = std::fs::read_dir(listing) else {
                continue;
            };
            let mut names: Vec<_> = entries
                .flatten()
                .map(|e| e.file_name())
                .filter(|n| glob.is_match(Path::new(n)))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| dir.join(n)));
        }
        found = next;
    }
    found.retain(|p| std::fs::symlink_metadata(p).is_ok());
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_expand_within_components() {
        let d = tempfile::tempdir().unwrap();
        for f in ["a/x1.txt", "a/x2.txt", "a/y.md", "b/x3.txt"] {
            let p = d.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"").unwrap();
        }
        let root = d.path().to_str().unwrap();
        let got = expand(&format!("{root}/*/x*.txt")).unwrap();
        let names: Vec<_> = got
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().to_path_buf())
            .collect();
        assert_eq!(
            names,
            ["a/x1.txt", "a/x2.txt", "b/x3.txt"].map(PathBuf::from)
        );
        assert_eq!(expand(&format!("{root}/a/y.md")).unwrap().len(), 1);
        assert!(expand(&format!("{root}/missing")).unwrap().is_empty());
        assert!(expand(&format!("{root}/[")).is_err());
    }
}

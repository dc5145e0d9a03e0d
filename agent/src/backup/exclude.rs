//! `--exclude` patterns with restic's meaning: a pattern is a sequence of path
//! components with shell wildcards (`*`, `?`, `[...]`) inside a component and `**`
//! for any number of components. A pattern starting with `/` matches from the root;
//! any other pattern may match at any depth. Whatever a pattern matches is skipped
//! with everything below it.

use globset::{GlobBuilder, GlobMatcher};

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
enum Part {
    AnyDepth,
    Glob(GlobMatcher),
}

#[derive(Debug, Clone)]
struct Pattern {
    anchored: bool,
    parts: Vec<Part>,
}

/// A set of exclude patterns.
#[derive(Debug, Clone, Default)]
pub struct Excludes {
    patterns: Vec<Pattern>,
}

impl Excludes {
    /// Compiles patterns.
    ///
    /// # Errors
    /// [`Error::Usage`] naming an invalid pattern.
    pub fn new(patterns: &[String]) -> Result<Self> {
        let mut out = Vec::new();
        for p in patterns {
            let p = p.trim();
            if p.is_empty() {
                continue;
            }
            let anchored = p.starts_with('/');
            let parts = p
                .split('/')
                .filter(|c| !c.is_empty())
                .map(|c| {
                    if c == "**" {
                        Ok(Part::AnyDepth)
                    } else {
                        GlobBuilder::new(c)
                            .literal_separator(true)
                            .backslash_escape(true)
                            .build()
                            .map(|g| Part::Glob(g.compile_matcher()))
                            .map_err(|e| {
                                Error::Usage(format!("invalid exclude pattern {p:?}: {e}"))
                            })
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            out.push(Pattern { anchored, parts });
        }
        Ok(Excludes { patterns: out })
    }

    /// Whether there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether the absolute `path` matches a pattern.
    pub fn is_excluded(&self, path: &std::path::Path) -> bool {
        if self.patterns.is_empty() {
            return false;
        }
        let comps: Vec<String> = path
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        self.patterns.iter().any(|p| {
            if p.anchored {
                matches(&p.parts, &comps)
            } else {
                (0..comps.len()).any(|start| matches(&p.parts, &comps[start..]))
            }
        })
    }
}

/// Whether `parts` consume all of `comps` exactly.
fn matches(parts: &[Part], comps: &[String]) -> bool {
    match parts.split_first() {
        None => comps.is_empty(),
        Some((Part::AnyDepth, rest)) => (0..=comps.len()).any(|skip| matches(rest, &comps[skip..])),
        Some((Part::Glob(g), rest)) => match comps.split_first() {
            Some((c, tail)) => g.is_match(c) && matches(rest, tail),
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn restic_like_matching() {
        let e = Excludes::new(&[
            "*.log".into(),
            "/tmp/cache".into(),
            "node_modules".into(),
            "a/**/z".into(),
        ])
        .unwrap();
        for (p, want) in [
            ("/home/x/app.log", true),
            ("/home/x/app.log.1", false),
            ("/tmp/cache", true),
            ("/var/tmp/cache", false),
            ("/src/node_modules", true),
            ("/src/node_modules_x", false),
            ("/r/a/b/c/z", true),
            ("/r/a/z", true),
            ("/r/a/zz", false),
        ] {
            assert_eq!(e.is_excluded(Path::new(p)), want, "{p}");
        }
        assert!(Excludes::new(&["[".into()]).is_err());
    }
}

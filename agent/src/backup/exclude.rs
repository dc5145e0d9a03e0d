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
///
/// One pass per part over the set of component counts the parts so far can consume:
/// O(parts × components) whatever the number of `**`, where backtracking would take
/// exponential time on a pattern of many `**` that does not match.
fn matches(parts: &[Part], comps: &[String]) -> bool {
    let mut reach = vec![false; comps.len() + 1];
    reach[0] = true;
    for part in parts {
        let mut next = vec![false; comps.len() + 1];
        match part {
            Part::AnyDepth => {
                let mut any = false;
                for (n, r) in reach.iter().enumerate() {
                    any |= *r;
                    next[n] = any;
                }
            }
            Part::Glob(g) => {
                for (n, c) in comps.iter().enumerate() {
                    next[n + 1] = reach[n] && g.is_match(c);
                }
            }
        }
        if !next.contains(&true) {
            return false;
        }
        reach = next;
    }
    reach[comps.len()]
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

    /// The backtracking matcher this one replaced, as the oracle.
    fn backtracking(parts: &[Part], comps: &[String]) -> bool {
        match parts.split_first() {
            None => comps.is_empty(),
            Some((Part::AnyDepth, rest)) => {
                (0..=comps.len()).any(|skip| backtracking(rest, &comps[skip..]))
            }
            Some((Part::Glob(g), rest)) => match comps.split_first() {
                Some((c, tail)) => g.is_match(c) && backtracking(rest, tail),
                None => false,
            },
        }
    }

    #[test]
    fn agrees_with_backtracking_on_small_cases() {
        let patterns = [
            "a/**/z",
            "**",
            "**/a",
            "a/**",
            "**/*/**",
            "a/*/**/b/**/z",
            "**/**/a/**",
        ];
        let paths = ["a", "a/z", "a/b/z", "x/a/b/b/z", "a/b", "b/a/a", "z/z/z/z"];
        for p in patterns {
            let e = Excludes::new(&[p.to_string()]).unwrap();
            for path in paths {
                let comps: Vec<String> = path.split('/').map(str::to_string).collect();
                let parts = &e.patterns[0].parts;
                assert_eq!(
                    matches(parts, &comps),
                    backtracking(parts, &comps),
                    "{p} on {path}"
                );
            }
        }
    }

    /// Thirty `**` against a path sixty deep that does not match: backtracking would try
    /// about 61^30 splits and never finish.
    #[test]
    fn many_any_depth_parts_do_not_explode() {
        let pattern = format!("{}nomatch", "**/".repeat(30));
        let e = Excludes::new(&[pattern]).unwrap();
        let deep: std::path::PathBuf = std::iter::once("/".to_string())
            .chain((0..60).map(|i| format!("d{i}")))
            .collect();
        assert!(!e.is_excluded(&deep));
        assert!(e.is_excluded(&deep.join("nomatch")));
    }
}

//! `--exclude` patterns with restic's meaning: a pattern is a sequence of path
//! components with shell wildcards (`*`, `?`, `[...]`) inside a component and `**`
//! for any number of components. A pattern starting with `/` matches from the root;
//! any other pattern may match at any depth. As restic's `filter.Match`, a pattern
//! matches a path when it matches a run of the path's components, not only its end:
//! `d` matches `/src/d/b/x`. Whatever a pattern matches is skipped with everything
//! below it; `find` prints every match.

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
                            .map_err(|e| Error::Usage(format!("invalid pattern {p:?}: {e}")))
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
        let comps = components(path);
        self.patterns.iter().any(|p| {
            if p.anchored {
                reach(&p.parts, &comps).contains(&true)
            } else {
                (0..comps.len()).any(|start| reach(&p.parts, &comps[start..]).contains(&true))
            }
        })
    }

    /// Whether a path below the directory `dir` could match a pattern (restic's
    /// `ChildMatch`): a directory for which this is false need not be read.
    pub fn may_match_below(&self, dir: &std::path::Path) -> bool {
        let comps = components(dir);
        self.patterns.iter().any(|p| {
            if !p.anchored {
                return true;
            }
            let mut reach = vec![false; comps.len() + 1];
            reach[0] = true;
            for part in &p.parts {
                if reach[comps.len()] || matches!(part, Part::AnyDepth) {
                    return true;
                }
                reach = step(part, &reach, &comps);
                if !reach.contains(&true) {
                    return false;
                }
            }
            true
        })
    }
}

fn components(path: &std::path::Path) -> Vec<String> {
    path.components()
        .filter_map(|c| match c {
            std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect()
}

/// Which numbers of leading components of `comps` the whole of `parts` can consume:
/// `reach(..)[n]` is true when `parts` match `comps[..n]`.
///
/// One pass per part over the set of component counts the parts so far can consume:
/// O(parts × components) whatever the number of `**`, where backtracking would take
/// exponential time on a pattern of many `**` that does not match.
fn reach(parts: &[Part], comps: &[String]) -> Vec<bool> {
    let mut reach = vec![false; comps.len() + 1];
    reach[0] = true;
    for part in parts {
        reach = step(part, &reach, comps);
        if !reach.contains(&true) {
            break;
        }
    }
    reach
}

/// The component counts reachable after `part`, from those reachable before it.
fn step(part: &Part, reach: &[bool], comps: &[String]) -> Vec<bool> {
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
    next
}

/// `--exclude` patterns, matched as written, with `--iexclude` patterns, matched
/// ignoring case (lower-cased, against the lower-cased path).
#[derive(Debug, Clone, Default)]
pub struct PathExcludes {
    cased: Excludes,
    uncased: Excludes,
}

impl PathExcludes {
    /// Compiles both sets.
    ///
    /// # Errors
    /// [`Error::Usage`] naming an invalid pattern.
    pub fn new(cased: &[String], uncased: &[String]) -> Result<Self> {
        let lowered: Vec<String> = uncased.iter().map(|p| p.to_lowercase()).collect();
        Ok(PathExcludes {
            cased: Excludes::new(cased)?,
            uncased: Excludes::new(&lowered)?,
        })
    }

    /// Whether there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.cased.is_empty() && self.uncased.is_empty()
    }

    /// Whether the absolute `path` matches a pattern of either set.
    pub fn is_excluded(&self, path: &std::path::Path) -> bool {
        self.cased.is_excluded(path)
            || (!self.uncased.is_empty()
                && self
                    .uncased
                    .is_excluded(std::path::Path::new(&path.to_string_lossy().to_lowercase())))
    }
}

#[cfg(test)]
fn matches(parts: &[Part], comps: &[String]) -> bool {
    reach(parts, comps)[comps.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn iexcludes_ignore_case_and_excludes_do_not() {
        let e = PathExcludes::new(&["*.TMP".into()], &["CACHE".into()]).unwrap();
        assert!(e.is_excluded(Path::new("/a/x.TMP")));
        assert!(!e.is_excluded(Path::new("/a/x.tmp")));
        assert!(e.is_excluded(Path::new("/a/Cache/y")));
        assert!(e.is_excluded(Path::new("/a/cache")));
        assert!(!PathExcludes::default().is_excluded(Path::new("/a")));
    }

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
            // A run of components matches, as in restic: what lies below a match too.
            ("/src/node_modules/x/y.js", true),
            ("/tmp/cache/x", true),
            ("/r/a/b/z/below", true),
            ("/x/tmp/cache/y", false),
        ] {
            assert_eq!(e.is_excluded(Path::new(p)), want, "{p}");
        }
        assert!(Excludes::new(&["[".into()]).is_err());
    }

    #[test]
    fn only_anchored_patterns_rule_out_directories() {
        let e = Excludes::new(&["/srv/*/logs".into()]).unwrap();
        for (dir, want) in [
            ("/", true),
            ("/srv", true),
            ("/srv/app", true),
            ("/srv/app/logs", true),
            ("/srv/app/logs/old", true),
            ("/srv/app/data", false),
            ("/home", false),
        ] {
            assert_eq!(e.may_match_below(Path::new(dir)), want, "{dir}");
        }
        let deep = Excludes::new(&["/a/**/z".into()]).unwrap();
        assert!(deep.may_match_below(Path::new("/a/b/c")));
        assert!(!deep.may_match_below(Path::new("/b")));
        assert!(Excludes::new(&["z".into()])
            .unwrap()
            .may_match_below(Path::new("/anything")));
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

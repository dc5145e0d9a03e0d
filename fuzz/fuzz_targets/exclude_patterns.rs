//! `--exclude` patterns (agent/src/backup/exclude.rs) with arbitrary patterns and
//! paths: compiling returns an error or a matcher, matching never panics, and:
//! - a set compiles exactly when each of its patterns does, and excludes a path
//!   exactly when one of its patterns alone does (blank patterns are ignored);
//! - an unanchored pattern that matches a path also matches it below one more
//!   directory (it may match at any depth);
//! - a pattern that matches a path matches what lies below it (restic's
//!   `filter.Match` matches a run of components, not only the path's end);
//! - `**` excludes every path with a component, `/**` every path;
//! - a path's own components, glob-escaped, exclude it: anchored and whole, or
//!   unanchored as its last component.
//!
//! Patterns and paths are kept short; `**` parts are not limited, since matching is
//! linear in them (this target once found it exponential, see fuzz/README.md).
#![no_main]
use std::path::{Component, Path, PathBuf};

use libfuzzer_sys::{arbitrary::Unstructured, fuzz_target};
use stash_agent::backup::exclude::Excludes;

fn escape(component: &str) -> String {
    let mut out = String::new();
    for c in component.chars() {
        if matches!(c, '\\' | '*' | '?' | '[' | ']' | '{' | '}') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn components(p: &Path) -> Vec<String> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect()
}

fn short_string(u: &mut Unstructured<'_>, max: usize) -> String {
    let s: String = u.arbitrary().unwrap_or_default();
    s.chars().take(max).collect()
}

fn pattern(u: &mut Unstructured<'_>) -> String {
    // Mostly glob-ish text from a small alphabet, sometimes anything.
    if u.arbitrary().unwrap_or(false) {
        return short_string(u, 40);
    }
    const ATOMS: &[&str] = &[
        "/", "*", "**", "?", "a", "b", ".", "[a-c]", "[!a]", "{a,b}", "\\*", " ", "x.log", "..",
    ];
    let n = u.int_in_range(0..=8u8).unwrap_or(0);
    (0..n).map(|_| *u.choose(ATOMS).unwrap_or(&"a")).collect()
}

fn path(u: &mut Unstructured<'_>) -> PathBuf {
    let mut p = PathBuf::from("/");
    for _ in 0..u.int_in_range(0..=8u8).unwrap_or(0) {
        let c = if u.arbitrary().unwrap_or(false) {
            short_string(u, 12)
        } else {
            (*u.choose(&["a", "b", "x.log", "*", "c d", "..", "."])
                .unwrap_or(&"a"))
            .to_string()
        };
        p.push(c.replace('/', "_"));
    }
    p
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let patterns: Vec<String> = (0..u.int_in_range(0..=4u8).unwrap_or(0))
        .map(|_| pattern(&mut u))
        .collect();
    let paths: Vec<PathBuf> = (0..u.int_in_range(1..=4u8).unwrap_or(1))
        .map(|_| path(&mut u))
        .collect();

    let singles: Vec<_> = patterns
        .iter()
        .map(|p| Excludes::new(std::slice::from_ref(p)))
        .collect();
    let set = Excludes::new(&patterns);
    assert_eq!(
        set.is_ok(),
        singles.iter().all(Result::is_ok),
        "{patterns:?}"
    );
    let Ok(set) = set else {
        return;
    };
    let singles: Vec<Excludes> = singles.into_iter().map(Result::unwrap).collect();
    assert_eq!(set.is_empty(), patterns.iter().all(|p| p.trim().is_empty()));
    for p in &paths {
        let hit = set.is_excluded(p);
        assert_eq!(
            hit,
            singles.iter().any(|s| s.is_excluded(p)),
            "{patterns:?} {p:?}"
        );
        for (pat, single) in patterns.iter().zip(&singles) {
            if single.is_excluded(p) {
                let below = p.join("below");
                assert!(
                    single.is_excluded(&below),
                    "{pat:?} matched {p:?} but not {below:?}"
                );
            }
            if !pat.trim().starts_with('/') && single.is_excluded(p) {
                let deeper = Path::new("/deeper").join(p.strip_prefix("/").unwrap_or(p));
                assert!(
                    single.is_excluded(&deeper),
                    "{pat:?} matched {p:?} but not {deeper:?}"
                );
            }
        }
    }

    static FIXED: std::sync::OnceLock<(Excludes, Excludes)> = std::sync::OnceLock::new();
    let (everything, any_component) = FIXED.get_or_init(|| {
        (
            Excludes::new(&["/**".to_string()]).unwrap(),
            Excludes::new(&["**".to_string()]).unwrap(),
        )
    });
    for p in &paths {
        let comps = components(p);
        assert!(everything.is_excluded(p));
        assert_eq!(any_component.is_excluded(p), !comps.is_empty(), "{p:?}");
        let Some(last) = comps.last() else {
            continue;
        };
        // `Excludes::new` trims patterns: a trailing blank would be lost.
        if last.ends_with(char::is_whitespace) {
            continue;
        }
        let whole = format!(
            "/{}",
            comps
                .iter()
                .map(|c| escape(c))
                .collect::<Vec<_>>()
                .join("/")
        );
        let e = Excludes::new(&[whole.clone()]).expect("an escaped path compiles");
        assert!(e.is_excluded(p), "{whole:?} does not exclude {p:?}");
        if !last.starts_with(char::is_whitespace) {
            let tail = escape(last);
            let e = Excludes::new(&[tail.clone()]).expect("an escaped name compiles");
            assert!(e.is_excluded(p), "{tail:?} does not exclude {p:?}");
        }
    }
});

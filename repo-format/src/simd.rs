//! Hand-written fast paths for the crypto primitives, behind the opt-in cargo feature
//! `simd-crypto`: the only module of this crate with `unsafe` code.
//!
//! | primitive | fast path | CPU flags it needs (`/proc/cpuinfo` names) | held to |
//! |---|---|---|---|
//! | SHA-256 | [`sha256`]: SHA-NI, two independent streams interleaved | `sha_ni`, `sse2`, `ssse3`, `sse4_1` | `sha2` |
//! | scrypt | [`scrypt`]: lanes on several threads, Salsa20/8 on SSE2 rows | `sse2` (x86-64 baseline, checked at compile time) | `scrypt` |
//!
//! AES-256-CTR and Poly1305 have no fast path: they are always the `aes` + `ctr` and
//! `poly1305` crates (a fast path stays only while CI's CPU can run and test it).
//!
//! Without the feature none of this is compiled and every path runs the RustCrypto
//! crates. With it, each primitive takes its fast path only where the CPU has the
//! flags (checked at run time) and the fast paths are switched on: setting the
//! environment variable [`ENV`] (`STASH_SIMD_CRYPTO`) to `0`, `false`, `off` or
//! `no` turns all of them off for the process (it is read once, at the first use),
//! so that a suspected fast-path bug can be ruled out without a rebuild. Any other
//! value, or none, leaves them on.
//!
//! Every fast path is checked against its RustCrypto crate by this module's tests
//! (proptest) and by a differential fuzz target (`fuzz/fuzz_targets/simd_*.rs`). The
//! functions that take the SHA-NI path unconditionally (`sha256::compress`,
//! `sha256::compress_pair`, `sha256::Hasher::new`) panic with the name of the
//! missing CPU flag when the CPU lacks it, so a test or fuzz target that claims to
//! cover it fails loudly on such a CPU instead of passing on the fallback. The
//! `reference` functions are the RustCrypto crates' results, exported for the fuzz
//! targets.
//!
//! Rules for the `unsafe` code below: intrinsics that only compute are safe
//! functions inside `#[target_feature]` functions; `unsafe` is left for loads and
//! stores through pointers and for entering a `#[target_feature]` function after the
//! run-time check. Every `unsafe` block carries a `SAFETY:` comment saying why it
//! holds (enforced by the lints below).
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::sync::OnceLock;

pub mod scrypt;
pub mod sha256;

/// The environment variable that switches the fast paths off: `0`, `false`, `off`
/// or `no` (any case) turn them off; read once per process.
pub const ENV: &str = "STASH_SIMD_CRYPTO";

/// Whether the fast paths are switched on ([`ENV`]); the CPU is asked separately,
/// per primitive.
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| switch(std::env::var(ENV).ok().as_deref()))
}

/// Whether a fast path runs: switched on and the CPU has its flags. Decided once
/// per process and kept in `cell`, since the crypto asks for every blob.
fn in_use(cell: &OnceLock<bool>, missing_cpu_flag: fn() -> Option<CpuFlag>) -> bool {
    *cell.get_or_init(|| enabled() && missing_cpu_flag().is_none())
}

/// The switch's value for the variable's text (`None` when unset).
fn switch(value: Option<&str>) -> bool {
    !value.is_some_and(|v| {
        ["0", "false", "off", "no"]
            .iter()
            .any(|off| v.trim().eq_ignore_ascii_case(off))
    })
}

/// A CPU feature a fast path needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuFlag {
    /// Its name for `is_x86_feature_detected!` and `#[target_feature]`.
    pub feature: &'static str,
    /// Its name in the `flags` line of `/proc/cpuinfo`.
    pub cpuinfo: &'static str,
}

impl std::fmt::Display for CpuFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` (`{}` in /proc/cpuinfo)",
            self.feature, self.cpuinfo
        )
    }
}

/// What every fast path lacks off x86-64.
#[cfg(not(target_arch = "x86_64"))]
const X86_64: CpuFlag = CpuFlag {
    feature: "x86_64",
    cpuinfo: "an x86-64 CPU",
};

/// The first of `flags` (pairs of target-feature and `/proc/cpuinfo` names) the CPU
/// lacks; a macro because `is_x86_feature_detected!` wants literals.
#[cfg(target_arch = "x86_64")]
macro_rules! first_missing {
    ($(($feature:tt, $cpuinfo:tt)),+ $(,)?) => {
        [$((
            $crate::simd::CpuFlag { feature: $feature, cpuinfo: $cpuinfo },
            std::arch::is_x86_feature_detected!($feature),
        )),+]
        .into_iter()
        .find(|(_, present)| !present)
        .map(|(flag, _)| flag)
    };
}
#[cfg(target_arch = "x86_64")]
use first_missing;

/// Panics, naming the flag, when `missing` is one: the entry of a fast path that
/// was asked for explicitly (by a test, a fuzz target or after [`enabled`] and the
/// CPU check) on a CPU without it.
#[track_caller]
fn require(path: &str, missing: Option<CpuFlag>) {
    if let Some(flag) = missing {
        panic!("{path} needs the CPU flag {flag}, which this CPU lacks");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_is_off_only_for_the_documented_values() {
        for off in ["0", "false", "OFF", " no "] {
            assert!(!switch(Some(off)), "{off:?}");
        }
        for on in [None, Some(""), Some("1"), Some("on"), Some("yes")] {
            assert!(switch(on), "{on:?}");
        }
    }

    #[test]
    fn a_missing_flag_is_named() {
        let flag = CpuFlag {
            feature: "sha",
            cpuinfo: "sha_ni",
        };
        let err = std::panic::catch_unwind(|| require("SHA-NI", Some(flag))).unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.contains("`sha` (`sha_ni` in /proc/cpuinfo)"), "{msg}");
        require("nothing", None);
    }
}

//! `stash version`: restic's one line (`restic 0.17.3 compiled with go1.23.3 on
//! linux/amd64`), or its `--json` message shape.

use serde::Serialize;

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {}

#[derive(Debug, Serialize, PartialEq)]
struct Version {
    message_type: &'static str,
    version: &'static str,
    go_version: &'static str,
    go_os: &'static str,
    go_arch: &'static str,
}

fn version() -> Version {
    Version {
        message_type: "version",
        version: env!("CARGO_PKG_VERSION"),
        // restic's JSON names the toolchain field after Go; ours holds the Rust
        // compiler this binary was built with (`rust1.91.0`, as restic's `go1.23.3`),
        // so scripts that read the field keep working.
        go_version: concat!("rust", env!("STASH_RUSTC_VERSION")),
        go_os: std::env::consts::OS,
        go_arch: go_arch(std::env::consts::ARCH),
    }
}

/// Go's names for architectures, so `linux/amd64` reads as restic prints it.
fn go_arch(rust: &'static str) -> &'static str {
    match rust {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

pub fn run(g: &Global, _a: Args) -> i32 {
    let v = version();
    if g.json {
        g.print_json(&v);
    } else {
        println!(
            "stash {} compiled with {} on {}/{}",
            v.version, v.go_version, v.go_os, v.go_arch
        );
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_restics_fields() {
        let v = serde_json::to_value(version()).unwrap();
        for key in ["message_type", "version", "go_version", "go_os", "go_arch"] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert_eq!(go_arch("x86_64"), "amd64");
        let toolchain = v["go_version"].as_str().unwrap();
        assert!(
            toolchain.starts_with("rust1."),
            "the compiler's version: {toolchain}"
        );
    }
}

//! `stash`: restic-compatible backups with a native engine, and the Kubernetes operator.

/// Installed as `kubectl-stash`, the binary is kubectl's plugin: `kubectl stash trigger
/// x` runs `kubectl-stash trigger x`, which is `stash kubectl trigger x`.
fn main() {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let plugin = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .is_some_and(|n| n.to_string_lossy().starts_with("kubectl-stash"));
    if plugin {
        args.insert(1, "kubectl".into());
    }
    std::process::exit(stash_agent::cli::main_with_args::<
        stash_operator::cli::Command,
    >(args));
}

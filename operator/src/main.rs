//! `stash`: restic-compatible backups with a native engine, and the Kubernetes operator.

fn main() {
    std::process::exit(stash_agent::cli::main_with::<stash_operator::cli::Command>());
}

//! `stash`: restic-compatible backups with a native engine.

fn main() {
    std::process::exit(stash_agent::cli::main());
}

//! The operator's commands in the `stash` binary (beside the engine's restic verbs).

use clap::Subcommand;

/// Commands added to the engine's.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The Kubernetes operator and its install.
    Operator(OperatorArgs),
}

#[derive(Debug, clap::Args)]
pub struct OperatorArgs {
    #[command(subcommand)]
    command: OperatorCommand,
}

#[derive(Debug, Subcommand)]
enum OperatorCommand {
    /// Print the CustomResourceDefinitions as YAML (`kubectl apply --server-side -f -`).
    Crds,
}

impl stash_agent::cli::Extension for Command {
    async fn run(self) -> anyhow::Result<i32> {
        match self {
            Command::Operator(OperatorArgs {
                command: OperatorCommand::Crds,
            }) => {
                print!("{}", crate::crd::all_yaml()?);
                Ok(0)
            }
        }
    }
}

//! `stash generate`: shell completions and man pages, from the same definitions as
//! the commands (restic's flags: `--bash-completion FILE`, `--man DIR`, ...).

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use clap_complete::Shell;

/// Arguments of `generate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write the bash completion file (`-` for stdout).
    #[arg(long = "bash-completion", value_name = "FILE")]
    bash: Option<PathBuf>,
    /// Write the fish completion file (`-` for stdout).
    #[arg(long = "fish-completion", value_name = "FILE")]
    fish: Option<PathBuf>,
    /// Write the zsh completion file (`-` for stdout).
    #[arg(long = "zsh-completion", value_name = "FILE")]
    zsh: Option<PathBuf>,
    /// Write the PowerShell completion file (`-` for stdout).
    #[arg(long = "powershell-completion", value_name = "FILE")]
    powershell: Option<PathBuf>,
    /// Write a man page per command into this directory (`stash.1`, `stash-backup.1`, ...).
    #[arg(long = "man", value_name = "DIR")]
    man: Option<PathBuf>,
}

/// Writes what `a` asks for about `cmd` (the whole command line, extensions included).
pub fn run(cmd: clap::Command, a: Args) -> anyhow::Result<i32> {
    let shells = [
        (Shell::Bash, &a.bash),
        (Shell::Fish, &a.fish),
        (Shell::Zsh, &a.zsh),
        (Shell::PowerShell, &a.powershell),
    ];
    anyhow::ensure!(
        a.man.is_some() || shells.iter().any(|(_, f)| f.is_some()),
        "nothing to do: give --bash-completion, --fish-completion, --zsh-completion, \
         --powershell-completion or --man"
    );
    for (shell, file) in shells {
        if let Some(file) = file {
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut cmd.clone(), "stash", &mut text);
            write(file, &text)?;
        }
    }
    if let Some(dir) = &a.man {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
        clap_mangen::generate_to(cmd, dir)
            .map_err(|e| anyhow::anyhow!("writing man pages into {}: {e}", dir.display()))?;
    }
    Ok(0)
}

fn write(file: &Path, text: &[u8]) -> anyhow::Result<()> {
    if file == Path::new("-") {
        std::io::stdout().write_all(text)?;
        return Ok(());
    }
    std::fs::write(file, text).map_err(|e| anyhow::anyhow!("writing {}: {e}", file.display()))
}

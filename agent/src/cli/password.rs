//! Where the password comes from: `RESTIC_PASSWORD`, `--password-file` /
//! `RESTIC_PASSWORD_FILE` (surrounding whitespace trimmed, as restic does), the
//! `RESTIC_PASSWORD` file of a `--secret-dir`, a prompt
//! on a terminal, or one line of stdin otherwise.

use std::io::{BufRead, IsTerminal};

use anyhow::Context;

use super::Global;

/// The repository password. `confirm` asks twice when prompting (for `init`).
pub fn get(g: &Global, confirm: bool) -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("RESTIC_PASSWORD") {
        return Ok(p);
    }
    if let Some(f) = &g.password_file {
        let s = std::fs::read_to_string(f)
            .with_context(|| format!("reading password file {}", f.display()))?;
        return Ok(s.trim().to_string());
    }
    if let Some(dir) = &g.secret_dir {
        if let Some(p) = crate::backend::secret_dir::read(dir)?.password() {
            return Ok(p.to_string());
        }
    }
    prompt("enter password for repository: ", confirm)
}

/// Prompts for a password on the terminal, or reads a line from stdin.
pub fn prompt(msg: &str, confirm: bool) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let p = rpassword::prompt_password(msg)?;
        if confirm {
            let again = rpassword::prompt_password("enter password again: ")?;
            anyhow::ensure!(p == again, "passwords do not match");
        }
        anyhow::ensure!(!p.is_empty(), "an empty password is not allowed");
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let p = line.trim_end_matches(['\n', '\r']).to_string();
    anyhow::ensure!(
        !p.is_empty(),
        "no password: set RESTIC_PASSWORD or RESTIC_PASSWORD_FILE, or use --password-file"
    );
    Ok(p)
}

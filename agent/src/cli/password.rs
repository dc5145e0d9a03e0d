//! Where the password comes from, in restic's order: `--password-command` /
//! `RESTIC_PASSWORD_COMMAND` (its output) or `--password-file` /
//! `RESTIC_PASSWORD_FILE` (mutually exclusive; surrounding whitespace trimmed), then
//! a non-empty `RESTIC_PASSWORD`, then the `RESTIC_PASSWORD` file of a
//! `--secret-dir`, then a prompt on a terminal, or one line of stdin otherwise.

use std::io::{BufRead, IsTerminal};

use anyhow::Context;

use super::Global;

/// The repository password. `confirm` asks twice when prompting (for `init`).
pub fn get(g: &Global, confirm: bool) -> anyhow::Result<String> {
    from(
        &Sources {
            file: g.password_file.as_deref(),
            command: g.password_command.as_deref(),
            env: "RESTIC_PASSWORD",
            secret_dir: g.secret_dir.as_deref(),
            what: "repository",
        },
        confirm,
    )
}

/// Where one repository's password may come from (`copy`'s source has its own).
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    pub file: Option<&'a std::path::Path>,
    pub command: Option<&'a str>,
    /// The variable holding the password itself.
    pub env: &'a str,
    pub secret_dir: Option<&'a std::path::Path>,
    /// The repository, in the prompt.
    pub what: &'a str,
}

/// The password from the first of `s` that has one, in restic's order.
pub fn from(s: &Sources<'_>, confirm: bool) -> anyhow::Result<String> {
    anyhow::ensure!(
        s.file.is_none() || s.command.is_none(),
        "a password file and a password command are mutually exclusive"
    );
    if let Some(command) = s.command {
        return run_command(command);
    }
    if let Some(f) = s.file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("reading password file {}", f.display()))?;
        return Ok(text.trim().to_string());
    }
    if let Some(p) = std::env::var(s.env).ok().filter(|p| !p.is_empty()) {
        return Ok(p);
    }
    if let Some(dir) = s.secret_dir {
        if let Some(p) = crate::backend::secret_dir::read(dir)?.password() {
            return Ok(p.to_string());
        }
    }
    prompt(&format!("enter password for {}: ", s.what), confirm)
}

/// The trimmed standard output of `command`, split into words as restic splits it.
fn run_command(command: &str) -> anyhow::Result<String> {
    let words = split_words(command)?;
    let (program, args) = words
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("--password-command is empty"))?;
    let out = std::process::Command::new(program)
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running --password-command {program:?}"))?;
    anyhow::ensure!(
        out.status.success(),
        "--password-command {program:?} failed: {}",
        out.status
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Words separated by white space; single or double quotes group words, a backslash
/// escapes the next character outside single quotes.
fn split_words(text: &str) -> anyhow::Result<Vec<String>> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => word.get_or_insert_with(String::new).push(c),
            (_, '\\') => {
                let next = chars
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--password-command ends in a backslash"))?;
                word.get_or_insert_with(String::new).push(next);
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (_, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    anyhow::ensure!(quote.is_none(), "--password-command has an unclosed quote");
    words.extend(word);
    Ok(words)
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

#[cfg(test)]
mod tests {
    use super::split_words;

    #[test]
    fn words_split_as_restic_splits_them() {
        assert_eq!(split_words("cat /a/b").unwrap(), ["cat", "/a/b"]);
        assert_eq!(
            split_words(r#"sh -c 'echo "x y"' "" a\ b"#).unwrap(),
            ["sh", "-c", "echo \"x y\"", "", "a b"]
        );
        assert!(split_words("echo 'open").is_err());
        assert!(split_words("").unwrap().is_empty());
    }
}

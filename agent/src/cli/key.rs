//! `stash key list|add|passwd|remove`

use serde_json::json;
use stash_repo_format::{file_type::FileType, key::KeyFile};

use super::{password, Global};
use crate::repository::open::add_key;

/// Arguments of `key`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, clap::Subcommand)]
enum Cmd {
    /// List key files.
    List,
    /// Add a new password.
    Add(NewPw),
    /// Change the password used to open the repository.
    Passwd(NewPw),
    /// Remove a key file (not the one in use).
    Remove {
        /// Key id or prefix.
        id: String,
    },
}

#[derive(Debug, clap::Args)]
struct NewPw {
    /// File holding the new password.
    #[arg(long = "new-password-file")]
    new_password_file: Option<std::path::PathBuf>,
}

fn new_password(a: &NewPw) -> anyhow::Result<String> {
    match &a.new_password_file {
        Some(f) => Ok(std::fs::read_to_string(f)?.trim().to_string()),
        None => password::prompt("enter new password: ", true),
    }
}

pub async fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    let repo = g.open().await?;
    match a.cmd {
        Cmd::List => {
            let mut rows = Vec::new();
            for (id, _) in repo.backend().list(FileType::Key).await? {
                let b = repo.backend().read(FileType::Key, &id, None).await?;
                match KeyFile::from_bytes(&b) {
                    Ok(k) => rows.push((id, k)),
                    Err(e) => eprintln!("warning: key {id}: {e}"),
                }
            }
            rows.sort_by_key(|a| a.1.created);
            if g.json {
                let v: Vec<_> = rows
                    .iter()
                    .map(|(id, k)| json!({"current": *id == repo.key_id(), "id": id.short(), "userName": k.username, "hostName": k.hostname, "created": k.created}))
                    .collect();
                g.print_json(&v);
            } else {
                println!(" {:<10} {:<10} {:<12} Created", "ID", "User", "Host");
                println!("{}", "-".repeat(60));
                for (id, k) in rows {
                    let cur = if id == repo.key_id() { '*' } else { ' ' };
                    println!(
                        "{cur}{:<10} {:<10} {:<12} {}",
                        id.short(),
                        k.username,
                        k.hostname,
                        k.created
                    );
                }
            }
        }
        Cmd::Add(p) => {
            let pw = new_password(&p)?;
            let id = add_key(repo.backend(), repo.key(), pw.as_bytes(), None).await?;
            println!("saved new key as {}", id.short());
        }
        Cmd::Passwd(p) => {
            let pw = new_password(&p)?;
            let lock = repo.lock(true).await?;
            let res = async {
                let id = add_key(repo.backend(), repo.key(), pw.as_bytes(), None).await?;
                repo.backend().remove(FileType::Key, &repo.key_id()).await?;
                Ok::<_, crate::Error>(id)
            }
            .await;
            lock.release().await?;
            println!("saved new key as {}", res?.short());
        }
        Cmd::Remove { id } => {
            let id = repo.resolve_prefix(FileType::Key, &id).await?;
            anyhow::ensure!(
                id != repo.key_id(),
                "refusing to remove the key currently used to access the repository"
            );
            let lock = repo.lock(true).await?;
            let r = repo.backend().remove(FileType::Key, &id).await;
            lock.release().await?;
            r?;
            println!("removed key {}", id.short());
        }
    }
    Ok(0)
}

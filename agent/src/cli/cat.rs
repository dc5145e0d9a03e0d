//! `stash cat`: internal objects, decrypted.

use std::io::Write;

use stash_repo_format::{blob::BlobType, file_type::FileType, pack};

use super::Global;
use crate::error::Error;

/// Arguments of `cat`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// config, masterkey, key, index, snapshot, lock, tree, blob or pack.
    what: String,
    /// The object's id (or unique prefix; `latest` for snapshot).
    id: Option<String>,
}

pub async fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    let repo = g.open().await?;
    let mut out = std::io::stdout().lock();
    let need_id = || {
        a.id.clone()
            .ok_or_else(|| anyhow::anyhow!("cat {} needs an id", a.what))
    };
    match a.what.as_str() {
        "config" => {
            writeln!(out, "{}", serde_json::to_string_pretty(repo.config())?)?;
        }
        "masterkey" => {
            writeln!(out, "{}", serde_json::to_string_pretty(&repo.key().to_json())?)?;
        }
        "key" => {
            let id = repo.resolve_prefix(FileType::Key, &need_id()?).await?;
            let b = repo.backend().read(FileType::Key, &id, None).await?;
            out.write_all(&b)?;
            writeln!(out)?;
        }
        "index" | "lock" => {
            let ty = if a.what == "index" { FileType::Index } else { FileType::Lock };
            let id = repo.resolve_prefix(ty, &need_id()?).await?;
            let json: serde_json::Value = repo.load_json(ty, &id).await?;
            writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        }
        "snapshot" => {
            let (_, s) = repo
                .find_snapshot(&need_id()?, &crate::repository::files::SnapshotFilter::default())
                .await?;
            writeln!(out, "{}", serde_json::to_string_pretty(&s)?)?;
        }
        "tree" | "blob" => {
            let id = stash_repo_format::Id::from_hex(&need_id()?)?;
            let index = repo.load_index().await?;
            let ty = if a.what == "tree" || (!index.contains(BlobType::Data, &id) && index.contains(BlobType::Tree, &id)) {
                BlobType::Tree
            } else {
                BlobType::Data
            };
            let data = repo.read_blob(&index, ty, &id).await?;
            out.write_all(&data)?;
        }
        "pack" => {
            let id = repo.resolve_prefix(FileType::Pack, &need_id()?).await?;
            let b = repo.backend().read(FileType::Pack, &id, None).await?;
            let blobs = pack::parse_pack(repo.key(), &b)
                .map_err(|e| Error::damaged(FileType::Pack, id, e))?;
            for bl in blobs {
                writeln!(
                    out,
                    "{} {} offset {} length {}{}",
                    bl.ty,
                    bl.id,
                    bl.offset,
                    bl.length,
                    bl.uncompressed_length.map(|u| format!(" uncompressed {u}")).unwrap_or_default()
                )?;
            }
        }
        w => anyhow::bail!("cat: unknown object type {w:?} (config, masterkey, key, index, snapshot, lock, tree, blob, pack)"),
    }
    Ok(0)
}

//! `stash init`

use serde_json::json;

use super::{password, Global};
use crate::repository::{self, InitOptions};

/// Arguments of `init`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Repository format version: 1, 2, `latest` or `stable` (both 2).
    #[arg(long = "repository-version", default_value = "stable")]
    repository_version: String,
    /// Content-defined chunker for new data: `rabin` (restic's, default) or `fastcdc`.
    #[arg(long, default_value = "rabin")]
    chunker: String,
    /// Cut files as the --from-repo repository does, so copies between the two keep
    /// their blobs instead of being cut again.
    #[arg(long = "copy-chunker-params")]
    copy_chunker_params: bool,
    #[command(flatten)]
    from: super::copy::FromRepo,
}

pub async fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    let version = match a.repository_version.as_str() {
        "latest" | "stable" | "2" => 2,
        "1" => 1,
        v => anyhow::bail!("invalid --repository-version {v:?}: use 1, 2, latest or stable"),
    };
    let fastcdc = match a.chunker.as_str() {
        "rabin" => false,
        "fastcdc" => true,
        c => anyhow::bail!("invalid --chunker {c:?}: use rabin or fastcdc"),
    };
    let chunker_of = if a.copy_chunker_params {
        Some(a.from.open().await?.config().clone())
    } else {
        None
    };
    let backend = g.backend(true).await?;
    let pw = password::get(g, true)?;
    let repo = repository::init(
        backend,
        pw.as_bytes(),
        InitOptions {
            version,
            fastcdc,
            kdf: None,
            chunker_of,
        },
    )
    .await?;
    if g.json {
        g.print_json(&json!({
            "message_type": "initialized",
            "id": repo.config().id,
            "repository": g.location()?,
        }));
    } else if !g.quiet {
        println!(
            "created restic repository {} at {}",
            &repo.config().id[..10],
            repo.backend().location()
        );
        println!("\nPlease note that knowledge of your password is required to access\nthe repository. Losing your password means that your data is\nirrecoverably lost.");
    }
    Ok(0)
}

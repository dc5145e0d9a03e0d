//! One file of a snapshot as a stream (`stash dump`, a database restore feeding
//! `psql`): the node found by path, then its content blob by blob, each verified as it
//! is read, written to any async writer.

use stash_repo_format::{
    blob::BlobType,
    index::IndexLookup,
    node::{Node, NodeType},
    Id,
};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::{
    error::{Error, Result},
    repository::{tree_packs::TreePacks, Repository},
};

/// The node at `path` (`/`-separated, leading `/` optional) below `tree`.
///
/// # Errors
/// An empty path, a missing component, a component that is not a directory.
pub async fn find_node(
    repo: &Repository,
    index: &IndexLookup,
    tree: Id,
    path: &str,
) -> Result<Node> {
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let missing = || Error::NotFound(format!("path {path:?} in snapshot"));
    let (last, dirs) = comps
        .split_last()
        .ok_or_else(|| Error::Usage("a file path inside the snapshot is needed".into()))?;
    let trees = TreePacks::new(repo);
    let mut cur = tree;
    for c in dirs {
        let t = trees.read_tree(index, &cur).await?;
        let n = t
            .nodes
            .into_iter()
            .find(|n| n.name == c.as_bytes())
            .ok_or_else(missing)?;
        cur = n.subtree.ok_or_else(missing)?;
    }
    let t = trees.read_tree(index, &cur).await?;
    t.nodes
        .into_iter()
        .find(|n| n.name == last.as_bytes())
        .ok_or_else(missing)
}

/// Writes the content of file node `node` to `out`; returns the bytes written.
///
/// # Errors
/// `node` is not a file, a blob cannot be read or verified, or `out` fails (named
/// `what` in the error).
pub async fn write_file<W: AsyncWrite + Unpin>(
    repo: &Repository,
    index: &IndexLookup,
    node: &Node,
    out: &mut W,
    what: &str,
) -> Result<u64> {
    if node.node_type != NodeType::File {
        return Err(Error::Usage(format!(
            "{}: is a {}, not a file",
            String::from_utf8_lossy(&node.name),
            node.node_type.as_str()
        )));
    }
    let mut written = 0u64;
    for id in node.content.iter().flatten() {
        let data = repo.read_blob(index, BlobType::Data, id).await?;
        out.write_all(&data).await.map_err(|e| Error::io(what, e))?;
        written += data.len() as u64;
    }
    out.flush().await.map_err(|e| Error::io(what, e))?;
    Ok(written)
}

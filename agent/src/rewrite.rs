//! Snapshots rewritten with changed trees: `rewrite` leaves out paths matching
//! exclude patterns, `repair snapshots` drops what the repository has lost (a file's
//! missing data blobs, a directory whose tree cannot be read). Trees are rebuilt
//! bottom-up; a tree nothing changed in keeps its id, so a snapshot nothing changed
//! in is left alone. A changed snapshot is saved as a new one that names the old as
//! its `original` and carries a tag (`rewrite`, `repaired`), unless the old one is
//! removed instead (`forget`), as restic does.

use std::{
    future::Future,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    pin::Pin,
    sync::Arc,
};

use stash_repo_format::{
    blob::BlobType,
    file_type::FileType,
    index::IndexLookup,
    node::{Node, NodeType},
    snapshot::Snapshot,
    tree::Tree,
    Id,
};

use crate::{
    backup::exclude::PathExcludes,
    error::{Error, Result},
    repository::{blob_saver::BlobSaver, tree_packs::TreePacks, Repository},
};

/// What to change in the trees.
#[derive(Debug)]
pub enum Change {
    /// Leave out what these patterns match (snapshot paths, as `backup --exclude`
    /// and `--iexclude`).
    Exclude(PathExcludes),
    /// Drop missing data blobs from files and unreadable subtrees (an empty
    /// directory instead); a snapshot whose root cannot be read is removed.
    Repair,
}

impl Change {
    fn tag(&self) -> &'static str {
        match self {
            Change::Exclude(_) => "rewrite",
            Change::Repair => "repaired",
        }
    }
}

/// What became of one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to change.
    Unchanged,
    /// Saved as this new snapshot (or would be, in a dry run: then the id is the
    /// old one's).
    Rewritten(Id),
    /// Its root tree could not be read (repair): the snapshot was removed, or would
    /// be with `forget`.
    Unrecoverable,
}

/// How [`rewrite_snapshots`] goes about it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Remove the old snapshots instead of tagging the new ones.
    pub forget: bool,
    /// Change nothing; report what would change.
    pub dry_run: bool,
}

/// A boxed future: the tree walk recurses.
type Rebuilt<'a> = Pin<Box<dyn Future<Output = Result<Option<Id>>> + Send + 'a>>;

struct Rewriter<'a> {
    reader: TreePacks,
    index: &'a IndexLookup,
    saver: BlobSaver,
    change: &'a Change,
    /// Messages about what was dropped, printed by the caller.
    notes: std::sync::Mutex<Vec<String>>,
}

impl Rewriter<'_> {
    fn note(&self, text: String) {
        self.notes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(text);
    }

    /// The id of tree `id` at snapshot `path` after the change; `None` when the
    /// tree is to go (an unreadable root in a repair).
    fn tree<'s>(&'s self, id: Id, path: PathBuf) -> Rebuilt<'s> {
        Box::pin(async move {
            let tree = match self.reader.read_tree(self.index, &id).await {
                Ok(t) => t,
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => {
                    if !matches!(self.change, Change::Repair) {
                        return Err(e);
                    }
                    if path == Path::new("/") {
                        self.note(format!("dir {:?}: not readable: {e}", path.display()));
                        return Ok(None);
                    }
                    self.note(format!(
                        "dir {:?}: replaced with an empty directory",
                        path.display()
                    ));
                    return self.save(Tree::new()).await.map(Some);
                }
            };
            let mut nodes = Vec::with_capacity(tree.nodes.len());
            let mut changed = false;
            for mut node in tree.nodes {
                let p = path.join(std::ffi::OsStr::from_bytes(&node.name));
                if let Change::Exclude(patterns) = self.change {
                    if patterns.is_excluded(&p) {
                        changed = true;
                        continue;
                    }
                }
                if matches!(self.change, Change::Repair) && node.node_type == NodeType::File {
                    changed |= self.repair_file(&mut node, &p);
                }
                if let (NodeType::Dir, Some(sub)) = (&node.node_type, node.subtree) {
                    let new = self.tree(sub, p).await?;
                    if new != Some(sub) {
                        changed = true;
                        node.subtree = new;
                    }
                }
                nodes.push(node);
            }
            if !changed {
                return Ok(Some(id));
            }
            let mut t = Tree::new();
            t.nodes = nodes;
            self.save(t).await.map(Some)
        })
    }

    /// Drops `node`'s data blobs the index does not have; whether it did.
    fn repair_file(&self, node: &mut Node, path: &Path) -> bool {
        let Some(content) = &node.content else {
            return false;
        };
        let (kept, size) = content.iter().fold((Vec::new(), 0u64), |(mut k, s), id| {
            match self.index.get(BlobType::Data, id) {
                Some(loc) => {
                    k.push(*id);
                    (k, s + u64::from(loc.data_length()))
                }
                None => (k, s),
            }
        });
        if kept.len() == content.len() {
            return false;
        }
        self.note(format!(
            "file {:?}: removed missing content",
            path.display()
        ));
        node.content = Some(kept);
        node.size = size;
        true
    }

    async fn save(&self, tree: Tree) -> Result<Id> {
        let bytes = tree
            .encode()
            .map_err(|e| Error::Usage(format!("encoding a rewritten tree: {e}")))?;
        let saver = self.saver.clone();
        let saved = tokio::task::spawn_blocking(move || saver.save(BlobType::Tree, &bytes))
            .await
            .map_err(|e| Error::Usage(format!("tree task: {e}")))??;
        Ok(saved.id)
    }
}

/// Rewrites `snapshots` with `change` (see the module docs), printing what it drops;
/// returns each one's outcome. Takes an exclusive lock when removing snapshots,
/// otherwise a shared one.
///
/// # Errors
/// Lock conflicts, backend errors, and (outside a repair) unreadable trees.
pub async fn rewrite_snapshots(
    repo: &Repository,
    snapshots: Vec<(Id, Snapshot)>,
    change: &Change,
    opts: Options,
) -> Result<Vec<(Id, Outcome)>> {
    let lock = repo.lock(opts.forget && !opts.dry_run).await?;
    let res = run(repo, snapshots, change, opts).await;
    let released = lock.release().await;
    let r = res?;
    released?;
    Ok(r)
}

async fn run(
    repo: &Repository,
    snapshots: Vec<(Id, Snapshot)>,
    change: &Change,
    opts: Options,
) -> Result<Vec<(Id, Outcome)>> {
    let index = Arc::new(repo.load_index().await?);
    let rw = Rewriter {
        reader: TreePacks::new(repo),
        index: &index,
        saver: BlobSaver::new(repo, index.clone(), repo.pack_size()),
        change,
        notes: Default::default(),
    };
    let mut new_trees = Vec::new();
    for (id, snap) in snapshots {
        let root = snap
            .tree
            .ok_or_else(|| Error::Snapshot(format!("{id} has no tree")))?;
        let new = rw.tree(root, PathBuf::from("/")).await;
        for n in std::mem::take(&mut *rw.notes.lock().unwrap_or_else(|e| e.into_inner())) {
            println!("snapshot {}: {n}", id.short());
        }
        new_trees.push((id, snap, root, new?));
    }
    // Trees are indexed before any snapshot names them, even in a dry run: the
    // blobs go through the saver, and a dry run's repository drops them.
    rw.saver.finish().await?;
    let mut out = Vec::new();
    for (id, snap, root, new) in new_trees {
        let outcome = match new {
            Some(t) if t == root => Outcome::Unchanged,
            Some(t) => {
                let mut s = snap;
                s.original.get_or_insert(id);
                s.tree = Some(t);
                if !opts.forget {
                    s.add_tags(&[change.tag()]);
                }
                let new_id = if opts.dry_run {
                    id
                } else {
                    repo.save_json(FileType::Snapshot, &s).await?
                };
                Outcome::Rewritten(new_id)
            }
            None => Outcome::Unrecoverable,
        };
        let removes = match outcome {
            Outcome::Rewritten(_) => opts.forget,
            Outcome::Unrecoverable => true,
            Outcome::Unchanged => false,
        };
        if removes && !opts.dry_run {
            repo.backend().remove(FileType::Snapshot, &id).await?;
        }
        out.push((id, outcome));
    }
    Ok(out)
}

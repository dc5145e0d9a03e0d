//! What changed between two snapshots, as restic's `diff` reports it: one change per
//! path (`+` added, `-` removed, `M` content changed, `T` type changed, `U` metadata
//! changed with `--metadata`, `?` appended when only the content differs, a sign of
//! bit rot), and the files, directories, others and blobs each side has alone.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use stash_repo_format::{
    blob::BlobType,
    index::IndexLookup,
    node::{Node, NodeType},
    Id,
};

use crate::{
    error::Result,
    repository::{tree_packs::TreePacks, Repository},
};

/// One changed path (directories end in `/`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub path: String,
    pub modifier: String,
}

/// What one side has alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Side {
    pub files: u64,
    pub dirs: u64,
    pub others: u64,
    pub data_blobs: u64,
    pub tree_blobs: u64,
    pub bytes: u64,
}

impl Side {
    fn add(&mut self, node: &Node) {
        match node.node_type {
            NodeType::File => self.files += 1,
            NodeType::Dir => self.dirs += 1,
            _ => self.others += 1,
        }
    }
}

/// The whole comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    pub changes: Vec<Change>,
    pub changed_files: u64,
    pub added: Side,
    pub removed: Side,
}

/// The modifier of a path present on both sides, empty when nothing is reported.
pub fn modifier(before: &Node, after: &Node, metadata: bool) -> String {
    let mut m = String::new();
    if before.node_type != after.node_type {
        m.push('T');
    }
    let both_files = before.node_type == NodeType::File && after.node_type == NodeType::File;
    if both_files && before.content != after.content {
        m.push('M');
        let (mut b, mut a) = (before.clone(), after.clone());
        b.content = None;
        a.content = None;
        if a == b {
            m.push('?');
        }
    } else if metadata && before != after {
        m.push('U');
    }
    m
}

type Blobs = HashSet<(BlobType, Id)>;

fn add_blobs(blobs: &mut Blobs, node: &Node) {
    match node.node_type {
        NodeType::File => {
            for b in node.content.iter().flatten() {
                blobs.insert((BlobType::Data, *b));
            }
        }
        NodeType::Dir => {
            if let Some(t) = node.subtree {
                blobs.insert((BlobType::Tree, t));
            }
        }
        _ => {}
    }
}

fn join(prefix: &str, node: &Node) -> String {
    let mut p = format!(
        "{}/{}",
        prefix.trim_end_matches('/'),
        String::from_utf8_lossy(&node.name)
    );
    if node.node_type == NodeType::Dir {
        p.push('/');
    }
    p
}

struct Walk<'a> {
    trees: TreePacks,
    index: &'a IndexLookup,
    metadata: bool,
    diff: Diff,
    before: Blobs,
    after: Blobs,
    common: Blobs,
}

/// Whose blobs a one-sided walk collects.
#[derive(Clone, Copy)]
enum Which {
    Before,
    After,
    Common,
}

impl Walk<'_> {
    fn blobs(&mut self, which: Which) -> &mut Blobs {
        match which {
            Which::Before => &mut self.before,
            Which::After => &mut self.after,
            Which::Common => &mut self.common,
        }
    }

    /// Every node below `tree`, depth first in name order: reported with `mode` and
    /// counted unless `Common`, its blobs collected for `which` side.
    async fn one_side(&mut self, which: Which, mode: &str, prefix: &str, tree: Id) -> Result<()> {
        let t = self.trees.read_tree(self.index, &tree).await?;
        for node in &t.nodes {
            add_blobs(self.blobs(which), node);
            let path = join(prefix, node);
            match which {
                Which::Common => {}
                Which::Before => self.diff.removed.add(node),
                Which::After => self.diff.added.add(node),
            }
            if !matches!(which, Which::Common) {
                self.diff.changes.push(Change {
                    path: path.clone(),
                    modifier: mode.to_string(),
                });
            }
            if let (NodeType::Dir, Some(sub)) = (&node.node_type, node.subtree) {
                Box::pin(self.one_side(which, mode, &path, sub)).await?;
            }
        }
        Ok(())
    }

    async fn both(&mut self, prefix: &str, t1: Id, t2: Id) -> Result<()> {
        let (a, b) = (
            self.trees.read_tree(self.index, &t1).await?,
            self.trees.read_tree(self.index, &t2).await?,
        );
        let mut names: BTreeMap<&[u8], (Option<&Node>, Option<&Node>)> = BTreeMap::new();
        for n in &a.nodes {
            names.entry(&n.name).or_default().0 = Some(n);
        }
        for n in &b.nodes {
            names.entry(&n.name).or_default().1 = Some(n);
        }
        for (before, after) in names.into_values() {
            if let Some(n) = before {
                add_blobs(&mut self.before, n);
            }
            if let Some(n) = after {
                add_blobs(&mut self.after, n);
            }
            match (before, after) {
                (Some(n1), Some(n2)) => {
                    let path = join(prefix, n2);
                    let m = modifier(n1, n2, self.metadata);
                    if m.contains('M') {
                        self.diff.changed_files += 1;
                    }
                    if !m.is_empty() {
                        self.diff.changes.push(Change {
                            path: path.clone(),
                            modifier: m,
                        });
                    }
                    match (n1.subtree, n2.subtree) {
                        (Some(s1), Some(s2))
                            if n1.node_type == NodeType::Dir && n2.node_type == NodeType::Dir =>
                        {
                            if s1 == s2 {
                                self.one_side(Which::Common, "", &path, s1).await?;
                            } else {
                                Box::pin(self.both(&path, s1, s2)).await?;
                            }
                        }
                        // A directory that became something else (or the reverse):
                        // restic counts its node's blobs only, not those below it.
                        _ => {}
                    }
                }
                (Some(n1), None) => {
                    let path = join(prefix, n1);
                    self.diff.changes.push(Change {
                        path: path.clone(),
                        modifier: "-".into(),
                    });
                    self.diff.removed.add(n1);
                    if let Some(s) = n1.subtree.filter(|_| n1.node_type == NodeType::Dir) {
                        self.one_side(Which::Before, "-", &path, s).await?;
                    }
                }
                (None, Some(n2)) => {
                    let path = join(prefix, n2);
                    self.diff.changes.push(Change {
                        path: path.clone(),
                        modifier: "+".into(),
                    });
                    self.diff.added.add(n2);
                    if let Some(s) = n2.subtree.filter(|_| n2.node_type == NodeType::Dir) {
                        self.one_side(Which::After, "+", &path, s).await?;
                    }
                }
                (None, None) => {}
            }
        }
        Ok(())
    }
}

/// Compares the trees `before` and `after` (two snapshots' roots).
///
/// # Errors
/// A tree that cannot be read.
pub async fn diff(repo: &Repository, before: Id, after: Id, metadata: bool) -> Result<Diff> {
    let index = repo.load_index().await?;
    let mut w = Walk {
        trees: TreePacks::new(repo),
        index: &index,
        metadata,
        diff: Diff::default(),
        before: HashSet::from([(BlobType::Tree, before)]),
        after: HashSet::from([(BlobType::Tree, after)]),
        common: HashSet::new(),
    };
    w.both("/", before, after).await?;
    let size =
        |(ty, id): &(BlobType, Id)| index.get(*ty, id).map_or(0, |l| u64::from(l.data_length()));
    let count = |side: &mut Side, only: Vec<&(BlobType, Id)>| {
        for b in only {
            match b.0 {
                BlobType::Data => side.data_blobs += 1,
                BlobType::Tree => side.tree_blobs += 1,
            }
            side.bytes += size(b);
        }
    };
    let mut diff = std::mem::take(&mut w.diff);
    let gone: Vec<_> = w
        .before
        .iter()
        .filter(|b| !w.after.contains(b) && !w.common.contains(b))
        .collect();
    count(&mut diff.removed, gone);
    let new: Vec<_> = w
        .after
        .iter()
        .filter(|b| !w.before.contains(b) && !w.common.contains(b))
        .collect();
    count(&mut diff.added, new);
    Ok(diff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(content: &[u8]) -> Node {
        let mut n = Node::new("f", NodeType::File);
        n.content = Some(
            content
                .iter()
                .map(|b| Id::from_hex(&format!("{b:02x}").repeat(32)).unwrap())
                .collect(),
        );
        n
    }

    #[test]
    fn modifiers_are_restics() {
        let (a, b) = (file(&[1]), file(&[2]));
        assert_eq!(modifier(&a, &b, false), "M?", "only the content: bit rot?");
        let mut later = b.clone();
        later.size = 9;
        assert_eq!(modifier(&a, &later, false), "M");
        let mut touched = a.clone();
        touched.uid = 7;
        assert_eq!(modifier(&a, &touched, false), "");
        assert_eq!(modifier(&a, &touched, true), "U");
        let dir = Node::new("f", NodeType::Dir);
        assert_eq!(modifier(&a, &dir, false), "T");
    }
}

//! Tree blobs: the JSON listing of one directory.
//!
//! A tree's id is the SHA-256 of its bytes, so [`Tree::encode`] reproduces restic's
//! output byte for byte (`{"nodes":[...]}` plus one `\n`, spec §8.2 and §8.6); only then
//! do trees written here deduplicate with trees written by restic. Nodes are written in
//! ascending order of their raw name bytes, which restic's lookups and its tree builder
//! require. [`Tree::decode`] is permissive like restic's reader.

use serde::Deserialize;

use crate::{
    error::{FormatError, Result},
    id::Id,
    node::Node,
};

/// The nodes of one directory.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Tree {
    /// Nodes; [`Tree::encode`] writes them sorted by raw name bytes whatever their order
    /// here, [`Tree::decode`] keeps the stored order.
    pub nodes: Vec<Node>,
}

#[derive(Deserialize)]
struct RawTree {
    nodes: Option<Vec<Node>>,
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Tree::default()
    }

    /// Sorts nodes by raw name bytes (Go string order; stable for equal names).
    pub fn sort(&mut self) {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// True when names are strictly ascending, the order restic stores and expects.
    pub fn is_sorted_unique(&self) -> bool {
        self.nodes.windows(2).all(|w| w[0].name < w[1].name)
    }

    /// Inserts `node` at its sorted position (the tree must already be sorted).
    ///
    /// # Errors
    /// [`FormatError::Invalid`] if a node of that name exists.
    pub fn insert(&mut self, node: Node) -> Result<()> {
        match self
            .nodes
            .binary_search_by(|n| n.name.as_slice().cmp(&node.name))
        {
            Ok(_) => Err(FormatError::invalid(
                "tree",
                format!(
                    "duplicate node name {:?}",
                    String::from_utf8_lossy(&node.name)
                ),
            )),
            Err(pos) => {
                self.nodes.insert(pos, node);
                Ok(())
            }
        }
    }

    /// The node called `name`, by binary search (the tree must be sorted).
    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }

    /// restic's exact tree bytes, nodes in raw-name order (sorting a view if needed;
    /// `self` is not modified).
    ///
    /// # Errors
    /// [`FormatError::Invalid`] for a tree restic's `check` would reject and its tree
    /// builder would refuse to write: two nodes with the same name, an empty name, or a
    /// name containing `/`.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut order: Vec<&Node> = self.nodes.iter().collect();
        if !self.nodes.windows(2).all(|w| w[0].name <= w[1].name) {
            order.sort_by(|a, b| a.name.cmp(&b.name));
        }
        for w in order.windows(2) {
            if w[0].name == w[1].name {
                return Err(FormatError::invalid(
                    "tree",
                    format!(
                        "duplicate node name {:?}",
                        String::from_utf8_lossy(&w[0].name)
                    ),
                ));
            }
        }
        if let Some(n) = order
            .iter()
            .find(|n| n.name.is_empty() || n.name.contains(&b'/'))
        {
            return Err(FormatError::invalid(
                "tree",
                format!("invalid node name {:?}", String::from_utf8_lossy(&n.name)),
            ));
        }
        let mut out = Vec::with_capacity(64 + 400 * order.len());
        out.extend_from_slice(b"{\"nodes\":[");
        for (i, node) in order.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            node.write_json(&mut out);
        }
        out.extend_from_slice(b"]}\n");
        Ok(out)
    }

    /// [`Tree::encode`] plus the tree id (SHA-256 of the bytes).
    ///
    /// # Errors
    /// As [`Tree::encode`].
    pub fn encode_with_id(&self) -> Result<(Id, Vec<u8>)> {
        let bytes = self.encode()?;
        Ok((Id::hash(&bytes), bytes))
    }

    /// Parses tree bytes. Accepts what restic accepts: any JSON object with a `nodes`
    /// array (a missing or `null` `nodes` is an empty tree, other keys are ignored),
    /// nodes as permissive as [`Node`]'s reader. The stored node order is kept; use
    /// [`Tree::is_sorted_unique`] to check it.
    ///
    /// # Errors
    /// [`FormatError::Json`] for malformed JSON, wrong field types, bad ids or base64, and
    /// names that do not Go-unquote (the message names the node).
    pub fn decode(bytes: &[u8]) -> Result<Tree> {
        let raw: RawTree =
            serde_json::from_slice(bytes).map_err(|e| FormatError::json("tree", e))?;
        Ok(Tree {
            nodes: raw.nodes.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{gotime::GoTime, node::NodeType};
    use proptest::prelude::*;
    use std::path::PathBuf;

    fn golden_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
    }

    /// Golden trees written by restic 0.14 (Debian, Go 1.19), named `tree-<id>.json`.
    fn golden_trees(prefix: &str) -> Vec<(Id, Vec<u8>)> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(golden_dir()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            if let Some(hex) = name
                .strip_prefix(prefix)
                .and_then(|s| s.strip_suffix(".json"))
            {
                out.push((Id::from_hex(hex).unwrap(), std::fs::read(&path).unwrap()));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn golden_trees_round_trip_byte_exact() {
        let trees = golden_trees("tree-");
        assert!(trees.len() >= 5);
        for (id, bytes) in trees {
            assert_eq!(Id::hash(&bytes), id, "fixture {id} hash");
            let tree = Tree::decode(&bytes).unwrap();
            assert!(tree.is_sorted_unique(), "{id}");
            let (again_id, again) = tree.encode_with_id().unwrap();
            assert_eq!(
                String::from_utf8_lossy(&again),
                String::from_utf8_lossy(&bytes),
                "{id}"
            );
            assert_eq!(again_id, id);
        }
    }

    #[test]
    fn golden_tree_contents() {
        let id = "d9308ae7971268e22e82de382b1265c6cb862deb94aaafea7af30b4f1eb8d523";
        let bytes = std::fs::read(golden_dir().join(format!("tree-{id}.json"))).unwrap();
        let tree = Tree::decode(&bytes).unwrap();
        let names: Vec<&[u8]> = tree.nodes.iter().map(|n| n.name.as_slice()).collect();
        for want in [
            &b"we\"ird\\name<&>.txt"[..],
            b"bad\xffname",
            "caf\u{e9}\ttab".as_bytes(),
            b"nl\nname",
            b"latin\xe9only",
            "ls\u{2028}x".as_bytes(),
        ] {
            assert!(names.contains(&want), "{:?}", String::from_utf8_lossy(want));
        }
        let find = |n: &[u8]| tree.find(n).unwrap();
        assert_eq!(find(b"empty").content, Some(vec![]));
        assert_eq!(find(b"empty").size, 0);
        assert_eq!(find(b"fifo").node_type, NodeType::Fifo);
        assert_eq!(find(b"fifo").mode, 33_554_852);
        assert_eq!(find(b"fifo").content, None);
        assert_eq!(find(b"link").link_target, b"a.txt");
        assert_eq!(find(b"link").mode, 134_218_239);
        assert_eq!(find(b"nested").mode, 2_147_484_141);
        assert!(find(b"nested").subtree.is_some());
        assert_eq!(find(b"chardev").device, 259);
        let a = find(b"a.txt");
        assert_eq!((a.mode, a.links, a.size), (420, 2, 12));
        assert_eq!(a.inode, find(b"hardlink").inode);
        assert_eq!(a.extended_attributes[0].name, "user.comment");
        assert_eq!(a.extended_attributes[0].value, b"hello");
        assert_eq!(a.mtime.to_string(), "2023-06-15T14:34:56.123456789+02:00");
        assert_eq!(a.mtime.unix_secs(), 1_686_832_496);
    }

    #[test]
    fn legacy_tree_decodes_and_reencodes_the_modern_way() {
        // restic 0.14: a non-UTF-8 link target stored lossily (no linktarget_raw), and
        // Go < 1.22 escaping of \b and \f. Decoding works; re-encoding writes what a
        // current restic would write for the same node values.
        let [(id, bytes)] = &golden_trees("legacy-tree-")[..] else {
            panic!("one legacy fixture expected")
        };
        assert_eq!(Id::hash(bytes), *id);
        let tree = Tree::decode(bytes).unwrap();
        assert_eq!(tree.nodes[0].link_target, "target\u{fffd}".as_bytes());
        assert_eq!(tree.nodes[1].link_target, b"a<b>&c\x08\x0c");
        let again = String::from_utf8(tree.encode().unwrap()).unwrap();
        let want = String::from_utf8(bytes.clone())
            .unwrap()
            .replace(r"target\ufffd", "target\u{fffd}")
            .replace(r"\u0008\u000c", r"\b\f");
        assert_eq!(again, want);
    }

    #[test]
    fn lab_name_examples_in_tree() {
        let mut t = Tree::new();
        t.insert(Node::new(*b"we\"ird\\name<&>.txt", NodeType::File))
            .unwrap();
        t.insert(Node::new(*b"bad\xffname", NodeType::File))
            .unwrap();
        t.insert(Node::new(*b"badlink", NodeType::Symlink)).unwrap();
        let s = String::from_utf8(t.encode().unwrap()).unwrap();
        assert!(
            s.contains(r#""name":"we\\\"ird\\\\name\u003c\u0026\u003e.txt""#),
            "{s}"
        );
        assert!(s.contains(r#""name":"bad\\xffname""#), "{s}");
        // Raw-byte order: "badlink" < "bad\xffname" although "bad\\x.." < "badl..".
        assert!(s.find("badlink").unwrap() < s.find("bad\\\\xff").unwrap());
        assert_eq!(Tree::decode(s.as_bytes()).unwrap(), t);
    }

    #[test]
    fn empty_tree_and_ordering() {
        assert_eq!(Tree::new().encode().unwrap(), b"{\"nodes\":[]}\n");
        let mut t = Tree::new();
        t.nodes.push(Node::new(*b"b", NodeType::File));
        t.nodes.push(Node::new(*b"a", NodeType::Dir));
        let unsorted = t.encode().unwrap();
        assert!(!t.is_sorted_unique());
        t.sort();
        assert!(t.is_sorted_unique());
        assert_eq!(t.encode().unwrap(), unsorted);
        assert!(t.insert(Node::new(*b"a", NodeType::File)).is_err());
        t.nodes.push(Node::new(*b"a", NodeType::File));
        assert!(t.encode().is_err());
        for bad in [&b""[..], b"a/b"] {
            let t = Tree {
                nodes: vec![Node::new(bad, NodeType::File)],
            };
            assert!(t.encode().is_err());
        }
        assert!(t.find(b"zz").is_none());
    }

    #[test]
    fn decode_is_permissive() {
        let t = Tree::decode(b"{\"other\":1,\"nodes\":null}").unwrap();
        assert!(t.nodes.is_empty());
        assert!(Tree::decode(b"{}").unwrap().nodes.is_empty());
        let t =
            Tree::decode(br#"{"nodes":[{"name":"x","type":"file","extra":[1]}],"v":2}"#).unwrap();
        assert_eq!(t.nodes[0].name, b"x");
    }

    #[test]
    fn malformed_trees_are_errors() {
        let good = std::fs::read(
            golden_dir()
                .join("tree-4cc931d31f0e70edd07a4e39699822c66da10c29aea65d78419d4e39367220c8.json"),
        )
        .unwrap();
        for cut in 0..good.len() - 2 {
            assert!(Tree::decode(&good[..cut]).is_err(), "prefix {cut}");
        }
        for bad in [
            &b""[..],
            b"null",
            b"[]",
            b"{\"nodes\":{}}",
            b"{\"nodes\":[1]}",
            b"{\"nodes\":[]} x",
            b"{\"nodes\":[{\"name\":\"a\\\\x\"}]}",
            b"{\"nodes\":[{\"name\":\"\xff\"}]}",
        ] {
            assert!(
                Tree::decode(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let e = Tree::decode(br#"{"nodes":[{"name":"ok"},{"name":"bad\\u12"}]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad\\\\u12"), "{e}");
    }

    fn arb_node() -> impl Strategy<Value = Node> {
        (
            proptest::collection::vec(any::<u8>(), 1..12),
            proptest::collection::vec(any::<u8>(), 0..8),
            any::<u32>(),
            any::<u64>(),
            -62_135_596_800i64..253_402_300_799,
            0u32..1_000_000_000,
            -1439i32..=1439,
            proptest::option::of(proptest::collection::vec(any::<[u8; 32]>(), 0..3)),
        )
            .prop_map(|(name, target, mode, size, secs, nanos, off, content)| {
                let name: Vec<u8> = name
                    .into_iter()
                    .map(|b| if b == b'/' { b'_' } else { b })
                    .collect();
                let off = chrono::FixedOffset::east_opt(off * 60).unwrap();
                let mut n = Node::new(name, NodeType::Symlink);
                n.link_target = target;
                n.mode = mode;
                n.size = size;
                n.mtime = GoTime::from_unix_in(secs, nanos, off);
                n.content = content.map(|c| c.into_iter().map(Id).collect());
                n
            })
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(nodes in proptest::collection::vec(arb_node(), 0..6)) {
            let mut t = Tree::new();
            for n in nodes {
                let _ = t.insert(n);
            }
            let bytes = t.encode().unwrap();
            let back = Tree::decode(&bytes).unwrap();
            prop_assert_eq!(&back, &t);
            prop_assert_eq!(back.encode().unwrap(), bytes);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Tree::decode(&bytes);
        }

        #[test]
        fn decode_never_panics_on_near_trees(s in r#"\{"nodes":\[\{"name":"[a-z\\"]{0,6}","(type|mode|mtime|content|subtree|linktarget_raw|extended_attributes)":("[a-zA-Z0-9+/=:.-]{0,12}"|[0-9-]{1,5}|null|\[\]|\{\})\}\]\}"#) {
            let _ = Tree::decode(s.as_bytes());
        }
    }
}

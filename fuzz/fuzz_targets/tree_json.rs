//! Tree blobs: arbitrary bytes decode to an error or a tree, never a panic. For a
//! decoded tree and for one built from the input's bytes (raw, non-UTF-8 names and
//! link targets, every node field): `encode` fails exactly for a duplicate, empty or
//! `/`-holding name; otherwise the bytes decode to the same nodes in name order,
//! re-encode byte for byte (tree ids are hashes of these bytes), and `find` sees
//! every node.
#![no_main]
use libfuzzer_sys::{arbitrary::Unstructured, fuzz_target};
use stash_repo_format::{tree::Tree, Id};

#[path = "structured.rs"]
mod structured;

fn check(t: &Tree) {
    let mut sorted = t.clone();
    sorted.sort();
    let refusable = sorted.nodes.windows(2).any(|w| w[0].name == w[1].name)
        || sorted
            .nodes
            .iter()
            .any(|n| n.name.is_empty() || n.name.contains(&b'/'));
    let bytes = match t.encode() {
        Ok(b) => b,
        Err(e) => {
            assert!(refusable, "a valid tree was refused: {e}");
            return;
        }
    };
    assert!(!refusable, "an invalid tree was encoded");
    assert!(bytes.starts_with(b"{\"nodes\":[") && bytes.ends_with(b"]}\n"));
    let back = Tree::decode(&bytes).expect("an encoded tree decodes");
    assert!(back.is_sorted_unique());
    assert_eq!(back, sorted, "decode(encode(t)) is t in name order");
    assert_eq!(back.encode().expect("re-encode"), bytes, "byte-exact");
    let (id, again) = t.encode_with_id().expect("encode_with_id");
    assert_eq!(again, bytes);
    assert_eq!(id, Id::hash(&bytes));
    for n in &sorted.nodes {
        assert_eq!(back.find(&n.name), Some(n));
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = Tree::decode(data) {
        check(&t);
    }
    let mut u = Unstructured::new(data);
    let mut t = Tree::new();
    while t.nodes.len() < 6 {
        match structured::node(&mut u) {
            Ok(n) => t.nodes.push(n),
            Err(_) => break,
        }
        if u.is_empty() {
            break;
        }
    }
    // A name repeated now and then, to reach the duplicate check.
    if t.nodes.len() >= 2 && data.first().is_some_and(|b| b & 0x0f == 0) {
        t.nodes[1].name = t.nodes[0].name.clone();
    }
    check(&t);
});

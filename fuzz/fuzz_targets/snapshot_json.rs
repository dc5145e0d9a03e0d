//! Snapshot documents: arbitrary bytes decode to an error or a snapshot, never a
//! panic (a top-level array is refused, as Go refuses it). A decoded snapshot and
//! one built from the input's bytes re-encode to JSON that decodes to the same
//! value and encodes to the same bytes; tag edits do what their docs say.
#![no_main]
use libfuzzer_sys::{
    arbitrary::{Result, Unstructured},
    fuzz_target,
};
use stash_repo_format::snapshot::{Snapshot, SnapshotSummary};

#[path = "structured.rs"]
mod structured;

fn check(s: &Snapshot, edits: &[String]) {
    let json = s.encode().expect("a snapshot encodes");
    let back = Snapshot::decode(&json).expect("an encoded snapshot decodes");
    assert_eq!(&back, s);
    assert_eq!(
        back.encode().expect("re-encode"),
        json,
        "encoding is a fixed point"
    );

    assert!(s.has_tags(&s.tags), "a snapshot has its own tags");
    assert!(
        s.has_tag_list::<String>(&[]),
        "no tag lists match everything"
    );
    assert!(s.has_paths(&s.paths));
    let mut added = s.clone();
    let changed = added.add_tags(edits);
    let fresh: Vec<&String> = edits
        .iter()
        .filter(|t| !t.is_empty() && !s.tags.contains(t))
        .collect();
    assert_eq!(changed, !fresh.is_empty());
    let nonempty: Vec<&String> = edits.iter().filter(|t| !t.is_empty()).collect();
    assert!(added.has_tags(&nonempty));
    assert!(
        added.tags.starts_with(&s.tags),
        "existing tags keep their order"
    );
    let mut removed = added.clone();
    removed.remove_tags(edits);
    assert!(!removed.tags.iter().any(|t| edits.contains(t)));
}

fn structured(u: &mut Unstructured<'_>) -> Result<Snapshot> {
    let list = |u: &mut Unstructured<'_>| -> Result<Vec<String>> {
        (0..u.int_in_range(0..=3u8)?)
            .map(|_| structured::text(u))
            .collect()
    };
    let opt_id = |u: &mut Unstructured<'_>| -> Result<_> {
        Ok(if u.arbitrary()? {
            Some(structured::id(u)?)
        } else {
            None
        })
    };
    let summary = if u.arbitrary()? {
        Some(SnapshotSummary {
            backup_start: structured::go_time(u)?,
            backup_end: structured::go_time(u)?,
            files_new: u.arbitrary()?,
            files_changed: u.arbitrary()?,
            files_unmodified: u.arbitrary()?,
            dirs_new: u.arbitrary()?,
            dirs_changed: u.arbitrary()?,
            dirs_unmodified: u.arbitrary()?,
            data_blobs: u.arbitrary()?,
            tree_blobs: u.arbitrary()?,
            data_added: u.arbitrary()?,
            data_added_packed: u.arbitrary()?,
            total_files_processed: u.arbitrary()?,
            total_bytes_processed: u.arbitrary()?,
        })
    } else {
        None
    };
    Ok(Snapshot {
        time: structured::go_time(u)?,
        parent: opt_id(u)?,
        tree: opt_id(u)?,
        paths: list(u)?,
        hostname: structured::text(u)?,
        username: structured::text(u)?,
        uid: u.arbitrary()?,
        gid: u.arbitrary()?,
        excludes: list(u)?,
        tags: list(u)?,
        original: opt_id(u)?,
        program_version: structured::text(u)?,
        summary,
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let edits: Vec<String> = (0..u.int_in_range(0..=2u8).unwrap_or(0))
        .map(|_| structured::text(&mut u).unwrap_or_default())
        .collect();
    if let Ok(s) = Snapshot::decode(data) {
        check(&s, &edits);
    }
    if data.trim_ascii_start().first() == Some(&b'[') {
        assert!(
            Snapshot::decode(data).is_err(),
            "a top-level array is not a snapshot"
        );
    }
    if let Ok(s) = structured(&mut u) {
        check(&s, &edits);
    }
});

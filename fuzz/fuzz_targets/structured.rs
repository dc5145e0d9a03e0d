//! Shared by the JSON targets (`#[path = "structured.rs"] mod structured;`): builds
//! well-formed documents from fuzzer bytes, so every run also checks encode -> decode
//! on values that random bytes would almost never spell as valid JSON (64-hex ids,
//! RFC 3339 times, Go-quoted names). Not a fuzz target itself.
#![allow(dead_code)]

use chrono::FixedOffset;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use stash_repo_format::{
    blob::BlobType,
    gotime::GoTime,
    node::{ExtendedAttribute, Node, NodeType, RawJson},
    Id,
};

pub fn id(u: &mut Unstructured<'_>) -> Result<Id> {
    Ok(Id(u.arbitrary()?))
}

pub fn blob_type(u: &mut Unstructured<'_>) -> Result<BlobType> {
    Ok(if u.arbitrary()? {
        BlobType::Tree
    } else {
        BlobType::Data
    })
}

/// A time as the engine makes them (`GoTime::from_unix_in`): any seconds, any nanos
/// (carried), a whole-minute offset. Offsets with a seconds part print truncated to
/// minutes by design (Go does the same), so they are not generated.
pub fn go_time(u: &mut Unstructured<'_>) -> Result<GoTime> {
    let secs: i64 = match u.int_in_range(0..=3u8)? {
        // Anything, clamped into years 0..=9999 by the constructor.
        0 => u.arbitrary()?,
        // Around now.
        1 => 1_700_000_000 + i64::from(u.arbitrary::<i32>()?),
        // Near the edges of Go's JSON years.
        2 => -62_167_219_200 + i64::from(u.arbitrary::<i32>()?),
        _ => 253_402_300_799 - i64::from(u.arbitrary::<u32>()?),
    };
    let nanos: u32 = u.arbitrary()?;
    let minutes = i32::from(u.int_in_range(0..=2878u16)?) - 1439;
    let offset = FixedOffset::east_opt(minutes * 60).expect("offset within a day");
    Ok(GoTime::from_unix_in(secs, nanos, offset))
}

/// A string, mostly short, sometimes with the characters escaping cares about.
pub fn text(u: &mut Unstructured<'_>) -> Result<String> {
    let s: String = u.arbitrary()?;
    Ok(match u.int_in_range(0..=7u8)? {
        0 => format!("{s}\"\\<>&\u{2028}\u{2029}\n\t\u{7f}\u{0}"),
        _ => s,
    })
}

/// Raw bytes, sometimes not UTF-8.
pub fn raw(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    match u.int_in_range(0..=2u8)? {
        0 => u.arbitrary(),
        1 => Ok(text(u)?.into_bytes()),
        _ => {
            let mut v = text(u)?.into_bytes();
            let at = u.choose_index(v.len() + 1)?;
            v.insert(at, u.int_in_range(0x80..=0xffu8)?);
            Ok(v)
        }
    }
}

/// A generic attribute value; numbers are integers (their text is what Go writes).
pub fn raw_json(u: &mut Unstructured<'_>, depth: u32) -> Result<RawJson> {
    let pick = if depth >= 3 {
        u.int_in_range(0..=3u8)?
    } else {
        u.int_in_range(0..=5u8)?
    };
    Ok(match pick {
        0 => RawJson::Null,
        1 => RawJson::Bool(u.arbitrary()?),
        2 => RawJson::Number(u.arbitrary::<i64>()?.to_string()),
        3 => RawJson::String(text(u)?),
        4 => {
            let n = u.int_in_range(0..=3u8)?;
            RawJson::Array(
                (0..n)
                    .map(|_| raw_json(u, depth + 1))
                    .collect::<Result<_>>()?,
            )
        }
        _ => {
            let n = u.int_in_range(0..=3u8)?;
            RawJson::Object(
                (0..n)
                    .map(|_| Ok((text(u)?, raw_json(u, depth + 1)?)))
                    .collect::<Result<_>>()?,
            )
        }
    })
}

pub fn node_type(u: &mut Unstructured<'_>) -> Result<NodeType> {
    Ok(match u.int_in_range(0..=8u8)? {
        0 => NodeType::File,
        1 => NodeType::Dir,
        2 => NodeType::Symlink,
        3 => NodeType::Dev,
        4 => NodeType::CharDev,
        5 => NodeType::Fifo,
        6 => NodeType::Socket,
        7 => NodeType::Irregular,
        // Through `parse`, as the reader does: `Other("file")` is not a value it makes.
        _ => NodeType::parse(&text(u)?),
    })
}

/// A node with every field drawn; `name` may be empty or hold `/` (which `encode`
/// must then refuse).
pub fn node(u: &mut Unstructured<'_>) -> Result<Node> {
    let name = raw(u)?;
    let mut xattrs = Vec::new();
    for _ in 0..u.int_in_range(0..=2u8)? {
        let value: Vec<u8> = u.arbitrary()?;
        // The reader sets `value_null` only for an empty value (JSON `null`).
        let value_null = value.is_empty() && u.arbitrary()?;
        xattrs.push(ExtendedAttribute {
            name: text(u)?,
            value,
            value_null,
        });
    }
    let mut generic = std::collections::BTreeMap::new();
    for _ in 0..u.int_in_range(0..=2u8)? {
        generic.insert(text(u)?, raw_json(u, 0)?);
    }
    let content = if u.arbitrary()? {
        Some(
            (0..u.int_in_range(0..=3u8)?)
                .map(|_| id(u))
                .collect::<Result<_>>()?,
        )
    } else {
        None
    };
    Ok(Node {
        name,
        node_type: node_type(u)?,
        mode: u.arbitrary()?,
        mtime: go_time(u)?,
        atime: go_time(u)?,
        ctime: go_time(u)?,
        uid: u.arbitrary()?,
        gid: u.arbitrary()?,
        user: text(u)?,
        group: text(u)?,
        inode: u.arbitrary()?,
        device_id: u.arbitrary()?,
        size: u.arbitrary()?,
        links: u.arbitrary()?,
        link_target: raw(u)?,
        extended_attributes: xattrs,
        generic_attributes: generic,
        device: u.arbitrary()?,
        content,
        subtree: if u.arbitrary()? { Some(id(u)?) } else { None },
        error: text(u)?,
    })
}

//! The index file JSON: `{"supersedes":[..],"packs":[{"id":..,"blobs":[..]}]}`.

use serde::{Deserialize, Serialize};

use crate::{
    blob::BlobType,
    error::{FormatError, Result},
    id::Id,
    pack::PackedBlob,
};

/// An index document.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct IndexFile {
    /// Index files this one replaces (restic <= 0.16 writes it; ignored on read).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub supersedes: Vec<Id>,
    /// Packs and their blobs.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub packs: Vec<IndexPack>,
}

/// One pack's entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IndexPack {
    /// Pack id.
    pub id: Id,
    /// Its blobs.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub blobs: Vec<IndexBlob>,
}

/// One blob's entry.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct IndexBlob {
    /// Blob id.
    pub id: Id,
    /// `data` or `tree`.
    #[serde(rename = "type", with = "blob_type_serde")]
    pub ty: BlobType,
    /// Offset in the pack.
    pub offset: u32,
    /// Sealed length.
    pub length: u32,
    /// Present only for compressed blobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncompressed_length: Option<u32>,
}

fn null_as_empty<'de, D, T>(d: D) -> std::result::Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

mod blob_type_serde {
    use super::BlobType;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &BlobType, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(t.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BlobType, D::Error> {
        match std::borrow::Cow::<str>::deserialize(d)?.as_ref() {
            "data" => Ok(BlobType::Data),
            "tree" => Ok(BlobType::Tree),
            other => Err(serde::de::Error::custom(format!(
                "unknown blob type {other:?}"
            ))),
        }
    }
}

impl From<&PackedBlob> for IndexBlob {
    fn from(b: &PackedBlob) -> Self {
        IndexBlob {
            id: b.id,
            ty: b.ty,
            offset: b.offset,
            length: b.length,
            uncompressed_length: b.uncompressed_length,
        }
    }
}

impl From<&IndexBlob> for PackedBlob {
    fn from(b: &IndexBlob) -> Self {
        PackedBlob {
            ty: b.ty,
            id: b.id,
            offset: b.offset,
            length: b.length,
            uncompressed_length: b.uncompressed_length.filter(|&n| n > 0),
        }
    }
}

impl IndexFile {
    /// Parses decoded index JSON. The legacy top-level array (restic 0.1) is accepted.
    ///
    /// # Errors
    /// [`FormatError::Json`] for anything else.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        if bytes.first() == Some(&b'[') {
            let packs: Vec<IndexPack> =
                serde_json::from_slice(bytes).map_err(|e| FormatError::json("index", e))?;
            return Ok(IndexFile {
                supersedes: Vec::new(),
                packs,
            });
        }
        serde_json::from_slice(bytes).map_err(|e| FormatError::json("index", e))
    }

    /// The JSON to store, with a trailing newline as restic's encoder writes.
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// Number of blob entries.
    pub fn blob_count(&self) -> usize {
        self.packs.iter().map(|p| p.blobs.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restic_shaped_json() {
        let j = format!(
            r#"{{"supersedes":["{a}"],"packs":[{{"id":"{a}","blobs":[{{"id":"{b}","type":"tree","offset":0,"length":42,"uncompressed_length":10}},{{"id":"{b}","type":"data","offset":42,"length":40}}]}}]}}"#,
            a = Id::hash(b"a"),
            b = Id::hash(b"b")
        );
        let f = IndexFile::from_json(j.as_bytes()).unwrap();
        assert_eq!(f.blob_count(), 2);
        assert_eq!(f.packs[0].blobs[0].uncompressed_length, Some(10));
        assert_eq!(f.packs[0].blobs[1].uncompressed_length, None);
        let back = IndexFile::from_json(&f.to_json()).unwrap();
        assert_eq!(back, f);
        let bad = j.replace("\"tree\"", "\"bogus\"");
        assert!(IndexFile::from_json(bad.as_bytes()).is_err());
        assert!(IndexFile::from_json(b"{\"packs\":null}")
            .unwrap()
            .packs
            .is_empty());
        assert!(IndexFile::from_json(b"{\"packs\":[{\"id\":\"00\"}]}").is_err());
    }
}

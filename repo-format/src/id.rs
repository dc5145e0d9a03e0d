//! Content ids: the SHA-256 of a blob's plaintext or of a stored file's bytes.
//!
//! Every object in a restic repository is addressed by a 32-byte id shown as 64
//! lower-case hex characters. Upper case is accepted on input (restic does).

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::error::{FormatError, Result};

/// A 32-byte SHA-256 id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Id(pub [u8; 32]);

impl Id {
    /// The SHA-256 of `data`.
    pub fn hash(data: &[u8]) -> Self {
        Id(Sha256::digest(data).into())
    }

    /// Parses 64 hex characters.
    ///
    /// # Errors
    /// [`FormatError::InvalidId`] when the text is not exactly 64 hex characters.
    pub fn from_hex(s: &str) -> Result<Self> {
        let mut out = [0u8; 32];
        if s.len() != 64 {
            return Err(FormatError::InvalidId(s.chars().take(80).collect()));
        }
        hex::decode_to_slice(s, &mut out)
            .map_err(|_| FormatError::InvalidId(s.chars().take(80).collect()))?;
        Ok(Id(out))
    }

    /// Lower-case hex form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 8 hex characters, as restic prints short ids.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    /// True for the all-zero id, which restic treats as "no id".
    pub fn is_null(&self) -> bool {
        self.0 == [0u8; 32]
    }

    /// Raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.short())
    }
}

impl FromStr for Id {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Self> {
        Id::from_hex(s)
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        Id::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_case() {
        let id = Id::hash(b"abc");
        assert_eq!(
            id.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Id::from_hex(&id.to_hex().to_uppercase()).unwrap(), id);
        assert!(Id::from_hex("abc").is_err());
        assert!(Id::from_hex(&"g".repeat(64)).is_err());
    }

    #[test]
    fn json_form() {
        let id = Id::hash(b"x");
        let j = serde_json::to_string(&id).unwrap();
        assert_eq!(j, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<Id>(&j).unwrap(), id);
        assert!(serde_json::from_str::<Id>("\"00\"").is_err());
    }
}

//! The repository config (`config`): format version, repository id and the chunker
//! polynomial. Sealed with the master key but never compressed, in both versions.

use serde::{Deserialize, Serialize};
use stash_chunker::{ChunkerKind, Polynomial};

use crate::error::{FormatError, Result};

/// The decoded `config` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// 1 (no compression) or 2 (zstd).
    pub version: u32,
    /// 32 random bytes in hex.
    pub id: String,
    /// Rabin polynomial, lower-case hex without `0x`.
    pub chunker_polynomial: String,
    /// Our extension: `"fastcdc"` for repositories created with FastCDC. restic ignores
    /// unknown fields and keeps chunking with the polynomial, which stays valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunker: Option<String>,
}

/// The chunker a repository asks for.
pub const FASTCDC: &str = "fastcdc";

impl Config {
    /// A new config with a random id and a random irreducible polynomial.
    ///
    /// # Errors
    /// [`FormatError::UnsupportedVersion`] for a version other than 1 or 2.
    pub fn new(version: u32, fastcdc: bool) -> Result<Self> {
        if !(1..=2).contains(&version) {
            return Err(FormatError::UnsupportedVersion(version));
        }
        let mut id = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut id);
        let pol = Polynomial::random(&mut rand::thread_rng())
            .map_err(|e| FormatError::invalid("config", e.to_string()))?;
        Ok(Config {
            version,
            id: hex::encode(id),
            chunker_polynomial: pol.to_string(),
            chunker: fastcdc.then(|| FASTCDC.to_string()),
        })
    }

    /// Parses and validates the decrypted config JSON.
    ///
    /// # Errors
    /// Malformed JSON, an unsupported version, or a polynomial that is not irreducible.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let c: Config =
            serde_json::from_slice(bytes).map_err(|e| FormatError::json("config", e))?;
        if !(1..=2).contains(&c.version) {
            return Err(FormatError::UnsupportedVersion(c.version));
        }
        c.polynomial()?;
        Ok(c)
    }

    /// The JSON to seal.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The parsed polynomial.
    ///
    /// # Errors
    /// [`FormatError::Invalid`] for bad hex or a reducible polynomial.
    pub fn polynomial(&self) -> Result<Polynomial> {
        let p: Polynomial = self
            .chunker_polynomial
            .parse()
            .map_err(|e| FormatError::invalid("config", format!("chunker_polynomial: {e}")))?;
        if !p.is_irreducible() {
            return Err(FormatError::invalid(
                "config",
                "chunker polynomial is not irreducible",
            ));
        }
        Ok(p)
    }

    /// The chunker new backups into this repository use.
    ///
    /// # Errors
    /// As [`Config::polynomial`].
    pub fn chunker_kind(&self) -> Result<ChunkerKind> {
        match self.chunker.as_deref() {
            Some(FASTCDC) => Ok(ChunkerKind::FastCdc),
            _ => Ok(ChunkerKind::Rabin(self.polynomial()?)),
        }
    }

    /// Whether blobs and unpacked files are compressed.
    pub fn compression(&self) -> bool {
        self.version >= 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restic_config_parses() {
        let j = br#"{"version":2,"id":"6f2d5a7dbbf0e7c1a3d4ea54a2e4fa68a6a4a5f37f9d4a0cb0c6e5d8d1a2b3c4","chunker_polynomial":"2c9d33f130d1bb"}"#;
        let c = Config::from_json(j).unwrap();
        assert_eq!(c.version, 2);
        assert!(matches!(c.chunker_kind().unwrap(), ChunkerKind::Rabin(_)));
        assert_eq!(c.to_json(), j.to_vec());
    }

    #[test]
    fn new_and_invalid() {
        let c = Config::new(1, true).unwrap();
        assert!(matches!(c.chunker_kind().unwrap(), ChunkerKind::FastCdc));
        assert!(Config::from_json(&c.to_json()).is_ok());
        assert!(Config::new(3, false).is_err());
        assert!(Config::from_json(
            br#"{"version":3,"id":"x","chunker_polynomial":"2c9d33f130d1bb"}"#
        )
        .is_err());
        assert!(Config::from_json(
            br#"{"version":2,"id":"x","chunker_polynomial":"38f1e565e288df"}"#
        )
        .is_err());
        assert!(Config::from_json(b"[").is_err());
    }
}

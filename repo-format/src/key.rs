//! Key files (`keys/<id>`): plain JSON holding the master key encrypted under a key
//! derived from a password with scrypt. Every key file of a repository wraps the same
//! master key; adding a password adds a key file.

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::{
    crypto::{Key, MasterKeyJson},
    error::{FormatError, Result},
    gotime::GoTime,
};

/// Salt length restic's KDF insists on.
pub const SALT_LEN: usize = 64;

/// scrypt cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// CPU/memory cost, a power of two.
    pub n: u64,
    /// Block size.
    pub r: u32,
    /// Parallelism.
    pub p: u32,
}

impl Default for KdfParams {
    /// 2^15, 8, 1: about 32 MiB of memory and a tenth of a second, within restic's
    /// calibration range (it targets 0.5 s and 60 MiB, starting from 2^14).
    fn default() -> Self {
        KdfParams {
            n: 1 << 15,
            r: 8,
            p: 1,
        }
    }
}

/// The JSON document of a key file, field order as restic writes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyFile {
    /// Creation time.
    pub created: GoTime,
    /// Informational.
    #[serde(default)]
    pub username: String,
    /// Informational.
    #[serde(default)]
    pub hostname: String,
    /// Always `scrypt`.
    pub kdf: String,
    /// scrypt N.
    #[serde(rename = "N")]
    pub n: u64,
    /// scrypt r.
    pub r: u32,
    /// scrypt p.
    pub p: u32,
    /// 64 random bytes, base64.
    pub salt: String,
    /// The sealed master key JSON, base64.
    pub data: String,
}

/// Runs scrypt over `password` and `salt`.
///
/// # Errors
/// [`FormatError::Kdf`] when the parameters are out of range (N not a power of two
/// greater than 1, r or p zero, or a salt of the wrong length).
pub fn derive_user_key(password: &[u8], salt: &[u8], params: KdfParams) -> Result<Key> {
    if salt.len() != SALT_LEN {
        return Err(FormatError::Kdf(format!(
            "salt is {} bytes, want 64",
            salt.len()
        )));
    }
    if params.n < 2 || !params.n.is_power_of_two() || params.n > (1 << 30) {
        return Err(FormatError::Kdf(format!(
            "N={} is not a power of two in 2..2^30",
            params.n
        )));
    }
    let log_n = params.n.trailing_zeros() as u8;
    let sp = scrypt::Params::new(log_n, params.r, params.p, 64).map_err(|e| {
        FormatError::Kdf(format!("N={} r={} p={}: {e}", params.n, params.r, params.p))
    })?;
    let mut dk = [0u8; 64];
    scrypt::scrypt(password, salt, &sp, &mut dk).map_err(|e| FormatError::Kdf(e.to_string()))?;
    Ok(Key::from_kdf_output(&dk))
}

impl KeyFile {
    /// Wraps `master` under `password`. Returns the key file; its id is the SHA-256 of
    /// [`KeyFile::to_bytes`].
    ///
    /// # Errors
    /// As [`derive_user_key`].
    pub fn create(
        master: &Key,
        password: &[u8],
        params: KdfParams,
        username: &str,
        hostname: &str,
    ) -> Result<Self> {
        let mut salt = [0u8; SALT_LEN];
        rand::thread_rng().fill_bytes(&mut salt);
        let user_key = derive_user_key(password, &salt, params)?;
        let json = serde_json::to_vec(&master.to_json())
            .map_err(|e| FormatError::json("master key", e))?;
        Ok(KeyFile {
            created: GoTime::now(),
            username: username.to_string(),
            hostname: hostname.to_string(),
            kdf: "scrypt".into(),
            n: params.n,
            r: params.r,
            p: params.p,
            salt: B64.encode(salt),
            data: B64.encode(user_key.seal(&json)),
        })
    }

    /// Parses the stored bytes of a key file.
    ///
    /// # Errors
    /// [`FormatError::Json`] for malformed JSON.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| FormatError::json("key file", e))
    }

    /// The bytes to store.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The scrypt parameters this file was written with.
    pub fn params(&self) -> KdfParams {
        KdfParams {
            n: self.n,
            r: self.r,
            p: self.p,
        }
    }

    /// Derives the user key from `password` and unwraps the master key.
    ///
    /// # Errors
    /// [`FormatError::MacMismatch`] when the password is wrong; [`FormatError::Kdf`],
    /// [`FormatError::Invalid`] or [`FormatError::Json`] for a damaged key file.
    pub fn open(&self, password: &[u8]) -> Result<Key> {
        if self.kdf != "scrypt" {
            return Err(FormatError::Kdf(format!("unsupported KDF {:?}", self.kdf)));
        }
        let salt = B64
            .decode(&self.salt)
            .map_err(|e| FormatError::invalid("key file", format!("salt: {e}")))?;
        let data = B64
            .decode(&self.data)
            .map_err(|e| FormatError::invalid("key file", format!("data: {e}")))?;
        let user_key = derive_user_key(password, &salt, self.params())?;
        let json = user_key.open(&data)?;
        let mk: MasterKeyJson =
            serde_json::from_slice(&json).map_err(|e| FormatError::json("master key", e))?;
        Key::from_json(&mk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: KdfParams = KdfParams {
        n: 1024,
        r: 8,
        p: 1,
    };

    #[test]
    fn create_open() {
        let master = Key::random();
        let kf = KeyFile::create(&master, b"secret", FAST, "u", "h").unwrap();
        let bytes = kf.to_bytes();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("{\"created\":"), "{text}");
        assert!(text.contains("\"kdf\":\"scrypt\",\"N\":1024,\"r\":8,\"p\":1,"));
        let back = KeyFile::from_bytes(&bytes).unwrap();
        assert_eq!(back.open(b"secret").unwrap(), master);
        assert!(matches!(back.open(b"wrong"), Err(FormatError::MacMismatch)));
    }

    #[test]
    fn bad_params_are_errors() {
        let salt = [1u8; 64];
        for p in [
            KdfParams { n: 0, r: 8, p: 1 },
            KdfParams {
                n: 1000,
                r: 8,
                p: 1,
            },
            KdfParams {
                n: 1024,
                r: 0,
                p: 1,
            },
        ] {
            assert!(derive_user_key(b"x", &salt, p).is_err(), "{p:?}");
        }
        assert!(derive_user_key(b"x", &salt[..10], FAST).is_err());
        assert!(KeyFile::from_bytes(b"{not json").is_err());
    }
}

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
    kdf,
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
    /// 2^15, 8, 1: 32 MiB of memory and about a tenth of a second. This is the floor
    /// of [`KdfParams::calibrated`], which new keys use.
    fn default() -> Self {
        KdfParams {
            n: 1 << 15,
            r: 8,
            p: 1,
        }
    }
}

/// How long deriving a new key should take on one core: restic's `KDFTimeout`.
pub const KDF_TARGET: std::time::Duration = std::time::Duration::from_millis(500);

impl KdfParams {
    /// restic's calibration: N = 2^15 and r = 8 (32 MiB, under restic's 60 MiB
    /// memory limit; 2^16 would exceed it), then as many lanes `p` as it takes for
    /// one derivation to keep one core busy for about `target` on this machine.
    /// Times one lane three times and keeps the fastest: a single timing swings by
    /// half on a busy or virtual machine, and the key's strength with it. The lane
    /// runs on the portable instructions ([`kdf::scrypt_portable`]): on this
    /// machine that gives p = 6 or 7, where restic, timing Go's scrypt, picks 6.
    pub fn calibrated(target: std::time::Duration) -> KdfParams {
        let base = KdfParams::default();
        let mut salt = [0u8; SALT_LEN];
        rand::thread_rng().fill_bytes(&mut salt);
        let mut fastest = std::time::Duration::MAX;
        for _ in 0..3 {
            let start = std::time::Instant::now();
            let Ok(cost) = kdf::Cost::new(base.n, base.r, base.p) else {
                return base;
            };
            let mut dk = [0u8; 64];
            if kdf::scrypt_portable(b"calibration", &salt, cost, &mut dk).is_err() {
                return base;
            }
            fastest = fastest.min(start.elapsed());
        }
        KdfParams {
            p: lanes_for(fastest, target),
            ..base
        }
    }
}

/// Lanes of `lane` duration each that add up to about `target`: at least one, at
/// most 64 (a machine 64 times faster than the target needs is still protected by
/// N's memory cost).
pub fn lanes_for(lane: std::time::Duration, target: std::time::Duration) -> u32 {
    let ratio = target.as_secs_f64() / lane.as_secs_f64().max(1e-6);
    ratio.round().clamp(1.0, 64.0) as u32
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
/// [`FormatError::Kdf`] when the parameters are out of range (see [`kdf::Cost::new`])
/// or the salt has the wrong length.
pub fn derive_user_key(password: &[u8], salt: &[u8], params: KdfParams) -> Result<Key> {
    if salt.len() != SALT_LEN {
        return Err(FormatError::Kdf(format!(
            "salt is {} bytes, want 64",
            salt.len()
        )));
    }
    let cost = kdf::Cost::new(params.n, params.r, params.p)?;
    let mut dk = [0u8; 64];
    kdf::scrypt(password, salt, cost, &mut dk)?;
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
    /// [`FormatError::Truncated`] for an empty file (an interrupted write or a
    /// full disk leaves one; the JSON parser's "EOF at column 0" would not say so),
    /// [`FormatError::Json`] for malformed JSON.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(FormatError::Truncated {
                what: "key file",
                detail: format!("{} bytes, no key in them", bytes.len()),
            });
        }
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

    #[test]
    fn lanes_add_up_to_the_target() {
        let ms = std::time::Duration::from_millis;
        assert_eq!(lanes_for(ms(100), ms(500)), 5);
        assert_eq!(lanes_for(ms(90), ms(500)), 6);
        assert_eq!(lanes_for(ms(900), ms(500)), 1);
        assert_eq!(lanes_for(ms(0), ms(500)), 64);
        assert_eq!(lanes_for(ms(1), ms(500)), 64);
    }

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

    #[test]
    fn empty_key_files_say_so() {
        for empty in [&b""[..], b"\n"] {
            let err = KeyFile::from_bytes(empty).unwrap_err().to_string();
            assert!(
                err.contains("key file truncated") && err.contains("no key"),
                "{err}"
            );
        }
    }
}

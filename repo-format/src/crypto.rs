//! Authenticated encryption of every repository object: AES-256-CTR, then
//! Poly1305-AES over the ciphertext (restic's encrypt-then-MAC construction).
//!
//! Layout of a sealed object: `IV(16) || CT || MAC(16)`. The IV is the initial
//! 128-bit big-endian counter block and also the Poly1305-AES nonce. The MAC is
//! always verified (in constant time) before any byte is decrypted, so damaged or
//! forged data is never handed to a parser.
//!
//! AES and Poly1305 are the RustCrypto `aes`, `ctr` and `poly1305` crates, with or
//! without the `simd-crypto` feature (the `aes` crate uses AES-NI where the CPU has
//! it).

use aes::cipher::{BlockEncrypt, KeyInit, KeyIvInit, StreamCipher};
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use poly1305::Poly1305;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::error::{FormatError, Result};

/// Bytes added to a plaintext by sealing: IV and MAC.
pub const OVERHEAD: usize = 32;
/// Bytes of the IV a sealed object starts with; its plaintext follows it.
pub const IV_LEN: usize = 16;
const MAC_LEN: usize = 16;

/// XORs `data` with the AES-256-CTR keystream of `key` from counter block `iv`.
fn apply_keystream(key: &[u8; 32], iv: &[u8; IV_LEN], data: &mut [u8]) {
    ctr::Ctr128BE::<aes::Aes256>::new(key.into(), iv.into()).apply_keystream(data);
}

/// The Poly1305 tag of `msg` under the one-time key `key` (`r || s`).
fn poly1305_tag(key: &[u8; 32], msg: &[u8]) -> [u8; MAC_LEN] {
    Poly1305::new(key.into()).compute_unpadded(msg).into()
}

/// The repository master key, or a user key derived from a password: one AES-256 key
/// for encryption and a Poly1305-AES key pair (`k` for AES-128, `r` for Poly1305).
///
/// Its `Debug` shows no key bytes, and comparing two keys takes the same time
/// wherever they differ.
#[derive(Clone)]
pub struct Key {
    encrypt: [u8; 32],
    mac_k: [u8; 16],
    mac_r: [u8; 16],
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        (self.encrypt[..].ct_eq(&other.encrypt[..])
            & self.mac_k[..].ct_eq(&other.mac_k[..])
            & self.mac_r[..].ct_eq(&other.mac_r[..]))
        .into()
    }
}

impl Eq for Key {}

impl Key {
    /// A fresh random key, as `init` creates for a new repository.
    pub fn random() -> Self {
        let mut k = Key {
            encrypt: [0; 32],
            mac_k: [0; 16],
            mac_r: [0; 16],
        };
        let mut rng = rand::thread_rng();
        rng.fill_bytes(&mut k.encrypt);
        rng.fill_bytes(&mut k.mac_k);
        rng.fill_bytes(&mut k.mac_r);
        k
    }

    /// Splits 64 bytes of KDF output into encryption key, MAC `k` and MAC `r`.
    pub fn from_kdf_output(dk: &[u8; 64]) -> Self {
        let mut k = Key {
            encrypt: [0; 32],
            mac_k: [0; 16],
            mac_r: [0; 16],
        };
        k.encrypt.copy_from_slice(&dk[..32]);
        k.mac_k.copy_from_slice(&dk[32..48]);
        k.mac_r.copy_from_slice(&dk[48..64]);
        k
    }

    fn mac(&self, iv: &[u8; IV_LEN], ciphertext: &[u8]) -> [u8; MAC_LEN] {
        let mut s = aes::cipher::generic_array::GenericArray::clone_from_slice(iv);
        aes::Aes128::new((&self.mac_k).into()).encrypt_block(&mut s);
        let mut poly_key = [0u8; 32];
        poly_key[..16].copy_from_slice(&self.mac_r);
        poly_key[16..].copy_from_slice(&s);
        // r is clamped (by the crate and the fast path alike) as restic >= 0.17
        // relies on Go's doing.
        poly1305_tag(&poly_key, ciphertext)
    }

    /// Encrypts `plaintext` under a fresh random IV.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
        self.seal_into(plaintext, &mut out);
        out
    }

    /// Appends `plaintext` sealed under a fresh random IV to `out`, encrypting in
    /// place there: the bytes are copied once, into their final position.
    pub fn seal_into(&self, plaintext: &[u8], out: &mut Vec<u8>) {
        out.reserve(plaintext.len() + OVERHEAD);
        self.seal_with(out, |out| out.extend_from_slice(plaintext));
    }

    /// Appends a sealed object to `out` whose plaintext `write` appends (it must
    /// only append): a compressor can write straight into a pack buffer, which is
    /// then encrypted in place.
    pub fn seal_with(&self, out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
        let start = out.len();
        let mut iv = [0u8; IV_LEN];
        loop {
            rand::thread_rng().fill_bytes(&mut iv);
            if iv != [0u8; IV_LEN] {
                break;
            }
        }
        out.extend_from_slice(&iv);
        write(out);
        let ct = &mut out[start + IV_LEN..];
        apply_keystream(&self.encrypt, &iv, ct);
        let tag = self.mac(&iv, ct);
        out.extend_from_slice(&tag);
    }

    /// Verifies and decrypts a sealed object.
    ///
    /// # Errors
    /// [`FormatError::Truncated`] for fewer than 32 bytes, [`FormatError::MacMismatch`]
    /// when the MAC does not verify (wrong key or damaged data), and
    /// [`FormatError::Invalid`] for an all-zero IV, which restic refuses too.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.open_into(sealed, &mut out)?;
        Ok(out)
    }

    /// As [`Key::open`], into `out` (its contents are replaced), leaving `sealed`
    /// as it was: `check` decrypts a blob whose pack bytes are not hashed yet this
    /// way.
    ///
    /// # Errors
    /// As [`Key::open`].
    pub fn open_into(&self, sealed: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let (iv, ct) = self.verify(sealed)?;
        out.clear();
        out.extend_from_slice(ct);
        apply_keystream(&self.encrypt, &iv, out);
        Ok(())
    }

    /// As [`Key::open_into`], handing the plaintext to `each` in pieces of `piece`
    /// bytes rounded down to a multiple of 16 (at least 16; the last piece may be
    /// shorter), decrypted one after another into `scratch`:
    /// a consumer that streams (a zstd decoder) needs no buffer as long as the
    /// object. The MAC is verified before the first piece is decrypted.
    ///
    /// # Errors
    /// As [`Key::open`], or the first error `each` returns.
    pub fn open_pieces(
        &self,
        sealed: &[u8],
        piece: usize,
        scratch: &mut Vec<u8>,
        each: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let (iv, ct) = self.verify(sealed)?;
        let piece = (piece / 16).max(1) * 16;
        let first = u128::from_be_bytes(iv);
        for (k, part) in ct.chunks(piece).enumerate() {
            let block = (k * (piece / 16)) as u128;
            scratch.clear();
            scratch.extend_from_slice(part);
            apply_keystream(
                &self.encrypt,
                &first.wrapping_add(block).to_be_bytes(),
                scratch,
            );
            each(scratch)?;
        }
        Ok(())
    }

    /// Verifies and decrypts in place. On success the plaintext is
    /// `buf[16..16 + n]` where `n` is the returned length.
    ///
    /// # Errors
    /// As [`Key::open`].
    pub fn open_in_place(&self, buf: &mut [u8]) -> Result<usize> {
        let (iv, ct_len) = {
            let (iv, ct) = self.verify(buf)?;
            (iv, ct.len())
        };
        let ct = &mut buf[IV_LEN..IV_LEN + ct_len];
        apply_keystream(&self.encrypt, &iv, ct);
        Ok(ct_len)
    }

    /// Checks a sealed object's length, IV and MAC; its IV and ciphertext.
    fn verify<'a>(&self, sealed: &'a [u8]) -> Result<([u8; IV_LEN], &'a [u8])> {
        if sealed.len() < OVERHEAD {
            return Err(FormatError::Truncated {
                what: "encrypted object",
                detail: format!("{} bytes, at least 32 needed", sealed.len()),
            });
        }
        let (iv_bytes, rest) = sealed.split_at(IV_LEN);
        let mut iv = [0u8; IV_LEN];
        iv.copy_from_slice(iv_bytes);
        if iv == [0u8; IV_LEN] {
            return Err(FormatError::invalid("encrypted object", "all-zero IV"));
        }
        let (ct, tag) = rest.split_at(rest.len() - MAC_LEN);
        if !bool::from(self.mac(&iv, ct)[..].ct_eq(tag)) {
            return Err(FormatError::MacMismatch);
        }
        Ok((iv, ct))
    }

    /// The master key JSON restic stores (encrypted) in key files.
    pub fn to_json(&self) -> MasterKeyJson {
        MasterKeyJson {
            mac: MacJson {
                k: B64.encode(self.mac_k),
                r: B64.encode(self.mac_r),
            },
            encrypt: B64.encode(self.encrypt),
        }
    }

    /// Parses and validates restic's master key JSON.
    ///
    /// # Errors
    /// [`FormatError::Invalid`] for wrong lengths or all-zero parts.
    pub fn from_json(j: &MasterKeyJson) -> Result<Self> {
        fn part<const N: usize>(s: &str, name: &str) -> Result<[u8; N]> {
            let v = B64
                .decode(s)
                .map_err(|e| FormatError::invalid("master key", format!("{name}: {e}")))?;
            let a: [u8; N] = v.try_into().map_err(|_| {
                FormatError::invalid("master key", format!("{name}: expected {N} bytes"))
            })?;
            if a == [0u8; N] {
                return Err(FormatError::invalid(
                    "master key",
                    format!("{name} is all zero"),
                ));
            }
            Ok(a)
        }
        Ok(Key {
            encrypt: part(&j.encrypt, "encrypt")?,
            mac_k: part(&j.mac.k, "mac.k")?,
            mac_r: part(&j.mac.r, "mac.r")?,
        })
    }
}

/// `{"mac":{"k":..,"r":..},"encrypt":..}` as restic writes it. Its `Debug` shows
/// no key bytes.
#[derive(Clone, Serialize, Deserialize)]
pub struct MasterKeyJson {
    /// Poly1305-AES key pair.
    pub mac: MacJson,
    /// AES-256 key, base64.
    pub encrypt: String,
}

/// The MAC part of [`MasterKeyJson`]. Its `Debug` shows no key bytes.
#[derive(Clone, Serialize, Deserialize)]
pub struct MacJson {
    /// AES-128 key for the nonce encryption, base64.
    pub k: String,
    /// Poly1305 multiplier, base64.
    pub r: String,
}

impl std::fmt::Debug for MasterKeyJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKeyJson(..)")
    }
}

impl std::fmt::Debug for MacJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MacJson(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_into_appends_after_existing_bytes() {
        let k = Key::random();
        let mut out = b"prefix".to_vec();
        k.seal_into(b"payload", &mut out);
        assert_eq!(&out[..6], b"prefix");
        assert_eq!(out.len(), 6 + 7 + OVERHEAD);
        assert_eq!(k.open(&out[6..]).unwrap(), b"payload");
    }

    #[test]
    fn seal_open_round_trip() {
        let k = Key::random();
        for len in [0usize, 1, 15, 16, 17, 1000] {
            let pt: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let sealed = k.seal(&pt);
            assert_eq!(sealed.len(), len + OVERHEAD);
            assert_eq!(k.open(&sealed).unwrap(), pt);
            let mut out = vec![0xAB; 3000];
            k.open_into(&sealed, &mut out).unwrap();
            assert_eq!(out, pt, "open_into replaces what the buffer held");
            let mut in_place = sealed.clone();
            let n = k.open_in_place(&mut in_place).unwrap();
            assert_eq!(&in_place[16..16 + n], &pt[..]);
        }
    }

    /// Pieces of every size (sizes not a multiple of 16 are rounded down, and the
    /// last piece ends mid-block) and a counter whose low half wraps between two
    /// pieces join up to what [`Key::open`] gives.
    #[test]
    fn pieces_join_up_to_the_plaintext() {
        let k = Key::random();
        let pt: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
        let mut sealed = k.seal(&pt);
        for piece in [1, 16, 17, 48, 4096, 1 << 20] {
            let (mut joined, mut scratch) = (Vec::new(), Vec::new());
            k.open_pieces(&sealed, piece, &mut scratch, &mut |p| {
                joined.extend_from_slice(p);
                Ok(())
            })
            .unwrap();
            assert_eq!(joined, pt, "pieces of {piece}");
        }
        // An IV whose low 64 bits wrap after two blocks: re-seal by hand.
        let iv = [[0x11u8; 8], (u64::MAX - 1).to_be_bytes()].concat();
        sealed[..16].copy_from_slice(&iv);
        let mut ct = pt.clone();
        apply_keystream(&k.encrypt, iv.as_slice().try_into().unwrap(), &mut ct);
        let tag = k.mac(iv.as_slice().try_into().unwrap(), &ct);
        sealed = [&iv[..], &ct, &tag].concat();
        let mut joined = Vec::new();
        k.open_pieces(&sealed, 32, &mut Vec::new(), &mut |p| {
            joined.extend_from_slice(p);
            Ok(())
        })
        .unwrap();
        assert_eq!(joined, pt);
        // A damaged object hands over nothing.
        sealed[40] ^= 1;
        let mut called = false;
        let r = k.open_pieces(&sealed, 64, &mut Vec::new(), &mut |_| {
            called = true;
            Ok(())
        });
        assert!(matches!(r, Err(FormatError::MacMismatch)) && !called);
    }

    #[test]
    fn tamper_and_wrong_key_fail() {
        let k = Key::random();
        let mut sealed = k.seal(b"hello world");
        assert!(matches!(
            Key::random().open(&sealed),
            Err(FormatError::MacMismatch)
        ));
        for i in 0..sealed.len() {
            sealed[i] ^= 1;
            assert!(k.open(&sealed).is_err(), "flip at {i} accepted");
            sealed[i] ^= 1;
        }
        assert!(k.open(&sealed[..31]).is_err());
        assert!(k.open(&[]).is_err());
    }

    #[test]
    fn zero_iv_rejected() {
        let k = Key::random();
        assert!(k.open(&[0u8; 40]).is_err());
    }

    /// Poly1305-AES test vector from Bernstein's paper (the 2nd of its examples):
    /// checks the r || AES_k(nonce) key construction restic uses.
    #[test]
    fn poly1305_aes_vector() {
        let h = |s: &str| hex::decode(s).unwrap();
        let mut key = Key::random();
        key.mac_k
            .copy_from_slice(&h("ec074c835580741701425b623235add6"));
        key.mac_r
            .copy_from_slice(&h("851fc40c3467ac0be05cc20404f3f700"));
        let nonce: [u8; 16] = h("fb447350c4e868c52ac3275cf9d4327e").try_into().unwrap();
        let tag = key.mac(&nonce, &h("f3f6"));
        assert_eq!(hex::encode(tag), "f4c633c3044fc145f84f335cb81953de");
    }

    #[test]
    fn debug_shows_no_key_material() {
        let k = Key::random();
        let j = k.to_json();
        for text in [format!("{k:?}"), format!("{j:?}"), format!("{:?}", j.mac)] {
            for secret in [&j.encrypt, &j.mac.k, &j.mac.r] {
                assert!(!text.contains(secret.as_str()), "{text}");
            }
        }
    }

    #[test]
    fn keys_compare_by_every_part() {
        let k = Key::random();
        assert_eq!(k.clone(), k);
        for part in 0..3 {
            let mut other = k.clone();
            match part {
                0 => other.encrypt[31] ^= 1,
                1 => other.mac_k[0] ^= 1,
                _ => other.mac_r[15] ^= 1,
            }
            assert_ne!(other, k, "part {part}");
        }
    }

    #[test]
    fn master_key_json_round_trip() {
        let k = Key::random();
        let j = serde_json::to_string(&k.to_json()).unwrap();
        assert!(j.starts_with("{\"mac\":{\"k\":"));
        let back: MasterKeyJson = serde_json::from_str(&j).unwrap();
        assert_eq!(Key::from_json(&back).unwrap(), k);
        let zero = MasterKeyJson {
            mac: MacJson {
                k: B64.encode([0u8; 16]),
                r: B64.encode([1u8; 16]),
            },
            encrypt: B64.encode([1u8; 32]),
        };
        assert!(Key::from_json(&zero).is_err());
    }
}

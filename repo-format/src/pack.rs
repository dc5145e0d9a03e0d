//! Pack files: sealed blobs back to back, then the sealed header listing them, then
//! the header's length as LE32. Offsets are implied by the order of header entries.
//!
//! [`PackWriter`] assembles a pack in memory; [`parse_header`] reads one from its
//! tail. Neither does any I/O.

use std::ops::Range;

use crate::{
    blob::{BlobType, EncodedBlob},
    compress,
    crypto::{Key, OVERHEAD},
    error::{FormatError, Result},
    id::Id,
    sha256::Hasher,
};

/// Header entry size for uncompressed blobs (type, LE32 length, id).
pub const ENTRY_LEN: usize = 37;
/// Header entry size for compressed blobs (adds LE32 uncompressed length).
pub const ENTRY_LEN_COMPRESSED: usize = 41;
/// restic's upper bound for the encrypted header, trailer included.
pub const MAX_HEADER_LEN: usize = 16 * 1024 * 1024 + 4;
/// How many trailing bytes a reader fetches first: the trailer and a header of up to
/// 15 compressed entries, as restic does.
pub const EAGER_TAIL: usize = 15 * ENTRY_LEN_COMPRESSED + OVERHEAD + 4;

/// Where a blob sits in a pack, as the header and index describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackedBlob {
    /// Blob type.
    pub ty: BlobType,
    /// Blob id.
    pub id: Id,
    /// Byte offset of the sealed blob in the pack.
    pub offset: u32,
    /// Sealed length.
    pub length: u32,
    /// Plaintext length for compressed blobs.
    pub uncompressed_length: Option<u32>,
}

impl PackedBlob {
    /// Length of this blob's header entry.
    pub fn entry_len(&self) -> usize {
        if self.uncompressed_length.is_some() {
            ENTRY_LEN_COMPRESSED
        } else {
            ENTRY_LEN
        }
    }

    /// Plaintext length (the stored length minus overhead when uncompressed; a
    /// zero uncompressed length means uncompressed, as [`crate::blob::inflates`]
    /// has it).
    pub fn data_length(&self) -> u32 {
        match self.uncompressed_length {
            Some(n) if crate::blob::inflates(Some(n)) => n,
            _ => self.length.saturating_sub(OVERHEAD as u32),
        }
    }
}

/// The size a pack must have given its blobs: what `check` compares to the real size.
pub fn expected_size(blobs: &[PackedBlob]) -> u64 {
    blobs.iter().map(|b| u64::from(b.length)).sum::<u64>() + header_size(blobs)
}

/// The bytes a pack of `blobs` spends after them: its sealed header and the
/// header's length.
pub fn header_size(blobs: &[PackedBlob]) -> u64 {
    blobs.iter().map(|b| b.entry_len() as u64).sum::<u64>() + OVERHEAD as u64 + 4
}

/// Where the `length` sealed bytes at `offset` lie in `within` bytes (a pack, or a
/// stretch of one read for them), as a range to slice with. Offsets and lengths come
/// from index files and pack headers, which may be damaged or hostile, so they are
/// checked before anything is sliced.
///
/// # Errors
/// [`FormatError::Invalid`] naming the offset, length and bytes available when the
/// blob does not lie wholly inside them (a truncated pack and a lying index entry
/// look the same from here).
pub fn blob_range(offset: u64, length: u32, within: usize) -> Result<Range<usize>> {
    let range = usize::try_from(offset).ok().and_then(|start| {
        let end = start.checked_add(usize::try_from(length).ok()?)?;
        (end <= within).then_some(start..end)
    });
    range.ok_or_else(|| {
        FormatError::invalid(
            "blob location",
            format!("offset {offset} of length {length} ends past the {within} bytes available"),
        )
    })
}

/// What a blob's sealed body is: its zstd frame (built in `scratch`) with the
/// plaintext length when `compress` is set and the plaintext is non-empty, else the
/// plaintext itself. The same rule as [`crate::blob::encode`].
pub fn frame<'a>(
    plaintext: &'a [u8],
    compress: Option<i32>,
    scratch: &'a mut Vec<u8>,
) -> (&'a [u8], Option<u32>) {
    match (compress, u32::try_from(plaintext.len())) {
        (Some(level), Ok(len)) if len > 0 => {
            compress::compress_into(plaintext, level, scratch);
            (scratch.as_slice(), Some(len))
        }
        _ => (plaintext, None),
    }
}

/// Collects sealed blobs of one type into a pack.
///
/// The pack id is hashed as blobs are appended, while their bytes are still in
/// cache, rather than in a second pass over the finished pack.
#[derive(Debug, Default)]
pub struct PackWriter {
    buf: Vec<u8>,
    blobs: Vec<PackedBlob>,
    header_len: usize,
    hasher: Hasher,
    /// `buf[..hashed]` has been fed to `hasher`.
    hashed: usize,
}

/// A finished pack: its id, bytes and contents.
#[derive(Debug)]
pub struct FinishedPack {
    /// SHA-256 of `bytes`.
    pub id: Id,
    /// The whole file.
    pub bytes: Vec<u8>,
    /// The blobs it holds, in order.
    pub blobs: Vec<PackedBlob>,
}

impl PackWriter {
    /// An empty writer with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self::with_buffer(Vec::with_capacity(capacity))
    }

    /// An empty writer that fills `buf` (cleared first): a finished pack's bytes can
    /// come back here once stored, so steady-state packing touches no fresh memory.
    pub fn with_buffer(mut buf: Vec<u8>) -> Self {
        buf.clear();
        PackWriter {
            buf,
            ..Default::default()
        }
    }

    /// Appends a sealed blob.
    ///
    /// # Errors
    /// [`FormatError::Invalid`] when the pack would exceed what LE32 offsets or the
    /// header size limit allow; the caller should finish this pack first.
    pub fn add(&mut self, blob: &EncodedBlob) -> Result<()> {
        let (offset, entry) = self.room(blob.uncompressed_length.is_some())?;
        self.buf.extend_from_slice(&blob.sealed);
        self.commit(blob.ty, blob.id, offset, entry, blob.uncompressed_length)
    }

    /// Compresses (when `compress` is set and the plaintext is non-empty) and seals
    /// `plaintext` directly into the pack: the compressor writes into the pack buffer
    /// and the frame is encrypted where it lies. Returns the stored (sealed) length.
    /// The blob reads back exactly like [`crate::blob::encode`]'s.
    ///
    /// # Errors
    /// As [`PackWriter::add`]; the pack is left unchanged.
    pub fn add_plaintext(
        &mut self,
        key: &Key,
        ty: BlobType,
        id: Id,
        plaintext: &[u8],
        compress: Option<i32>,
    ) -> Result<u32> {
        let len = u32::try_from(plaintext.len()).ok().filter(|n| *n > 0);
        let (Some(level), Some(len)) = (compress, len) else {
            return self.add_frame(key, ty, id, plaintext, None);
        };
        let (offset, entry) = self.room(true)?;
        key.seal_with(&mut self.buf, |buf| {
            compress::compress_append(plaintext, level, buf);
        });
        self.commit(ty, id, offset, entry, Some(len))?;
        Ok(self.blobs.last().map_or(0, |b| b.length))
    }

    /// Seals `body` (a blob's plaintext, or its zstd frame when `uncompressed_length`
    /// is set; see [`frame`]) directly into the pack. Returns the stored length.
    ///
    /// # Errors
    /// As [`PackWriter::add`]; the pack is left unchanged.
    pub fn add_frame(
        &mut self,
        key: &Key,
        ty: BlobType,
        id: Id,
        body: &[u8],
        uncompressed_length: Option<u32>,
    ) -> Result<u32> {
        let (offset, entry) = self.room(uncompressed_length.is_some())?;
        key.seal_into(body, &mut self.buf);
        self.commit(ty, id, offset, entry, uncompressed_length)?;
        Ok(self.blobs.last().map_or(0, |b| b.length))
    }

    /// The SHA-256 of `plaintext`, a blob about to be added, computed together with
    /// the pack's bytes that are not hashed yet (two streams at once; see
    /// [`crate::sha256`]).
    pub fn hash_blob(&mut self, plaintext: &[u8]) -> Id {
        let id = self
            .hasher
            .update_and_hash(&self.buf[self.hashed..], plaintext);
        self.hashed = self.buf.len();
        id
    }

    /// Checks that one more blob fits; returns its offset and header entry length.
    fn room(&self, compressed: bool) -> Result<(u32, usize)> {
        let offset = u32::try_from(self.buf.len())
            .map_err(|_| FormatError::invalid("pack", "pack larger than 4 GiB"))?;
        let entry = if compressed {
            ENTRY_LEN_COMPRESSED
        } else {
            ENTRY_LEN
        };
        if self.header_len + entry + OVERHEAD + 4 > MAX_HEADER_LEN {
            return Err(FormatError::invalid("pack", "header full"));
        }
        Ok((offset, entry))
    }

    /// Records the blob whose sealed bytes were just appended at `offset`, or
    /// removes them again when they are too long to describe.
    fn commit(
        &mut self,
        ty: BlobType,
        id: Id,
        offset: u32,
        entry: usize,
        uncompressed_length: Option<u32>,
    ) -> Result<()> {
        let start = offset as usize;
        let Ok(length) = u32::try_from(self.buf.len() - start) else {
            self.buf.truncate(start);
            return Err(FormatError::invalid("pack", "blob larger than 4 GiB"));
        };
        if u32::try_from(self.buf.len()).is_err() {
            self.buf.truncate(start);
            return Err(FormatError::invalid("pack", "pack larger than 4 GiB"));
        }
        self.header_len += entry;
        self.blobs.push(PackedBlob {
            ty,
            id,
            offset,
            length,
            uncompressed_length,
        });
        Ok(())
    }

    /// Bytes the buffer holds without growing; 0 for a writer that has no buffer yet.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Bytes so far, header not counted.
    pub fn size(&self) -> usize {
        self.buf.len()
    }

    /// Number of blobs.
    pub fn count(&self) -> usize {
        self.blobs.len()
    }

    /// Whether one more entry of the largest kind still fits the header limit.
    pub fn header_has_room(&self) -> bool {
        self.header_len + ENTRY_LEN_COMPRESSED + OVERHEAD + 4 <= MAX_HEADER_LEN
    }

    /// Seals the header, appends it and its length, and hashes the pack.
    pub fn finish(mut self, key: &Key) -> FinishedPack {
        let header = encode_header(&self.blobs);
        let start = self.buf.len();
        key.seal_into(&header, &mut self.buf);
        let sealed_len = (self.buf.len() - start) as u32;
        self.buf.extend_from_slice(&sealed_len.to_le_bytes());
        self.hasher.update(&self.buf[self.hashed..]);
        FinishedPack {
            id: self.hasher.finish(),
            bytes: self.buf,
            blobs: self.blobs,
        }
    }
}

/// The plaintext of a header listing `blobs` (type, lengths and id per entry; the
/// offsets follow from the order).
pub fn encode_header(blobs: &[PackedBlob]) -> Vec<u8> {
    let mut header = Vec::with_capacity(blobs.iter().map(PackedBlob::entry_len).sum());
    for b in blobs {
        let t = match (b.ty, b.uncompressed_length.is_some()) {
            (BlobType::Data, false) => 0u8,
            (BlobType::Tree, false) => 1,
            (BlobType::Data, true) => 2,
            (BlobType::Tree, true) => 3,
        };
        header.push(t);
        header.extend_from_slice(&b.length.to_le_bytes());
        if let Some(u) = b.uncompressed_length {
            header.extend_from_slice(&u.to_le_bytes());
        }
        header.extend_from_slice(b.id.as_bytes());
    }
    header
}

/// From the last bytes of a pack (at least 4), the length of its sealed header.
///
/// # Errors
/// [`FormatError::Invalid`] when the trailer is impossible for a pack of `pack_size`.
pub fn header_len_from_trailer(tail: &[u8], pack_size: u64) -> Result<usize> {
    if tail.len() < 4 || pack_size < (4 + OVERHEAD + ENTRY_LEN) as u64 {
        return Err(FormatError::Truncated {
            what: "pack",
            detail: format!("{pack_size} bytes is too small for a pack"),
        });
    }
    let t = &tail[tail.len() - 4..];
    let hlen = u32::from_le_bytes([t[0], t[1], t[2], t[3]]) as usize;
    if hlen < OVERHEAD || hlen as u64 > pack_size - 4 || hlen > MAX_HEADER_LEN - 4 {
        return Err(FormatError::invalid(
            "pack",
            format!("header length {hlen} impossible for a pack of {pack_size} bytes"),
        ));
    }
    Ok(hlen)
}

/// Decrypts and parses a sealed header, computing each blob's offset.
///
/// # Errors
/// MAC failure, a truncated or unknown entry, a blob shorter than its encryption
/// overhead, or blobs that overrun the space before the header (`data_len` = pack
/// size - header - 4): a header cannot claim more blobs than the pack has bytes.
pub fn parse_header(key: &Key, sealed_header: &[u8], data_len: u64) -> Result<Vec<PackedBlob>> {
    let plain = key.open(sealed_header)?;
    let mut out = Vec::with_capacity(plain.len() / ENTRY_LEN);
    let mut pos = 0usize;
    let mut offset = 0u64;
    let rd = |p: &[u8], at: usize| u32::from_le_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]]);
    while let Some(&t) = plain.get(pos) {
        let (ty, compressed) = match t {
            0 => (BlobType::Data, false),
            1 => (BlobType::Tree, false),
            2 => (BlobType::Data, true),
            3 => (BlobType::Tree, true),
            t => {
                return Err(FormatError::invalid(
                    "pack header",
                    format!("unknown blob type {t} in entry at byte {pos}"),
                ))
            }
        };
        let len = if compressed {
            ENTRY_LEN_COMPRESSED
        } else {
            ENTRY_LEN
        };
        let Some(entry) = plain.get(pos..pos + len) else {
            return Err(FormatError::Truncated {
                what: "pack header",
                detail: format!(
                    "entry at byte {pos} needs {len} bytes, {} left",
                    plain.len() - pos
                ),
            });
        };
        let length = rd(entry, 1);
        let (uncompressed_length, id_at) = if compressed {
            (Some(rd(entry, 5)), 9)
        } else {
            (None, 5)
        };
        let mut id = [0u8; 32];
        id.copy_from_slice(&entry[id_at..]);
        let id = Id(id);
        if (length as usize) < OVERHEAD {
            return Err(FormatError::invalid(
                "pack header",
                format!(
                    "blob {} is {length} bytes long, less than the {OVERHEAD} of its encryption",
                    id.short()
                ),
            ));
        }
        let end = offset + u64::from(length);
        let Some(start) = u32::try_from(offset).ok().filter(|_| end <= data_len) else {
            let reason = format!(
                "blob {} at offset {offset} of length {length} overruns the {data_len} bytes before the header",
                id.short()
            );
            return Err(FormatError::invalid("pack header", reason));
        };
        out.push(PackedBlob {
            ty,
            id,
            offset: start,
            length,
            uncompressed_length,
        });
        offset = end;
        pos += len;
    }
    Ok(out)
}

/// Parses a whole pack held in memory.
///
/// # Errors
/// As [`header_len_from_trailer`] and [`parse_header`].
pub fn parse_pack(key: &Key, pack: &[u8]) -> Result<Vec<PackedBlob>> {
    let hlen = header_len_from_trailer(pack, pack.len() as u64)?;
    let start = pack.len() - 4 - hlen;
    parse_header(key, &pack[start..pack.len() - 4], start as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob;

    #[test]
    fn data_length_is_the_plaintext_length() {
        let b = |uncompressed_length| PackedBlob {
            ty: BlobType::Data,
            id: Id([1; 32]),
            offset: 0,
            length: 100,
            uncompressed_length,
        };
        assert_eq!(b(None).data_length(), 68);
        assert_eq!(b(Some(0)).data_length(), 68, "zero: stored uncompressed");
        assert_eq!(b(Some(500)).data_length(), 500);
    }

    #[test]
    fn write_then_parse() {
        let key = Key::random();
        let mut w = PackWriter::default();
        let datas: Vec<Vec<u8>> = vec![b"one".to_vec(), vec![9u8; 5000], Vec::new()];
        for (i, d) in datas.iter().enumerate() {
            let c = (i % 2 == 1).then_some(3);
            w.add(&blob::encode(&key, BlobType::Data, Id::hash(d), d, c))
                .unwrap();
        }
        let p = w.finish(&key);
        assert_eq!(p.id, Id::hash(&p.bytes));
        assert_eq!(expected_size(&p.blobs), p.bytes.len() as u64);
        let parsed = parse_pack(&key, &p.bytes).unwrap();
        assert_eq!(parsed, p.blobs);
        for (b, d) in parsed.iter().zip(&datas) {
            let s = &p.bytes[b.offset as usize..(b.offset + b.length) as usize];
            assert_eq!(
                &blob::decode(&key, &b.id, s, b.uncompressed_length).unwrap(),
                d
            );
        }
    }

    #[test]
    fn plaintext_adds_match_encoded_adds_and_reuse_the_buffer() {
        let key = Key::random();
        let datas: Vec<Vec<u8>> = vec![b"one".to_vec(), vec![9u8; 50_000], Vec::new()];
        let mut w = PackWriter::with_buffer(b"old pack bytes".to_vec());
        for (i, d) in datas.iter().enumerate() {
            let ty = if i == 0 {
                BlobType::Tree
            } else {
                BlobType::Data
            };
            // Each blob's id is hashed together with the pack bytes before it.
            let id = w.hash_blob(d);
            assert_eq!(id, Id::hash(d));
            let stored = w.add_plaintext(&key, ty, id, d, Some(3)).unwrap();
            assert_eq!(stored, w.blobs.last().unwrap().length);
        }
        let p = w.finish(&key);
        assert_eq!(p.id, Id::hash(&p.bytes), "incremental hash is the pack id");
        let parsed = parse_pack(&key, &p.bytes).unwrap();
        assert_eq!(parsed, p.blobs);
        assert_eq!(parsed[0].ty, BlobType::Tree);
        assert!(parsed[1].uncompressed_length.is_some());
        assert_eq!(parsed[2].uncompressed_length, None, "empty blobs stay raw");
        for (b, d) in parsed.iter().zip(&datas) {
            let s = &p.bytes[b.offset as usize..(b.offset + b.length) as usize];
            assert_eq!(
                &blob::decode(&key, &b.id, s, b.uncompressed_length).unwrap(),
                d
            );
        }
        let cap = p.bytes.capacity();
        let ptr = p.bytes.as_ptr();
        let again = PackWriter::with_buffer(p.bytes);
        assert_eq!(
            (again.size(), again.buf.capacity(), again.buf.as_ptr()),
            (0, cap, ptr)
        );
    }

    /// A pack of one tree blob whose sealed header is replaced by `entries`.
    fn pack_with_header(key: &Key, entries: &[u8]) -> Vec<u8> {
        let mut w = PackWriter::default();
        w.add(&blob::encode(
            key,
            BlobType::Tree,
            Id::hash(b"t"),
            b"t",
            None,
        ))
        .unwrap();
        let p = w.finish(key);
        let data_len = p.blobs[0].length as usize;
        let mut bytes = p.bytes[..data_len].to_vec();
        let sealed = key.seal(entries);
        bytes.extend_from_slice(&sealed);
        bytes.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        bytes
    }

    fn entry(t: u8, length: u32, id: &[u8]) -> Vec<u8> {
        let mut e = vec![t];
        e.extend_from_slice(&length.to_le_bytes());
        if t >= 2 {
            e.extend_from_slice(&7u32.to_le_bytes());
        }
        e.extend_from_slice(Id::hash(id).as_bytes());
        e
    }

    /// Headers that lie about the bytes before them are errors naming the blob
    /// and the bytes it claims, never a slice out of range.
    #[test]
    fn headers_claiming_more_than_the_pack_holds_are_errors() {
        let key = Key::random();
        let honest = entry(1, 33, b"t");
        assert_eq!(
            parse_pack(&key, &pack_with_header(&key, &honest)).unwrap()[0].length,
            33
        );
        let more_blobs = [honest.clone(), entry(0, 40, b"x"), entry(2, 40, b"y")].concat();
        let err = parse_pack(&key, &pack_with_header(&key, &more_blobs)).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&Id::hash(b"x").short()) && msg.contains("offset 33"),
            "{msg}"
        );
        assert!(msg.contains("overruns the 33 bytes"), "{msg}");
        let huge = entry(0, u32::MAX, b"x");
        let err = parse_pack(&key, &pack_with_header(&key, &huge)).unwrap_err();
        assert!(err.to_string().contains("overruns"), "{err}");
        let empty_blobs = [honest.clone(), entry(0, 0, b"x")].concat();
        let err = parse_pack(&key, &pack_with_header(&key, &empty_blobs)).unwrap_err();
        assert!(err.to_string().contains("less than the 32"), "{err}");
        let cut = &more_blobs[..honest.len() + 10];
        let err = parse_pack(&key, &pack_with_header(&key, cut)).unwrap_err();
        assert!(err.to_string().contains("entry at byte 37"), "{err}");
        let unknown = [honest.clone(), vec![9]].concat();
        let err = parse_pack(&key, &pack_with_header(&key, &unknown)).unwrap_err();
        assert!(
            err.to_string()
                .contains("unknown blob type 9 in entry at byte 37"),
            "{err}"
        );
    }

    #[test]
    fn blob_ranges_are_checked() {
        assert_eq!(blob_range(10, 20, 30).unwrap(), 10..30);
        assert_eq!(blob_range(0, 0, 0).unwrap(), 0..0);
        for (offset, length, within) in [
            (10, 21, 30),
            (31, 0, 30),
            (u64::MAX, 1, usize::MAX),
            (u64::from(u32::MAX), u32::MAX, 100),
        ] {
            let err = blob_range(offset, length, within).unwrap_err().to_string();
            assert!(
                err.contains(&format!("offset {offset} of length {length}"))
                    && err.contains(&format!("{within} bytes")),
                "{err}"
            );
        }
    }

    #[test]
    fn damaged_packs_are_errors() {
        let key = Key::random();
        let mut w = PackWriter::default();
        w.add(&blob::encode(
            &key,
            BlobType::Tree,
            Id::hash(b"t"),
            b"t",
            None,
        ))
        .unwrap();
        let p = w.finish(&key).bytes;
        for cut in 0..p.len() {
            assert!(parse_pack(&key, &p[cut + 1..]).is_err());
            assert!(parse_pack(&key, &p[..cut]).is_err());
        }
        let mut bad = p.clone();
        let n = bad.len();
        bad[n - 1] = 0xff;
        assert!(parse_pack(&key, &bad).is_err());
        let mut bad = p;
        bad[40] ^= 1;
        assert!(parse_pack(&key, &bad).is_err());
    }
}

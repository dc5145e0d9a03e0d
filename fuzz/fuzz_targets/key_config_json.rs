//! Key files and the config document.
//!
//! - Arbitrary bytes: `KeyFile::from_bytes` and `Config::from_json` return an error
//!   or a value, never a panic; what decodes re-encodes to a fixed point. A decoded
//!   key file whose scrypt cost is small (N <= 2^10, r*p <= 16; larger ones are
//!   skipped to keep runs fast) never opens with a fixed password: `open` returns an
//!   error. A decoded config has an irreducible polynomial, a usable chunker and
//!   compression exactly for version 2.
//! - Built from the input: a key file made with `KeyFile::create` (tiny scrypt cost)
//!   survives bytes -> parse, opens with its password to the same master key, and
//!   fails with `MacMismatch` for another password; a config made from an input
//!   polynomial survives JSON exactly when the polynomial is irreducible.
#![no_main]
use libfuzzer_sys::{arbitrary::Unstructured, fuzz_target};
use stash_chunker::{ChunkerKind, Polynomial};
use stash_repo_format::{
    config::Config,
    crypto::Key,
    key::{KdfParams, KeyFile},
    FormatError,
};

fn key_file_bytes(data: &[u8]) {
    let Ok(kf) = KeyFile::from_bytes(data) else {
        return;
    };
    let bytes = kf.to_bytes();
    let again = KeyFile::from_bytes(&bytes).expect("an encoded key file parses");
    assert_eq!(again.to_bytes(), bytes, "encoding is a fixed point");
    assert_eq!(again.params(), kf.params());
    let p = kf.params();
    if p.n <= 1 << 10 && u64::from(p.r) * u64::from(p.p) <= 16 {
        assert!(kf.open(b"fuzz password").is_err(), "garbage opened");
    }
}

fn config_bytes(data: &[u8]) {
    let Ok(c) = Config::from_json(data) else {
        return;
    };
    config_holds(&c);
}

fn config_holds(c: &Config) {
    let json = c.to_json();
    assert_eq!(
        &Config::from_json(&json).expect("an encoded config parses"),
        c
    );
    assert!((1..=2).contains(&c.version));
    assert_eq!(c.compression(), c.version == 2);
    let pol = c.polynomial().expect("from_json checked the polynomial");
    assert!(pol.is_irreducible());
    match c.chunker_kind().expect("chunker") {
        ChunkerKind::FastCdc => assert_eq!(c.chunker.as_deref(), Some("fastcdc")),
        ChunkerKind::Rabin(p) => assert_eq!(p, pol),
    }
}

fn structured(u: &mut Unstructured<'_>) -> libfuzzer_sys::arbitrary::Result<()> {
    // Config from an input polynomial.
    let pol = Polynomial(u.arbitrary()?);
    let c = Config {
        version: u.int_in_range(0..=3)?,
        id: hex_id(u)?,
        chunker_polynomial: pol.to_string(),
        chunker: match u.int_in_range(0..=2u8)? {
            0 => None,
            1 => Some("fastcdc".into()),
            _ => Some(u.arbitrary()?),
        },
    };
    let parsed = Config::from_json(&c.to_json());
    let valid = (1..=2).contains(&c.version) && pol.is_irreducible();
    assert_eq!(parsed.is_ok(), valid, "{c:?}");
    if let Ok(p) = parsed {
        assert_eq!(p, c);
        config_holds(&p);
    }

    // A real key file with a tiny cost.
    let mut dk = [0u8; 64];
    u.fill_buffer(&mut dk)?;
    let master = Key::from_kdf_output(&dk);
    let params = KdfParams {
        n: 1 << u.int_in_range(1..=5u32)?,
        r: u.int_in_range(1..=2)?,
        p: u.int_in_range(1..=2)?,
    };
    let password: Vec<u8> = u.arbitrary()?;
    let user: String = u.arbitrary()?;
    let host: String = u.arbitrary()?;
    let kf = KeyFile::create(&master, &password, params, &user, &host).expect("create");
    let kf = KeyFile::from_bytes(&kf.to_bytes()).expect("a created key file parses");
    assert_eq!(kf.params(), params);
    assert_eq!(
        (kf.username.as_str(), kf.hostname.as_str()),
        (user.as_str(), host.as_str())
    );
    // The master key's parts must not be all zero (`Key::from_json` refuses that).
    let usable = Key::from_json(&master.to_json()).is_ok();
    match kf.open(&password) {
        Ok(k) => assert!(usable && k == master, "opened to another key"),
        Err(e) => assert!(!usable, "the right password failed: {e}"),
    }
    // Not a NUL: PBKDF2's HMAC pads short keys with zeros, so "pw" and "pw\0" are
    // the same password (in restic too).
    let mut wrong = password.clone();
    wrong.push(b'x');
    match kf.open(&wrong) {
        Err(FormatError::MacMismatch) => {}
        other => panic!("a wrong password gave {:?}", other.map(drop)),
    }
    Ok(())
}

fn hex_id(u: &mut Unstructured<'_>) -> libfuzzer_sys::arbitrary::Result<String> {
    Ok(if u.arbitrary()? {
        stash_repo_format::Id(u.arbitrary()?).to_hex()
    } else {
        u.arbitrary()?
    })
}

fuzz_target!(|data: &[u8]| {
    key_file_bytes(data);
    config_bytes(data);
    let _ = structured(&mut Unstructured::new(data));
});

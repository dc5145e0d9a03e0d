//! Go string conventions that leak into restic's tree bytes.
//!
//! restic stores a node name as `strconv.Quote(name)` without the surrounding quotes
//! (so names that are not valid UTF-8 survive JSON), and then Go's `encoding/json`
//! escapes that text once more. Both steps must be reproduced exactly: a tree's id is the
//! SHA-256 of its bytes, and deduplication against restic-written trees depends on it.
//!
//! * [`quote`] / [`unquote`]: `strconv.Quote` / `strconv.Unquote` over raw bytes.
//! * [`push_json_string`] / [`json_string`]: Go `encoding/json` string output with HTML
//!   escaping on (its default), Go >= 1.22 flavour (`\b` and `\f` short escapes).
//! * [`is_print`]: Go's `unicode.IsPrint` (Unicode 15.0, as in Go 1.21+).

mod printable;

use crate::error::{FormatError, Result};

const LOWER_HEX: &[u8; 16] = b"0123456789abcdef";

/// Go's `unicode.IsPrint`: letters, marks, numbers, punctuation, symbols and the ASCII
/// space. Every other space (U+00A0, U+2028, ...), controls, format characters (U+00AD,
/// U+200B, U+FEFF), private-use and unassigned code points are not printable.
pub fn is_print(c: char) -> bool {
    let c = u32::from(c);
    if c < 0x80 {
        return (0x20..0x7f).contains(&c);
    }
    let table = printable::PRINTABLE;
    // Index of the first range starting after `c`; the range before it may contain `c`.
    let i = table.partition_point(|&(first, _)| first <= c);
    i > 0 && c <= table[i - 1].1
}

/// Go `strconv.Quote(raw)` without the surrounding double quotes.
///
/// Printable runes stay literal; `"` and `\` are backslash-escaped; `\a \b \f \n \r \t
/// \v` get their short escapes; other ASCII controls and DEL become `\xNN`; other
/// non-printable runes `\uNNNN` or `\UNNNNNNNN`; each byte that is not part of valid
/// UTF-8 becomes `\xNN`. The result is always ASCII plus printable non-ASCII.
pub fn quote(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len() + 2);
    for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_escaped_rune(&mut out, c);
        }
        for &b in chunk.invalid() {
            push_hex_byte(&mut out, b);
        }
    }
    out
}

fn push_hex_byte(out: &mut String, b: u8) {
    out.push_str("\\x");
    out.push(char::from(LOWER_HEX[usize::from(b >> 4)]));
    out.push(char::from(LOWER_HEX[usize::from(b & 0xf)]));
}

fn push_escaped_rune(out: &mut String, c: char) {
    if c == '"' || c == '\\' {
        out.push('\\');
        out.push(c);
        return;
    }
    if is_print(c) {
        out.push(c);
        return;
    }
    let short = match c {
        '\x07' => 'a',
        '\x08' => 'b',
        '\x0c' => 'f',
        '\n' => 'n',
        '\r' => 'r',
        '\t' => 't',
        '\x0b' => 'v',
        _ => {
            let v = u32::from(c);
            if v < 0x80 {
                // Only controls and DEL reach here; the cast cannot truncate.
                push_hex_byte(out, v as u8);
            } else if v < 0x10000 {
                out.push_str("\\u");
                push_hex_digits(out, v, 4);
            } else {
                out.push_str("\\U");
                push_hex_digits(out, v, 8);
            }
            return;
        }
    };
    out.push('\\');
    out.push(short);
}

fn push_hex_digits(out: &mut String, v: u32, digits: u32) {
    for i in (0..digits).rev() {
        out.push(char::from(LOWER_HEX[((v >> (4 * i)) & 0xf) as usize]));
    }
}

/// Go `strconv.Unquote("\"" + quoted + "\"")`: the raw bytes a [`quote`]d string stands for.
///
/// Exactly Go's rules for a double-quoted literal: `\xNN` and octal `\NNN` (<= 255) give one
/// raw byte each; `\uNNNN` / `\UNNNNNNNN` give the UTF-8 of a valid scalar value; the short
/// escapes `\a \b \f \n \r \t \v \\ \"` are accepted, `\'` is not (Go only allows it in
/// single-quoted literals); an unescaped `"` or newline is an error, other raw characters
/// (including tabs and other controls) are taken literally.
///
/// # Errors
/// [`FormatError::Invalid`] naming the offending escape or character.
pub fn unquote(quoted: &str) -> Result<Vec<u8>> {
    let err = |reason: String| FormatError::invalid("Go-quoted string", reason);
    let mut out = Vec::with_capacity(quoted.len());
    let bytes = quoted.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'"' => return Err(err(format!("unescaped '\"' at byte {i}"))),
            b'\n' => return Err(err(format!("unescaped newline at byte {i}"))),
            b'\\' => {}
            _ => {
                out.push(b);
                i += 1;
                continue;
            }
        }
        let Some(&kind) = bytes.get(i + 1) else {
            return Err(err("trailing backslash".into()));
        };
        let rest = &bytes[i + 2..];
        let consumed = match kind {
            b'a' | b'b' | b'f' | b'n' | b'r' | b't' | b'v' | b'\\' | b'"' => {
                out.push(match kind {
                    b'a' => 0x07,
                    b'b' => 0x08,
                    b'f' => 0x0c,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'v' => 0x0b,
                    other => other,
                });
                0
            }
            b'x' | b'u' | b'U' => {
                let n = match kind {
                    b'x' => 2,
                    b'u' => 4,
                    _ => 8,
                };
                let digits = rest
                    .get(..n)
                    .ok_or_else(|| err(format!("short \\{} escape", char::from(kind))))?;
                let mut v: u32 = 0;
                for &d in digits {
                    let x = char::from(d).to_digit(16).ok_or_else(|| {
                        err(format!("bad hex digit in \\{} escape", char::from(kind)))
                    })?;
                    v = (v << 4) | x;
                }
                if kind == b'x' {
                    // Two hex digits: always fits a byte, and may be half a UTF-8 sequence.
                    out.push(v as u8);
                } else {
                    let c = char::from_u32(v)
                        .ok_or_else(|| err(format!("invalid code point U+{v:X}")))?;
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                n
            }
            b'0'..=b'7' => {
                let digits = rest
                    .get(..2)
                    .ok_or_else(|| err("short octal escape".into()))?;
                let mut v = u32::from(kind - b'0');
                for &d in digits {
                    if !(b'0'..=b'7').contains(&d) {
                        return Err(err("bad digit in octal escape".into()));
                    }
                    v = (v << 3) | u32::from(d - b'0');
                }
                let byte =
                    u8::try_from(v).map_err(|_| err(format!("octal escape \\{v:o} > 255")))?;
                out.push(byte);
                2
            }
            other => {
                let shown = quoted[i + 1..].chars().next().unwrap_or(char::from(other));
                return Err(err(format!("unknown escape \\{shown}")));
            }
        };
        i += 2 + consumed;
    }
    Ok(out)
}

/// Appends `s` as a JSON string (with the quotes) exactly as Go's `encoding/json` writes
/// it: `"` and `\` escaped, `\b \f \n \r \t` short escapes (Go >= 1.22; older Go wrote
/// `\u0008`/`\u000c`), other bytes < 0x20 and `<` `>` `&` as `\u00xx`, U+2028/U+2029 as
/// `\u2028`/`\u2029`, each byte that is not valid UTF-8 as `\ufffd`, everything else raw.
pub fn push_json_string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for chunk in s.utf8_chunks() {
        let valid = chunk.valid().as_bytes();
        let mut start = 0;
        let mut i = 0;
        while i < valid.len() {
            let b = valid[i];
            let line_sep = b == 0xe2
                && valid.get(i + 1) == Some(&0x80)
                && matches!(valid.get(i + 2), Some(0xa8 | 0xa9));
            let short: Option<&[u8]> = match b {
                b'"' => Some(b"\\\""),
                b'\\' => Some(b"\\\\"),
                0x08 => Some(b"\\b"),
                0x0c => Some(b"\\f"),
                b'\n' => Some(b"\\n"),
                b'\r' => Some(b"\\r"),
                b'\t' => Some(b"\\t"),
                // U+2028 / U+2029 are E2 80 A8 / E2 80 A9.
                _ if line_sep && valid[i + 2] == 0xa8 => Some(b"\\u2028"),
                _ if line_sep => Some(b"\\u2029"),
                _ => None,
            };
            let needs_u00 = b < 0x20 || b == b'<' || b == b'>' || b == b'&';
            if short.is_none() && !needs_u00 {
                i += 1;
                continue;
            }
            out.extend_from_slice(&valid[start..i]);
            if let Some(esc) = short {
                out.extend_from_slice(esc);
            } else {
                out.extend_from_slice(b"\\u00");
                out.push(LOWER_HEX[usize::from(b >> 4)]);
                out.push(LOWER_HEX[usize::from(b & 0xf)]);
            }
            i += if line_sep { 3 } else { 1 };
            start = i;
        }
        out.extend_from_slice(&valid[start..]);
        for _ in chunk.invalid() {
            out.extend_from_slice(b"\\ufffd");
        }
    }
    out.push(b'"');
}

/// [`push_json_string`] into a fresh `String` (the output is always valid UTF-8).
pub fn json_string(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len() + 2);
    push_json_string(&mut out, s);
    // Valid UTF-8 runs are copied whole and everything else written is ASCII.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn quote_matches_go() {
        let cases: &[(&[u8], &str)] = &[
            (b"plain.txt", "plain.txt"),
            (b"we\"ird\\name<&>.txt", r#"we\"ird\\name<&>.txt"#),
            (b"bad\xffname", r"bad\xffname"),
            (b"bell\x07", r"bell\a"),
            (b"\x08\x0c\n\r\t\x0b", r"\b\f\n\r\t\v"),
            (b"ctl\x01\x1f", r"ctl\x01\x1f"),
            (b"del\x7fx", r"del\x7fx"),
            (b"quote's", "quote's"),
            ("café\ttab".as_bytes(), r"café\ttab"),
            ("nbsp\u{a0}x".as_bytes(), r"nbsp\u00a0x"),
            ("sh\u{ad}yph".as_bytes(), r"sh\u00adyph"),
            ("c1\u{85}".as_bytes(), r"c1\u0085"),
            ("ls\u{2028}x".as_bytes(), r"ls\u2028x"),
            ("zw\u{200b}j".as_bytes(), r"zw\u200bj"),
            ("bom\u{feff}x".as_bytes(), r"bom\ufeffx"),
            ("pua\u{e000}".as_bytes(), r"pua\ue000"),
            ("plane15\u{f0000}".as_bytes(), r"plane15\U000f0000"),
            ("unassigned\u{378}".as_bytes(), r"unassigned\u0378"),
            ("emoji😀 日本 \u{fffd}".as_bytes(), "emoji😀 日本 \u{fffd}"),
            // A UTF-8 encoded surrogate is invalid UTF-8: byte by byte.
            (b"s\xed\xa0\x80", r"s\xed\xa0\x80"),
            // Truncated sequence followed by ASCII.
            (b"t\xe6\x97a", r"t\xe6\x97a"),
            (b"", ""),
        ];
        for (raw, want) in cases {
            assert_eq!(quote(raw), *want, "quote({raw:?})");
            assert_eq!(unquote(want).unwrap(), *raw, "unquote({want:?})");
        }
    }

    #[test]
    fn is_print_edges() {
        for c in [' ', 'a', '~', '\u{a1}', 'é', '\u{fffd}', '😀', '\u{300}'] {
            assert!(is_print(c), "{c:?}");
        }
        for c in [
            '\0',
            '\x1f',
            '\x7f',
            '\u{80}',
            '\u{9f}',
            '\u{a0}',
            '\u{ad}',
            '\u{2028}',
            '\u{2029}',
            '\u{3000}',
            '\u{e000}',
            '\u{fffe}',
            '\u{10ffff}',
            '\u{e0001}',
        ] {
            assert!(!is_print(c), "{c:?}");
        }
    }

    #[test]
    fn unquote_go_semantics() {
        assert_eq!(unquote(r"\x41\101\u0041\U00000041").unwrap(), b"AAAA");
        assert_eq!(unquote(r"\377\xff").unwrap(), b"\xff\xff");
        assert_eq!(unquote(r"\u00ff").unwrap(), "\u{ff}".as_bytes());
        assert_eq!(unquote("raw\ttab\r").unwrap(), b"raw\ttab\r");
        assert_eq!(unquote(r#"\"\\"#).unwrap(), b"\"\\");
        for bad in [
            "\\",
            r"\x4",
            r"\xZZ",
            r"\400",
            r"\18",
            r"\1",
            r"\ud800",
            r"\U00110000",
            r"\'",
            r"\q",
            "a\"b",
            "a\nb",
            r"\u12",
            r"\U0001F60",
        ] {
            assert!(unquote(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn json_string_matches_go() {
        let cases: &[(&[u8], &str)] = &[
            (b"a\"b\\c", r#""a\"b\\c""#),
            (b"<&>", r#""\u003c\u0026\u003e""#),
            (b"\x08\x0c\n\r\t", r#""\b\f\n\r\t""#),
            (b"\x00\x01\x1f\x7f", "\"\\u0000\\u0001\\u001f\x7f\""),
            (
                "\u{2028}\u{2029}\u{2027}".as_bytes(),
                "\"\\u2028\\u2029\u{2027}\"",
            ),
            (b"target\xff", r#""target\ufffd""#),
            (b"\xe6\x97", r#""\ufffd\ufffd""#),
            ("é日本😀\u{fffd}".as_bytes(), "\"é日本😀\u{fffd}\""),
            (
                br#"we\"ird\\name<&>.txt"#,
                r#""we\\\"ird\\\\name\u003c\u0026\u003e.txt""#,
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(json_string(raw), *want, "{raw:?}");
        }
    }

    #[test]
    fn lab_name_examples() {
        // §8.4: the name as restic writes it inside tree JSON.
        let n = json_string(quote(b"we\"ird\\name<&>.txt").as_bytes());
        assert_eq!(n, r#""we\\\"ird\\\\name\u003c\u0026\u003e.txt""#);
        assert_eq!(
            json_string(quote(b"bad\xffname").as_bytes()),
            r#""bad\\xffname""#
        );
    }

    proptest! {
        #[test]
        fn quote_unquote_round_trip(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            let q = quote(&raw);
            prop_assert!(!q.contains('"') || q.contains("\\\""));
            prop_assert_eq!(unquote(&q).unwrap(), raw);
        }

        #[test]
        fn quote_unquote_round_trip_text(s in "\\PC*|[\\u{0}-\\u{10ffff}]{0,16}") {
            prop_assert_eq!(unquote(&quote(s.as_bytes())).unwrap(), s.as_bytes());
        }

        #[test]
        fn unquote_never_panics(s in "\\PC{0,24}|[\\\\x0-9a-fuU\"]{0,24}") {
            let _ = unquote(&s);
        }

        #[test]
        fn json_string_is_valid_json(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            let j = json_string(&raw);
            let back: String = serde_json::from_str(&j).unwrap();
            let mut want = String::new();
            for chunk in raw.utf8_chunks() {
                want.push_str(chunk.valid());
                want.extend(std::iter::repeat_n('\u{fffd}', chunk.invalid().len()));
            }
            prop_assert_eq!(back, want);
        }
    }
}

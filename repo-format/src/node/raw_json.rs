//! A JSON value kept in document order, written back the way Go's `encoding/json`
//! compacts a `json.RawMessage`.
//!
//! restic stores `generic_attributes` values as raw JSON. serde_json's `Value` would
//! reorder object keys (no `preserve_order` feature here) and reformat numbers, which
//! would change tree bytes and therefore tree ids; this type keeps key order, duplicate
//! keys, and numbers as Go-formatted text.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::gostr::push_json_string;

/// One JSON value, order-preserving. Numbers hold their Go-formatted text (integers as
/// decimal, floats as Go's `encoding/json` float format), so equality is textual.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RawJson {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, as the text Go would write for it.
    Number(String),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<RawJson>),
    /// An object: keys in document order, duplicates kept.
    Object(Vec<(String, RawJson)>),
}

impl RawJson {
    /// Appends the compact Go form (HTML-escaped strings, as `json.Marshal` does).
    pub fn write_go(&self, out: &mut Vec<u8>) {
        match self {
            RawJson::Null => out.extend_from_slice(b"null"),
            RawJson::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            RawJson::Number(n) => out.extend_from_slice(n.as_bytes()),
            RawJson::String(s) => push_json_string(out, s.as_bytes()),
            RawJson::Array(items) => {
                out.push(b'[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    v.write_go(out);
                }
                out.push(b']');
            }
            RawJson::Object(fields) => {
                out.push(b'{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    push_json_string(out, k.as_bytes());
                    out.push(b':');
                    v.write_go(out);
                }
                out.push(b'}');
            }
        }
    }

    /// The compact Go form as a string.
    pub fn to_go_string(&self) -> String {
        let mut out = Vec::new();
        self.write_go(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Go's `encoding/json` float text: shortest round-trip digits, plain decimal for
/// 1e-6 <= |f| < 1e21, otherwise exponent form with a sign and at least two exponent
/// digits for positive exponents (`1e+21`, `1.5e-7`).
fn go_float(f: f64) -> String {
    let abs = f.abs();
    if abs == 0.0 || (1e-6..1e21).contains(&abs) {
        return format!("{f}");
    }
    let s = format!("{f:e}");
    match s.split_once('e') {
        Some((mant, exp)) if !exp.starts_with('-') => format!("{mant}e+{exp:0>2}"),
        _ => s,
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawJsonVisitor)
    }
}

struct RawJsonVisitor;

impl<'de> Visitor<'de> for RawJsonVisitor {
    type Value = RawJson;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<RawJson, E> {
        Ok(RawJson::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<RawJson, E> {
        Ok(RawJson::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<RawJson, D::Error> {
        RawJson::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawJson, E> {
        Ok(RawJson::Bool(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawJson, E> {
        Ok(RawJson::Number(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawJson, E> {
        Ok(RawJson::Number(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawJson, E> {
        Ok(RawJson::Number(go_float(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawJson, E> {
        Ok(RawJson::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<RawJson, E> {
        Ok(RawJson::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawJson, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(RawJson::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawJson, A::Error> {
        let mut fields = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, RawJson>()? {
            fields.push((k, v));
        }
        Ok(RawJson::Object(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_go_form() {
        let src = r#"{"LowDateTime":1,"HighDateTime":-2,"a":[true,null,1.5,"<x>"],"a":{}}"#;
        let v: RawJson = serde_json::from_str(src).unwrap();
        assert_eq!(
            v.to_go_string(),
            r#"{"LowDateTime":1,"HighDateTime":-2,"a":[true,null,1.5,"\u003cx\u003e"],"a":{}}"#
        );
        let spaced: RawJson = serde_json::from_str(" [ 1 , 2 ] ").unwrap();
        assert_eq!(spaced.to_go_string(), "[1,2]");
    }

    #[test]
    fn floats_like_go() {
        for (f, want) in [
            (1.0, "1"),
            (-0.0, "-0"),
            (0.1, "0.1"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (1.5e300, "1.5e+300"),
            (1e-6, "0.000001"),
            (1e-7, "1e-7"),
            (1.25e-10, "1.25e-10"),
        ] {
            assert_eq!(go_float(f), want, "{f}");
        }
    }
}

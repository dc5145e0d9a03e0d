use super::*;

fn encode(n: &Node) -> String {
    let mut out = Vec::new();
    n.write_json(&mut out);
    String::from_utf8(out).unwrap()
}

fn decode(s: &str) -> serde_json::Result<Node> {
    serde_json::from_str(s)
}

#[test]
fn lab_mode_values() {
    // §8.5 [LAB]: file 0644, dir 0755, symlink 0777, fifo 0644.
    assert_eq!(go_mode_from_posix(S_IFREG | 0o644), 420);
    assert_eq!(go_mode_from_posix(S_IFDIR | 0o755), 2_147_484_141);
    assert_eq!(go_mode_from_posix(S_IFLNK | 0o777), 134_218_239);
    assert_eq!(go_mode_from_posix(S_IFIFO | 0o644), 33_554_852);
    // Observed in the golden fixtures (restic 0.14).
    assert_eq!(go_mode_from_posix(S_IFCHR | 0o644), 69_206_436);
    assert_eq!(go_mode_from_posix(S_IFREG | 0o4755), 8_389_101);
    assert_eq!(go_mode_from_posix(S_IFREG | 0o2640), 4_194_720);
    assert_eq!(go_mode_from_posix(S_IFDIR | 0o1777), 2_148_532_735);
    assert_eq!(go_mode_from_posix(S_IFREG | 0o600), 384);
    assert_eq!(go_mode_from_posix(S_IFBLK | 0o660), go_mode::DEVICE | 0o660);
    assert_eq!(
        go_mode_from_posix(S_IFSOCK | 0o755),
        go_mode::SOCKET | 0o755
    );
}

#[test]
fn mode_back_to_posix() {
    for st in [
        S_IFREG | 0o644,
        S_IFDIR | 0o1777,
        S_IFLNK | 0o777,
        S_IFIFO | 0o600,
        S_IFCHR | 0o620,
        S_IFBLK | 0o660,
        S_IFSOCK | 0o755,
        S_IFREG | 0o7777,
    ] {
        let go = go_mode_from_posix(st);
        assert_eq!(posix_mode_from_go_mode(go), st, "{st:o}");
        assert_eq!(posix_perm_from_go_mode(go), st & 0o7777, "{st:o}");
    }
    assert_eq!(posix_perm_from_go_mode(8_389_101), 0o4755);
    assert_eq!(posix_perm_from_go_mode(2_148_532_735), 0o1777);
    assert_eq!(
        posix_mode_from_go_mode(go_mode::IRREGULAR | 0o644),
        S_IFREG | 0o644
    );
}

#[test]
fn node_type_from_mode() {
    let t = |st| NodeType::from_go_mode(go_mode_from_posix(st));
    assert_eq!(t(S_IFREG | 0o644), Some(NodeType::File));
    assert_eq!(t(S_IFDIR | 0o755), Some(NodeType::Dir));
    assert_eq!(t(S_IFLNK), Some(NodeType::Symlink));
    assert_eq!(t(S_IFCHR), Some(NodeType::CharDev));
    assert_eq!(t(S_IFBLK), Some(NodeType::Dev));
    assert_eq!(t(S_IFIFO), Some(NodeType::Fifo));
    assert_eq!(t(S_IFSOCK), Some(NodeType::Socket));
    assert_eq!(
        NodeType::from_go_mode(go_mode::IRREGULAR),
        Some(NodeType::Irregular)
    );
    assert_eq!(
        NodeType::from_go_mode(go_mode::DIR | go_mode::SYMLINK),
        None
    );
    for s in [
        "file",
        "dir",
        "symlink",
        "dev",
        "chardev",
        "fifo",
        "socket",
        "irregular",
        "x",
    ] {
        assert_eq!(NodeType::parse(s).as_str(), s);
    }
}

#[test]
fn encodes_like_restic() {
    // The `empty` node of golden tree d9308ae7 (restic 0.14, TZ=Europe/Berlin).
    let mut n = Node::new(*b"empty", NodeType::File);
    n.mode = 384;
    n.mtime = GoTime::parse("2023-01-01T01:00:00+01:00").unwrap();
    n.atime = n.mtime;
    n.ctime = GoTime::parse("2026-11-24T23:27:56.399480515+01:00").unwrap();
    n.user = "root".into();
    n.group = "root".into();
    n.inode = 10_010_886;
    n.device_id = 65024;
    n.links = 1;
    assert_eq!(
        encode(&n),
        r#"{"name":"empty","type":"file","mode":384,"mtime":"2023-01-01T01:00:00+01:00","atime":"2023-01-01T01:00:00+01:00","ctime":"2026-11-24T23:27:56.399480515+01:00","uid":0,"gid":0,"user":"root","group":"root","inode":10010886,"device_id":65024,"links":1,"content":[]}"#
    );
    // A directory: content null, subtree present, zero times for unset ones.
    let mut d = Node::new(*b"d", NodeType::Dir);
    d.subtree = Some(Id::hash(b""));
    assert_eq!(
        encode(&d),
        format!(
            r#"{{"name":"d","type":"dir","mtime":"0001-01-01T00:00:00Z","atime":"0001-01-01T00:00:00Z","ctime":"0001-01-01T00:00:00Z","uid":0,"gid":0,"content":null,"subtree":"{}"}}"#,
            Id::hash(b"")
        )
    );
}

#[test]
fn link_target_raw_written_and_preferred() {
    let mut n = Node::new(*b"badlink", NodeType::Symlink);
    n.link_target = b"target\xff".to_vec();
    let j = encode(&n);
    assert!(
        j.contains(r#""linktarget":"target\ufffd","linktarget_raw":"dGFyZ2V0/w==","content":null"#),
        "{j}"
    );
    assert_eq!(decode(&j).unwrap(), n);
    // Valid UTF-8 target: no raw field.
    n.link_target = "a<b>é".as_bytes().to_vec();
    let j = encode(&n);
    assert!(
        j.contains(r#""linktarget":"a\u003cb\u003eé","content""#),
        "{j}"
    );
    // Raw wins over linktarget on read.
    let n = decode(r#"{"name":"l","type":"symlink","linktarget":"x","linktarget_raw":"eQ=="}"#)
        .unwrap();
    assert_eq!(n.link_target, b"y");
}

#[test]
fn xattr_null_and_empty_round_trip() {
    let j = r#"{"name":"f","type":"file","mtime":"0001-01-01T00:00:00Z","atime":"0001-01-01T00:00:00Z","ctime":"0001-01-01T00:00:00Z","uid":0,"gid":0,"extended_attributes":[{"name":"user.a","value":null},{"name":"user.b","value":""},{"name":"user.c","value":"AP8B"}],"content":[]}"#;
    let n = decode(j).unwrap();
    assert_eq!(n.extended_attributes[0].value, b"");
    assert!(n.extended_attributes[0].value_null);
    assert!(!n.extended_attributes[1].value_null);
    assert_eq!(n.extended_attributes[2].value, b"\x00\xff\x01");
    assert_eq!(encode(&n), j);
    assert_eq!(
        ExtendedAttribute::new("user.x", *b""),
        ExtendedAttribute {
            name: "user.x".into(),
            value: vec![],
            value_null: false
        }
    );
}

#[test]
fn generic_attributes_round_trip() {
    // Keys come back sorted (Go sorts map keys); values keep their inner order.
    let src = r#"{"name":"w","type":"file","generic_attributes":{"windows.file_attributes":32,"windows.creation_time":{"LowDateTime":3,"HighDateTime":4}},"content":[]}"#;
    let n = decode(src).unwrap();
    let j = encode(&n);
    assert!(
        j.contains(r#""generic_attributes":{"windows.creation_time":{"LowDateTime":3,"HighDateTime":4},"windows.file_attributes":32},"content":[]"#),
        "{j}"
    );
    assert_eq!(decode(&j).unwrap(), n);
}

#[test]
fn permissive_reading() {
    let n = decode(r#"{"name":"x"}"#).unwrap();
    assert_eq!(n.node_type, NodeType::Other(String::new()));
    assert!(n.mtime.is_go_zero());
    assert_eq!(n.content, None);
    let n = decode(
        r#"{"name":"x","type":"whiteout","mode":null,"uid":null,"size":null,"content":null,
            "subtree":null,"extended_attributes":null,"generic_attributes":null,"mtime":null,
            "unknown":{"deep":[1,2,{"a":null}]},"path":"/ignored"}"#,
    )
    .unwrap();
    assert_eq!(n.node_type, NodeType::Other("whiteout".into()));
    assert_eq!((n.mode, n.uid, n.size), (0, 0, 0));
    let n = decode(r#"{"name":"we\\\"ird\\\\name\u003c\u0026\u003e.txt","type":"file"}"#).unwrap();
    assert_eq!(n.name, b"we\"ird\\name<&>.txt");
}

#[test]
fn malformed_nodes_are_errors() {
    for bad in [
        r#"{"name":"bad\\q"}"#,
        r#"{"name":"a\"b"}"#,
        r#"{"name":"trailing\\"}"#,
        r#"{"name":5}"#,
        r#"{"name":"x","mode":-1}"#,
        r#"{"name":"x","mode":4294967296}"#,
        r#"{"name":"x","uid":"0"}"#,
        r#"{"name":"x","mtime":"yesterday"}"#,
        r#"{"name":"x","content":["00"]}"#,
        r#"{"name":"x","content":"abc"}"#,
        r#"{"name":"x","subtree":12}"#,
        r#"{"name":"x","linktarget_raw":"!!"}"#,
        r#"{"name":"x","extended_attributes":[{"name":"a","value":"%%"}]}"#,
        r#"{"name":"x","extended_attributes":{}}"#,
        r#"["x"]"#,
        r#"{"name":"x""#,
    ] {
        assert!(decode(bad).is_err(), "{bad}");
    }
    let e = decode(r#"{"name":"oops\\z"}"#).unwrap_err().to_string();
    assert!(e.contains("oops"), "{e}");
}

#[test]
fn go_mode_strings_are_gos() {
    use crate::node::{go_mode, go_mode_string};
    assert_eq!(go_mode_string(0o644), "-rw-r--r--");
    assert_eq!(go_mode_string(go_mode::DIR | 0o755), "drwxr-xr-x");
    assert_eq!(go_mode_string(go_mode::SYMLINK | 0o777), "Lrwxrwxrwx");
    assert_eq!(
        go_mode_string(go_mode::DEVICE | go_mode::CHAR_DEVICE | 0o666),
        "Dcrw-rw-rw-"
    );
    assert_eq!(go_mode_string(go_mode::SETUID | 0o755), "urwxr-xr-x");
}

#[test]
fn fields_can_be_left_out() {
    let mut n = Node::new("f", NodeType::File);
    n.size = 3;
    let mut out = b"{\"path\":\"/f\"".to_vec();
    n.write_json_fields(&mut out, false, &["name", "content", "mode"]);
    out.push(b'}');
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with(r#"{"path":"/f","type":"file","mtime":"#),
        "{text}"
    );
    assert!(text.ends_with(r#""uid":0,"gid":0,"size":3}"#), "{text}");
    assert_eq!(encode(&n), {
        let mut whole = b"{".to_vec();
        n.write_json_fields(&mut whole, true, &[]);
        whole.push(b'}');
        String::from_utf8(whole).unwrap()
    });
}

//! Golden vectors (spec §15): restic/chunker's own test vectors and one produced by
//! restic 0.14 itself. Each input goes through every way of driving the Rabin cutter.

#[path = "golden/gorand.rs"]
mod gorand;

use sha2::{Digest, Sha256};
use stash_chunker::{ChunkReader, ChunkerKind, Cutter, Polynomial, RabinCutter};

/// restic/chunker's test polynomial.
const TEST_POL: Polynomial = Polynomial(0x3DA3358B4DC173);

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Chunk lengths from the reader, the whole-buffer cutter and the streaming cutter
/// (fed in odd-sized slices), after checking that all three agree.
fn rabin_lengths(pol: Polynomial, data: &[u8]) -> Vec<usize> {
    let from_reader: Vec<usize> = ChunkReader::new(&ChunkerKind::Rabin(pol), data)
        .map(|c| c.unwrap().len())
        .collect();

    let mut cutter = RabinCutter::new(pol).unwrap();
    let mut whole = Vec::new();
    let mut rest = data;
    while let Some(n) = cutter.find_cut(rest, true) {
        whole.push(n);
        rest = &rest[n..];
    }
    assert_eq!(whole, from_reader, "find_cut on the whole input");

    let mut cutter = RabinCutter::new(pol).unwrap();
    let mut streamed = Vec::new();
    let mut current = 0;
    for piece in data.chunks(100_003) {
        let mut piece = piece;
        while let Some(n) = cutter.next_boundary(piece) {
            streamed.push(current + n);
            current = 0;
            piece = &piece[n..];
        }
        current += piece.len();
    }
    streamed.extend(cutter.finish());
    assert_eq!(streamed, from_reader, "next_boundary");
    from_reader
}

/// (length, sha256) of each chunk.
fn chunks(pol: Polynomial, data: &[u8]) -> Vec<(usize, String)> {
    let mut off = 0;
    rabin_lengths(pol, data)
        .into_iter()
        .map(|n| {
            let c = &data[off..off + n];
            off += n;
            (n, sha(c))
        })
        .collect()
}

fn expect(list: &[(usize, &str)]) -> Vec<(usize, String)> {
    list.iter().map(|&(n, h)| (n, h.to_owned())).collect()
}

#[test]
fn all_zero_input_cuts_at_the_minimum() {
    // §15.1 ("chunks2").
    let zero = "07854d2fef297a06ba81685e660c332de36d5d18d546927d30daad6d7fda1541";
    let data = vec![0u8; 4 * 524_288];
    assert_eq!(chunks(TEST_POL, &data), expect(&[(524_288, zero); 4]));
}

#[test]
fn go_math_rand_matches_restic_chunker_test() {
    // §15.2 ("chunks1"): 32 MiB from Go's math/rand seeded with 23.
    let data = gorand::GoRand::new(23).bytes(32 * 1024 * 1024);
    assert_eq!(hex::encode(&data[..16]), "cf8ee5cf5154738c1a5ed738699bb40b");
    let want = expect(&[
        (
            2163460,
            "4b94cb2cf293855ea43bf766731c74969b91aa6bf3c078719aabdd19860d590d",
        ),
        (
            643703,
            "5727a63c0964f365ab8ed2ccf604912f2ea7be29759a2b53ede4d6841e397407",
        ),
        (
            1528956,
            "a73759636a1e7a2758767791c69e81b69fb49236c6929e5d1b654e06e37674ba",
        ),
        (
            1955808,
            "c955fb059409b25f07e5ae09defbbc2aadf117c97a3724e06ad4abd2787e6824",
        ),
        (
            2222372,
            "6ba5e9f7e1b310722be3627716cf469be941f7f3e39a4c3bcefea492ec31ee56",
        ),
        (
            2538687,
            "8687937412f654b5cfe4a82b08f28393a0c040f77c6f95e26742c2fc4254bfde",
        ),
        (
            609606,
            "5da820742ff5feb3369112938d3095785487456f65a8efc4b96dac4be7ebb259",
        ),
        (
            1205738,
            "cc70d8fad5472beb031b1aca356bcab86c7368f40faa24fe5f8922c6c268c299",
        ),
        (
            959742,
            "4065bdd778f95676c92b38ac265d361f81bff17d76e5d9452cf985a2ea5a4e39",
        ),
        (
            4036109,
            "b9cf166e75200eb4993fc9b6e22300a6790c75e6b0fc8f3f29b68a752d42f275",
        ),
        (
            1525894,
            "2f238180e4ca1f7520a05f3d6059233926341090f9236ce677690c1823eccab3",
        ),
        (
            1352720,
            "afd12f13286a3901430de816e62b85cc62468c059295ce5888b76b3af9028d84",
        ),
        (
            811884,
            "42d0cdb1ee7c48e552705d18e061abb70ae7957027db8ae8db37ec756472a70a",
        ),
        (
            1282314,
            "819721c2457426eb4f4c7565050c44c32076a56fa9b4515a1c7796441730eb58",
        ),
        (
            1318021,
            "842eb53543db55bacac5e25cb91e43cc2e310fe5f9acc1aee86bdf5e91389374",
        ),
        (
            948640,
            "b8e36bf7019bb96ac3fb7867659d2167d9d3b3148c09fe0de45850b8fe577185",
        ),
        (
            645464,
            "5584bd27982191c3329f01ed846bfd266e96548dfa87018f745c33cfc240211d",
        ),
        (
            533758,
            "4da778a25b72a9a0d53529eccfe2e5865a789116cb1800f470d8df685a8ab05d",
        ),
        (
            1128303,
            "08c6b0b38095b348d80300f0be4c5184d2744a17147c2cba5cc4315abf4c048f",
        ),
        (
            800374,
            "820284d2c8fd243429674c996d8eb8d3450cbc32421f43113e980f516282c7bf",
        ),
        (
            2453512,
            "5fa870ed107c67704258e5e50abe67509fb73562caf77caa843b5f243425d853",
        ),
        (
            2651975,
            "181347d2bbec32bef77ad5e9001e6af80f6abcf3576549384d334ee00c1988d8",
        ),
        (
            237392,
            "fcd567f5d866357a8e299fd5b2359bb2c8157c30395229c4e9b0a353944a7978",
        ),
    ]);
    assert_eq!(chunks(TEST_POL, &data), want);
}

#[test]
fn restic_produced_vector() {
    // §15.3: what restic 0.14 stored for this input in a repository with this polynomial.
    let mut data = Vec::with_capacity(8 * 1024 * 1024);
    for i in 0u64..262_144 {
        data.extend_from_slice(&Sha256::digest(i.to_le_bytes()));
    }
    assert_eq!(
        sha(&data),
        "dd4dd87ac92dd0462503941469c4f06a70c0e4a1a0a6545d4c2c4e98ea2821e1"
    );
    let pol: Polynomial = "2c9d33f130d1bb".parse().unwrap();
    let want = expect(&[
        (
            887681,
            "9683025565a7ec9488e481f5bacfefbf020eec6c7304dc236c7087a37be2407d",
        ),
        (
            1250089,
            "f18a877fdd7ad3d70922499abd722c7624c57e0fa0a1c52c2b962dd385ee9bea",
        ),
        (
            2129612,
            "abf2190dd306e03ac73d696b3c6004cbb16039289eb504e237e8cd552a0ed0a8",
        ),
        (
            2799579,
            "5023917dd68019df540de429030124ada5b5ebef55ec71fed3fb2cc1bb79245c",
        ),
        (
            597939,
            "a7319f14f9485b0fef3d9b62700cec0fc8b3160489cdc7658e21b3f3e4ab5e63",
        ),
        (
            723708,
            "37ccdfdbc74ede91c498004ded1acf93e6282c7fcab0c84cae985cef070160ee",
        ),
    ]);
    assert_eq!(chunks(pol, &data), want);
}

#[test]
fn go_rand_other_seeds_are_sane() {
    // Seed 0 is replaced by Go's fixed default; seeds equal mod 2^31-1 coincide.
    let a = gorand::GoRand::new(0).bytes(64);
    let b = gorand::GoRand::new(89_482_311).bytes(64);
    assert_eq!(a, b);
    let c = gorand::GoRand::new(23 + (1 << 31) - 1).bytes(64);
    assert_eq!(c, gorand::GoRand::new(23).bytes(64));
}

//! Polynomial arithmetic, irreducibility (spec §15.4) and restic's random choice.

use proptest::prelude::*;
use rand::SeedableRng;
use stash_chunker::Polynomial;

#[test]
fn restic_irreducibility_examples() {
    for p in [0x3DA3358B4DC173, 0x2482734cacca49, 0x2c9d33f130d1bb] {
        assert!(Polynomial(p).is_irreducible(), "{p:x}");
    }
    for p in [
        0x38f1e565e288df,
        0x30a8295b9d5c91,
        0x255f4350b962cb,
        0x267f776110a235,
    ] {
        assert!(!Polynomial(p).is_irreducible(), "{p:x}");
    }
}

#[test]
fn counts_of_irreducibles_by_degree() {
    // Number of irreducible polynomials of degree n over GF(2) (OEIS A001037).
    let known = [2, 1, 2, 3, 6, 9, 18, 30, 56, 99, 186, 335];
    for (n, &count) in (1u32..).zip(&known) {
        let found = ((1u64 << n)..(1u64 << (n + 1)))
            .filter(|&p| Polynomial(p).is_irreducible())
            .count();
        assert_eq!(found, count, "degree {n}");
    }
    assert!(!Polynomial(0).is_irreducible());
}

#[test]
fn random_is_restic_shaped() {
    for seed in 0..20 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let p = Polynomial::random(&mut rng).unwrap();
        assert_eq!(p.deg(), 53);
        assert_eq!(p.0 & 1, 1);
        assert!(p.is_irreducible());
    }
    let a = Polynomial::random(&mut rand::rngs::StdRng::seed_from_u64(7)).unwrap();
    let b = Polynomial::random(&mut rand::rngs::StdRng::seed_from_u64(7)).unwrap();
    assert_eq!(a, b);
}

#[test]
fn config_form() {
    assert_eq!(Polynomial(0x3DA3358B4DC173).to_string(), "3da3358b4dc173");
    assert_eq!(
        "2c9d33f130d1bb".parse::<Polynomial>(),
        Ok(Polynomial(0x2c9d33f130d1bb))
    );
    assert_eq!(format!("{:#x}", Polynomial(0x11b)), "0x11b");
}

proptest! {
    #[test]
    fn hex_round_trip(v: u64) {
        let p = Polynomial(v);
        prop_assert_eq!(p.to_string().parse::<Polynomial>(), Ok(p));
        prop_assert_eq!(p.to_string().to_uppercase().parse::<Polynomial>(), Ok(p));
    }

    #[test]
    fn arithmetic_laws(a: u64, b: u64, c in 1u64..) {
        let (a, b, m) = (Polynomial(a), Polynomial(b), Polynomial(c));
        let ab = a.mul_mod(b, m).unwrap();
        prop_assert_eq!(ab, b.mul_mod(a, m).unwrap());
        prop_assert!(ab.deg() < m.deg());
        // Distributive: a*(b+1) = a*b + a (mod m).
        let b1 = b.add(Polynomial(1));
        prop_assert_eq!(a.mul_mod(b1, m).unwrap(), ab.add(a.checked_rem(m).unwrap()));
        let g = a.gcd(m);
        prop_assert_eq!(a.checked_rem(g), Some(Polynomial(0)));
        prop_assert_eq!(m.checked_rem(g), Some(Polynomial(0)));
    }
}

//! Polynomials over GF(2) packed into a `u64` (bit `i` is the coefficient of `x^i`).
//!
//! This is only the arithmetic the chunker needs: computing its tables, testing
//! irreducibility (restic refuses nothing, but a new repository should get a good
//! polynomial), and drawing a random one exactly the way `restic init` does. Addition
//! is XOR and multiplication is carry-less, so nothing here can overflow or panic.

use std::fmt;
use std::str::FromStr;

use rand::RngCore;

use crate::error::ChunkerError;

/// A polynomial over GF(2); restic stores the repository's as lower-case hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct Polynomial(pub u64);

/// How many candidates [`Polynomial::random`] draws before giving up (restic's limit).
pub const RANDOM_TRIES: u32 = 1_000_000;

/// The polynomial `x`, where the irreducibility test starts.
const X: Polynomial = Polynomial(2);

impl Polynomial {
    /// The degree, or -1 for the zero polynomial (as restic's `Pol.Deg`).
    pub const fn deg(self) -> i32 {
        63 - self.0.leading_zeros() as i32
    }

    /// `self + other`, which over GF(2) is also `self - other`.
    #[must_use]
    pub const fn add(self, other: Polynomial) -> Polynomial {
        Polynomial(self.0 ^ other.0)
    }

    /// The remainder of `self` divided by `m`; `None` when `m` is zero.
    pub fn checked_rem(self, m: Polynomial) -> Option<Polynomial> {
        if m.0 == 0 {
            return None;
        }
        let dm = m.deg();
        let mut r = self;
        while r.deg() >= dm {
            // Cancel r's leading term; the shift is below 64 because deg(r) <= 63.
            r.0 ^= m.0 << (r.deg() - dm);
        }
        Some(r)
    }

    /// `self * other mod m`, without ever forming the (up to 126-bit) product;
    /// `None` when `m` is zero.
    pub fn mul_mod(self, other: Polynomial, m: Polynomial) -> Option<Polynomial> {
        let mut a = self.checked_rem(m)?;
        let mut b = other.0;
        let mut acc = Polynomial(0);
        while b != 0 {
            if b & 1 == 1 {
                acc.0 ^= a.0;
            }
            b >>= 1;
            // a < 2^deg(m) <= 2^63, so the shift cannot lose a bit.
            a = Polynomial(a.0 << 1).checked_rem(m)?;
        }
        Some(acc)
    }

    /// Greatest common divisor (Euclid); `gcd(0, 0)` is 0.
    #[must_use]
    pub fn gcd(self, other: Polynomial) -> Polynomial {
        let (mut a, mut b) = (self, other);
        while let Some(r) = a.checked_rem(b) {
            a = b;
            b = r;
        }
        a
    }

    /// Ben-Or's test, as restic's `Pol.Irreducible`: `f` is irreducible when
    /// `gcd(f, x^(2^i) - x mod f) == 1` for every `i` in `1..=deg(f)/2`.
    pub fn is_irreducible(self) -> bool {
        if self.0 == 0 {
            return false;
        }
        let mut q = X; // x^(2^0)
        for _ in 1..=self.deg() / 2 {
            q = match q.mul_mod(q, self) {
                Some(sq) => sq,
                None => return false,
            };
            let Some(t) = q.add(X).checked_rem(self) else {
                return false;
            };
            if self.gcd(t) != Polynomial(1) {
                return false;
            }
        }
        true
    }

    /// A random irreducible polynomial of degree 53, drawn as `restic init` draws it:
    /// 8 random bytes little-endian, keep the low 54 bits, set `x^53` and `1`, retry
    /// until irreducible (about one in 53 candidates is).
    ///
    /// # Errors
    /// [`ChunkerError::NoIrreducible`] after [`RANDOM_TRIES`] reducible candidates,
    /// which only a broken RNG produces.
    pub fn random<R: RngCore + ?Sized>(rng: &mut R) -> Result<Polynomial, ChunkerError> {
        for _ in 0..RANDOM_TRIES {
            let mut b = [0u8; 8];
            rng.fill_bytes(&mut b);
            let mut f = u64::from_le_bytes(b);
            f &= (1 << 54) - 1;
            f |= (1 << 53) | 1;
            let p = Polynomial(f);
            if p.is_irreducible() {
                return Ok(p);
            }
        }
        Err(ChunkerError::NoIrreducible(RANDOM_TRIES))
    }
}

/// Lower-case hex without `0x` or padding: the `chunker_polynomial` form in restic's
/// config (Go's `strconv.AppendUint(.., 16)`).
impl fmt::Display for Polynomial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

impl fmt::LowerHex for Polynomial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

/// Accepts what restic's `strconv.ParseUint(s, 16, 64)` accepts: hex digits of
/// either case, no sign, no `0x`.
impl FromStr for Polynomial {
    type Err = ChunkerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ChunkerError::ParsePolynomial(s.to_owned());
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        u64::from_str_radix(s, 16)
            .map(Polynomial)
            .map_err(|_| bad())
    }
}

impl From<u64> for Polynomial {
    fn from(v: u64) -> Self {
        Polynomial(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degree() {
        assert_eq!(Polynomial(0).deg(), -1);
        assert_eq!(Polynomial(1).deg(), 0);
        assert_eq!(Polynomial(0x3DA3358B4DC173).deg(), 53);
        assert_eq!(Polynomial(u64::MAX).deg(), 63);
    }

    #[test]
    fn arithmetic_small_cases() {
        // (x+1)^2 = x^2+1 over GF(2).
        let p = Polynomial(0b11);
        assert_eq!(p.mul_mod(p, Polynomial(1 << 10)), Some(Polynomial(0b101)));
        // x^2+1 mod (x+1) = 0.
        assert_eq!(Polynomial(0b101).checked_rem(p), Some(Polynomial(0)));
        assert_eq!(Polynomial(0b101).checked_rem(Polynomial(0)), None);
        assert_eq!(Polynomial(0b101).gcd(Polynomial(0b110)), p);
        assert_eq!(Polynomial(0).gcd(Polynomial(0)), Polynomial(0));
        // x^63 * x mod (x^63 + 1) = x: no bit is lost at the top.
        let m = Polynomial((1 << 63) | 1);
        assert_eq!(
            Polynomial(1 << 62).mul_mod(Polynomial(4), m),
            Some(Polynomial(2))
        );
    }

    #[test]
    fn parse_rejects_what_go_rejects() {
        for s in ["", "0x12", "+12", "-1", "12 ", "g", "11112222333344445"] {
            assert!(s.parse::<Polynomial>().is_err(), "{s:?}");
        }
        assert_eq!("2C9D33F130D1BB".parse(), Ok(Polynomial(0x2c9d33f130d1bb)));
        assert_eq!("0001".parse(), Ok(Polynomial(1)));
    }
}

//! restic/chunker's algorithm transcribed literally from the spec (§10.3, §10.4):
//! a 64-byte ring, a reset with `slide(1)` per chunk, `MIN - 64` unhashed bytes.
//! Slow and obvious, with its own table arithmetic, as an oracle for the fast path.

const WINDOW: usize = 64;

fn deg(p: u64) -> i32 {
    63 - p.leading_zeros() as i32
}

fn modp(mut x: u64, p: u64) -> u64 {
    while deg(x) >= deg(p) {
        x ^= p << (deg(x) - deg(p));
    }
    x
}

pub struct Reference {
    out: [u64; 256],
    modt: [u64; 256],
    shift: u32,
    min: usize,
    max: usize,
    mask: u64,
}

impl Reference {
    pub fn new(pol: u64, min: usize, max: usize, avg_bits: u32) -> Self {
        let k = deg(pol);
        let mut out = [0u64; 256];
        let mut modt = [0u64; 256];
        for b in 0..256u64 {
            let mut h = modp(b, pol);
            for _ in 0..WINDOW - 1 {
                h = modp(h << 8, pol);
            }
            out[b as usize] = h;
            modt[b as usize] = modp(b << k, pol) | (b << k);
        }
        Reference {
            out,
            modt,
            shift: (k - 8) as u32,
            min,
            max,
            mask: (1 << avg_bits) - 1,
        }
    }

    /// Chunk lengths for `data`, chunk by chunk as restic does it.
    pub fn lengths(&self, data: &[u8]) -> Vec<usize> {
        let mut lengths = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let mut window = [0u8; WINDOW];
            let mut wpos = 0;
            let mut digest = 0u64;
            let mut slide = |digest: &mut u64, b: u8| {
                let out_b = window[wpos % WINDOW];
                window[wpos % WINDOW] = b;
                wpos += 1;
                *digest ^= self.out[out_b as usize];
                let idx = *digest >> self.shift;
                *digest = (*digest << 8) | u64::from(b);
                *digest ^= self.modt[idx as usize];
            };
            slide(&mut digest, 1);
            let skip = self.min - WINDOW;
            let mut count = 0;
            let mut cut = None;
            for &b in &data[pos..] {
                count += 1;
                if count <= skip {
                    continue;
                }
                slide(&mut digest, b);
                if count >= self.min && ((digest & self.mask) == 0 || count >= self.max) {
                    cut = Some(count);
                    break;
                }
            }
            let n = cut.unwrap_or(data.len() - pos);
            lengths.push(n);
            pos += n;
        }
        lengths
    }
}

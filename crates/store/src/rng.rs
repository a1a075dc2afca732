//! A small random number generator for sampling.

/// A small, fast random number generator (xorshift64*) for sampling keys;
/// not for anything that needs to be unpredictable.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (any value, zero included).
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`, or `None` when `n` is 0.
    pub fn below(&mut self, n: usize) -> Option<usize> {
        (n > 0).then(|| (self.next_u64() % n as u64) as usize)
    }
}

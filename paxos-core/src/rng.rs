//! A small seeded generator (SplitMix64): the core has no global or unseeded randomness.

use std::time::Duration;

/// Deterministic pseudo-random numbers from a seed.
#[derive(Debug, Clone, Hash)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, n)`; zero when `n` is zero.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
        }
    }

    /// Uniform in `[0, 1)`.
    #[cfg_attr(not(feature = "sim"), allow(dead_code))]
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    #[cfg_attr(not(feature = "sim"), allow(dead_code))]
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// A duration uniform in `[0, max)`.
    pub fn duration(&mut self, max: Duration) -> Duration {
        Duration::from_nanos(self.below(crate::time::nanos(max)))
    }
}

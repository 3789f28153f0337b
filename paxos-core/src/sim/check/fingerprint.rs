//! A fast 128-bit hasher for state fingerprints. Not cryptographic: at 10^9 states the
//! chance that two different states share a fingerprint is about 10^-21.

use std::hash::Hasher;

/// Two independent 64-bit lanes, each a multiply-xorshift over 64-bit words.
#[derive(Debug, Clone, Copy)]
pub(super) struct Fp128 {
    a: u64,
    b: u64,
    len: u64,
}

const K1: u64 = 0x9E37_79B9_7F4A_7C15;
const K2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const K3: u64 = 0x1656_67B1_9E37_79F9;

impl Fp128 {
    pub(super) fn new(seed: u64) -> Self {
        Fp128 {
            a: seed ^ 0x243F_6A88_85A3_08D3,
            b: seed.rotate_left(32) ^ 0x1319_8A2E_0370_7344,
            len: 0,
        }
    }

    #[inline]
    fn word(&mut self, x: u64) {
        self.len = self.len.wrapping_add(1);
        self.a = (self.a ^ x).wrapping_mul(K1);
        self.a ^= self.a >> 29;
        self.b = (self.b.rotate_left(23) ^ x.rotate_left(31)).wrapping_mul(K2);
        self.b ^= self.b >> 32;
    }

    /// The 128-bit fingerprint.
    pub(super) fn finish128(&self) -> u128 {
        let mut a = (self.a ^ self.len).wrapping_mul(K3);
        a ^= a >> 31;
        a = a.wrapping_mul(K1);
        a ^= a >> 29;
        let mut b = (self.b ^ self.len.rotate_left(17)).wrapping_mul(K1);
        b ^= b >> 33;
        b = b.wrapping_mul(K2);
        b ^= b >> 31;
        (u128::from(a) << 64) | u128::from(b)
    }
}

impl Hasher for Fp128 {
    fn finish(&self) -> u64 {
        self.finish128() as u64
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.word(u64::from_le_bytes(last) ^ ((rest.len() as u64) << 56));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.word(u64::from(i));
    }

    fn write_u16(&mut self, i: u16) {
        self.word(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.word(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.word(i);
    }

    fn write_u128(&mut self, i: u128) {
        self.word(i as u64);
        self.word((i >> 64) as u64);
    }

    fn write_usize(&mut self, i: usize) {
        self.word(i as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hash;

    fn fp(v: impl Hash) -> u128 {
        let mut h = Fp128::new(1);
        v.hash(&mut h);
        h.finish128()
    }

    #[test]
    fn different_values_differ_and_equal_values_agree() {
        assert_eq!(fp((1u64, "ab")), fp((1u64, "ab")));
        assert_ne!(fp((1u64, "ab")), fp((1u64, "ba")));
        assert_ne!(fp([0u8; 7].as_slice()), fp([0u8; 8].as_slice()));
        assert_ne!(fp(vec![1u64, 2]), fp(vec![2u64, 1]));
        let mut seen = std::collections::HashSet::new();
        for i in 0..100_000u64 {
            assert!(seen.insert(fp(i)), "collision at {i}");
        }
    }
}

//! The set of states seen, with the most steps left each was explored with: an
//! open-addressing table of 16-byte slots, 120 bits of fingerprint and 8 bits of depth
//! each, so a run of half a billion states fits in 16 GiB.

/// Fingerprint → steps left when last explored.
#[derive(Debug)]
pub(super) struct Visited {
    slots: Vec<u128>,
    len: usize,
}

const DEPTH_BITS: u32 = 8;
const DEPTH_MASK: u128 = (1 << DEPTH_BITS) - 1;

impl Visited {
    pub(super) fn new() -> Self {
        Visited {
            slots: vec![0; 1 << 16],
            len: 0,
        }
    }

    /// Distinct states recorded.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The key of a fingerprint: its high 120 bits, never 0 (0 marks an empty slot).
    fn key(fp: u128) -> u128 {
        (fp & !DEPTH_MASK).max(1 << DEPTH_BITS)
    }

    /// Records that `fp` is explored with `left` steps to go. Returns `None` if it is new,
    /// else the steps it had before (the record keeps the larger).
    pub(super) fn record(&mut self, fp: u128, left: u32) -> Option<u32> {
        if (self.len + 1) * 8 > self.slots.len() * 7 {
            self.grow();
        }
        let key = Self::key(fp);
        let left = u128::from(left.min(DEPTH_MASK as u32));
        let mask = self.slots.len() - 1;
        let mut i = (key >> 64) as usize & mask;
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                self.slots[i] = key | left;
                self.len += 1;
                return None;
            }
            if slot & !DEPTH_MASK == key {
                let before = slot & DEPTH_MASK;
                if left > before {
                    self.slots[i] = key | left;
                }
                return Some(before as u32);
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let bigger = vec![0; self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, bigger);
        let mask = self.slots.len() - 1;
        for slot in old.into_iter().filter(|&s| s != 0) {
            let mut i = (slot >> 64) as usize & mask;
            while self.slots[i] != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = slot;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keep_the_most_steps_left_and_survive_growth() {
        let mut v = Visited::new();
        let fp = |i: u128| i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835) | 1;
        for i in 0..200_000u128 {
            assert_eq!(v.record(fp(i), 3), None);
        }
        assert_eq!(v.len(), 200_000);
        assert_eq!(v.record(fp(7), 1), Some(3));
        assert_eq!(v.record(fp(7), 5), Some(3));
        assert_eq!(v.record(fp(7), 2), Some(5));
        assert_eq!(v.record(fp(199_999), 0), Some(3));
        assert_eq!(v.len(), 200_000);
        // Fingerprints that differ only in the low (depth) bits are one state.
        assert_eq!(v.record(fp(3) ^ 0xff, 3), Some(3));
    }
}

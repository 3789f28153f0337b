//! The node's timers: at most one wake-up per lease, in a binary min-heap that knows where
//! each lease sits, so moving a wake-up is one sift and the heap never holds superseded
//! entries. (A plain heap with lazily skipped stale entries grew with every reply at
//! 100,000 leases, and popping the stale entries took a third of a node's CPU.)

use crate::time::Timestamp;

const ABSENT: usize = usize::MAX;

/// Wake-up times keyed by lease index, earliest first; ties go to the lower index.
#[derive(Debug, Default, Clone, Hash)]
pub(crate) struct Timers {
    heap: Vec<(Timestamp, usize)>,
    /// `pos[lease]`: where the lease sits in `heap`, or `ABSENT`.
    pos: Vec<usize>,
}

impl Timers {
    /// The earliest wake-up and its lease.
    pub(crate) fn peek(&self) -> Option<(Timestamp, usize)> {
        self.heap.first().copied()
    }

    /// The wake-up of `lease`, `Timestamp::MAX` if none.
    pub(crate) fn get(&self, lease: usize) -> Timestamp {
        match self.pos.get(lease) {
            Some(&i) if i != ABSENT => self.heap[i].0,
            _ => Timestamp::MAX,
        }
    }

    /// Sets the wake-up of `lease` to `at`; `Timestamp::MAX` removes it.
    pub(crate) fn set(&mut self, lease: usize, at: Timestamp) {
        if lease >= self.pos.len() {
            self.pos.resize(lease + 1, ABSENT);
        }
        let i = self.pos[lease];
        if at == Timestamp::MAX {
            if i != ABSENT {
                self.remove_at(i);
            }
            return;
        }
        if i == ABSENT {
            self.heap.push((at, lease));
            let last = self.heap.len() - 1;
            self.pos[lease] = last;
            self.sift_up(last);
        } else {
            let old = self.heap[i].0;
            self.heap[i].0 = at;
            if at < old {
                self.sift_up(i);
            } else {
                self.sift_down(i);
            }
        }
    }

    fn remove_at(&mut self, i: usize) {
        let last = self.heap.len() - 1;
        self.swap(i, last);
        if let Some((_, lease)) = self.heap.pop() {
            self.pos[lease] = ABSENT;
        }
        if i < self.heap.len() {
            self.sift_down(i);
            self.sift_up(i);
        }
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.pos[self.heap[a].1] = a;
        self.pos[self.heap[b].1] = b;
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.heap[i] >= self.heap[parent] {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut least = i;
            if l < self.heap.len() && self.heap[l] < self.heap[least] {
                least = l;
            }
            if r < self.heap.len() && self.heap[r] < self.heap[least] {
                least = r;
            }
            if least == i {
                break;
            }
            self.swap(i, least);
            i = least;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: u64) -> Timestamp {
        Timestamp::from_nanos(n)
    }

    /// Against a model (a sorted scan) under a pseudo-random mix of inserts, moves earlier
    /// and later, removals and pops.
    #[test]
    fn matches_a_model_under_random_updates() {
        let mut timers = Timers::default();
        let mut model: Vec<Timestamp> = vec![Timestamp::MAX; 64];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for step in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let lease = (x % 64) as usize;
            let at = if x.is_multiple_of(7) {
                Timestamp::MAX
            } else {
                t((x >> 8) % 1000)
            };
            if x.is_multiple_of(11) {
                if let Some((at, lease)) = timers.peek() {
                    timers.set(lease, Timestamp::MAX);
                    model[lease] = Timestamp::MAX;
                    let _ = at;
                }
            } else {
                timers.set(lease, at);
                model[lease] = at;
            }
            let expected = model
                .iter()
                .enumerate()
                .filter(|(_, at)| **at != Timestamp::MAX)
                .map(|(lease, at)| (*at, lease))
                .min();
            assert_eq!(timers.peek(), expected, "step {step}");
            assert_eq!(timers.get(lease), model[lease], "step {step}");
            assert_eq!(
                timers.heap.len(),
                model.iter().filter(|at| **at != Timestamp::MAX).count()
            );
        }
    }
}

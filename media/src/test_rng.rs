//! xorshift64 for the randomised tests: deterministic, dependency-free.

/// The generator.
pub(crate) struct XorShift(pub(crate) u64);

impl XorShift {
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number below `n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub(crate) fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    /// Up to `max - 1` random bytes.
    pub(crate) fn bytes(&mut self, max: usize) -> Vec<u8> {
        (0..self.below(max)).map(|_| self.byte()).collect()
    }

    /// `seed` with up to three random edits: a byte overwritten, a byte from `spice` inserted,
    /// a byte removed, the tail cut, a run duplicated or a bit flipped.
    pub(crate) fn mutate(&mut self, seed: &[u8], spice: &[u8]) -> Vec<u8> {
        let mut v = seed.to_vec();
        for _ in 0..self.below(4) {
            let at = self.below(v.len() + 1);
            match self.below(6) {
                0 if at < v.len() => v[at] = self.byte(),
                1 if !spice.is_empty() => v.insert(at, spice[self.below(spice.len())]),
                2 if at < v.len() => {
                    v.remove(at);
                }
                3 => v.truncate(at),
                4 => {
                    let end = (at + self.below(16)).min(v.len());
                    let chunk = v[at..end].to_vec();
                    v.splice(at..at, chunk);
                }
                _ => {
                    if let Some(b) = v.get_mut(at) {
                        *b ^= 1 << self.below(8);
                    }
                }
            }
        }
        v
    }
}

//! A small deterministic generator (splitmix64) for seeded tests: the same seed gives the same
//! run, so a failure's printed seed replays it.

/// The generator.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: usize, high: usize) -> usize {
        low + self.below(high - low + 1)
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// One of `items`, if there is any.
    pub fn pick<T: Clone>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.below(items.len())].clone())
    }

    /// What a load client pulls, as `(reference, digest)`: one of `untagged` by digest one
    /// time in five (always when there is no tag), else one of `tags` (`(tag, digest)`), by
    /// digest one time in four and by tag otherwise. `None` when there is nothing to pull.
    pub fn pull_reference(
        &mut self,
        tags: &[(String, String)],
        untagged: &[String],
    ) -> Option<(String, String)> {
        if !untagged.is_empty() && (tags.is_empty() || self.chance(20)) {
            let digest = self.pick(untagged)?;
            return Some((digest.clone(), digest));
        }
        let (tag, digest) = self.pick(tags)?;
        let reference = if self.chance(25) { digest.clone() } else { tag };
        Some((reference, digest))
    }
}

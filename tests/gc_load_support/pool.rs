//! The base layers every client shares, and the race they are for.
//!
//! At any moment the clients use only a window of [`WINDOW`] of the [`POOL`] base layers, drawn
//! anew (seeded) every [`STEP`]. So a base layer is pushed and mounted by many clients while it
//! is in the window; when it drops out, the images that use it are overwritten or deleted
//! within seconds, and it is unreferenced for a random while: often longer than the grace
//! window, so that a collection deletes it (or has it claimed) when it is drawn again and
//! uploaded or mounted anew; sometimes shorter, so that it is re-referenced while old, and
//! touched.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Blob, Rng};

/// Base layers in all.
pub const POOL: usize = 64;
/// Base layers in use at a time.
pub const WINDOW: usize = 8;
/// How long a window lasts.
pub const STEP: Duration = Duration::from_secs(2);

/// The shared base layers, and for each the repositories a client was told (201) hold it.
pub struct Pool {
    pub layers: Vec<Blob>,
    holders: Mutex<Vec<Vec<String>>>,
    started: Instant,
    seed: u64,
}

impl Pool {
    /// The layers of a run seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed ^ 0xba5e);
        let layers = (0..POOL)
            .map(|i| Blob::new(seed ^ ((i as u64 + 1) << 40), rng.between(1024, 8192)))
            .collect();
        Pool {
            layers,
            holders: Mutex::new(vec![Vec::new(); POOL]),
            started: Instant::now(),
            seed,
        }
    }

    /// Up to `n` distinct layers of the current window.
    pub fn pick(&self, rng: &mut Rng, n: usize) -> Vec<usize> {
        let mut window = self.window();
        let mut picked = Vec::new();
        while picked.len() < n && !window.is_empty() {
            picked.push(window.swap_remove(rng.below(window.len())));
        }
        picked
    }

    /// The layers of the current window.
    fn window(&self) -> Vec<usize> {
        let epoch = (self.started.elapsed().as_millis() / STEP.as_millis()) as u64;
        let mut rng = Rng::new(self.seed ^ epoch.wrapping_mul(0x9e37_79b9));
        let mut all: Vec<usize> = (0..POOL).collect();
        (0..WINDOW)
            .map(|_| all.swap_remove(rng.below(all.len())))
            .collect()
    }

    /// A repository other than `except` that a client was told holds layer `index`.
    pub fn holder(&self, index: usize, rng: &mut Rng, except: &str) -> Option<String> {
        let holders = self.holders.lock().unwrap();
        let others: Vec<&String> = holders[index].iter().filter(|r| *r != except).collect();
        (!others.is_empty()).then(|| others[rng.below(others.len())].clone())
    }

    /// Records that `repo` was told (201) it holds layer `index`.
    pub fn hold(&self, index: usize, repo: &str) {
        let mut holders = self.holders.lock().unwrap();
        if !holders[index].iter().any(|r| r == repo) {
            holders[index].push(repo.to_owned());
        }
    }
}

//! glibc malloc settings for a long-running server (`layerstore serve` only; the library never
//! touches the allocator, so embedders keep their own settings).
//!
//! Two opposite problems, two settings:
//!
//! - **Re-faulting.** By default glibc hands freed memory back to the kernel as soon as the free
//!   space at the top of an arena passes a small, self-adjusting threshold, which an upload
//!   crosses all the time: hyper's frames are allocated on the runtime's threads and freed on
//!   the writer thread, so every new buffer was faulted in and zeroed again (10% of the
//!   server's CPU in `perf` during a 1 GiB push: 58,000-99,000 page faults per push, now
//!   6-431). Fixed thresholds of 4 MiB keep an upload's working set (at most three batches of
//!   1 MiB of frames) for reuse.
//! - **Holding on.** glibc only ever gives back the top of an arena, so after a burst of
//!   concurrent uploads the free memory scattered inside the arenas stays resident: 140-180 MiB
//!   after the 64-client load test with 256 MiB blobs, against 1 MiB before it. A background
//!   thread calls `malloc_trim(0)` every [`TRIM_EVERY`], which returns every free page of
//!   every arena (to 7 MiB in the same test). At most that much memory per period is faulted
//!   in again by a busy server: nothing next to the bytes it moves.

use std::time::Duration;

/// How often free heap memory is returned to the kernel.
pub const TRIM_EVERY: Duration = Duration::from_secs(5);

/// Applies both settings; call once, before the runtime starts.
pub fn tune_for_serving() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters.
        #[allow(unsafe_code)]
        unsafe {
            libc::mallopt(libc::M_TRIM_THRESHOLD, 4 << 20);
            libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        }
        let _ = std::thread::Builder::new()
            .name("layerstore-trim".into())
            .spawn(|| loop {
                std::thread::sleep(TRIM_EVERY);
                // SAFETY: malloc_trim only releases free memory; it is thread-safe.
                #[allow(unsafe_code)]
                unsafe {
                    libc::malloc_trim(0);
                }
            });
    }
}

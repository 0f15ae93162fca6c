//! A small test-and-test-and-set spin lock, stored inside the arena (the
//! plugins may not call the OS, so no futex; an uncontended lock costs one
//! atomic exchange).

use core::sync::atomic::{AtomicU32, Ordering};

/// A spin lock. Under contention it spins briefly, then yields the CPU.
#[derive(Debug, Default)]
#[repr(transparent)]
pub struct SpinLock(AtomicU32);

/// Unlocks its [`SpinLock`] when dropped (also during unwinding).
#[must_use]
pub struct SpinGuard<'a>(&'a SpinLock);

impl SpinLock {
    /// An unlocked lock.
    pub const fn new() -> Self {
        SpinLock(AtomicU32::new(0))
    }

    /// Takes the lock, waiting as long as needed.
    ///
    /// # Time complexity
    ///
    /// O(1) uncontended; unbounded while another holder keeps it.
    #[inline]
    pub fn lock(&self) -> SpinGuard<'_> {
        if self
            .0
            .compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        SpinGuard(self)
    }

    #[cold]
    fn lock_contended(&self) {
        let mut spins = 0u32;
        loop {
            while self.0.load(Ordering::Relaxed) != 0 {
                if spins < 128 {
                    spins += 1;
                    core::hint::spin_loop();
                } else {
                    // Only reached under contention: the holder is probably
                    // not running, let it (with an OS to ask).
                    #[cfg(feature = "std")]
                    std::thread::yield_now();
                    #[cfg(not(feature = "std"))]
                    core::hint::spin_loop();
                }
            }
            if self
                .0
                .compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }

    /// True while some thread holds the lock.
    pub fn is_locked(&self) -> bool {
        self.0.load(Ordering::Relaxed) != 0
    }
}

impl Drop for SpinGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        (self.0).0.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::sync::Arc;
    use std::vec::Vec;

    #[test]
    fn excludes_other_threads() {
        struct Shared {
            lock: SpinLock,
            value: core::cell::UnsafeCell<u64>,
        }
        // SAFETY: `value` is only touched under `lock`.
        unsafe impl Sync for Shared {}
        let shared = Arc::new(Shared {
            lock: SpinLock::new(),
            value: core::cell::UnsafeCell::new(0),
        });
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let s = Arc::clone(&shared);
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        let _g = s.lock.lock();
                        // SAFETY: we hold the lock.
                        unsafe { *s.value.get() += 1 };
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(!shared.lock.is_locked());
        // SAFETY: all other threads are joined.
        assert_eq!(unsafe { *shared.value.get() }, 40_000);
    }
}

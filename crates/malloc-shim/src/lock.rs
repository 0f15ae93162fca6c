//! A futex mutex that knows its owner, so that a thread trying to take a lock
//! it already holds gets [`Reentrant`] instead of deadlocking.
//!
//! Why the owner: the allocator can be re-entered on the same thread while it
//! holds an arena's lock — by the panic machinery (a core that panicked
//! boxes its payload with `malloc`), by a signal handler that allocates, or
//! by another library's `pthread_atfork` prepare handler running after ours.
//! The shim then serves that call without the locked arena (see
//! `Shim::alloc`).
//!
//! Cost: uncontended, `lock` is one compare-and-swap and `unlock` two plain
//! stores and a load — no second atomic read-modify-write (on the machine
//! measured, the two atomic instructions of a classic futex mutex were three
//! quarters of the shim's own time per `malloc`/`free`). Under contention a
//! waiter spins briefly, then registers in `sleepers` and sleeps on the
//! futex; `unlock` wakes one sleeper when it sees one registered. Without a
//! full fence between the unlocking store and the load of `sleepers`, an
//! unlock can miss a waiter that registered at that very moment: so waiters
//! sleep at most [`SLEEP`] and look again. A missed wake-up costs that much
//! latency, never a deadlock.

use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use core::time::Duration;

use crate::sys;

/// The longest a waiter sleeps before it looks at the lock again.
pub const SLEEP: Duration = Duration::from_micros(500);

/// A lock a thread tried to take while already holding it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reentrant;

/// A mutual-exclusion lock usable from `malloc` (no allocation, no TLS).
#[derive(Debug, Default)]
pub struct Mutex {
    /// 0 free, 1 held.
    state: AtomicU32,
    /// Threads asleep (or about to sleep) on `state`.
    sleepers: AtomicU32,
    /// `sys::thread_id()` of the holder, 0 when free. Written by the holder
    /// only; read by a thread whose compare-and-swap failed, which can only
    /// find its own id there if it is the holder.
    owner: AtomicUsize,
}

/// Holds a [`Mutex`]; unlocks it when dropped.
#[must_use]
pub struct Guard<'a>(&'a Mutex);

impl Mutex {
    /// A free lock.
    pub const fn new() -> Self {
        Mutex {
            state: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
            owner: AtomicUsize::new(0),
        }
    }

    /// Takes the lock, waiting as long as needed, or answers [`Reentrant`]
    /// at once if the calling thread holds it already.
    ///
    /// # Time complexity
    ///
    /// O(1) uncontended; unbounded while another thread holds it.
    #[inline]
    pub fn lock(&self) -> Result<Guard<'_>, Reentrant> {
        let me = sys::thread_id();
        if self
            .state
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            if self.owner.load(Ordering::Relaxed) == me {
                return Err(Reentrant);
            }
            self.lock_contended();
        }
        self.owner.store(me, Ordering::Relaxed);
        Ok(Guard(self))
    }

    /// Takes the lock if it is free, without waiting.
    pub fn try_lock(&self) -> Option<Guard<'_>> {
        self.state
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        self.owner.store(sys::thread_id(), Ordering::Relaxed);
        Some(Guard(self))
    }

    #[cold]
    fn lock_contended(&self) {
        loop {
            for _ in 0..64 {
                core::hint::spin_loop();
                if self.state.load(Ordering::Relaxed) == 0
                    && self
                        .state
                        .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                {
                    return;
                }
            }
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            // Returns at once if the lock is no longer held.
            sys::futex_wait_for(&self.state, 1, SLEEP);
            self.sleepers.fetch_sub(1, Ordering::Relaxed);
            if self
                .state
                .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }

    /// Takes the lock and keeps it without a guard (the `pthread_atfork`
    /// prepare handler, released by [`Mutex::force_unlock`]). False if the
    /// calling thread held it already (then it is left as it was).
    pub fn lock_forever(&self) -> bool {
        match self.lock() {
            Ok(g) => {
                core::mem::forget(g);
                true
            }
            Err(Reentrant) => false,
        }
    }

    /// Releases a lock taken with [`Mutex::lock_forever`], waking a waiter.
    #[inline]
    pub fn force_unlock(&self) {
        self.owner.store(0, Ordering::Relaxed);
        self.state.store(0, Ordering::Release);
        if self.sleepers.load(Ordering::Relaxed) != 0 {
            sys::futex_wake_one(&self.state);
        }
    }

    /// Resets the lock to free in a child after `fork`: the child has one
    /// thread, so nobody waits, and the parent's waiters do not exist there.
    pub fn reset_in_child(&self) {
        self.owner.store(0, Ordering::Relaxed);
        self.sleepers.store(0, Ordering::Relaxed);
        self.state.store(0, Ordering::Release);
    }

    /// True while some thread holds the lock.
    pub fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) != 0
    }
}

impl Drop for Guard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.force_unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn reentry_is_detected_not_deadlocked() {
        let m = Mutex::new();
        let g = m.lock().unwrap();
        assert_eq!(m.lock().err(), Some(Reentrant));
        assert!(m.try_lock().is_none());
        drop(g);
        assert!(!m.is_locked());
        assert!(m.lock().is_ok());
    }

    #[test]
    fn excludes_other_threads_and_sleeps_under_contention() {
        struct Shared {
            lock: Mutex,
            value: core::cell::UnsafeCell<u64>,
        }
        // SAFETY: `value` is only touched under `lock`.
        unsafe impl Sync for Shared {}
        let s = Arc::new(Shared {
            lock: Mutex::new(),
            value: core::cell::UnsafeCell::new(0),
        });
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    for i in 0..20_000u64 {
                        let _g = s.lock.lock().unwrap();
                        // SAFETY: under the lock.
                        unsafe { *s.value.get() += 1 };
                        if i % 1000 == 0 {
                            // hold it long enough for others to sleep
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(!s.lock.is_locked());
        // SAFETY: every other thread is joined.
        assert_eq!(unsafe { *s.value.get() }, 80_000);
    }

    #[test]
    fn a_sleeping_waiter_gets_the_lock_soon_after_the_unlock() {
        let m = Arc::new(Mutex::new());
        let g = m.lock().unwrap();
        let waiter = {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                let _g = m.lock().unwrap();
                std::time::Instant::now()
            })
        };
        // Long enough for the waiter to stop spinning and sleep.
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(m.sleepers.load(Ordering::Relaxed) <= 1);
        let released = std::time::Instant::now();
        drop(g);
        let acquired = waiter.join().unwrap();
        assert!(acquired.duration_since(released) < std::time::Duration::from_millis(100));
        assert!(!m.is_locked());
    }

    #[test]
    fn forever_locks_are_released_by_force() {
        let m = Mutex::new();
        assert!(m.lock_forever());
        assert!(!m.lock_forever(), "the holder re-entering is refused");
        m.force_unlock();
        assert!(m.try_lock().is_some());
        let m = Mutex::new();
        assert!(m.lock_forever());
        m.reset_in_child();
        assert!(!m.is_locked());
    }
}

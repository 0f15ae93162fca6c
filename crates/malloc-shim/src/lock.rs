//! A futex mutex whose lock word *is* its owner, so that a thread trying to
//! take a lock it already holds gets [`Reentrant`] instead of deadlocking —
//! even when it was interrupted at any instruction of `lock` itself.
//!
//! Why the owner: the allocator can be re-entered on the same thread while it
//! holds a lock — by the panic machinery (a core that panicked boxes its
//! payload with `malloc`), by a signal handler that allocates, or by another
//! library's `pthread_atfork` prepare handler running after ours. The shim
//! then serves that call without the locked structure.
//!
//! Why in one word: an earlier version took the lock with a compare-and-swap
//! of a flag and then stored the owner. A signal landing between the two
//! found the lock taken by nobody it recognised, waited for it, and waited for
//! ever (the holder was the interrupted code below it on the same stack). Here
//! the one compare-and-swap `0 → me` both takes the lock and names the owner;
//! a thread that finds its own id in the word holds the lock, whatever
//! instant it was interrupted at.
//!
//! Cost: uncontended, `lock` is one compare-and-swap and `unlock` a store and
//! a load. Under contention a waiter spins briefly, then registers in
//! `sleepers` and sleeps on the futex word `wakes`; `unlock` bumps `wakes` and
//! wakes one sleeper when it sees one registered. Without a full fence
//! between the unlocking store and the load of `sleepers`, an unlock can miss
//! a waiter that registered at that very moment: so waiters sleep at most
//! [`SLEEP`] and look again. A missed wake-up costs that much latency, never
//! a deadlock.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
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
    /// `sys::thread_id()` of the holder (never 0), or 0 when free.
    owner: AtomicUsize,
    /// Threads asleep (or about to sleep) on `wakes`.
    sleepers: AtomicU32,
    /// Bumped by every unlock that saw a sleeper: the futex word.
    wakes: AtomicU32,
    /// Taken by [`Mutex::fork_prepare`].
    fork_held: AtomicBool,
}

/// Holds a [`Mutex`]; unlocks it when dropped.
#[must_use]
pub struct Guard<'a>(&'a Mutex);

impl Mutex {
    /// A free lock.
    pub const fn new() -> Self {
        Mutex {
            owner: AtomicUsize::new(0),
            sleepers: AtomicU32::new(0),
            wakes: AtomicU32::new(0),
            fork_held: AtomicBool::new(false),
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
        match self
            .owner
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => Ok(Guard(self)),
            Err(holder) if holder == me => Err(Reentrant),
            Err(_) => {
                self.lock_contended(me);
                Ok(Guard(self))
            }
        }
    }

    /// Takes the lock if it is free, without waiting.
    #[inline]
    pub fn try_lock(&self) -> Option<Guard<'_>> {
        self.owner
            .compare_exchange(0, sys::thread_id(), Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        Some(Guard(self))
    }

    #[cold]
    #[inline] // compiled beside the callers: see "The library's own memory" in lib.rs
    fn lock_contended(&self, me: usize) {
        loop {
            for _ in 0..64 {
                core::hint::spin_loop();
                if self.owner.load(Ordering::Relaxed) == 0
                    && self
                        .owner
                        .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                {
                    return;
                }
            }
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            let seen = self.wakes.load(Ordering::SeqCst);
            if self.owner.load(Ordering::SeqCst) != 0 {
                // Returns at once if an unlock bumped `wakes` meanwhile.
                sys::futex_wait_for(&self.wakes, seen, SLEEP);
            }
            self.sleepers.fetch_sub(1, Ordering::Relaxed);
            if self
                .owner
                .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
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
        self.owner.store(0, Ordering::Release);
        if self.sleepers.load(Ordering::Relaxed) != 0 {
            self.wakes.fetch_add(1, Ordering::SeqCst);
            sys::futex_wake_one(&self.wakes);
        }
    }

    /// Resets the lock to free in a child after `fork`: the child has one
    /// thread, so nobody waits, and the parent's waiters do not exist there.
    pub fn reset_in_child(&self) {
        self.sleepers.store(0, Ordering::Relaxed);
        self.owner.store(0, Ordering::Release);
    }

    /// `pthread_atfork` prepare: takes the lock and keeps it (unless the
    /// calling thread holds it already: a lock shared by two shims, taken
    /// by the first one's handler), so that nothing it guards is mid-update
    /// when the process is copied.
    pub fn fork_prepare(&self) {
        if self.lock_forever() {
            self.fork_held.store(true, Ordering::Relaxed);
        }
    }

    /// `pthread_atfork` parent: releases what [`Mutex::fork_prepare`] took.
    pub fn fork_parent(&self) {
        if self.fork_held.swap(false, Ordering::Relaxed) {
            self.force_unlock();
        }
    }

    /// `pthread_atfork` child: resets what [`Mutex::fork_prepare`] took
    /// (the child has one thread).
    pub fn fork_child(&self) {
        if self.fork_held.swap(false, Ordering::Relaxed) {
            self.reset_in_child();
        }
    }

    /// True while some thread holds the lock.
    pub fn is_locked(&self) -> bool {
        self.owner.load(Ordering::Relaxed) != 0
    }

    /// True if the calling thread holds the lock.
    pub fn held_by_me(&self) -> bool {
        self.owner.load(Ordering::Relaxed) == sys::thread_id()
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
        assert!(m.held_by_me());
        assert_eq!(m.lock().err(), Some(Reentrant));
        assert!(m.try_lock().is_none());
        drop(g);
        assert!(!m.is_locked());
        assert!(!m.held_by_me());
        assert!(m.lock().is_ok());
    }

    #[test]
    fn the_owner_is_known_from_the_instant_the_lock_is_taken() {
        // The one compare-and-swap names the owner: there is no state in
        // which the lock is held and the holder unknown.
        let m = Mutex::new();
        let _g = m.lock().unwrap();
        assert_eq!(m.owner.load(Ordering::Relaxed), sys::thread_id());
        let other = std::thread::scope(|s| s.spawn(|| m.try_lock().is_none()).join().unwrap());
        assert!(other, "another thread cannot take it");
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
        m.fork_prepare();
        assert!(m.held_by_me());
        m.fork_parent();
        assert!(!m.is_locked());
        m.fork_prepare();
        m.fork_prepare(); // a second handler: already ours, left as it is
        assert!(m.held_by_me());
        m.fork_child();
        assert!(!m.is_locked());
        m.fork_child(); // nothing taken: nothing reset
        assert!(!m.is_locked());
    }
}

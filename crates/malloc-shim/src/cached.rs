//! The fast path: `malloc` and `free` through the calling thread's cache
//! ([`crate::tcache`]), with no lock and no atomic read-modify-write.
//!
//! - **malloc(n ≤ 32 KiB)**: the thread's cache pops the newest block of
//!   `n`'s class (one load of the thread-local word, a compare of the
//!   cache's owner, a load and a store of the count, the block from an array
//!   in the cache) and marks its side byte live. An empty class is
//!   *refilled*: a batch of blocks (4 at first, doubling with use up to half
//!   the class's capacity) from one arena under one lock acquisition, in one
//!   call into the core's code ([`crate::arena::ArenaGuard::alloc_into`]).
//! - **free(p)**: the registry and the arena's side byte give `p`'s class
//!   ([`crate::class`]); the block is pushed on the class's stack and its
//!   side byte marked cached. A full class is *flushed*: its older half goes
//!   back, each block to its own arena under that arena's lock (taken once
//!   per run of blocks of the same arena, handed over in one batch,
//!   [`crate::arena::ArenaGuard::take_back`]): into the arena's depot for its
//!   class, where the next refill finds it ([`crate::arena`]), or, when the
//!   depot is full, to the core, which validates it again.
//! - **Cross-thread frees** (a block of an arena other than the one the
//!   thread refills from) go to the freeing thread's *remote batch*, not to
//!   its class stacks: the thread does not reuse the block (writing the
//!   block and its side byte, on lines the arena's own threads write, made
//!   the two threads' caches bounce: `threads.c` at 2 threads and `larson`).
//!   A full batch (32 blocks) goes back to the blocks' arenas' depots, one
//!   lock per arena, where their makers' refills find them; the owner is
//!   never disturbed in between.
//! - **Double free**: a block in a cache has its side byte marked cached; a
//!   `free` of it is caught before it reaches any cache (counted, or an
//!   abort with glibc's message in abort mode). A bad pointer that is not a
//!   cached-class block start has side byte 0 and goes to the core, which
//!   rejects it.
//! - **Signals**: while a thread is inside its cache (`busy`), a call from
//!   a signal handler on that thread does not touch it: it takes the
//!   locked path, where a lock its own thread holds is recognised
//!   ([`crate::lock`]) and the call served elsewhere or deferred.

use core::cell::Cell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU8, Ordering, compiler_fence};

use plugin_abi::ArenaAllocator;

use crate::arena::{ArenaError, ArenaHeader, block_side};
use crate::class::{self, NCLASSES};
use crate::registry;
use crate::shim::Shim;
use crate::stats::count;
use crate::tcache::{self, ThreadCache};
use crate::tls;

/// The header of the arena holding `p`.
///
/// # Safety
///
/// `p` is a block of one of this shim's arenas.
#[inline(always)]
unsafe fn arena_of<'a, A>(p: *mut u8) -> &'a ArenaHeader<A> {
    // SAFETY: caller's contract: the slot holds an arena header, never
    // unmapped.
    unsafe { &*(registry::slot_base(p as usize) as *const ArenaHeader<A>) }
}

/// Marks the calling thread as inside its cache for the duration of `f`.
#[inline(always)]
fn inside<R>(tc: &ThreadCache, f: impl FnOnce() -> R) -> R {
    tc.busy.set(true);
    compiler_fence(Ordering::SeqCst);
    let r = f();
    compiler_fence(Ordering::SeqCst);
    tc.busy.set(false);
    r
}

impl<A: ArenaAllocator> Shim<A> {
    /// The calling thread's cache, if it serves this shim and is not in
    /// use by an interrupted call below this one.
    #[inline(always)]
    fn my_cache(&self) -> Option<&'static ThreadCache> {
        match tls::cache() {
            Some(tc) if tc.owner.get() == self.id() && !tc.busy.get() => Some(tc),
            Some(_) => None,
            None => self.attach_cache(),
        }
    }

    #[cold]
    fn attach_cache(&self) -> Option<&'static ThreadCache> {
        match tls::get() {
            tls::NONE => {}
            tls::BUSY => {
                tcache::note_reentry();
                return None;
            }
            _ => return None,
        }
        if self.stripes() == 0 {
            self.init();
        }
        if !self.tcache_on.load(Ordering::Relaxed) {
            return None;
        }
        tcache::attach(self.id(), Self::thread_exit)
    }

    /// `malloc(n)` for `n <=` [`class::MAX_CACHED`]: the thread cache's
    /// newest block of `n`'s class. Every other case (no cache yet, a cache
    /// in use by an interrupted call, an empty class) leaves through a call
    /// in tail position, so that the hit itself saves no register: about 40
    /// instructions (the push of [`Shim::free_cached`]: about 60, with the
    /// registry and header checks of `free`).
    #[inline(always)]
    pub(crate) fn malloc_cached(&self, n: usize) -> *mut u8 {
        let c = class::class_of(n);
        let Some(tc) = tls::cache() else {
            return self.malloc_cold(n);
        };
        if tc.owner.get() != self.id() || tc.busy.get() {
            return self.malloc_cold(n);
        }
        let (Some(count), Some(slots)) = (tc.counts.get(c), tc.slots.get(c)) else {
            return self.malloc_cold(n);
        };
        tc.busy.set(true);
        compiler_fence(Ordering::SeqCst);
        let k = count.get();
        let Some(slot) = usize::from(k).checked_sub(1).and_then(|i| slots.get(i)) else {
            // Empty: refilled (the callee leaves the cache).
            return self.refill_cold(tc, c, n);
        };
        count.set(k.wrapping_sub(1));
        let p = slot.get();
        // SAFETY: cached blocks are blocks of this shim's arenas.
        unsafe { block_side(p) }.store(class::live(c), Ordering::Relaxed);
        ThreadCache::bump(&tc.hits, 1);
        compiler_fence(Ordering::SeqCst);
        tc.busy.set(false);
        p
    }

    /// [`Shim::malloc_cached`] when the fast path cannot serve: through
    /// [`Shim::cached_alloc`] (which attaches a cache if the thread has
    /// none), else without the cache.
    #[cold]
    #[inline(never)]
    fn malloc_cold(&self, n: usize) -> *mut u8 {
        if let Some(p) = self.cached_alloc(class::class_of(n)) {
            return p.as_ptr();
        }
        self.alloc_uncached(n, 1)
            .map_or(ptr::null_mut(), |(p, _)| p.as_ptr())
    }

    /// [`Shim::malloc_cached`] of an empty class: refills it and leaves the
    /// cache (which the caller entered), else serves `n` without the cache.
    #[cold]
    #[inline(never)]
    fn refill_cold(&self, tc: &ThreadCache, c: usize, n: usize) -> *mut u8 {
        let p = self.refill(tc, c);
        compiler_fence(Ordering::SeqCst);
        tc.busy.set(false);
        match p {
            Some(p) => p.as_ptr(),
            None => self
                .alloc_uncached(n, 1)
                .map_or(ptr::null_mut(), |(p, _)| p.as_ptr()),
        }
    }

    /// `free` of `p`, a live block of class `c` of arena `h` (its side byte
    /// `side` says so): pushed on the thread cache's stack of its class.
    /// Every other case (no usable cache, a block of another arena, a full
    /// class) leaves through a call in tail position, so that the push
    /// itself saves no register.
    #[inline(always)]
    pub(crate) fn free_cached(
        &self,
        h: &ArenaHeader<A>,
        side: &AtomicU8,
        p: NonNull<u8>,
        c: usize,
    ) {
        let Some(tc) = tls::cache() else {
            return self.free_live_cold(h, side, p, c);
        };
        if tc.owner.get() != self.id()
            || tc.busy.get()
            || !core::ptr::eq(h, tc.home.get() as *const ArenaHeader<A>)
        {
            return self.free_live_cold(h, side, p, c);
        }
        let (Some(count), Some(slots)) = (tc.counts.get(c), tc.slots.get(c)) else {
            return self.free_live_cold(h, side, p, c);
        };
        tc.busy.set(true);
        compiler_fence(Ordering::SeqCst);
        let n = usize::from(count.get());
        let slot = match slots.get(n) {
            Some(slot) if n < class::capacity(c) => slot,
            // Full: flushed (the callee leaves the cache).
            _ => return self.flush_and_push(tc, side, p, c),
        };
        slot.set(p.as_ptr());
        count.set(n.wrapping_add(1) as u8);
        side.store(class::cached(c), Ordering::Relaxed);
        ThreadCache::bump(&tc.frees, 1);
        compiler_fence(Ordering::SeqCst);
        tc.busy.set(false);
    }

    /// [`Shim::free_cached`] when the fast path cannot serve: through
    /// [`Shim::cached_free`] (which attaches a cache, or sends a block of
    /// another arena to the remote batch), else under the arena's lock.
    #[cold]
    #[inline(never)]
    fn free_live_cold(&self, h: &ArenaHeader<A>, side: &AtomicU8, p: NonNull<u8>, c: usize) {
        if !self.cached_free(side, p, c) {
            self.locked_free(h, p, Some(class::class_size(c)));
        }
    }

    /// [`Shim::free_cached`] of a full class: flushes its older half, pushes
    /// `p` and leaves the cache (which the caller entered).
    #[cold]
    #[inline(never)]
    fn flush_and_push(&self, tc: &ThreadCache, side: &AtomicU8, p: NonNull<u8>, c: usize) {
        self.flush(tc, c, class::capacity(c) / 2);
        let pushed = match (tc.counts.get(c), tc.slots.get(c)) {
            (Some(count), Some(slots)) => {
                let n = usize::from(count.get());
                match slots.get(n) {
                    Some(slot) if n < class::capacity(c) => {
                        slot.set(p.as_ptr());
                        count.set(n.wrapping_add(1) as u8);
                        side.store(class::cached(c), Ordering::Relaxed);
                        ThreadCache::bump(&tc.frees, 1);
                        true
                    }
                    _ => false,
                }
            }
            _ => false,
        };
        compiler_fence(Ordering::SeqCst);
        tc.busy.set(false);
        if !pushed {
            // SAFETY: `p` is a block of this shim's arenas (its side byte).
            let h = unsafe { arena_of::<A>(p.as_ptr()) };
            self.locked_free(h, p, Some(class::class_size(c)));
        }
    }

    /// A block of class `c` from the thread's cache (refilled if empty);
    /// `None` if the thread has no cache for this shim or no arena could
    /// refill it.
    #[inline(always)]
    pub(crate) fn cached_alloc(&self, c: usize) -> Option<NonNull<u8>> {
        let tc = self.my_cache()?;
        inside(tc, || {
            let count = tc.counts.get(c)?;
            let n = count.get();
            if n == 0 {
                return self.refill(tc, c);
            }
            let n = n.wrapping_sub(1);
            count.set(n);
            let p = tc.slots.get(c)?.get(usize::from(n))?.get();
            // SAFETY: cached blocks are blocks of this shim's arenas.
            unsafe { block_side(p) }.store(class::live(c), Ordering::Relaxed);
            ThreadCache::bump(&tc.hits, 1);
            NonNull::new(p)
        })
    }

    /// Puts `p` (a live block of class `c`, whose side byte is `side`) in
    /// the thread's cache; false if the thread has no usable cache (the
    /// caller frees it under the lock).
    #[inline(always)]
    pub(crate) fn cached_free(&self, side: &AtomicU8, p: NonNull<u8>, c: usize) -> bool {
        let Some(tc) = self.my_cache() else {
            return false;
        };
        inside(tc, || {
            // SAFETY: `p` is a block of this shim's arenas (caller's side byte).
            let h = unsafe { arena_of::<A>(p.as_ptr()) };
            if !core::ptr::eq(h, tc.home.get() as *const ArenaHeader<A>) {
                return self.remote_free(tc, side, p, c);
            }
            let Some(count) = tc.counts.get(c) else {
                return false;
            };
            let mut n = usize::from(count.get());
            if n >= class::capacity(c) {
                self.flush(tc, c, class::capacity(c) / 2);
                n = usize::from(count.get());
            }
            let Some(slot) = tc.slots.get(c).and_then(|s| s.get(n)) else {
                return false;
            };
            slot.set(p.as_ptr());
            count.set(n.wrapping_add(1) as u8);
            side.store(class::cached(c), Ordering::Relaxed);
            ThreadCache::bump(&tc.frees, 1);
            true
        })
    }

    /// Fills class `c` of the thread's (empty) cache with a batch from an
    /// arena and hands out one block.
    #[cold]
    fn refill(&self, tc: &ThreadCache, c: usize) -> Option<NonNull<u8>> {
        let slots = tc.slots.get(c)?;
        let batch = tc.batch.get(c)?;
        let want = usize::from(batch.get()).clamp(1, class::capacity(c) / 2);
        let got = match self.arena_alloc_into(
            class::class_size(c),
            1,
            class::cached(c),
            &tc.home,
            slots.get(..want)?,
        ) {
            Ok(got) => got,
            Err(e) => {
                if matches!(e, crate::shim::NoArena::Reentrant) {
                    count(&self.counters.reentrant);
                }
                return None;
            }
        };
        let n = got.checked_sub(1)?;
        batch.set(want.saturating_mul(2).min(class::capacity(c) / 2) as u8);
        ThreadCache::bump(&tc.refills, 1);
        tc.counts.get(c)?.set(n as u8);
        let p = slots.get(n)?.get();
        // SAFETY: just carved from one of this shim's arenas.
        unsafe { block_side(p) }.store(class::live(c), Ordering::Relaxed);
        ThreadCache::bump(&tc.hits, 1);
        NonNull::new(p)
    }

    /// Gives the oldest `k` blocks of class `c` back to their arenas, taking
    /// each arena's lock once per run of its blocks.
    #[cold]
    fn flush(&self, tc: &ThreadCache, c: usize, k: usize) {
        let (Some(slots), Some(held_n)) = (tc.slots.get(c), tc.counts.get(c)) else {
            return;
        };
        let n = usize::from(held_n.get());
        let k = k.min(n);
        self.give_back(tc, slots.get(..k).unwrap_or(&[]), |_| c);
        for (dst, src) in slots.iter().zip(slots.get(k..n).unwrap_or(&[])) {
            dst.set(src.get());
        }
        held_n.set(n.wrapping_sub(k) as u8);
        ThreadCache::bump(&tc.flushes, 1);
    }

    /// Puts `p` (a live block of class `c` of an arena other than the
    /// cache's home) in the cache's remote batch, which goes back to the
    /// blocks' arenas when full: this thread does not reuse it.
    #[inline]
    fn remote_free(&self, tc: &ThreadCache, side: &AtomicU8, p: NonNull<u8>, c: usize) -> bool {
        let mut n = usize::from(tc.remote_n.get());
        if n >= tcache::REMOTE {
            self.flush_remote(tc);
            n = usize::from(tc.remote_n.get());
        }
        let (Some(slot), Some(class)) = (tc.remote.get(n), tc.remote_class.get(n)) else {
            return false;
        };
        slot.set(p.as_ptr());
        class.set(c as u8);
        tc.remote_n.set(n.wrapping_add(1) as u8);
        side.store(class::cached(c), Ordering::Relaxed);
        ThreadCache::bump(&tc.frees, 1);
        true
    }

    /// Sends the cache's remote batch back to the blocks' arenas, one arena
    /// at a time, so that each arena's lock is taken once.
    #[cold]
    fn flush_remote(&self, tc: &ThreadCache) {
        let n = usize::from(tc.remote_n.get());
        let ps = tc.remote.get(..n).unwrap_or(&[]);
        let cs = tc.remote_class.get(..n).unwrap_or(&[]);
        // Group the blocks by arena (in place, keeping each arena's first
        // block where it was): one run, hence one lock, per arena.
        let mut i = 0usize;
        while let Some(first) = ps.get(i) {
            let base = registry::slot_base(first.get() as usize);
            let mut end = i.wrapping_add(1);
            // `end <= j` throughout: the range is fixed at the start.
            for j in i.wrapping_add(1)..n {
                if let (Some(pj), Some(pe), Some(cj), Some(ce)) =
                    (ps.get(j), ps.get(end), cs.get(j), cs.get(end))
                    && registry::slot_base(pj.get() as usize) == base
                {
                    pj.swap(pe);
                    cj.swap(ce);
                    end = end.wrapping_add(1);
                }
            }
            i = end;
        }
        self.give_back(tc, ps, |i| cs.get(i).map_or(0, |c| usize::from(c.get())));
        tc.remote_n.set(0);
        ThreadCache::bump(&tc.flushes, 1);
    }

    /// Gives cached blocks back to their arenas, `blocks[i]` (null: skipped)
    /// of class `class_at(i)`: each run of blocks of one arena in one batch
    /// under that arena's lock ([`ArenaGuard::take_back`]).
    fn give_back(
        &self,
        tc: &ThreadCache,
        blocks: &[Cell<*mut u8>],
        class_at: impl Fn(usize) -> usize + Copy,
    ) {
        let home = tc.home.get() as *const ArenaHeader<A>;
        // The oldest arena of the home's stripe, older than the home, that
        // got blocks back: the next refill starts there (first fit, oldest
        // first, as `arena_alloc_into` walks a stripe), so a program that
        // frees what it built and builds again fills its arenas in the same
        // order and touches the same pages (`lua`).
        let mut oldest: *const ArenaHeader<A> = ptr::null();
        let mut i = 0usize;
        while let Some(first) = blocks.get(i) {
            let f = first.get();
            if f.is_null() {
                i = i.wrapping_add(1);
                continue;
            }
            // The run: `blocks[i..j]`, all of `f`'s arena (or null).
            let base = registry::slot_base(f as usize);
            let mut j = i.wrapping_add(1);
            while let Some(b) = blocks.get(j)
                && (b.get().is_null() || registry::slot_base(b.get() as usize) == base)
            {
                j = j.wrapping_add(1);
            }
            let run = blocks.get(i..j).unwrap_or(&[]);
            let at = i;
            i = j;
            // SAFETY: cached blocks are blocks of this shim's arenas.
            let h = unsafe { arena_of::<A>(f) };
            let hp: *const ArenaHeader<A> = h;
            if !core::ptr::eq(hp, home)
                && Self::older_in_stripe(if oldest.is_null() { home } else { oldest }, hp)
            {
                oldest = hp;
            }
            match h.lock() {
                Ok(mut g) => {
                    // Blocks of the arena this thread refills from go back
                    // to the core (its own refills find them there, and the
                    // core can coalesce them); those of another arena (another
                    // thread made them) wait in that arena's depots for
                    // their maker's refills.
                    let depot = !core::ptr::eq(hp, home);
                    // SAFETY: blocks of `h` that sat in the cache (unused),
                    // each of the class `class_at` gives, each once.
                    let r = unsafe { g.take_back(run, |k| class_at(at.wrapping_add(k)), depot) };
                    drop(g);
                    if let Ok(rejected) = r {
                        for _ in 0..rejected {
                            self.bad_pointer(b"free(): invalid pointer\n");
                        }
                    } // Err: the core panicked: retired, the rest leak with it
                }
                Err(ArenaError::Reentrant) => {
                    // This thread holds that lock (a signal handler's call):
                    // free the blocks when the lock is next taken.
                    for (k, b) in run.iter().enumerate() {
                        let Some(p) = NonNull::new(b.get()) else {
                            continue;
                        };
                        let c = class_at(at.wrapping_add(k));
                        h.side(p.as_ptr() as usize)
                            .store(class::live(c), Ordering::Relaxed);
                        count_reentrant(self);
                        // SAFETY: a live block of `h` (cached, so unused).
                        unsafe { h.defer_free(p) };
                    }
                }
                Err(ArenaError::Poisoned) => {} // they leak with their arena
            }
        }
        if !oldest.is_null() {
            tc.home.set(oldest as usize);
        }
    }

    /// Empties the calling thread's cache (for `malloc_trim`).
    pub(crate) fn flush_own_cache(&self) {
        if let Some(tc) = self.my_cache() {
            inside(tc, || {
                for c in 0..NCLASSES {
                    let n = tc.counts.get(c).map_or(0, |n| usize::from(n.get()));
                    self.flush(tc, c, n);
                }
                self.flush_remote(tc);
            });
        }
    }

    /// The thread-exit handler registered with each cache: flushes it all
    /// and adds its counters to the shim's.
    ///
    /// # Safety
    ///
    /// `owner` is the address of a live `Shim<A>` (shims are statics, or
    /// leaked in tests), and `tc` the exiting thread's cache.
    unsafe fn thread_exit(owner: usize, tc: &ThreadCache) {
        // SAFETY: caller's contract.
        let shim = unsafe { &*(owner as *const Shim<A>) };
        inside(tc, || {
            for c in 0..NCLASSES {
                let n = tc.counts.get(c).map_or(0, |n| usize::from(n.get()));
                shim.flush(tc, c, n);
            }
            shim.flush_remote(tc);
        });
        let co = &shim.counters;
        for (from, to) in [
            (&tc.hits, &co.cache_hits),
            (&tc.frees, &co.cache_frees),
            (&tc.refills, &co.cache_refills),
            (&tc.flushes, &co.cache_flushes),
        ] {
            to.fetch_add(from.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }
}

fn count_reentrant<A>(s: &Shim<A>) {
    count(&s.counters.reentrant);
}

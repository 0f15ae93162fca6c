//! [`Shim`]: the allocator behind the C functions — its state, start-up,
//! where a pointer lives, which arena serves a request, and the paths that
//! take an arena's lock. The lock-free thread-cache paths are in
//! [`crate::cached`], large blocks in [`crate::large`], the C functions'
//! rules in [`crate::posix`].

use core::ffi::c_void;
use core::marker::PhantomData;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU8, AtomicUsize, Ordering};

use plugin_abi::ArenaAllocator;

use crate::arena::{ARENA_MAGIC, ArenaError, ArenaHeader, SlotHead, block_side};
use crate::class::{self, Side};
use crate::foreign::Foreign;
use crate::large::{
    self, LARGE_FREE, LARGE_MAGIC, LARGE_THRESHOLD, LargeCache, LargeHeader, MAX_CORE_ALIGN,
};
use crate::lock::Mutex;
use crate::options::Options;
use crate::registry;
use crate::stats::{Counters, count};
use crate::sys;

/// At most this many arenas are filled at the same time (lock stripes).
pub const MAX_STRIPES: usize = 8;

/// The `pthread_atfork` handlers of a shim (plain functions that call
/// [`Shim::fork_prepare`] and friends on the shim's static).
#[derive(Clone, Copy)]
pub struct ForkHandlers {
    /// Runs in the parent before `fork`.
    pub prepare: unsafe extern "C" fn(),
    /// Runs in the parent after `fork`.
    pub parent: unsafe extern "C" fn(),
    /// Runs in the child after `fork`.
    pub child: unsafe extern "C" fn(),
}

/// Where a pointer lives.
pub(crate) enum Block<'a, A> {
    Arena(&'a ArenaHeader<A>),
    Large(&'a LargeHeader),
    /// A large mapping kept in the cache after its block was freed.
    FreedLarge,
    Foreign,
}

/// Why the arenas could not serve a request.
pub(crate) enum NoArena {
    /// The thread holds the lock it would need (re-entered).
    Reentrant,
    /// No arena could be mapped, or a fresh one refused the request.
    Refused,
    /// The core panicked on this request: its arena is retired, and the
    /// request is not tried on another core.
    Panicked,
}

/// A refill that its home arena cannot serve walks this many of its
/// stripe's arenas oldest first (see `arena_alloc_into`).
const OLDEST_FIRST: usize = 64;

const INIT_NOT: u8 = 0;
const INIT_RUNNING: u8 = 1;
const INIT_DONE: u8 = 2;

/// A `malloc` implementation over arenas of core `A`.
///
/// - **Thread caches** ([`crate::cached`]): most `malloc`/`free` calls of up
///   to 32 KiB take a block from, or give it to, the calling thread's cache,
///   with no lock and no atomic read-modify-write; caches are filled and
///   flushed in batches under an arena's lock.
/// - **Arenas** ([`crate::arena`]): 64 MiB mappings aligned to their size, a
///   core over most of each, created on demand. A pointer's arena is its
///   address rounded down to 64 MiB, checked against [`registry`]: O(1), and
///   a foreign pointer is never dereferenced.
/// - **Large blocks** ([`crate::large`]): a mapping of their own, reused
///   through a cache of freed mappings.
/// - **Threads**: one lock per arena. Arenas are grouped in stripes (at most
///   [`MAX_STRIPES`], default `min(8, 2 × CPUs)`); a thread refills from the
///   arena that served it last, else from its stripe (a hash of
///   `pthread_self()`), else from any arena that has not refused such a
///   size since its last free, else from a new arena of its stripe.
/// - **fork**: `pthread_atfork` handlers take every lock before `fork` and
///   release them in parent and child.
///
/// All state is static or inside mappings; nothing here allocates with a
/// libc or Rust allocator, and nothing panics (a core's panic is caught and
/// retires its arena).
pub struct Shim<A> {
    name: &'static str,
    flags: u32,
    fork: ForkHandlers,
    init: AtomicU8,
    /// Where the statistics line goes at exit (-1: nowhere).
    stats_fd: AtomicI32,
    /// Lock stripes fixed by [`Shim::with_stripes`] (0: from the environment).
    fixed_stripes: usize,
    nstripes: AtomicUsize,
    pub(crate) abort_on_bad_free: AtomicBool,
    pub(crate) tcache_on: AtomicBool,
    stripes: [AtomicPtr<ArenaHeader<A>>; MAX_STRIPES],
    all: AtomicPtr<ArenaHeader<A>>,
    /// Taken to add an arena (and by the fork handlers).
    grow: Mutex,
    pub(crate) large: LargeCache,
    pub(crate) foreign: Foreign,
    pub(crate) counters: Counters,
    _core: PhantomData<fn() -> A>,
}

// SAFETY: the shared state is atomics, mutexes, and arenas whose cores are
// only touched under their own mutex.
unsafe impl<A> Sync for Shim<A> {}
// SAFETY: as for `Sync`.
unsafe impl<A> Send for Shim<A> {}

impl<A: ArenaAllocator> Shim<A> {
    /// A shim with no arena yet. `name` is printed by the statistics line;
    /// `flags` are the core's creation flags (`ALLOCATOR_FLAG_*`). Pointers
    /// it does not own are counted and left alone (see
    /// [`Shim::forwarding_foreign`]).
    pub const fn new(name: &'static str, flags: u32, fork: ForkHandlers) -> Self {
        Shim {
            name,
            flags,
            fork,
            init: AtomicU8::new(INIT_NOT),
            stats_fd: AtomicI32::new(-1),
            fixed_stripes: 0,
            nstripes: AtomicUsize::new(0),
            abort_on_bad_free: AtomicBool::new(false),
            tcache_on: AtomicBool::new(true),
            stripes: [const { AtomicPtr::new(ptr::null_mut()) }; MAX_STRIPES],
            all: AtomicPtr::new(ptr::null_mut()),
            grow: Mutex::new(),
            large: LargeCache::new(),
            foreign: Foreign::new(false),
            counters: Counters::new(),
            _core: PhantomData,
        }
    }

    /// The same shim, but `free`/`realloc`/`malloc_usable_size` of a pointer
    /// it does not own go to the next definition of those functions
    /// (`dlsym(RTLD_NEXT, ...)`): the allocator that served the process
    /// before this one. For a shim that exports `malloc` ([`crate::export_malloc!`]).
    pub const fn forwarding_foreign(mut self) -> Self {
        self.foreign = Foreign::new(true);
        self
    }

    /// The same shim with `n` lock stripes (clamped to 1..=8) whatever
    /// `ALLOCLAB_SHIM_ARENAS` says. A thread's stripe is its cache's number
    /// modulo the stripes, and cache numbers are shared by every shim in a
    /// process: tests that run several shims at once use one stripe so that
    /// a thread finds the arena an earlier thread filled.
    pub const fn with_stripes(mut self, n: usize) -> Self {
        self.fixed_stripes = if n == 0 {
            1
        } else if n > MAX_STRIPES {
            MAX_STRIPES
        } else {
            n
        };
        self
    }

    /// The allocator name given to [`Shim::new`].
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// This shim's identity (its address), as written in its headers.
    #[inline(always)]
    pub(crate) fn id(&self) -> usize {
        ptr::from_ref(self) as usize
    }

    /// One-time set-up: checks the page size (4 KiB, or the process is
    /// aborted with a message), reads the options ([`crate::options`]),
    /// registers the fork handlers. Called by the library constructor and
    /// before the first arena is made; re-entrant (a call made while it
    /// runs, on any thread, returns at once, and allocation works meanwhile).
    pub fn init(&self) {
        if self.init.load(Ordering::Acquire) == INIT_DONE
            || self
                .init
                .compare_exchange(INIT_NOT, INIT_RUNNING, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return;
        }
        if !sys::page_size_ok() {
            // Mapping lengths and large-block offsets assume 4 KiB pages.
            sys::die(b"alloclab-shim: the kernel's page size is not 4 KiB; aborting\n");
        }
        let o = Options::from_env(MAX_STRIPES);
        self.abort_on_bad_free
            .store(o.abort_on_bad_free, Ordering::Relaxed);
        self.tcache_on.store(o.tcache, Ordering::Relaxed);
        self.stats_fd.store(o.stats_fd, Ordering::Relaxed);
        let stripes = match self.fixed_stripes {
            0 => o.stripes,
            n => n,
        };
        self.nstripes.store(stripes, Ordering::Release);
        // SAFETY: the handlers are plain functions valid for the life of the
        // library (which is never unloaded: it provides malloc). glibc keeps
        // its first 48 handlers in static storage, so this does not
        // allocate; if it did, the calls would be served normally.
        unsafe {
            libc::pthread_atfork(
                Some(self.fork.prepare),
                Some(self.fork.parent),
                Some(self.fork.child),
            );
        }
        self.init.store(INIT_DONE, Ordering::Release);
    }

    /// [`Shim::init`], and the next allocator's functions resolved for
    /// foreign pointers (the library constructor calls this).
    pub fn init_library(&self) {
        self.init();
        self.foreign.resolve();
    }

    /// Lock stripes in use (0 before [`Shim::init`]).
    pub(crate) fn stripes(&self) -> usize {
        self.nstripes.load(Ordering::Relaxed)
    }

    pub(crate) fn stats_fd(&self) -> i32 {
        self.stats_fd.load(Ordering::Relaxed)
    }

    /// The stripe of the calling thread: its cache's number modulo the
    /// stripes ([`crate::tcache::ThreadCache::number`]), or, for a thread
    /// without a cache, a multiplicative hash of its `pthread_t`. O(1), no
    /// system call.
    #[inline]
    fn stripe(&self) -> &AtomicPtr<Header<A>> {
        let mut n = self.nstripes.load(Ordering::Relaxed) as u64;
        if n == 0 {
            // Before the library constructor (ld.so and libc allocate first).
            self.init();
            n = (self.nstripes.load(Ordering::Relaxed) as u64).max(1);
        }
        let i = match crate::tls::cache() {
            // Threads alive together hold distinct caches: distinct stripes.
            Some(tc) => (tc.number.get() as u64).checked_rem(n).unwrap_or(0) as usize,
            None => {
                let h = (sys::thread_id() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                ((h >> 32).wrapping_mul(n) >> 32) as usize
            }
        };
        self.stripes.get(i).unwrap_or(&self.stripes[0])
    }

    /// Every arena, newest first.
    pub(crate) fn arenas(&self) -> impl Iterator<Item = &ArenaHeader<A>> {
        let mut h = self.all.load(Ordering::Acquire);
        core::iter::from_fn(move || {
            // SAFETY: arenas are never unmapped; headers are published
            // after they are written.
            let hdr = unsafe { h.as_ref()? };
            h = hdr.next_all;
            Some(hdr)
        })
    }

    // ------------------------------------------------------------------
    // finding an arena
    // ------------------------------------------------------------------

    /// Blocks of `size` bytes aligned to `align` from some arena, their side
    /// bytes `side`, written to `out` in order: as many as one arena has,
    /// up to `out.len()` (at least one, or an error); returns how many.
    /// `home` is the arena to try first (the thread's cache remembers the
    /// one that served it last) and is updated to the arena that served.
    ///
    /// # Time complexity
    ///
    /// The core's `alloc` per block in the home arena (under one lock and one
    /// `catch_unwind`, [`crate::arena::ArenaGuard::alloc_into`]); when it
    /// refuses, one look (without a lock) at each arena's refusal hint and a
    /// locked attempt in those that may serve; then a new arena.
    pub(crate) fn arena_alloc_into(
        &self,
        size: usize,
        align: usize,
        side: u8,
        home: &core::cell::Cell<usize>,
        out: &[core::cell::Cell<*mut u8>],
    ) -> Result<usize, NoArena> {
        let log2 = usize::BITS.wrapping_sub(size.saturating_sub(1).leading_zeros());
        let reentrant = core::cell::Cell::new(false);
        let panicked = core::cell::Cell::new(false);
        let try_one = |h: &ArenaHeader<A>, wait: bool| -> usize {
            if !h.may_serve(log2) {
                return 0;
            }
            let locked = if wait {
                h.lock().map(Some)
            } else {
                h.try_lock()
            };
            let mut g = match locked {
                Ok(Some(g)) => g,
                Ok(None) => return 0, // busy: try another
                Err(ArenaError::Reentrant) => {
                    reentrant.set(true);
                    return 0;
                }
                Err(ArenaError::Poisoned) => return 0,
            };
            let mut got = 0usize;
            if side != 0 {
                // A refill: blocks other threads' caches flushed here first.
                let c = class::class_of(size);
                while let Some(slot) = out.get(got)
                    && let Some(p) = g.unstash(c)
                {
                    slot.set(p.as_ptr());
                    got = got.wrapping_add(1);
                }
            }
            if let Some(rest) = out.get(got..)
                && !rest.is_empty()
            {
                let r = if align <= plugin_abi::ALLOCATOR_ALIGNMENT {
                    g.alloc_into(size, side, rest)
                } else {
                    g.alloc(size, align, side).map(|p| match (p, rest.first()) {
                        (Some(p), Some(slot)) => {
                            slot.set(p.as_ptr());
                            1
                        }
                        _ => 0,
                    })
                };
                match r {
                    Ok(n) => got = got.wrapping_add(n),
                    // The core panicked (its arena is now retired): the
                    // request is not tried on another core.
                    Err(_) => panicked.set(true),
                }
            }
            if got != 0 {
                home.set(ptr::from_ref(h) as usize);
            }
            got
        };
        macro_rules! attempt {
            ($h:expr, $wait:expr) => {{
                let got = try_one($h, $wait);
                if panicked.get() {
                    return Err(NoArena::Panicked);
                }
                if got != 0 {
                    return Ok(got);
                }
            }};
        }
        // The home arena if its lock is free; then this stripe's arenas, oldest first
        // (waiting for their locks: a thread's blocks stay in its own
        // stripe's arenas, so two threads' blocks, and their side-table
        // bytes, do not share cache lines); then, if they are all full,
        // any other arena whose lock is free; then a new arena.
        // SAFETY: `home` holds 0 or the header of one of our arenas (never
        // unmapped).
        if let Some(h) = unsafe { (home.get() as *const ArenaHeader<A>).as_ref() } {
            attempt!(h, false);
        }
        let stripe = self.stripe();
        let mut tried: *mut ArenaHeader<A> = ptr::null_mut();
        loop {
            let head = stripe.load(Ordering::Acquire);
            // Oldest first (address-ordered first fit over the stripe): a
            // program that frees everything and builds again refills its
            // arenas in the order it filled them, so it touches the same
            // pages again rather than the unused end of its newest arena
            // first (`lua`). The list runs newest to oldest: the newest
            // `OLDEST_FIRST` arenas are gathered and walked backwards; any
            // older ones (a stripe of more than 4 GiB) are tried after.
            let mut near: [*mut ArenaHeader<A>; OLDEST_FIRST] = [ptr::null_mut(); OLDEST_FIRST];
            let mut n = 0usize;
            let mut h = head;
            while !h.is_null() && h != tried && n < OLDEST_FIRST {
                if let Some(slot) = near.get_mut(n) {
                    *slot = h;
                }
                n = n.wrapping_add(1);
                // SAFETY: arenas in a list are never unmapped; headers are
                // written before they are published.
                h = unsafe { (*h).next_in_stripe };
            }
            let rest = h;
            for &a in near.get(..n).unwrap_or(&[]).iter().rev() {
                // SAFETY: as above.
                let hdr = unsafe { &*a };
                attempt!(hdr, true);
            }
            let mut h = rest;
            while !h.is_null() && h != tried {
                // SAFETY: as above.
                let hdr = unsafe { &*h };
                attempt!(hdr, true);
                h = hdr.next_in_stripe;
            }
            if tried.is_null() && !head.is_null() {
                for hdr in self.arenas() {
                    let mine = ptr::from_ref(hdr) as usize;
                    if !self.in_stripe(stripe, mine) {
                        attempt!(hdr, false);
                    }
                }
            }
            if reentrant.get() {
                return Err(NoArena::Reentrant);
            }
            tried = head;
            let grow = self.grow.lock().map_err(|_| NoArena::Reentrant)?;
            if stripe.load(Ordering::Acquire) != head {
                drop(grow); // another thread added one: try it first
                continue;
            }
            let new = self.new_arena(stripe).ok_or(NoArena::Refused)?;
            drop(grow);
            // SAFETY: just published by `new_arena`.
            let hdr = unsafe { &*new };
            attempt!(hdr, true);
            return if reentrant.get() {
                Err(NoArena::Reentrant)
            } else {
                Err(NoArena::Refused)
            };
        }
    }

    /// Whether `h` is an arena older than `home` in `home`'s stripe (its
    /// `next_in_stripe` chain reaches `h`).
    ///
    /// # Time complexity
    ///
    /// O(arenas in the stripe).
    pub(crate) fn older_in_stripe(home: *const ArenaHeader<A>, h: *const ArenaHeader<A>) -> bool {
        if home.is_null() {
            return false;
        }
        // SAFETY: `home` is one of our arenas (never unmapped).
        let mut a = unsafe { (*home).next_in_stripe } as *const ArenaHeader<A>;
        while !a.is_null() {
            if a == h {
                return true;
            }
            // SAFETY: as in `arena_alloc_into`.
            a = unsafe { (*a).next_in_stripe };
        }
        false
    }

    fn in_stripe(&self, stripe: &AtomicPtr<ArenaHeader<A>>, h: usize) -> bool {
        let mut a = stripe.load(Ordering::Acquire);
        while !a.is_null() {
            if a as usize == h {
                return true;
            }
            // SAFETY: as in `arena_alloc_into`.
            a = unsafe { (*a).next_in_stripe };
        }
        false
    }

    /// Maps and publishes a new arena at the head of `stripe` (caller holds
    /// `grow`).
    fn new_arena(&self, stripe: &AtomicPtr<ArenaHeader<A>>) -> Option<*mut ArenaHeader<A>> {
        let created = ArenaHeader::<A>::create(
            self.id(),
            self.flags,
            crate::arena::core_size(self.counters.arenas.load(Ordering::Relaxed)),
            stripe.load(Ordering::Relaxed),
            self.all.load(Ordering::Relaxed),
        )?;
        let Ok(h) = created else {
            count(&self.counters.core_panics);
            return None;
        };
        registry::register(h.as_ptr() as usize);
        self.all.store(h.as_ptr(), Ordering::Release);
        stripe.store(h.as_ptr(), Ordering::Release);
        count(&self.counters.arenas);
        Some(h.as_ptr())
    }

    // ------------------------------------------------------------------
    // allocation
    // ------------------------------------------------------------------

    /// A block of at least `size` bytes aligned to `align` (a power of two),
    /// and whether its memory is known to be zero; `None` (errno set to
    /// `ENOMEM`) if the system has no memory left.
    ///
    /// # Time complexity
    ///
    /// A thread-cache hit: O(1) without a lock. Otherwise that of
    /// [`Shim::arena_alloc_into`], or a large block's mapping.
    pub fn alloc(&self, size: usize, align: usize) -> Option<(NonNull<u8>, bool)> {
        if align <= plugin_abi::ALLOCATOR_ALIGNMENT
            && size <= class::MAX_CACHED
            && let Some(p) = self.cached_alloc(class::class_of(size))
        {
            return Some((p, false));
        }
        self.alloc_uncached(size, align)
    }

    /// [`Shim::alloc`] without the thread cache.
    pub(crate) fn alloc_uncached(&self, size: usize, align: usize) -> Option<(NonNull<u8>, bool)> {
        if size <= LARGE_THRESHOLD && align <= MAX_CORE_ALIGN {
            let out = [core::cell::Cell::new(ptr::null_mut())];
            let home = core::cell::Cell::new(0);
            match self.arena_alloc_into(size, align, 0, &home, &out) {
                Ok(_) => {
                    if let Some(p) = out.first().and_then(|o| NonNull::new(o.get())) {
                        return Some((p, false));
                    }
                }
                Err(NoArena::Reentrant) => count(&self.counters.reentrant),
                Err(NoArena::Refused | NoArena::Panicked) => {}
            }
        }
        let r = self.alloc_large(size, align);
        if r.is_none() {
            count(&self.counters.failed);
            sys::set_errno(libc::ENOMEM);
        }
        r
    }

    /// A block in a mapping of its own (from the cache of freed mappings if
    /// one fits), and whether it is known to be zero.
    fn alloc_large(&self, size: usize, align: usize) -> Option<(NonNull<u8>, bool)> {
        let r = self.map_large(size, align);
        if r.is_some() {
            self.counters
                .large_bytes
                .fetch_add(size as u64, Ordering::Relaxed);
        }
        r
    }

    fn map_large(&self, size: usize, align: usize) -> Option<(NonNull<u8>, bool)> {
        if align <= PAGE_ALIGN
            && let Some(p) = self.large.take(size)
        {
            count(&self.counters.large_allocs);
            return Some((p, false));
        }
        let p = large::map_new(size, align, self.id())?;
        count(&self.counters.large_allocs);
        Some((p, true))
    }

    // ------------------------------------------------------------------
    // lookup, free, realloc, usable size
    // ------------------------------------------------------------------

    /// What `p` is: O(1), reads only the registry and, if `p`'s slot is
    /// registered, that slot's header.
    #[inline(always)]
    pub(crate) fn lookup(&self, p: usize) -> Block<'_, A> {
        if !registry::contains(p) {
            return Block::Foreign;
        }
        // SAFETY: a registered slot starts with a `SlotHead` that stays
        // mapped while registered (arenas for ever, large blocks until they
        // are unmapped, which unregisters first).
        let head = unsafe { &*(registry::slot_base(p) as *const SlotHead) };
        let magic = head.magic.load(Ordering::Relaxed);
        if magic == ARENA_MAGIC && head.owner == self.id() {
            // SAFETY: the magic says this is an arena's header.
            return Block::Arena(unsafe { &*(ptr::from_ref(head).cast::<ArenaHeader<A>>()) });
        }
        self.lookup_other(head, magic)
    }

    /// [`Shim::lookup`] of a registered slot that is not one of our arenas
    /// (a large block, a freed one, another shim's): off the fast path.
    #[cold]
    #[inline(never)]
    fn lookup_other<'a>(&self, head: &'a SlotHead, magic: u64) -> Block<'a, A> {
        if head.owner != self.id() {
            return Block::Foreign;
        }
        match magic {
            // SAFETY: the magic says this is a large block's header.
            LARGE_MAGIC => Block::Large(unsafe { &*(ptr::from_ref(head).cast::<LargeHeader>()) }),
            LARGE_FREE => Block::FreedLarge,
            _ => Block::Foreign,
        }
    }

    /// Gives back `p` (NULL: nothing). A pointer inside our memory that is
    /// not a live block is counted and left alone (or, with
    /// `ALLOCLAB_SHIM_ABORT=1`, aborts the process with glibc's message); a
    /// pointer outside it is forwarded (see [`Shim::forwarding_foreign`]).
    ///
    /// # Time complexity
    ///
    /// A thread-cache push: O(1) without a lock. Otherwise the core's
    /// `free` under the arena lock, or keeping a large mapping.
    ///
    /// # Safety
    ///
    /// No other thread frees or reallocates `p` at the same time (a double
    /// free racing with the first free could find a large block's header
    /// being unmapped).
    #[inline(always)]
    pub unsafe fn free(&self, p: *mut c_void) {
        let Some(p) = NonNull::new(p.cast::<u8>()) else {
            return;
        };
        let addr = p.as_ptr() as usize;
        if registry::contains(addr) {
            // SAFETY: as in `lookup`.
            let head = unsafe { &*(registry::slot_base(addr) as *const SlotHead) };
            if head.magic.load(Ordering::Relaxed) == ARENA_MAGIC && head.owner == self.id() {
                // SAFETY: the magic says this is an arena's header.
                let h = unsafe { &*(ptr::from_ref(head).cast::<ArenaHeader<A>>()) };
                return self.arena_free(h, p);
            }
        }
        // SAFETY: caller's contract.
        unsafe { self.free_other(p) }
    }

    /// `free` of a pointer that is not in one of our arenas.
    ///
    /// # Safety
    ///
    /// As for [`Shim::free`].
    #[cold]
    #[inline(never)]
    unsafe fn free_other(&self, p: NonNull<u8>) {
        match self.lookup(p.as_ptr() as usize) {
            Block::Arena(h) => self.arena_free(h, p),
            Block::Large(h) => self.large_free(h, p),
            Block::FreedLarge => self.bad_pointer(b"free(): double free detected\n"),
            // SAFETY: caller's contract.
            Block::Foreign => unsafe { self.foreign_free(p) },
        }
    }

    /// `free` of a pointer in arena `h`.
    #[inline(always)]
    fn arena_free(&self, h: &ArenaHeader<A>, p: NonNull<u8>) {
        if !(p.as_ptr() as usize).is_multiple_of(class::GRANULE) {
            // Not a block start of a cached class: the core decides.
            return self.locked_free(h, p, None);
        }
        // SAFETY: `p` lies in arena `h` (the registry and its header say
        // so), 16-aligned.
        let side = unsafe { block_side(p.as_ptr()) };
        match class::decode(side.load(Ordering::Relaxed)) {
            Side::Live(c) => self.free_cached(h, side, p, c),
            Side::Cached(_) => self.double_free(),
            Side::Other => self.locked_free(h, p, None),
        }
    }

    /// A `free` of a block sitting in a thread cache.
    #[cold]
    #[inline(never)]
    fn double_free(&self) {
        count(&self.counters.double_frees);
        self.bad_pointer(b"free(): double free detected in tcache\n");
    }

    /// `free` under the arena lock (the core validates `p`). `bytes` is the
    /// block's size when its class is known.
    #[inline(never)]
    pub(crate) fn locked_free(&self, h: &ArenaHeader<A>, p: NonNull<u8>, bytes: Option<usize>) {
        match h.lock() {
            Ok(mut g) => match g.free(p, bytes, false) {
                Ok(Ok(())) => {}
                Ok(Err(_)) => self.bad_pointer(b"free(): invalid pointer\n"),
                Err(_) => {} // the core panicked: its arena is retired
            },
            Err(ArenaError::Reentrant) => {
                count(&self.counters.reentrant);
                if bytes.is_some() {
                    // A known block start (its side byte says so): free it
                    // when the lock is next taken.
                    // SAFETY: a live block of `h` the program gave back.
                    unsafe { h.defer_free(p) };
                }
            }
            Err(ArenaError::Poisoned) => {}
        }
    }

    #[inline(never)]
    fn large_free(&self, h: &LargeHeader, p: NonNull<u8>) {
        if h.block() != p.as_ptr() as usize {
            self.bad_pointer(b"free(): invalid pointer\n");
            return;
        }
        count(&self.counters.large_frees);
        // SAFETY: the block was just freed by the program.
        unsafe { self.large.put(h) };
    }

    /// A pointer into our memory that is not a live block: counted, or the
    /// process aborted with glibc's message in abort mode.
    #[cold]
    pub(crate) fn bad_pointer(&self, msg: &[u8]) {
        count(&self.counters.rejected);
        if self.abort_on_bad_free.load(Ordering::Relaxed) {
            sys::die(msg);
        }
    }

    /// The usable size of `p` (0 for NULL or a pointer that is not a live
    /// block).
    ///
    /// # Safety
    ///
    /// As for [`Shim::free`].
    pub unsafe fn usable_size(&self, p: *const c_void) -> usize {
        let Some(p) = NonNull::new(p.cast_mut().cast::<u8>()) else {
            return 0;
        };
        let addr = p.as_ptr() as usize;
        match self.lookup(addr) {
            // SAFETY: caller's contract.
            Block::Foreign => unsafe { self.foreign_usable_size(p) },
            Block::Arena(h) => {
                if let Side::Live(c) = h.side_of(addr) {
                    return class::class_size(c);
                }
                match h.lock() {
                    Ok(mut g) => g.usable_size(p).ok().flatten().unwrap_or(0),
                    Err(_) => 0,
                }
            }
            Block::Large(h) if h.block() == addr => h.usable(),
            Block::Large(_) | Block::FreedLarge => 0,
        }
    }

    /// `realloc` with glibc's rules: NULL → `malloc(n)`; `n == 0` → `free`
    /// and NULL; on failure NULL, errno `ENOMEM`, `p` untouched.
    ///
    /// # Time complexity
    ///
    /// A block of a cached class that still fits: O(1); one that moves: a
    /// cached allocation, a copy and a cached free. Others: the core's
    /// `realloc` when it can answer, else an allocation, a copy and a free.
    /// Large blocks: `mremap` (no copy).
    ///
    /// # Safety
    ///
    /// As for [`Shim::free`].
    #[inline(always)]
    pub unsafe fn realloc(&self, p: *mut c_void, n: usize) -> *mut c_void {
        // `realloc(NULL, n)` (how Lua allocates): `malloc`'s fast path, inline.
        let Some(old) = NonNull::new(p.cast::<u8>()) else {
            return self.malloc(n);
        };
        // SAFETY: caller's contract.
        unsafe { self.realloc_block(old, n) }
    }

    /// [`Shim::realloc`] of a block (not NULL).
    ///
    /// # Safety
    ///
    /// As for [`Shim::free`].
    #[inline(never)]
    unsafe fn realloc_block(&self, old: NonNull<u8>, n: usize) -> *mut c_void {
        let p: *mut c_void = old.as_ptr().cast();
        if n == 0 {
            // SAFETY: caller's contract.
            unsafe { self.free(p) };
            return ptr::null_mut();
        }
        let r = match self.lookup(old.as_ptr() as usize) {
            // SAFETY: caller's contract.
            Block::Foreign => return unsafe { self.foreign_realloc(old, n) },
            Block::Arena(h) => self.arena_realloc(h, old, n),
            Block::Large(h) => self.large_realloc(h, old, n),
            Block::FreedLarge => {
                self.bad_pointer(b"realloc(): invalid pointer\n");
                None
            }
        };
        match r {
            Some(q) => q.as_ptr().cast(),
            None => {
                sys::set_errno(libc::ENOMEM);
                ptr::null_mut()
            }
        }
    }

    /// Moves a block of `old_size` bytes at `p` to a new one of `n` bytes.
    fn move_block(&self, p: NonNull<u8>, old_size: usize, n: usize) -> Option<NonNull<u8>> {
        let (q, _) = self.alloc(n, 1)?;
        // SAFETY: `p` is a live block of `old_size` bytes (freed below), `q`
        // a new one of at least `n`; distinct blocks.
        unsafe { ptr::copy_nonoverlapping(p.as_ptr(), q.as_ptr(), old_size.min(n)) };
        // SAFETY: `p` is ours and live; the program gave it up.
        unsafe { self.free(p.as_ptr().cast()) };
        Some(q)
    }

    fn arena_realloc(&self, h: &ArenaHeader<A>, p: NonNull<u8>, n: usize) -> Option<NonNull<u8>> {
        match h.side_of(p.as_ptr() as usize) {
            Side::Live(c) => {
                if n <= class::MAX_CACHED && class::class_of(n) == c {
                    return Some(p);
                }
                return self.move_block(p, class::class_size(c), n);
            }
            Side::Cached(_) => {
                count(&self.counters.double_frees);
                self.bad_pointer(b"realloc(): invalid pointer\n");
                return None;
            }
            Side::Other => {}
        }
        let old_size = {
            let mut g = match h.lock() {
                Ok(g) => g,
                Err(ArenaError::Reentrant) => {
                    count(&self.counters.reentrant);
                    return None;
                }
                Err(ArenaError::Poisoned) => return None,
            };
            if n <= LARGE_THRESHOLD {
                match g.realloc(p, n) {
                    Ok(Ok(q)) => return Some(q),
                    Ok(Err(plugin_abi::ReallocError::BadPointer)) => {
                        drop(g);
                        self.bad_pointer(b"realloc(): invalid pointer\n");
                        return None;
                    }
                    Ok(Err(plugin_abi::ReallocError::OutOfMemory)) => {}
                    Err(_) => return None, // the core panicked
                }
            }
            match g.usable_size(p) {
                Ok(Some(s)) => s,
                Ok(None) => {
                    drop(g);
                    self.bad_pointer(b"realloc(): invalid pointer\n");
                    return None;
                }
                Err(_) => return None, // the core panicked
            }
        };
        // Elsewhere: another arena, a new one, or a mapping of its own.
        self.move_block(p, old_size, n)
    }

    fn large_realloc(&self, h: &LargeHeader, p: NonNull<u8>, n: usize) -> Option<NonNull<u8>> {
        if h.block() != p.as_ptr() as usize {
            self.bad_pointer(b"realloc(): invalid pointer\n");
            return None;
        }
        let offset = h.offset;
        let (new_len, _) = large::mapping_for(n, offset)?;
        let old_usable = h.usable();
        // Small enough for an arena, and much smaller than the mapping: move.
        if n <= LARGE_THRESHOLD / 2 && offset == sys::PAGE {
            return self.move_block(p, old_usable, n);
        }
        // SAFETY: the program's live block: the caller alone uses it.
        match unsafe { large::resize(h, new_len) } {
            Some(nh) => {
                count(&self.counters.large_remaps);
                NonNull::new(nh.block() as *mut u8)
            }
            // mremap refused: copy.
            None => self.move_block(p, old_usable, n),
        }
    }

    // ------------------------------------------------------------------
    // malloc_trim, fork
    // ------------------------------------------------------------------

    /// `malloc_trim`: flushes the calling thread's cache, gives every free
    /// page run of every arena back to the kernel and unmaps the cached
    /// large mappings. Returns the bytes given back.
    ///
    /// # Time complexity
    ///
    /// O(arenas × free runs) and a system call per run.
    pub fn trim(&self) -> usize {
        self.flush_own_cache();
        let mut n = self.large.purge();
        for h in self.arenas() {
            if let Ok(mut g) = h.lock()
                && let Ok(r) = g.trim(0)
            {
                n = n.saturating_add(r);
            }
        }
        n
    }

    /// Every lock of the shim, growth lock first, then each arena's (in
    /// list order), the large-block cache's and the thread-cache pool's.
    fn locks(&self) -> impl Iterator<Item = &Mutex> {
        core::iter::once(&self.grow)
            .chain(self.arenas().map(ArenaHeader::mutex))
            .chain([self.large.mutex(), crate::tcache::pool_mutex()])
    }

    /// `pthread_atfork` prepare: takes every lock (in [`Shim::locks`]
    /// order), so that nothing is mid-update when the process is copied.
    pub fn fork_prepare(&self) {
        self.locks().for_each(Mutex::fork_prepare);
    }

    /// `pthread_atfork` parent: releases what [`Shim::fork_prepare`] took.
    pub fn fork_parent(&self) {
        self.locks().for_each(Mutex::fork_parent);
    }

    /// `pthread_atfork` child: the child's only thread resets those locks.
    pub fn fork_child(&self) {
        self.locks().for_each(Mutex::fork_child);
    }
}

/// Alignments a cached large mapping can serve (its block sits one page in).
const PAGE_ALIGN: usize = sys::PAGE;

type Header<A> = ArenaHeader<A>;

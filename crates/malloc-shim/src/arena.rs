//! Arenas: 64 MiB mappings, each a core over most of it, and what the shim
//! keeps beside the core.
//!
//! ```text
//!  base (64 MiB-aligned)                                       base + 64 MiB
//!  | header page | side table: 1 byte per 16 B (4 MiB) | core region ...  |
//!    ArenaHeader   crate::class                          A::create_in
//! ```
//!
//! The header's first cache line is written once, before the arena is
//! published, and only read afterwards (every `free` reads it); the lock and
//! the state that changes under it are on the next lines.
//!
//! Memory goes back to the kernel from here ([`ArenaGuard::note_freed`]):
//! each arena counts the bytes freed into its core since it was last
//! trimmed. When the core holds no live block any more, or no more than
//! thread caches may hold ([`NEARLY_EMPTY_BLOCKS`], then at most every
//! [`NEARLY_EMPTY_INTERVAL_MS`]; an empty arena at once the first time, then
//! at most as often), and at least
//! [`EMPTY_TRIM`] was freed since the last trim, all its free pages are
//! discarded with `madvise(MADV_DONTNEED)`; past [`TRIM_STEP`], and at most
//! every [`TRIM_INTERVAL_MS`], its free runs of at least [`TRIM_MIN_RUN`]
//! are. The core says which pages hold nothing it reads
//! ([`ArenaAllocator::discardable`]); the side-table pages that cover them
//! go too; chunks already given back are not `madvise`d again. The
//! thresholds are the hysteresis: a program that frees and allocates around
//! one size does not fault its pages in again on every call.

use core::cell::Cell;
use core::panic::AssertUnwindSafe;
use core::ptr::{self, NonNull};
use core::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};

use plugin_abi::{ALLOCATOR_ALIGNMENT, ArenaAllocator, BadPointer, ReallocError, whole_pages};

use crate::class::{self, GRANULE, NCLASSES, Side};
use crate::lock::{Guard, Mutex, Reentrant};
use crate::registry::{self, ARENA};
use crate::sys::{self, PAGE};

/// Marks a live arena's header.
pub const ARENA_MAGIC: u64 = u64::from_le_bytes(*b"alclArna");

/// Where the side table starts, from the arena's base.
pub const SIDE_OFFSET: usize = PAGE;
/// Bytes of side table: one per granule of the whole arena.
pub const SIDE_BYTES: usize = ARENA / GRANULE;
/// Where the core's region starts, from the arena's base.
pub const CORE_OFFSET: usize = SIDE_OFFSET + SIDE_BYTES;
/// The most a core can be given: the rest of the 64 MiB slot.
pub const MAX_CORE: usize = ARENA - CORE_OFFSET;
/// The core size of a shim's first arena; each next arena's doubles, up to
/// [`MAX_CORE`]. A core initialises metadata in proportion to its size
/// (McKusick-Karels writes its page table; the buddy system's bitmaps are
/// 1 % of it, zeroed by writing only the words that are not zero already, so
/// that on this fresh mapping only the pages covering allocated blocks become
/// resident), so a small program's first arena costs a few tens of KiB of
/// resident memory, not 640 KiB. (1 MiB saved a small program 44 KiB but
/// gave `mixed` two more arenas, whose free blocks and depots raised its peak
/// by 1-3 MiB.)
pub const FIRST_CORE: usize = 4 << 20;

/// The core size of a shim's arena number `n` (0 for the first).
pub const fn core_size(n: u64) -> usize {
    if n >= 5 {
        MAX_CORE
    } else {
        let s = FIRST_CORE << n;
        if s < MAX_CORE { s } else { MAX_CORE }
    }
}

/// Bytes freed into an arena after which its free runs are given back...
pub const TRIM_STEP: usize = 8 << 20;
/// ... unless the last trim was less than this long ago (milliseconds): a
/// program that frees and allocates megabytes in a loop would otherwise
/// fault its pages in again after every trim.
pub const TRIM_INTERVAL_MS: u64 = 100;
/// Bytes freed into an arena that has become empty after which all its free
/// memory is given back.
pub const EMPTY_TRIM: usize = 256 << 10;
/// An arena with at most this many live blocks after a free counts as
/// nearly empty: past [`EMPTY_TRIM`] freed, all its free pages go, as for an
/// empty one, but at most every [`NEARLY_EMPTY_INTERVAL_MS`]. A program's thread
/// caches may hold that many of its blocks (12 classes of up to 64), and an
/// arena they hold on to would otherwise never give its free pages back at
/// once (`lua`, which drops its tables between rounds, peaked 11 MiB
/// higher).
pub const NEARLY_EMPTY_BLOCKS: u64 = 1024;
/// The shortest free run given back by a periodic trim.
pub const TRIM_MIN_RUN: usize = 64 << 10;
/// The shortest time between two trims of a nearly empty arena
/// ([`NEARLY_EMPTY_BLOCKS`]), in milliseconds. A program that drops what it
/// built and builds it again (`lua`: 5 rounds of tables, 0.1 s each) finds
/// its pages resident on the next round instead of faulting them in again:
/// at 100 ms, `lua` took 57,000 minor faults and ran 1.38× glibc's time; at
/// 1 s, 35,000 faults, with the same peak (52.5 MiB: its refills fill the
/// arenas oldest first again, see `Shim::arena_alloc_into`). An arena that
/// stays nearly empty while the program goes on freeing still gives its
/// pages back within a second.
pub const NEARLY_EMPTY_INTERVAL_MS: u64 = 1000;

/// No size refused since the last free (see [`ArenaHeader::refused`]).
const NOTHING_REFUSED: u8 = u8::MAX;

/// The first words of every registered slot: an arena's header or a large
/// block's ([`crate::large`]).
#[repr(C)]
pub struct SlotHead {
    /// [`ARENA_MAGIC`], or one of the large-block magics.
    pub magic: AtomicU64,
    /// Address of the shim that made it (two shims in one process, as in
    /// tests, share the registry).
    pub owner: usize,
}

/// The side byte of `p`, a 16-aligned address inside one of this shim's
/// arenas, found from `p` alone: the side table sits at a fixed offset from
/// the arena's base, which is `p` rounded down to [`ARENA`]. No load of the
/// arena's header (the fast paths touch only the block's side byte).
///
/// # Safety
///
/// `p` points into an arena's core region (a block the shim handed out, or
/// one a registered arena's lookup vouched for), with the provenance of the
/// arena's mapping (every block pointer is derived from it); the arena is
/// never unmapped.
///
/// # Time complexity
///
/// O(1): address arithmetic.
#[inline(always)]
pub unsafe fn block_side<'a>(p: *mut u8) -> &'a AtomicU8 {
    let off = (p as usize) & (ARENA - 1);
    // SAFETY: `p - off` is the arena's base, and `SIDE_OFFSET + off / GRANULE`
    // lies in its side table (caller's contract); side bytes are only
    // accessed atomically.
    unsafe {
        &*p.wrapping_sub(off)
            .wrapping_add(SIDE_OFFSET.wrapping_add(off / GRANULE))
            .cast::<AtomicU8>()
    }
}

/// The header at the start of an arena.
#[repr(C, align(64))]
pub struct ArenaHeader<A> {
    // ---- written before publication, read-only after ----
    /// Magic and owner.
    pub head: SlotHead,
    /// The mapping (its provenance reaches the side table).
    base: *mut u8,
    /// The core, in the region after the side table.
    core: *mut A,
    /// The next older arena of the same stripe.
    pub next_in_stripe: *mut ArenaHeader<A>,
    /// The next older arena of the shim.
    pub next_all: *mut ArenaHeader<A>,
    // ---- changes under the lock ----
    lock: Locked,
    /// Blocks freed while their thread held this arena's lock (a signal
    /// handler that frees): a stack linked through the blocks, drained by
    /// the next holder of the lock.
    deferred: AtomicPtr<u8>,
}

/// The lock and what it guards, on lines of their own.
#[repr(C, align(64))]
struct Locked {
    mutex: Mutex,
    /// The core panicked: it is never called again (its blocks leak).
    poisoned: AtomicBool,
    /// log2 of the smallest request refused since the last free
    /// ([`NOTHING_REFUSED`]: none): a thread looking for an arena skips this
    /// one for requests at least that large, without taking the lock.
    refused: AtomicU8,
    /// Bytes freed into the core since the last trim.
    dirty: AtomicUsize,
    /// When the last periodic trim ran (`sys::now_ms`).
    last_trim_ms: AtomicU64,
    /// When the last trim of a nearly empty arena ran (`sys::now_ms`);
    /// starts at the arena's creation, so a new arena is not trimmed nearly
    /// empty within [`NEARLY_EMPTY_INTERVAL_MS`] of it (`lua`'s first round
    /// ends 0.1 s after its arenas were made: trimming them then cost 5,000
    /// minor faults in the next round).
    last_nearly_empty_ms: AtomicU64,
    /// When the last trim of an empty arena ran (`sys::now_ms`; 0: never).
    last_empty_ms: AtomicU64,
    /// Blocks handed out by the core straight to the program.
    allocs: AtomicU64,
    /// Blocks handed out by the core into thread caches.
    refilled: AtomicU64,
    /// Blocks the program gave straight back to the core.
    frees: AtomicU64,
    /// Blocks thread caches gave back to the core.
    flushed: AtomicU64,
    /// Reallocations done by the core.
    reallocs: AtomicU64,
    /// Trims, and the bytes they gave back.
    trims: AtomicU64,
    released: AtomicU64,
    /// One bit per [`CHUNK`] of the arena: set when a trim gave the whole
    /// chunk back and no block overlapping it was handed out since (the
    /// next trim skips it: no `madvise` of memory already given back). A
    /// stale bit costs only memory not given back, never correctness.
    clean: [AtomicU64; CHUNKS / 64],
    /// Per cached class, blocks thread caches flushed here and that the next
    /// refills take first ([`ArenaGuard::take_back`], [`ArenaGuard::unstash`]).
    depot: [Depot; NCLASSES],
    /// Blocks and bytes in all of `depot` (held by the core as live).
    depot_blocks: AtomicU64,
    depot_bytes: AtomicU64,
}

/// The most blocks a depot keeps of class `c`: [`DEPOT_BYTES`] of them (at
/// most 1,024, at least a thread cache's capacity). A producer thread runs
/// ahead of its consumer by hundreds of blocks (prodcons' ring holds 1,024):
/// a depot that holds one flush only would send most of them to the core.
pub const fn depot_capacity(c: usize) -> usize {
    let by_bytes = DEPOT_BYTES.wrapping_shr((c as u32).wrapping_add(class::MIN_SHIFT));
    let cap = class::capacity(c);
    if by_bytes > 1024 {
        1024
    } else if by_bytes < cap {
        cap
    } else {
        by_bytes
    }
}

/// Bytes a depot keeps of one class at most (see [`depot_capacity`]).
pub const DEPOT_BYTES: usize = 128 << 10;

/// Blocks of one class that thread caches gave back, kept out of the core
/// for the next refill (the "transfer cache" of tcmalloc and jemalloc): a
/// block freed by one thread and wanted by another (producer/consumer)
/// passes between their caches without a core `free` and `alloc`, under
/// one lock acquisition per batch. A stack linked through the blocks' first
/// words (as the cores' own free lists are); each block keeps its side
/// byte's cached mark, so a `free` of it is still a double free, and a link
/// that does not lead to such a block of this arena (the program wrote into
/// a freed block) ends the stack there.
struct Depot {
    head: AtomicPtr<u8>,
    len: AtomicU32,
}

/// The unit of [`Locked::clean`].
pub const CHUNK: usize = 64 << 10;
const CHUNKS: usize = ARENA / CHUNK;

/// Bumps a counter that is only written under the arena lock.
#[inline]
fn bump(c: &AtomicU64, by: u64) {
    c.store(
        c.load(Ordering::Relaxed).wrapping_add(by),
        Ordering::Relaxed,
    );
}

/// Decreases a counter that is only written under the arena lock.
#[inline]
fn unbump(c: &AtomicU64, by: u64) {
    c.store(
        c.load(Ordering::Relaxed).wrapping_sub(by),
        Ordering::Relaxed,
    );
}

/// Why an arena could not do what was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArenaError {
    /// The calling thread holds this arena's lock (re-entered).
    Reentrant,
    /// The core panicked (now or before): the arena is retired.
    Poisoned,
}

impl From<Reentrant> for ArenaError {
    fn from(_: Reentrant) -> Self {
        ArenaError::Reentrant
    }
}

/// Runs `f`, catching a panic (which then allocates its payload through this
/// very shim while the caller holds the arena lock: those calls find the
/// lock theirs and are served elsewhere). `None` if `f` panicked.
#[inline]
fn guarded<R>(f: impl FnOnce() -> R) -> Option<R> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).ok()
}

/// Counters of one arena (see [`ArenaHeader::counters`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct ArenaCounters {
    /// Blocks handed out by the core straight to the program.
    pub allocs: u64,
    /// Blocks handed out by the core into thread caches.
    pub refilled: u64,
    /// Blocks the program gave straight back to the core.
    pub frees: u64,
    /// Blocks thread caches gave back to the core.
    pub flushed: u64,
    /// Reallocations done by the core.
    pub reallocs: u64,
    /// Trims.
    pub trims: u64,
    /// Bytes given back to the kernel.
    pub released: u64,
    /// The core panicked.
    pub poisoned: bool,
}

impl<A: ArenaAllocator> ArenaHeader<A> {
    /// Clears the clean bits (see `Locked::clean`) of the chunks `[addr,
    /// addr + len)` overlaps: blocks there are handed out again, so the next
    /// trim must look at those chunks. Called under the arena's lock.
    ///
    /// # Time complexity
    ///
    /// O(chunks overlapped): a load each, and a store only when the bit was
    /// set.
    #[inline(always)]
    fn mark_dirty(&self, addr: usize, len: usize) {
        let off = addr.wrapping_sub(self.base as usize);
        let first = off / CHUNK;
        let last = off.saturating_add(len.max(1)).wrapping_sub(1) / CHUNK;
        for c in first..=last.min(CHUNKS.wrapping_sub(1)) {
            if let Some(w) = self.lock.clean.get(c / 64) {
                let bit = 1u64 << (c % 64);
                let v = w.load(Ordering::Relaxed);
                if v & bit != 0 {
                    w.store(v & !bit, Ordering::Relaxed);
                }
            }
        }
    }

    /// Maps a new arena for shim `owner` (its slot whole, `MAP_NORESERVE`:
    /// only touched pages count), creates a core of `core_len` bytes
    /// ([`core_size`]) with `flags` and writes the header; the caller links
    /// it (`next_*`) and publishes it.
    /// `None` if the kernel has no memory or the core cannot be made (then
    /// nothing is left mapped); `Some(Err(()))` if the core panicked.
    ///
    /// # Time complexity
    ///
    /// Three system calls and the core's creation (O(its metadata)).
    pub fn create(
        owner: usize,
        flags: u32,
        core_len: usize,
        next_in_stripe: *mut ArenaHeader<A>,
        next_all: *mut ArenaHeader<A>,
    ) -> Option<Result<NonNull<ArenaHeader<A>>, ()>> {
        let base = sys::map_aligned(ARENA, ARENA, true)?;
        let unmap = || {
            // SAFETY: the mapping is ours and published nowhere.
            unsafe { sys::unmap(base.as_ptr(), ARENA) }
        };
        if !registry::in_range(base.as_ptr() as usize) {
            unmap();
            return None;
        }
        // SAFETY: the mapping is ARENA bytes; the region after the side
        // table is the core's alone for ever (arenas are never unmapped).
        let created = guarded(|| unsafe {
            A::create_in(
                base.as_ptr().add(CORE_OFFSET),
                core_len.min(MAX_CORE),
                flags,
            )
        });
        let core = match created {
            Some(Some(core)) => core,
            Some(None) => {
                unmap();
                return None;
            }
            None => {
                unmap();
                return Some(Err(()));
            }
        };
        let h = base.as_ptr().cast::<ArenaHeader<A>>();
        // SAFETY: the first page of the mapping is the header's, aligned.
        unsafe {
            h.write(ArenaHeader {
                head: SlotHead {
                    magic: AtomicU64::new(ARENA_MAGIC),
                    owner,
                },
                base: base.as_ptr(),
                core: core.as_ptr(),
                next_in_stripe,
                next_all,
                lock: Locked {
                    mutex: Mutex::new(),
                    poisoned: AtomicBool::new(false),
                    refused: AtomicU8::new(NOTHING_REFUSED),
                    dirty: AtomicUsize::new(0),
                    last_trim_ms: AtomicU64::new(0),
                    last_nearly_empty_ms: AtomicU64::new(sys::now_ms()),
                    last_empty_ms: AtomicU64::new(0),
                    allocs: AtomicU64::new(0),
                    refilled: AtomicU64::new(0),
                    frees: AtomicU64::new(0),
                    flushed: AtomicU64::new(0),
                    reallocs: AtomicU64::new(0),
                    trims: AtomicU64::new(0),
                    released: AtomicU64::new(0),
                    clean: [const { AtomicU64::new(0) }; CHUNKS / 64],
                    depot: [const {
                        Depot {
                            head: AtomicPtr::new(ptr::null_mut()),
                            len: AtomicU32::new(0),
                        }
                    }; NCLASSES],
                    depot_blocks: AtomicU64::new(0),
                    depot_bytes: AtomicU64::new(0),
                },
                deferred: AtomicPtr::new(ptr::null_mut()),
            });
        }
        NonNull::new(h).map(Ok)
    }

    /// The arena's base address.
    #[inline(always)]
    pub fn base_addr(&self) -> usize {
        self.base as usize
    }

    /// The side byte of `addr` (an address inside this arena).
    #[inline(always)]
    pub fn side(&self, addr: usize) -> &AtomicU8 {
        let i = (addr.wrapping_sub(self.base as usize) & (ARENA - 1)) / GRANULE;
        // SAFETY: `i < SIDE_BYTES`, so the byte lies in the side table, inside
        // the arena's mapping (whose provenance `base` carries), which lives
        // as long as the header; side bytes are only accessed atomically.
        unsafe {
            &*self
                .base
                .add(SIDE_OFFSET.wrapping_add(i))
                .cast::<AtomicU8>()
        }
    }

    /// What the side byte of `addr` says (an address that is not
    /// 16-aligned is no block start: [`Side::Other`]).
    #[inline(always)]
    pub fn side_of(&self, addr: usize) -> Side {
        if addr.is_multiple_of(GRANULE) {
            class::decode(self.side(addr).load(Ordering::Relaxed))
        } else {
            Side::Other
        }
    }

    /// True if a request of `log2_size` bytes (rounded up) is worth trying
    /// here: nothing that large was refused since the last free.
    #[inline]
    pub fn may_serve(&self, log2_size: u32) -> bool {
        let r = self.lock.refused.load(Ordering::Relaxed);
        r == NOTHING_REFUSED || log2_size < u32::from(r)
    }

    /// Takes the lock (and gives back the blocks freed while it was held by
    /// a signal handler's thread).
    #[inline]
    pub fn lock(&self) -> Result<ArenaGuard<'_, A>, ArenaError> {
        let g = self.lock.mutex.lock()?;
        if self.lock.poisoned.load(Ordering::Relaxed) {
            return Err(ArenaError::Poisoned);
        }
        let mut a = ArenaGuard { h: self, _g: g };
        if !self.deferred.load(Ordering::Relaxed).is_null() {
            a.drain_deferred();
        }
        Ok(a)
    }

    /// Takes the lock if it is free (and drains deferred frees); `Ok(None)`
    /// if another thread holds it.
    #[inline]
    pub fn try_lock(&self) -> Result<Option<ArenaGuard<'_, A>>, ArenaError> {
        let Some(g) = self.lock.mutex.try_lock() else {
            return if self.lock.mutex.held_by_me() {
                Err(ArenaError::Reentrant)
            } else {
                Ok(None)
            };
        };
        if self.lock.poisoned.load(Ordering::Relaxed) {
            return Err(ArenaError::Poisoned);
        }
        let mut a = ArenaGuard { h: self, _g: g };
        if !self.deferred.load(Ordering::Relaxed).is_null() {
            a.drain_deferred();
        }
        Ok(Some(a))
    }

    /// Takes the lock if it is free, for reading statistics (no deferred
    /// frees are drained).
    pub fn try_lock_for_stats(&self) -> Option<ArenaGuard<'_, A>> {
        let g = self.lock.mutex.try_lock()?;
        if self.lock.poisoned.load(Ordering::Relaxed) {
            return None;
        }
        Some(ArenaGuard { h: self, _g: g })
    }

    /// Frees `p` later: the calling thread holds this arena's lock (a signal
    /// handler interrupted it). Lock-free.
    ///
    /// # Safety
    ///
    /// `p` is a live block of this arena (at least 16 bytes) that nobody
    /// uses any more.
    pub unsafe fn defer_free(&self, p: NonNull<u8>) {
        let link = p.as_ptr().cast::<*mut u8>();
        let mut head = self.deferred.load(Ordering::Relaxed);
        loop {
            // SAFETY: the block is ours (caller's contract), 16-aligned.
            unsafe { link.write(head) };
            match self.deferred.compare_exchange_weak(
                head,
                p.as_ptr(),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }

    /// The counters (read without the lock).
    pub fn counters(&self) -> ArenaCounters {
        let l = &self.lock;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ArenaCounters {
            allocs: load(&l.allocs),
            refilled: load(&l.refilled),
            frees: load(&l.frees),
            flushed: load(&l.flushed),
            reallocs: load(&l.reallocs),
            trims: load(&l.trims),
            released: load(&l.released),
            poisoned: l.poisoned.load(Ordering::Relaxed),
        }
    }

    /// The lock, for the `pthread_atfork` handlers.
    pub fn mutex(&self) -> &Mutex {
        &self.lock.mutex
    }
}

/// An arena whose lock the caller holds: its core, through calls that catch
/// a core's panic (the arena is then retired).
pub struct ArenaGuard<'a, A> {
    h: &'a ArenaHeader<A>,
    _g: Guard<'a>,
}

impl<A: ArenaAllocator> ArenaGuard<'_, A> {
    /// The arena.
    pub fn header(&self) -> &ArenaHeader<A> {
        self.h
    }

    /// Runs `f` on the core (shared), catching a panic.
    fn run_ref<R>(&self, f: impl FnOnce(&A) -> R) -> Result<R, ArenaError> {
        let core = self.h.core;
        // SAFETY: as in `run`; the core is only read.
        match guarded(|| f(unsafe { &*core })) {
            Some(r) => Ok(r),
            None => {
                self.h.lock.poisoned.store(true, Ordering::Relaxed);
                Err(ArenaError::Poisoned)
            }
        }
    }

    #[inline(always)]
    fn run<R>(&mut self, f: impl FnOnce(&mut A) -> R) -> Result<R, ArenaError> {
        let core = self.h.core;
        // SAFETY: `core` is this arena's live allocator, reached only under
        // its lock, which this guard holds.
        match guarded(|| f(unsafe { &mut *core })) {
            Some(r) => Ok(r),
            None => {
                self.h.lock.poisoned.store(true, Ordering::Relaxed);
                Err(ArenaError::Poisoned)
            }
        }
    }

    /// A block of `size` bytes aligned to `align` from the core, its side
    /// byte set to `side` (0 for a block going straight to the program,
    /// the cached mark of its class for one going into a thread cache).
    #[inline]
    pub fn alloc(
        &mut self,
        size: usize,
        align: usize,
        side: u8,
    ) -> Result<Option<NonNull<u8>>, ArenaError> {
        let r = self.run(|core| {
            if align <= ALLOCATOR_ALIGNMENT {
                core.alloc(size)
            } else {
                core.alloc_aligned(size, align)
            }
        })?;
        match r {
            Some(p) => {
                self.h.mark_dirty(p.as_ptr() as usize, size);
                self.h
                    .side(p.as_ptr() as usize)
                    .store(side, Ordering::Relaxed);
                let l = &self.h.lock;
                bump(if side == 0 { &l.allocs } else { &l.refilled }, 1);
            }
            None => self.refuse(size),
        }
        Ok(r)
    }

    /// Fills `out`, in order, with blocks of `size` bytes (16-aligned) from
    /// the core, their side bytes set to `side` (as [`ArenaGuard::alloc`]),
    /// until it is full or the core refuses; how many it got. One call into
    /// the core's code (its [`ArenaAllocator::alloc_many`], in one
    /// `catch_unwind`) and one update of each counter for the whole batch: a
    /// refill's per-block cost is the core's, a side-byte store and a slot
    /// store.
    ///
    /// # Time complexity
    ///
    /// `out.len()` times the core's `alloc`.
    #[inline]
    pub fn alloc_into(
        &mut self,
        size: usize,
        side: u8,
        out: &[Cell<*mut u8>],
    ) -> Result<usize, ArenaError> {
        let h = self.h;
        let got = self.run(|core| {
            let mut slots = out.iter();
            core.alloc_many(size, out.len(), |p| {
                // A chunk a trim gave back is in use again: the next trim
                // must look at it.
                h.mark_dirty(p.as_ptr() as usize, size);
                // SAFETY: a block the core just carved from this arena's
                // core region, 16-aligned.
                unsafe { block_side(p.as_ptr()) }.store(side, Ordering::Relaxed);
                if let Some(slot) = slots.next() {
                    slot.set(p.as_ptr());
                }
            })
        })?;
        let l = &h.lock;
        bump(if side == 0 { &l.allocs } else { &l.refilled }, got as u64);
        if got < out.len() {
            self.refuse(size);
        }
        Ok(got)
    }

    /// Notes that the core refused a request of `size` bytes (see
    /// [`ArenaHeader::may_serve`]).
    #[cold]
    fn refuse(&self, size: usize) {
        let log2 = usize::BITS.wrapping_sub(size.saturating_sub(1).leading_zeros());
        let log2 = u8::try_from(log2).unwrap_or(NOTHING_REFUSED - 1);
        if log2 < self.h.lock.refused.load(Ordering::Relaxed) {
            self.h.lock.refused.store(log2, Ordering::Relaxed);
        }
    }

    /// Takes back a batch of blocks flushed from a thread cache, all of this
    /// arena and unused (their side bytes carry the cached mark), the block
    /// `blocks[i]` (null: skipped) of class `class_at(i)`: with `depot`,
    /// onto its class's depot while that has room (no core call), else to the core, which validates each block
    /// as [`ArenaGuard::free`] does (a rejected block changes nothing and is
    /// counted in the result). One call into the core's code (one
    /// `catch_unwind`), one update of each counter and one trim decision
    /// ([`ArenaGuard::note_freed`]) for the whole batch.
    ///
    /// Returns the number of blocks the core rejected (the caller reports
    /// them). If the core panics, the blocks not yet taken leak with the
    /// arena.
    ///
    /// # Safety
    ///
    /// Every non-null `blocks[i]` is a block of class `class_at(i)` of this
    /// arena handed out by its core, now unused (it sat in a thread cache),
    /// and appears once.
    ///
    /// # Time complexity
    ///
    /// O(1) per block onto a depot; the core's `free` per block given to
    /// it; then the trim decision.
    #[inline]
    pub unsafe fn take_back(
        &mut self,
        blocks: &[Cell<*mut u8>],
        class_at: impl Fn(usize) -> usize,
        depot: bool,
    ) -> Result<usize, ArenaError> {
        let h = self.h;
        let l = &h.lock;
        // (to the core, bytes to the core, rejected, onto depots, their bytes)
        let (freed, bytes, rejected, stashed, stashed_bytes) = self.run(|core| {
            let (mut freed, mut bytes, mut rejected) = (0u64, 0usize, 0usize);
            let (mut stashed, mut stashed_bytes) = (0u64, 0u64);
            for (i, b) in blocks.iter().enumerate() {
                let Some(p) = NonNull::new(b.get()) else {
                    continue;
                };
                let c = class_at(i);
                let size = class::class_size(c);
                if depot && let Some(d) = l.depot.get(c) {
                    let n = d.len.load(Ordering::Relaxed);
                    if (n as usize) < depot_capacity(c) {
                        // SAFETY: an unused block of at least 16 bytes, ours
                        // (caller's contract): its first word holds the link.
                        unsafe {
                            p.as_ptr()
                                .cast::<*mut u8>()
                                .write(d.head.load(Ordering::Relaxed))
                        };
                        d.head.store(p.as_ptr(), Ordering::Relaxed);
                        d.len.store(n.wrapping_add(1), Ordering::Relaxed);
                        stashed = stashed.wrapping_add(1);
                        stashed_bytes = stashed_bytes.wrapping_add(size as u64);
                        continue;
                    }
                }
                match core.free(p) {
                    Ok(()) => {
                        // SAFETY: a block of this arena (caller's contract).
                        unsafe { block_side(p.as_ptr()) }.store(0, Ordering::Relaxed);
                        freed = freed.wrapping_add(1);
                        bytes = bytes.saturating_add(size);
                    }
                    // A rejected pointer changed nothing; the caller reports it.
                    Err(BadPointer) => rejected = rejected.wrapping_add(1),
                }
            }
            (freed, bytes, rejected, stashed, stashed_bytes)
        })?;
        bump(&l.flushed, freed.wrapping_add(stashed));
        if stashed != 0 {
            bump(&l.depot_blocks, stashed);
            bump(&l.depot_bytes, stashed_bytes);
        }
        if freed != 0 {
            self.note_freed(bytes)?;
        }
        Ok(rejected)
    }

    /// Gives `p` back to the core (which validates it); on success the side
    /// byte is cleared and `bytes` (the block's size, if known; else the core
    /// is asked) are counted towards the next trim. `flush`: the block comes
    /// from a thread cache.
    pub fn free(
        &mut self,
        p: NonNull<u8>,
        bytes: Option<usize>,
        flush: bool,
    ) -> Result<Result<(), BadPointer>, ArenaError> {
        let bytes = match bytes {
            Some(b) => Some(b),
            None => self.run(|core| core.usable_size(p))?,
        };
        let r = self.free_to_core(p, flush)?;
        if r.is_ok() {
            self.note_freed(bytes.unwrap_or(0))?;
        }
        Ok(r)
    }

    /// The core's `free` of `p`; on success its side byte is cleared and the
    /// free counted (no trim).
    fn free_to_core(
        &mut self,
        p: NonNull<u8>,
        flush: bool,
    ) -> Result<Result<(), BadPointer>, ArenaError> {
        let r = self.run(|core| core.free(p))?;
        // A rejected pointer changed nothing; the caller reports it.
        if r.is_ok() {
            self.h.side(p.as_ptr() as usize).store(0, Ordering::Relaxed);
            let l = &self.h.lock;
            bump(if flush { &l.flushed } else { &l.frees }, 1);
        }
        Ok(r)
    }

    /// A block of class `c` from the class's depot (its side byte carries
    /// the cached mark, as a refill wants), or `None` if it is empty.
    ///
    /// # Time complexity
    ///
    /// O(1).
    pub fn unstash(&mut self, c: usize) -> Option<NonNull<u8>> {
        let l = &self.h.lock;
        let d = l.depot.get(c)?;
        let p = NonNull::new(d.head.load(Ordering::Relaxed))?;
        // SAFETY: depot blocks are unused blocks of this arena whose first
        // word holds the link (`take_back`).
        let next = unsafe { p.as_ptr().cast::<*mut u8>().read() };
        let n = d.len.load(Ordering::Relaxed).wrapping_sub(1);
        let ok = if next.is_null() {
            n == 0
        } else {
            n > 0
                && registry::slot_base(next as usize) == self.h.base as usize
                && (next as usize).is_multiple_of(GRANULE)
                && (next as usize).wrapping_sub(self.h.base as usize) >= CORE_OFFSET
                // SAFETY: `next` lies in this arena's core region, aligned.
                && unsafe { block_side(next) }.load(Ordering::Relaxed) == class::cached(c)
        };
        if ok {
            d.head.store(next, Ordering::Relaxed);
            d.len.store(n, Ordering::Relaxed);
            unbump(&l.depot_blocks, 1);
            unbump(&l.depot_bytes, class::class_size(c) as u64);
        } else {
            // A freed block was written into: the rest of the stack leaks.
            d.head.store(ptr::null_mut(), Ordering::Relaxed);
            let lost = u64::from(d.len.load(Ordering::Relaxed));
            d.len.store(0, Ordering::Relaxed);
            unbump(&l.depot_blocks, lost);
            unbump(
                &l.depot_bytes,
                lost.wrapping_mul(class::class_size(c) as u64),
            );
        }
        bump(&l.refilled, 1);
        Some(p)
    }

    /// Gives every depot block to the core (before a trim that gives all
    /// free pages back).
    fn drain_depot(&mut self) -> Result<(), ArenaError> {
        for c in 0..NCLASSES {
            while let Some(p) = self.unstash(c) {
                // A block the core refuses (cannot happen: it handed it out)
                // is left alone.
                let _ = self.free_to_core(p, true)?;
            }
        }
        Ok(())
    }

    /// `realloc` by the core of an uncached block (side byte 0), leaving the
    /// result's side byte 0.
    pub fn realloc(
        &mut self,
        p: NonNull<u8>,
        n: usize,
    ) -> Result<Result<NonNull<u8>, ReallocError>, ArenaError> {
        let r = self.run(|core| core.realloc(p, n))?;
        match r {
            Ok(q) => {
                self.h.mark_dirty(q.as_ptr() as usize, n);
                bump(&self.h.lock.reallocs, 1);
                self.h.side(q.as_ptr() as usize).store(0, Ordering::Relaxed);
                self.h
                    .lock
                    .refused
                    .store(NOTHING_REFUSED, Ordering::Relaxed);
            }
            Err(ReallocError::BadPointer | ReallocError::OutOfMemory) => {}
        }
        Ok(r)
    }

    /// The core's usable size of `p` (None: not a live block).
    pub fn usable_size(&mut self, p: NonNull<u8>) -> Result<Option<usize>, ArenaError> {
        self.run(|core| core.usable_size(p))
    }

    /// Blocks the core has handed out and not got back (to the program or
    /// to thread caches), from the counters: O(1).
    fn live_blocks(&self) -> u64 {
        let l = &self.h.lock;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        (load(&l.allocs).wrapping_add(load(&l.refilled)))
            .wrapping_sub(load(&l.frees).wrapping_add(load(&l.flushed)))
    }

    /// Live blocks and bytes held, from the core's statistics (the depots'
    /// blocks, free for the shim, not counted).
    pub fn live(&mut self) -> Result<(usize, usize), ArenaError> {
        let l = &self.h.lock;
        let blocks = l.depot_blocks.load(Ordering::Relaxed) as usize;
        let bytes = l.depot_bytes.load(Ordering::Relaxed) as usize;
        self.run(|core| {
            let s = core.stats();
            (
                s.live_blocks.saturating_sub(blocks),
                s.bytes_reserved.saturating_sub(bytes),
            )
        })
    }

    /// Counts `bytes` freed into the core, and trims the arena when the
    /// hysteresis thresholds are passed.
    pub fn note_freed(&mut self, bytes: usize) -> Result<(), ArenaError> {
        let l = &self.h.lock;
        if l.refused.load(Ordering::Relaxed) != NOTHING_REFUSED {
            l.refused.store(NOTHING_REFUSED, Ordering::Relaxed);
        }
        let dirty = l.dirty.load(Ordering::Relaxed).saturating_add(bytes);
        l.dirty.store(dirty, Ordering::Relaxed);
        if dirty < EMPTY_TRIM {
            return Ok(());
        }
        let live = self.live_blocks();
        if live == 0 {
            // Nothing live (the depots' blocks included, see `trim`): all
            // free pages go, at once the first time; an arena emptied and
            // given back less than NEARLY_EMPTY_INTERVAL_MS ago, and filled
            // again since, waits for that clock (`lua` empties its older
            // arenas at the end of every round and fills them again in the
            // next).
            let now = sys::now_ms();
            let last = l.last_empty_ms.load(Ordering::Relaxed);
            if last == 0 || now.saturating_sub(last) >= NEARLY_EMPTY_INTERVAL_MS {
                l.last_empty_ms.store(now.max(1), Ordering::Relaxed);
                self.trim(0)?;
            } else {
                l.dirty.store(EMPTY_TRIM / 2, Ordering::Relaxed);
            }
            return Ok(());
        }
        if live <= NEARLY_EMPTY_BLOCKS {
            // Nothing live but what thread caches may hold: all free pages
            // go too, at most every NEARLY_EMPTY_INTERVAL_MS (an arena hovering near
            // empty, as two threads of `mixed` make theirs, would otherwise
            // be trimmed, and faulted in again, every 256 KiB freed). Its
            // own clock: a periodic trim earlier in the same wave of frees
            // must not hold back this one, which may be the arena's last.
            let now = sys::now_ms();
            if now.saturating_sub(l.last_nearly_empty_ms.load(Ordering::Relaxed))
                >= NEARLY_EMPTY_INTERVAL_MS
            {
                l.last_nearly_empty_ms.store(now, Ordering::Relaxed);
                self.trim(0)?;
                return Ok(());
            }
            if dirty < TRIM_STEP {
                // Too soon: look at the clock again after another half of
                // EMPTY_TRIM freed, not on every flush.
                l.dirty.store(EMPTY_TRIM / 2, Ordering::Relaxed);
                return Ok(());
            }
        }
        if dirty >= TRIM_STEP {
            let now = sys::now_ms();
            if now.saturating_sub(l.last_trim_ms.load(Ordering::Relaxed)) >= TRIM_INTERVAL_MS {
                l.last_trim_ms.store(now, Ordering::Relaxed);
                self.trim(TRIM_MIN_RUN)?;
            } else {
                // Too soon: look at the clock again after another half step
                // of frees, not on every one.
                l.dirty.store(TRIM_STEP / 2, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// True if chunk `c` is marked clean.
    fn is_clean(&self, c: usize) -> bool {
        self.h
            .lock
            .clean
            .get(c / 64)
            .is_some_and(|w| w.load(Ordering::Relaxed) & (1u64 << (c % 64)) != 0)
    }

    fn set_clean(&self, c: usize) {
        if let Some(w) = self.h.lock.clean.get(c / 64) {
            w.store(
                w.load(Ordering::Relaxed) | 1u64 << (c % 64),
                Ordering::Relaxed,
            );
        }
    }

    /// Discards `[addr, addr + len)` (whole pages of free memory) and the
    /// side-table pages wholly under it; the bytes discarded.
    fn discard(&self, addr: usize, len: usize) -> usize {
        let h = self.h;
        let p = h.base.wrapping_add(addr.wrapping_sub(h.base as usize));
        // SAFETY: free pages of this arena's core that the core does not read
        // before writing (its `discardable` contract); the lock is held, so no
        // block is carved from them meanwhile.
        if !unsafe { sys::discard(p, len) } {
            return 0;
        }
        // Their side bytes are all zero (free memory): the side-table pages
        // lying wholly under the run read back as zero after a discard.
        let side = h.side(addr) as *const AtomicU8 as usize;
        if let Some((s, l)) = whole_pages(side, len / GRANULE, PAGE) {
            let sp = h.base.wrapping_add(s.wrapping_sub(h.base as usize));
            // SAFETY: side-table pages of this arena covering only free
            // memory (zero bytes); only the lock's holder writes side bytes
            // of free memory.
            unsafe { sys::discard(sp, l) };
        }
        len
    }

    /// Gives the core's free runs of at least `min_run` bytes back to the
    /// kernel, with the side-table pages that cover them, after the core
    /// has turned what it keeps aside into free runs
    /// ([`ArenaAllocator::release_cached`]). `min_run == 0`
    /// (an empty arena, `malloc_trim`): the depots' blocks go to the core
    /// first, then every whole free page goes, even of chunks marked clean. Otherwise only whole [`CHUNK`]s not marked
    /// clean (so a periodic trim does not `madvise` again what an earlier
    /// one gave back). Returns the bytes given back.
    ///
    /// # Time complexity
    ///
    /// The core's `discardable` walk, and one `madvise` per run given back.
    pub fn trim(&mut self, min_run: usize) -> Result<usize, ArenaError> {
        if min_run == 0 {
            self.drain_depot()?;
        }
        // What the core keeps aside for one size (McKusick-Karels' empty
        // bucket runs) becomes free runs first, which the walk then reports.
        self.run(|core| core.release_cached())?;
        let base = self.h.base as usize;
        let mut released = 0usize;
        let this = &*self;
        // The core only reads its free lists' headers and descriptors during
        // the walk, never the pages it reports: they can be discarded from
        // inside the callback.
        this.run_ref(|core| {
            core.discardable(PAGE, min_run, &mut |p, len| {
                let a = p.as_ptr() as usize;
                let chunks = whole_pages(a.wrapping_sub(base), len, CHUNK);
                if min_run == 0 {
                    released = released.saturating_add(this.discard(a, len));
                } else if let Some((cs, cl)) = chunks {
                    // Whole chunks not yet clean, in maximal runs.
                    let (mut c, end) = (cs / CHUNK, cs.wrapping_add(cl) / CHUNK);
                    while c < end {
                        while c < end && this.is_clean(c) {
                            c = c.wrapping_add(1);
                        }
                        let start = c;
                        while c < end && !this.is_clean(c) {
                            c = c.wrapping_add(1);
                        }
                        if c > start {
                            let n = this.discard(
                                base.wrapping_add(start.wrapping_mul(CHUNK)),
                                c.wrapping_sub(start).wrapping_mul(CHUNK),
                            );
                            released = released.saturating_add(n);
                        }
                    }
                }
                if let Some((cs, cl)) = chunks {
                    for c in cs / CHUNK..cs.wrapping_add(cl) / CHUNK {
                        this.set_clean(c);
                    }
                }
            });
        })?;
        let l = &self.h.lock;
        l.dirty.store(0, Ordering::Relaxed);
        bump(&l.trims, 1);
        bump(&l.released, released as u64);
        Ok(released)
    }

    /// Frees the blocks deferred by re-entrant calls.
    fn drain_deferred(&mut self) {
        let mut p = self.h.deferred.swap(ptr::null_mut(), Ordering::Acquire);
        while let Some(b) = NonNull::new(p) {
            // SAFETY: deferred blocks are live blocks of this arena whose
            // first word holds the next link (`defer_free`).
            p = unsafe { b.as_ptr().cast::<*mut u8>().read() };
            if self.free(b, None, false).is_err() {
                return; // poisoned: the rest leak with the arena
            }
        }
    }
}

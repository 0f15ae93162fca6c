//! [`Shim`]: the whole allocator behind the C functions, generic over the
//! arena allocator core.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::marker::PhantomData;
use core::mem::size_of;
use core::panic::AssertUnwindSafe;
use core::ptr::{self, NonNull};
use core::sync::atomic::{
    AtomicBool, AtomicI32, AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Ordering,
};

use plugin_abi::{ALLOCATOR_ALIGNMENT, ArenaAllocator, ReallocError};

use crate::lock::{Mutex, Reentrant};
use crate::registry::{self, ARENA};
use crate::sys::{self, PAGE};

/// Requests above this many bytes get their own mapping instead of a block
/// of an arena (glibc's `M_MMAP_THRESHOLD` starts at 128 KiB and adapts up
/// to 32 MiB; a fixed 1 MiB keeps the cores serving everything up to what a
/// buddy arena can hand out 64 times).
pub const LARGE_THRESHOLD: usize = 1 << 20;

/// Alignments above this go to their own mapping (the McKusick-Karels core
/// serves up to its page size reliably; an arena is no place for a request
/// that must sit on a 64 KiB boundary).
pub const MAX_CORE_ALIGN: usize = PAGE;

/// At most this many arenas are filled at the same time (lock stripes).
pub const MAX_STRIPES: usize = 8;

const ARENA_MAGIC: u64 = u64::from_le_bytes(*b"alclArna");
const LARGE_MAGIC: u64 = u64::from_le_bytes(*b"alclLrge");

/// What sits at the start of every arena and of every large block's mapping.
///
/// The fields after `magic` and `owner` are those of one kind: an arena's
/// lock and core, or a large block's mapping length and user offset.
#[repr(C, align(64))]
struct Header<A> {
    magic: u64,
    /// Address of the [`Shim`] that made it (two shims in one process, as in
    /// tests, share the registry).
    owner: usize,
    // ---- arena ----
    lock: Mutex,
    core: *mut A,
    /// The core panicked: it is never called again (its blocks leak).
    poisoned: AtomicBool,
    /// Locked by the `pthread_atfork` prepare handler.
    fork_held: AtomicBool,
    next_in_stripe: *mut Header<A>,
    next_all: *mut Header<A>,
    /// Calls served, counted under the lock (plain load + store).
    allocs: AtomicU64,
    frees: AtomicU64,
    reallocs: AtomicU64,
    rejected: AtomicU64,
    // ---- large block ----
    map_len: AtomicUsize,
    /// From the mapping's start to the block: `max(PAGE, align)`.
    offset: usize,
}

/// Bytes before an arena's core region (the header, rounded to 64).
const fn header_bytes<A>() -> usize {
    size_of::<Header<A>>().next_multiple_of(64)
}

impl<A> Header<A> {
    fn bump(counter: &AtomicU64) {
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }
}

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

/// Counters of a shim, summed over its arenas (see [`Shim::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShimStats {
    /// Arenas mapped.
    pub arenas: u64,
    /// Lock stripes (arenas filled at the same time).
    pub stripes: u64,
    /// Blocks allocated from arenas.
    pub arena_allocs: u64,
    /// Blocks freed into arenas.
    pub arena_frees: u64,
    /// Reallocations done by a core (in place or moved inside the arena).
    pub arena_reallocs: u64,
    /// Large blocks mapped on their own.
    pub large_allocs: u64,
    /// Large blocks unmapped.
    pub large_frees: u64,
    /// Large blocks grown or shrunk with `mremap`/`munmap` of their tail.
    pub large_remaps: u64,
    /// `free`/`realloc`/`malloc_usable_size` of a pointer that is not in
    /// any arena or large mapping of this shim (left alone).
    pub foreign: u64,
    /// Pointers inside our memory that are not a live block (rejected).
    pub rejected: u64,
    /// Calls made by a thread that already held the arena lock they needed
    /// (served by a mapping of their own, or left alone for a free).
    pub reentrant: u64,
    /// Core panics caught (the arena is then retired).
    pub core_panics: u64,
    /// Allocations answered NULL/ENOMEM.
    pub failed: u64,
    /// Bytes the cores hold for live blocks (`bytes_reserved`), now.
    pub arena_live_bytes: u64,
}

#[derive(Default)]
struct Counters {
    large_allocs: AtomicU64,
    large_frees: AtomicU64,
    large_remaps: AtomicU64,
    foreign: AtomicU64,
    rejected: AtomicU64,
    reentrant: AtomicU64,
    core_panics: AtomicU64,
    failed: AtomicU64,
    arenas: AtomicU64,
}

impl Counters {
    const fn new() -> Self {
        Counters {
            large_allocs: AtomicU64::new(0),
            large_frees: AtomicU64::new(0),
            large_remaps: AtomicU64::new(0),
            foreign: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            reentrant: AtomicU64::new(0),
            core_panics: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            arenas: AtomicU64::new(0),
        }
    }
}

fn count(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Where a pointer lives.
enum Block<'a, A> {
    Arena(&'a Header<A>),
    Large(&'a Header<A>),
    Foreign,
}

/// Why the arenas could not serve a request.
enum NoArena {
    /// The thread holds the lock it would need (re-entered).
    Reentrant,
    /// No arena could be mapped, or a fresh one refused the request.
    Refused,
    /// The core panicked on this request: its arena is retired, and the
    /// request is not tried on another core.
    Panicked,
}

impl From<Reentrant> for NoArena {
    fn from(_: Reentrant) -> Self {
        NoArena::Reentrant
    }
}

/// Runs `f`, catching a panic (which then allocates its payload through this
/// very shim: the caller holds an arena lock, so those calls are served by a
/// mapping of their own — see `lock.rs`). `None` if `f` panicked.
#[inline]
fn guarded<R>(f: impl FnOnce() -> R) -> Option<R> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).ok()
}

const INIT_NOT: u8 = 0;
const INIT_RUNNING: u8 = 1;
const INIT_DONE: u8 = 2;

/// A `malloc` implementation over arenas of core `A`.
///
/// - **Arenas**: [`ARENA`] (64 MiB) mappings aligned to their size, each an
///   `A` over everything after its header, created on demand (pages are
///   touched only as the core uses them). A pointer's arena is its address
///   rounded down to 64 MiB, checked against [`registry`]: O(1), and a
///   foreign pointer is never dereferenced.
/// - **Large blocks** (> [`LARGE_THRESHOLD`], or aligned beyond
///   [`MAX_CORE_ALIGN`]) get their own mapping, also 64 MiB-aligned with a
///   header page, grown and shrunk with `mremap`.
/// - **Threads**: one lock per arena. Arenas are grouped in stripes (at most
///   [`MAX_STRIPES`], default `min(8, 2 × CPUs)`, `ALLOCLAB_SHIM_ARENAS=N`
///   overrides, 1 = one global lock); a thread allocates from the stripe its
///   `pthread_self()` hashes to (no TLS), newest arena first. A free goes to
///   the block's own arena, whichever thread calls it.
/// - **fork**: `pthread_atfork` handlers take every lock before `fork` and
///   release them in parent and child.
///
/// All state is static or inside the mappings; nothing here allocates with
/// a libc or Rust allocator, and nothing panics (a core's panic is caught
/// and retires its arena).
pub struct Shim<A> {
    name: &'static str,
    flags: u32,
    fork: ForkHandlers,
    init: AtomicU8,
    /// Where the statistics line goes at exit (-1: nowhere), opened at
    /// start-up: programs such as coreutils close stderr in an `atexit`
    /// handler, before library destructors run.
    stats_fd: AtomicI32,
    nstripes: AtomicUsize,
    stripes: [AtomicPtr<Header<A>>; MAX_STRIPES],
    all: AtomicPtr<Header<A>>,
    /// Taken to add an arena (and by the fork handlers).
    grow: Mutex,
    grow_fork_held: AtomicBool,
    counters: Counters,
    _core: PhantomData<UnsafeCell<A>>,
}

// SAFETY: the shared state is atomics, the `grow` mutex, and arenas whose
// cores are only touched under their own mutex.
unsafe impl<A> Sync for Shim<A> {}
// SAFETY: as for `Sync`.
unsafe impl<A> Send for Shim<A> {}

impl<A: ArenaAllocator> Shim<A> {
    /// A shim with no arena yet. `name` is printed by the statistics line;
    /// `flags` are the core's creation flags (`ALLOCATOR_FLAG_*`).
    pub const fn new(name: &'static str, flags: u32, fork: ForkHandlers) -> Self {
        Shim {
            name,
            flags,
            fork,
            init: AtomicU8::new(INIT_NOT),
            stats_fd: AtomicI32::new(-1),
            nstripes: AtomicUsize::new(0),
            stripes: [const { AtomicPtr::new(ptr::null_mut()) }; MAX_STRIPES],
            all: AtomicPtr::new(ptr::null_mut()),
            grow: Mutex::new(),
            grow_fork_held: AtomicBool::new(false),
            counters: Counters::new(),
            _core: PhantomData,
        }
    }

    /// The allocator name given to [`Shim::new`].
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// One-time set-up: checks the page size (4 KiB, or the process is
    /// aborted with a message), reads the options, registers the fork
    /// handlers. Called by
    /// the library constructor and before the first arena is made;
    /// re-entrant (a call made while it runs, on any thread, returns at
    /// once, and allocation works meanwhile).
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
            sys::write_all(
                2,
                b"alloclab-shim: the kernel's page size is not 4 KiB; aborting\n",
            );
            // SAFETY: abort has no preconditions.
            unsafe { libc::abort() };
        }
        let n = sys::getenv(c"ALLOCLAB_SHIM_ARENAS")
            .and_then(|v| sys::parse_small(v.to_bytes()))
            .unwrap_or_else(|| sys::cpus().saturating_mul(2));
        self.nstripes
            .store(n.clamp(1, MAX_STRIPES), Ordering::Relaxed);
        self.stats_fd.store(open_stats_fd(), Ordering::Relaxed);
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

    #[inline]
    fn me(&self) -> usize {
        ptr::from_ref(self) as usize
    }

    /// The stripe of the calling thread: a multiplicative hash of its
    /// `pthread_t`. O(1), no system call.
    #[inline]
    fn stripe(&self) -> &AtomicPtr<Header<A>> {
        let mut n = self.nstripes.load(Ordering::Relaxed) as u64;
        if n == 0 {
            // Before the library constructor (ld.so and libc allocate first).
            self.init();
            n = self.nstripes.load(Ordering::Relaxed) as u64;
        }
        let h = (sys::thread_id() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let i = ((h >> 32).wrapping_mul(n) >> 32) as usize;
        self.stripes.get(i).unwrap_or(&self.stripes[0])
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
    /// That of the core's `alloc` in the thread's newest arena; when it is
    /// full, one attempt per older arena of the stripe, then one new arena
    /// (O(core metadata) to create). Large blocks: an `mmap`.
    pub fn alloc(&self, size: usize, align: usize) -> Option<(NonNull<u8>, bool)> {
        if size <= LARGE_THRESHOLD && align <= MAX_CORE_ALIGN {
            match self.alloc_in_arenas(size, align) {
                Ok(p) => return Some((p, false)),
                Err(NoArena::Reentrant) => count(&self.counters.reentrant),
                Err(NoArena::Refused | NoArena::Panicked) => {}
            }
        }
        let p = self.alloc_large(size, align);
        if p.is_none() {
            count(&self.counters.failed);
            sys::set_errno(libc::ENOMEM);
        }
        p.map(|p| (p, true))
    }

    /// `Ok(Some(p))` served, `Ok(None)` refused or retired.
    fn arena_alloc(
        h: &Header<A>,
        size: usize,
        align: usize,
    ) -> Result<Option<NonNull<u8>>, NoArena> {
        let _g = h.lock.lock()?;
        if h.poisoned.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let core = h.core;
        let r = guarded(|| {
            // SAFETY: `core` is this arena's live allocator, only reached
            // under `h.lock`, which we hold.
            let core = unsafe { &mut *core };
            if align <= ALLOCATOR_ALIGNMENT {
                core.alloc(size)
            } else {
                core.alloc_aligned(size, align)
            }
        });
        match r {
            Some(p) => {
                if p.is_some() {
                    Header::<A>::bump(&h.allocs);
                }
                Ok(p)
            }
            None => {
                h.poisoned.store(true, Ordering::Relaxed);
                Err(NoArena::Panicked)
            }
        }
    }

    fn alloc_in_arenas(&self, size: usize, align: usize) -> Result<NonNull<u8>, NoArena> {
        let stripe = self.stripe();
        let mut tried: *mut Header<A> = ptr::null_mut();
        loop {
            let head = stripe.load(Ordering::Acquire);
            let mut h = head;
            // Newest first, down to the arenas tried on a previous round.
            while !h.is_null() && h != tried {
                // SAFETY: arenas in a stripe list are never unmapped and
                // their headers are written before they are published.
                let hdr = unsafe { &*h };
                if let Some(p) = Self::arena_alloc(hdr, size, align)? {
                    return Ok(p);
                }
                h = hdr.next_in_stripe;
            }
            tried = head;
            let grow = self.grow.lock()?;
            if stripe.load(Ordering::Acquire) != head {
                drop(grow); // another thread added one: try it first
                continue;
            }
            let new = self.new_arena(stripe).ok_or(NoArena::Refused)?;
            drop(grow);
            // SAFETY: just published by `new_arena`.
            let hdr = unsafe { &*new };
            return Self::arena_alloc(hdr, size, align)?.ok_or(NoArena::Refused);
        }
    }

    /// Maps and publishes a new arena at the head of `stripe` (caller holds
    /// `grow`).
    fn new_arena(&self, stripe: &AtomicPtr<Header<A>>) -> Option<*mut Header<A>> {
        let base = sys::map_aligned(ARENA, ARENA, true)?;
        if !registry::in_range(base.as_ptr() as usize) {
            // SAFETY: the mapping is ours and unused.
            unsafe { sys::unmap(base.as_ptr(), ARENA) };
            return None;
        }
        let hb = header_bytes::<A>();
        // SAFETY: the mapping is ARENA bytes; the region after the header is
        // ours alone for ever (arenas are never unmapped).
        let created = guarded(|| unsafe {
            A::create_in(base.as_ptr().add(hb), ARENA.saturating_sub(hb), self.flags)
        });
        let Some(Some(core)) = created else {
            if created.is_none() {
                count(&self.counters.core_panics);
            }
            // SAFETY: the mapping is ours and unused.
            unsafe { sys::unmap(base.as_ptr(), ARENA) };
            return None;
        };
        let h = base.as_ptr().cast::<Header<A>>();
        // SAFETY: the first `hb` bytes of the mapping are the header's, and
        // the mapping is aligned for it.
        unsafe {
            h.write(Header {
                magic: ARENA_MAGIC,
                owner: self.me(),
                lock: Mutex::new(),
                core: core.as_ptr(),
                poisoned: AtomicBool::new(false),
                fork_held: AtomicBool::new(false),
                next_in_stripe: stripe.load(Ordering::Relaxed),
                next_all: self.all.load(Ordering::Relaxed),
                allocs: AtomicU64::new(0),
                frees: AtomicU64::new(0),
                reallocs: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
                map_len: AtomicUsize::new(ARENA),
                offset: hb,
            });
        }
        registry::register(base.as_ptr() as usize);
        self.all.store(h, Ordering::Release);
        stripe.store(h, Ordering::Release);
        count(&self.counters.arenas);
        Some(h)
    }

    /// A block in a mapping of its own: the header page (or `align` bytes),
    /// then the block.
    fn alloc_large(&self, size: usize, align: usize) -> Option<NonNull<u8>> {
        if align >= ARENA {
            return None;
        }
        let offset = align.max(PAGE);
        let len = sys::round_up(offset.checked_add(size)?, PAGE)?;
        if len > isize::MAX as usize {
            return None;
        }
        let base = sys::map_aligned(len, ARENA, false)?;
        if !registry::in_range(base.as_ptr() as usize) {
            // SAFETY: ours, published nowhere.
            unsafe { sys::unmap(base.as_ptr(), len) };
            return None;
        }
        let h = base.as_ptr().cast::<Header<A>>();
        // SAFETY: the mapping is at least one page, aligned for the header.
        unsafe {
            h.write(Header {
                magic: LARGE_MAGIC,
                owner: self.me(),
                lock: Mutex::new(),
                core: ptr::null_mut(),
                poisoned: AtomicBool::new(false),
                fork_held: AtomicBool::new(false),
                next_in_stripe: ptr::null_mut(),
                next_all: ptr::null_mut(),
                allocs: AtomicU64::new(0),
                frees: AtomicU64::new(0),
                reallocs: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
                map_len: AtomicUsize::new(len),
                offset,
            });
        }
        registry::register(base.as_ptr() as usize);
        count(&self.counters.large_allocs);
        // SAFETY: `offset < len`.
        NonNull::new(unsafe { base.as_ptr().add(offset) })
    }

    // ------------------------------------------------------------------
    // lookup, free, realloc, usable size
    // ------------------------------------------------------------------

    /// What `p` is: O(1), reads only the registry and, if `p`'s slot is
    /// registered, that slot's header.
    #[inline]
    fn lookup(&self, p: usize) -> Block<'_, A> {
        if !registry::contains(p) {
            return Block::Foreign;
        }
        // SAFETY: a registered slot starts with a header that stays mapped
        // while registered (arenas for ever, large blocks until their free,
        // which unregisters first).
        let h = unsafe { &*(registry::slot_base(p) as *const Header<A>) };
        if h.owner != self.me() {
            return Block::Foreign;
        }
        match h.magic {
            ARENA_MAGIC => Block::Arena(h),
            LARGE_MAGIC => Block::Large(h),
            _ => Block::Foreign,
        }
    }

    /// The start of a large block's mapping and whether `p` is its block.
    fn large_is(h: &Header<A>, p: usize) -> bool {
        (ptr::from_ref(h) as usize).wrapping_add(h.offset) == p
    }

    /// Gives back `p` (NULL: nothing). A pointer that is not a live block of
    /// this shim is counted and left alone (glibc would abort).
    ///
    /// # Time complexity
    ///
    /// That of the core's `free`, or one `munmap`.
    ///
    /// # Safety
    ///
    /// No other thread frees or reallocates `p` at the same time (a double
    /// free racing with the first free could find a large block's header
    /// being unmapped).
    pub unsafe fn free(&self, p: *mut c_void) {
        let Some(p) = NonNull::new(p.cast::<u8>()) else {
            return;
        };
        match self.lookup(p.as_ptr() as usize) {
            Block::Foreign => count(&self.counters.foreign),
            Block::Arena(h) => self.arena_free(h, p),
            Block::Large(h) => self.large_free(h, p),
        }
    }

    fn arena_free(&self, h: &Header<A>, p: NonNull<u8>) {
        let Ok(_g) = h.lock.lock() else {
            count(&self.counters.reentrant); // left allocated
            return;
        };
        if h.poisoned.load(Ordering::Relaxed) {
            return;
        }
        let core = h.core;
        // SAFETY: as in `arena_alloc`.
        match guarded(|| unsafe { &mut *core }.free(p)) {
            Some(Ok(())) => Header::<A>::bump(&h.frees),
            Some(Err(_)) => Header::<A>::bump(&h.rejected),
            None => h.poisoned.store(true, Ordering::Relaxed),
        }
    }

    fn large_free(&self, h: &Header<A>, p: NonNull<u8>) {
        if !Self::large_is(h, p.as_ptr() as usize) {
            count(&self.counters.rejected);
            return;
        }
        let base = ptr::from_ref(h) as usize;
        let len = h.map_len.load(Ordering::Relaxed);
        registry::unregister(base);
        // SAFETY: the whole mapping is this block's; it is now unreachable.
        unsafe { sys::unmap(base as *mut u8, len) };
        count(&self.counters.large_frees);
    }

    /// The usable size of `p` (0 for NULL or a pointer that is not a live block).
    ///
    /// # Safety
    ///
    /// As for [`Shim::free`].
    pub unsafe fn usable_size(&self, p: *const c_void) -> usize {
        let Some(p) = NonNull::new(p.cast_mut().cast::<u8>()) else {
            return 0;
        };
        match self.lookup(p.as_ptr() as usize) {
            Block::Foreign => {
                count(&self.counters.foreign);
                0
            }
            Block::Arena(h) => Self::arena_usable(h, p).ok().flatten().unwrap_or(0),
            Block::Large(h) if Self::large_is(h, p.as_ptr() as usize) => {
                h.map_len.load(Ordering::Relaxed).saturating_sub(h.offset)
            }
            Block::Large(_) => 0,
        }
    }

    fn arena_usable(h: &Header<A>, p: NonNull<u8>) -> Result<Option<usize>, Reentrant> {
        let _g = h.lock.lock()?;
        if h.poisoned.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let core = h.core;
        // SAFETY: as in `arena_alloc`.
        Ok(guarded(|| unsafe { &*core }.usable_size(p)).flatten())
    }

    /// `realloc` with glibc's rules: NULL → `malloc(n)`; `n == 0` → `free`
    /// and NULL; on failure NULL, errno `ENOMEM`, `p` untouched.
    ///
    /// # Time complexity
    ///
    /// The core's `realloc` when it can answer; otherwise an allocation, a
    /// copy of the old block and a free. Large blocks: `mremap` (no copy).
    ///
    /// # Safety
    ///
    /// As for [`Shim::free`].
    pub unsafe fn realloc(&self, p: *mut c_void, n: usize) -> *mut c_void {
        let Some(old) = NonNull::new(p.cast::<u8>()) else {
            return self.malloc(n);
        };
        if n == 0 {
            // SAFETY: caller's contract.
            unsafe { self.free(p) };
            return ptr::null_mut();
        }
        let r = match self.lookup(old.as_ptr() as usize) {
            Block::Foreign => {
                count(&self.counters.foreign);
                None
            }
            Block::Arena(h) => self.arena_realloc(h, old, n),
            Block::Large(h) => self.large_realloc(h, old, n),
        };
        match r {
            Some(q) => q.as_ptr().cast(),
            None => {
                sys::set_errno(libc::ENOMEM);
                ptr::null_mut()
            }
        }
    }

    fn arena_realloc(&self, h: &Header<A>, p: NonNull<u8>, n: usize) -> Option<NonNull<u8>> {
        let old_size = {
            let Ok(_g) = h.lock.lock() else {
                count(&self.counters.reentrant);
                return None;
            };
            if h.poisoned.load(Ordering::Relaxed) {
                return None;
            }
            let core = h.core;
            // SAFETY: as in `arena_alloc`.
            let core = || unsafe { &mut *core };
            if n <= LARGE_THRESHOLD {
                match guarded(|| core().realloc(p, n)) {
                    Some(Ok(q)) => {
                        Header::<A>::bump(&h.reallocs);
                        return Some(q);
                    }
                    Some(Err(ReallocError::BadPointer)) => {
                        Header::<A>::bump(&h.rejected);
                        return None;
                    }
                    Some(Err(ReallocError::OutOfMemory)) => {}
                    None => {
                        h.poisoned.store(true, Ordering::Relaxed);
                        return None;
                    }
                }
            }
            match guarded(|| core().usable_size(p)) {
                Some(Some(s)) => s,
                Some(None) => {
                    Header::<A>::bump(&h.rejected);
                    return None;
                }
                None => {
                    h.poisoned.store(true, Ordering::Relaxed);
                    return None;
                }
            }
        };
        // Elsewhere: another arena, a new one, or a mapping of its own.
        let (q, _) = self.alloc(n, 1)?;
        // SAFETY: `p` is a live block of `old_size` bytes (it is only freed
        // below), `q` a new one of at least `n`; distinct blocks.
        unsafe { ptr::copy_nonoverlapping(p.as_ptr(), q.as_ptr(), old_size.min(n)) };
        self.arena_free(h, p);
        Some(q)
    }

    fn large_realloc(&self, h: &Header<A>, p: NonNull<u8>, n: usize) -> Option<NonNull<u8>> {
        if !Self::large_is(h, p.as_ptr() as usize) {
            count(&self.counters.rejected);
            return None;
        }
        let base = ptr::from_ref(h) as usize as *mut u8;
        let offset = h.offset;
        let old_len = h.map_len.load(Ordering::Relaxed);
        let new_len = sys::round_up(offset.checked_add(n)?, PAGE)?;
        if new_len > isize::MAX as usize {
            return None;
        }
        if new_len == old_len {
            return Some(p);
        }
        if new_len < old_len {
            // SAFETY: the tail pages are the block's and beyond `n`.
            unsafe { sys::unmap(base.wrapping_add(new_len), old_len.wrapping_sub(new_len)) };
            h.map_len.store(new_len, Ordering::Relaxed);
            count(&self.counters.large_remaps);
            return Some(p);
        }
        // SAFETY: the mapping `[base, base + old_len)` is this block's.
        if unsafe { sys::remap_in_place(base, old_len, new_len) } {
            h.map_len.store(new_len, Ordering::Relaxed);
            count(&self.counters.large_remaps);
            return Some(p);
        }
        // Move the pages (header included) to a new 64 MiB-aligned place.
        let dst = sys::map_aligned(new_len, ARENA, false)?;
        if registry::in_range(dst.as_ptr() as usize) {
            registry::unregister(base as usize);
            // SAFETY: the old mapping is this block's; `dst` is a fresh
            // mapping of `new_len` bytes that nothing uses; they are distinct.
            if unsafe { sys::remap_to(base, old_len, new_len, dst.as_ptr()) } {
                let nh = dst.as_ptr().cast::<Header<A>>();
                // SAFETY: the header moved with its page to `dst`.
                unsafe { (*nh).map_len.store(new_len, Ordering::Relaxed) };
                registry::register(dst.as_ptr() as usize);
                count(&self.counters.large_remaps);
                // SAFETY: `offset < new_len`.
                return NonNull::new(unsafe { dst.as_ptr().add(offset) });
            }
            registry::register(base as usize);
        }
        // SAFETY: `dst` is ours and unused.
        unsafe { sys::unmap(dst.as_ptr(), new_len) };
        // mremap refused: copy.
        let (q, _) = self.alloc(n, 1)?;
        // SAFETY: distinct live blocks; the old one holds `old_len - offset`
        // bytes.
        unsafe {
            ptr::copy_nonoverlapping(
                p.as_ptr(),
                q.as_ptr(),
                old_len.saturating_sub(offset).min(n),
            )
        };
        self.large_free(h, p);
        Some(q)
    }

    // ------------------------------------------------------------------
    // the C functions
    // ------------------------------------------------------------------

    /// `malloc(n)`: a 16-byte aligned block; `malloc(0)` is a unique
    /// freeable pointer; NULL and `ENOMEM` when out of memory or `n` exceeds
    /// `PTRDIFF_MAX`.
    pub fn malloc(&self, n: usize) -> *mut c_void {
        self.alloc(n, 1)
            .map_or(ptr::null_mut(), |(p, _)| p.as_ptr().cast())
    }

    /// `calloc(n, m)`: zeroed; NULL and `ENOMEM` if `n * m` overflows.
    pub fn calloc(&self, n: usize, m: usize) -> *mut c_void {
        let Some(total) = n.checked_mul(m) else {
            count(&self.counters.failed);
            sys::set_errno(libc::ENOMEM);
            return ptr::null_mut();
        };
        match self.alloc(total, 1) {
            Some((p, zero)) => {
                if !zero {
                    // SAFETY: the block holds at least `total` bytes.
                    unsafe { ptr::write_bytes(p.as_ptr(), 0, total) };
                }
                p.as_ptr().cast()
            }
            None => ptr::null_mut(),
        }
    }

    /// `reallocarray(p, n, m)`: `realloc(p, n * m)`, or NULL and `ENOMEM`
    /// (with `p` untouched) if the product overflows.
    ///
    /// # Safety
    ///
    /// As for [`Shim::free`].
    pub unsafe fn reallocarray(&self, p: *mut c_void, n: usize, m: usize) -> *mut c_void {
        match n.checked_mul(m) {
            // SAFETY: caller's contract.
            Some(total) => unsafe { self.realloc(p, total) },
            None => {
                sys::set_errno(libc::ENOMEM);
                ptr::null_mut()
            }
        }
    }

    /// glibc's `memalign(align, n)`: an alignment that is not a power of two
    /// is rounded up to one; above `SIZE_MAX / 2 + 1`, NULL and `EINVAL`.
    pub fn memalign(&self, align: usize, n: usize) -> *mut c_void {
        let Some(align) = align.checked_next_power_of_two() else {
            sys::set_errno(libc::EINVAL);
            return ptr::null_mut();
        };
        self.alloc(n, align)
            .map_or(ptr::null_mut(), |(p, _)| p.as_ptr().cast())
    }

    /// `aligned_alloc(align, n)` (C17 DR 460 and glibc ≥ 2.38): `align` must
    /// be a power of two, else NULL and `EINVAL`. (glibc 2.36 treated it as
    /// `memalign` and rounded the alignment up.)
    pub fn aligned_alloc(&self, align: usize, n: usize) -> *mut c_void {
        if !align.is_power_of_two() {
            sys::set_errno(libc::EINVAL);
            return ptr::null_mut();
        }
        self.memalign(align, n)
    }

    /// `posix_memalign(out, align, n)`: `EINVAL` unless `align` is a power
    /// of two multiple of `sizeof(void *)`, `ENOMEM` when out of memory; on
    /// either error `*out` is untouched.
    ///
    /// # Safety
    ///
    /// `out` is valid for a pointer write.
    pub unsafe fn posix_memalign(&self, out: *mut *mut c_void, align: usize, n: usize) -> i32 {
        if !align.is_power_of_two() || align < size_of::<*mut c_void>() {
            return libc::EINVAL;
        }
        match self.alloc(n, align) {
            Some((p, _)) => {
                // SAFETY: caller's contract.
                unsafe { out.write(p.as_ptr().cast()) };
                0
            }
            None => libc::ENOMEM,
        }
    }

    /// `valloc(n)`: page-aligned.
    pub fn valloc(&self, n: usize) -> *mut c_void {
        self.memalign(PAGE, n)
    }

    /// `pvalloc(n)`: page-aligned, `n` rounded up to whole pages; NULL and
    /// `ENOMEM` if that overflows.
    pub fn pvalloc(&self, n: usize) -> *mut c_void {
        match sys::round_up(n, PAGE) {
            Some(n) => self.memalign(PAGE, n),
            None => {
                sys::set_errno(libc::ENOMEM);
                ptr::null_mut()
            }
        }
    }

    // ------------------------------------------------------------------
    // fork, statistics
    // ------------------------------------------------------------------

    fn arenas(&self) -> impl Iterator<Item = &Header<A>> {
        let mut h = self.all.load(Ordering::Acquire);
        core::iter::from_fn(move || {
            // SAFETY: arenas are never unmapped; headers are published
            // after they are written.
            let hdr = unsafe { h.as_ref()? };
            h = hdr.next_all;
            Some(hdr)
        })
    }

    /// `pthread_atfork` prepare: takes the growth lock, then every arena's
    /// lock (in list order), so that no arena is mid-update when the
    /// process is copied.
    pub fn fork_prepare(&self) {
        self.grow_fork_held
            .store(self.grow.lock_forever(), Ordering::Relaxed);
        for h in self.arenas() {
            h.fork_held.store(h.lock.lock_forever(), Ordering::Relaxed);
        }
    }

    /// `pthread_atfork` parent: releases what [`Shim::fork_prepare`] took.
    pub fn fork_parent(&self) {
        for h in self.arenas() {
            if h.fork_held.swap(false, Ordering::Relaxed) {
                h.lock.force_unlock();
            }
        }
        if self.grow_fork_held.swap(false, Ordering::Relaxed) {
            self.grow.force_unlock();
        }
    }

    /// `pthread_atfork` child: the child's only thread resets those locks.
    pub fn fork_child(&self) {
        for h in self.arenas() {
            if h.fork_held.swap(false, Ordering::Relaxed) {
                h.lock.reset_in_child();
            }
        }
        if self.grow_fork_held.swap(false, Ordering::Relaxed) {
            self.grow.reset_in_child();
        }
    }

    /// The counters, summed over the arenas. Arenas locked by another thread
    /// are read without their live-byte figure.
    ///
    /// # Time complexity
    ///
    /// O(arenas × the core's `stats`).
    pub fn stats(&self) -> ShimStats {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut s = ShimStats {
            arenas: load(&c.arenas),
            stripes: self.nstripes.load(Ordering::Relaxed) as u64,
            large_allocs: load(&c.large_allocs),
            large_frees: load(&c.large_frees),
            large_remaps: load(&c.large_remaps),
            foreign: load(&c.foreign),
            rejected: load(&c.rejected),
            reentrant: load(&c.reentrant),
            core_panics: load(&c.core_panics),
            failed: load(&c.failed),
            ..ShimStats::default()
        };
        for h in self.arenas() {
            s.arena_allocs = s.arena_allocs.wrapping_add(load(&h.allocs));
            s.arena_frees = s.arena_frees.wrapping_add(load(&h.frees));
            s.arena_reallocs = s.arena_reallocs.wrapping_add(load(&h.reallocs));
            s.rejected = s.rejected.wrapping_add(load(&h.rejected));
            if h.poisoned.load(Ordering::Relaxed) {
                s.core_panics = s.core_panics.wrapping_add(1);
            } else if let Some(_g) = h.lock.try_lock() {
                let core = h.core;
                // SAFETY: as in `arena_alloc` (we hold the lock).
                if let Some(st) = guarded(|| unsafe { &*core }.stats()) {
                    s.arena_live_bytes = s.arena_live_bytes.wrapping_add(st.bytes_reserved as u64);
                }
            }
        }
        s
    }

    /// Writes the statistics line if `ALLOCLAB_SHIM_STATS` asked for it at
    /// start-up (see [`open_stats_fd`]; the library destructor calls this).
    pub fn report_if_asked(&self) {
        let fd = self.stats_fd.load(Ordering::Relaxed);
        if fd < 0 {
            return;
        }
        let s = self.stats();
        let mut l = sys::LineBuf::new();
        l.str("alloclab-shim: allocator=")
            .str(self.name)
            .str(" pid=")
            // SAFETY: getpid has no preconditions.
            .num(u64::from(unsafe { libc::getpid() }.unsigned_abs()))
            .str(" arenas=")
            .num(s.arenas)
            .str(" stripes=")
            .num(s.stripes)
            .str(" allocs=")
            .num(s.arena_allocs)
            .str(" frees=")
            .num(s.arena_frees)
            .str(" reallocs=")
            .num(s.arena_reallocs)
            .str(" large_allocs=")
            .num(s.large_allocs)
            .str(" large_frees=")
            .num(s.large_frees)
            .str(" large_remaps=")
            .num(s.large_remaps)
            .str(" live_bytes=")
            .num(s.arena_live_bytes)
            .str(" foreign=")
            .num(s.foreign)
            .str(" rejected=")
            .num(s.rejected)
            .str(" reentrant=")
            .num(s.reentrant)
            .str(" core_panics=")
            .num(s.core_panics)
            .str(" failed=")
            .num(s.failed)
            .str("\n");
        sys::write_all(fd, l.as_bytes());
    }
}

/// The descriptor the statistics line goes to, from `ALLOCLAB_SHIM_STATS`:
/// unset, empty or `0`: none (-1); an absolute path: that file, appended to
/// (one `write` per process, so the lines of a process tree do not mix);
/// anything else: a duplicate of stderr, made now because some programs
/// close stderr before library destructors run. Close-on-exec either way (an
/// exec'd program opens its own).
pub fn open_stats_fd() -> i32 {
    let Some(v) = sys::getenv(c"ALLOCLAB_SHIM_STATS") else {
        return -1;
    };
    match v.to_bytes() {
        b"" | b"0" => -1,
        [b'/', ..] => {
            // SAFETY: the value is a NUL-terminated C string from the
            // environment (getenv's); open does not allocate.
            unsafe {
                libc::open(
                    v.as_ptr().cast(),
                    libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_CLOEXEC,
                    0o644,
                )
            }
        }
        // SAFETY: fcntl on fd 2 has no memory effects.
        _ => unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3) },
    }
}

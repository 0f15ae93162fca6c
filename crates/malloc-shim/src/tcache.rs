//! Per-thread caches: the storage, how a thread gets one, and how it is given
//! back when the thread exits. (What a cache does on `malloc` and `free` is
//! in [`crate::cached`].)
//!
//! A [`ThreadCache`] holds, per size class ([`crate::class`]), a stack of up
//! to [`CAP`] block pointers: an array in the cache, not a list threaded
//! through the freed blocks, so a program writing into a block after freeing
//! it (a use-after-free) cannot make the cache hand out a wild pointer, and a
//! `malloc` hit reads no block memory at all (jemalloc's `cache_bin` is the
//! model). 12 classes × 64 pointers: a cache is 6.4 KiB.
//!
//! - **Where caches live**: in pages the pool maps for them (never through
//!   `malloc`), reused after their thread exits; the thread-local word
//!   ([`crate::tls`]) points to the thread's cache.
//! - **Getting one**: on a thread's first cached call ([`attach`]). The word
//!   is set to `BUSY` while the cache is set up, so any allocation made
//!   meanwhile (there is none with glibc: the pool maps its pages with
//!   `mmap`, `pthread_key_create` and `pthread_setspecific` on a key below 32
//!   do not allocate) is served uncached and counted in
//!   [`tls_reentries`].
//! - **Thread exit**: the cache is the value of a `pthread_key_t` whose
//!   destructor ([`on_thread_exit`]) flushes every block back to its arena
//!   (through the function the owning shim registered), sets the word to
//!   `DEAD` (later calls on the exiting thread are served uncached) and
//!   returns the cache to the pool. The main thread's cache is not flushed
//!   at `exit` (the process ends).
//! - **Statistics**: caches count their hits in atomics that only the owning
//!   thread writes (a load and a store: no read-modify-write), which the
//!   statistics read from any thread under the pool's lock.

use core::cell::Cell;
use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::class::NCLASSES;
use crate::lock::Mutex;
use crate::sys;
use crate::tls;

/// Slots per class (the largest capacity, [`crate::class::capacity`]).
pub const CAP: usize = 64;

/// The function a shim registers to take a cache's blocks back when its
/// thread exits (`owner` is the shim's address).
pub type ExitFn = unsafe fn(owner: usize, cache: &ThreadCache);

/// One thread's cache. Only its thread touches the `Cell`s; other threads
/// read the counters (atomics) and the pool links (under the pool's lock).
#[repr(C, align(64))]
pub struct ThreadCache {
    /// True while the owning thread is inside the cache (a signal handler
    /// that allocates meanwhile must not touch it).
    pub busy: Cell<bool>,
    /// The shim (its address) whose blocks the cache holds.
    pub owner: Cell<usize>,
    /// The arena refills come from (its header's address; 0: none yet).
    pub home: Cell<usize>,
    /// Blocks held per class.
    pub counts: [Cell<u8>; NCLASSES],
    /// Blocks fetched by the next refill of each class (grows from 4 to
    /// half the capacity as the class is used).
    pub batch: [Cell<u8>; NCLASSES],
    /// Blocks handed out from the cache (written by the owner only).
    pub hits: AtomicU64,
    /// Blocks taken back into the cache (written by the owner only).
    pub frees: AtomicU64,
    /// Refills and flushes (written by the owner only).
    pub refills: AtomicU64,
    /// Batches flushed back to arenas (written by the owner only).
    pub flushes: AtomicU64,
    exit: Cell<Option<ExitFn>>,
    next: Cell<*mut ThreadCache>,
    prev: Cell<*mut ThreadCache>,
    /// `slots[c][..counts[c]]`: the cached blocks of class `c`, oldest first.
    pub slots: [[Cell<*mut u8>; CAP]; NCLASSES],
}

// SAFETY: the `Cell`s are touched only by the thread the cache belongs to
// (through the thread-local word) or, for `next`/`prev`/`owner`/`exit`, under
// the pool's lock while no thread owns the cache or by the owner itself;
// other threads read only the atomic counters.
unsafe impl Sync for ThreadCache {}

impl ThreadCache {
    /// Bumps a counter that only the owning thread writes (no atomic
    /// read-modify-write).
    #[inline(always)]
    pub fn bump(counter: &AtomicU64, by: u64) {
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(by),
            Ordering::Relaxed,
        );
    }
}

/// The caches: those in use (a list, for the statistics) and those free.
struct Pool {
    lock: Mutex,
    inner: core::cell::UnsafeCell<PoolLists>,
}

struct PoolLists {
    live: *mut ThreadCache,
    free: *mut ThreadCache,
}

// SAFETY: `inner` is only touched under `lock`.
unsafe impl Sync for Pool {}

static POOL: Pool = Pool {
    lock: Mutex::new(),
    inner: core::cell::UnsafeCell::new(PoolLists {
        live: ptr::null_mut(),
        free: ptr::null_mut(),
    }),
};

/// Calls that reached a shim while their thread's cache was being set up.
static TLS_REENTRIES: AtomicU64 = AtomicU64::new(0);

/// The key whose destructor returns a thread's cache: 0 not made, 1 being
/// made, 2 + key when made, `u32::MAX` when it could not be made.
static KEY: AtomicU32 = AtomicU32::new(0);

/// Calls served uncached because they arrived while their thread's cache was
/// being set up (0 with glibc: setting up allocates nothing).
pub fn tls_reentries() -> u64 {
    TLS_REENTRIES.load(Ordering::Relaxed)
}

/// Notes a call that found its thread's word `BUSY`.
pub fn note_reentry() {
    TLS_REENTRIES.fetch_add(1, Ordering::Relaxed);
}

/// The thread-exit key, made on first use; `None` if it cannot be made
/// (then caches are not used: nothing would return them).
#[inline] // compiled beside the callers: see "The library's own memory" in lib.rs
fn key() -> Option<libc::pthread_key_t> {
    loop {
        match KEY.load(Ordering::Acquire) {
            0 => {
                if KEY
                    .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
                    continue;
                }
                let mut k: libc::pthread_key_t = 0;
                // SAFETY: `k` is writable; the destructor is a plain function
                // valid for the life of the process (the library providing
                // malloc is never unloaded).
                let ok = unsafe { libc::pthread_key_create(&mut k, Some(on_thread_exit)) } == 0;
                let v = if ok { k.saturating_add(2) } else { u32::MAX };
                KEY.store(v, Ordering::Release);
            }
            1 => core::hint::spin_loop(),
            u32::MAX => return None,
            v => return Some(v.wrapping_sub(2)),
        }
    }
}

/// The number of the thread-exit key (for tests: glibc's
/// `pthread_setspecific` allocates for keys of 32 and above).
pub fn key_number() -> Option<u32> {
    key()
}

/// Gives the calling thread a cache serving shim `owner`, whose blocks go
/// back through `exit` when the thread ends. `None` if the thread has or had
/// one (or is exiting), or no cache can be made.
///
/// # Time complexity
///
/// O(1); one `mmap` when the pool has no free cache.
#[inline] // compiled beside the callers: see "The library's own memory" in lib.rs
pub fn attach(owner: usize, exit: ExitFn) -> Option<&'static ThreadCache> {
    if tls::get() != tls::NONE {
        return None;
    }
    tls::set(tls::BUSY);
    let Some(k) = key() else {
        tls::set(tls::DEAD);
        return None;
    };
    let Some(tc) = take(owner, exit) else {
        tls::set(tls::NONE);
        return None;
    };
    // SAFETY: a cache out of the pool is this thread's alone.
    let c = unsafe { &*tc };
    c.home.set(0);
    c.busy.set(false);
    for (n, b) in c.counts.iter().zip(&c.batch) {
        n.set(0);
        b.set(4);
    }
    // SAFETY: a valid key; the value is the cache, read back by the
    // destructor. glibc stores keys below 32 in the thread descriptor
    // (no allocation); above, it allocates a second-level block with
    // calloc, which re-enters the shim and is served uncached (BUSY).
    unsafe { libc::pthread_setspecific(k, tc.cast::<c_void>()) };
    tls::set(tc as usize);
    Some(c)
}

/// The pthread key destructor: flushes the cache into its shim and returns
/// it to the pool.
#[inline] // compiled beside the callers: see "The library's own memory" in lib.rs
unsafe extern "C" fn on_thread_exit(v: *mut c_void) {
    let tc = v.cast::<ThreadCache>();
    if tc.is_null() {
        return;
    }
    tls::set(tls::DEAD);
    // SAFETY: the key's value is a cache from `attach`, owned by this
    // (exiting) thread.
    let c = unsafe { &*tc };
    if let Some(f) = c.exit.get() {
        // SAFETY: the function the owner registered, with its own address.
        unsafe { f(c.owner.get(), c) };
    }
    give_back(tc);
}

/// Takes a cache from the pool (or maps a new one), names its owner and links
/// it in the live list.
#[inline] // compiled beside the callers: see "The library's own memory" in lib.rs
fn take(owner: usize, exit: ExitFn) -> Option<*mut ThreadCache> {
    let _g = POOL.lock.lock().ok()?;
    // SAFETY: under the pool's lock.
    let p = unsafe { &mut *POOL.inner.get() };
    let tc = if p.free.is_null() {
        let len = sys::round_up(size_of::<ThreadCache>(), sys::PAGE)?;
        // Fresh zeroed pages: every Cell null/0/false, every atomic 0.
        sys::map(len, false)?.as_ptr().cast::<ThreadCache>()
    } else {
        let tc = p.free;
        // SAFETY: caches in the free list are valid and unused.
        p.free = unsafe { (*tc).next.get() };
        tc
    };
    // SAFETY: `tc` is a valid cache, ours under the lock.
    unsafe {
        (*tc).owner.set(owner);
        (*tc).exit.set(Some(exit));
        (*tc).prev.set(ptr::null_mut());
        (*tc).next.set(p.live);
        if let Some(l) = p.live.as_ref() {
            l.prev.set(tc);
        }
        for counter in [&(*tc).hits, &(*tc).frees, &(*tc).refills, &(*tc).flushes] {
            counter.store(0, Ordering::Relaxed);
        }
    }
    p.live = tc;
    Some(tc)
}

/// Unlinks a cache from the live list and puts it in the free list.
#[inline] // compiled beside the callers: see "The library's own memory" in lib.rs
fn give_back(tc: *mut ThreadCache) {
    let Ok(_g) = POOL.lock.lock() else {
        return; // re-entered while holding the pool lock: leak it
    };
    // SAFETY: under the pool's lock; `tc` is in the live list.
    unsafe {
        let p = &mut *POOL.inner.get();
        let c = &*tc;
        let (prev, next) = (c.prev.get(), c.next.get());
        match prev.as_ref() {
            Some(pr) => pr.next.set(next),
            None => p.live = next,
        }
        if let Some(n) = next.as_ref() {
            n.prev.set(prev);
        }
        c.owner.set(0);
        c.exit.set(None);
        c.next.set(p.free);
        p.free = tc;
    }
}

/// Calls `f` on every cache in use that serves shim `owner`, under the
/// pool's lock (skipped if the calling thread holds it already).
pub fn for_each_live(owner: usize, mut f: impl FnMut(&ThreadCache)) {
    let Ok(_g) = POOL.lock.lock() else {
        return;
    };
    // SAFETY: under the pool's lock: the live list is consistent, its caches
    // valid; only their atomics are read.
    unsafe {
        let mut c = (*POOL.inner.get()).live;
        while let Some(tc) = c.as_ref() {
            if tc.owner.get() == owner {
                f(tc);
            }
            c = tc.next.get();
        }
    }
}

/// The pool's lock, for the `pthread_atfork` handlers.
pub fn pool_mutex() -> &'static Mutex {
    &POOL.lock
}

//! The shim's counters, their sum ([`ShimStats`]) and the statistics line
//! printed at exit when `ALLOCLAB_SHIM_STATS` asks for it.

use core::sync::atomic::{AtomicU64, Ordering};

use plugin_abi::ArenaAllocator;

use crate::shim::Shim;
use crate::sys;
use crate::tcache;

/// Counters of a shim, summed over its arenas and thread caches (see
/// [`Shim::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShimStats {
    /// Arenas mapped.
    pub arenas: u64,
    /// Lock stripes (arenas filled at the same time).
    pub stripes: u64,
    /// Blocks handed to the program from arenas (from a thread cache or
    /// straight from a core).
    pub arena_allocs: u64,
    /// Blocks the program gave back into arenas (into a thread cache or
    /// straight to a core).
    pub arena_frees: u64,
    /// Reallocations done by a core (in place or moved inside the arena).
    pub arena_reallocs: u64,
    /// Allocations served by a thread cache without a lock.
    pub cache_hits: u64,
    /// Frees taken by a thread cache without a lock.
    pub cache_frees: u64,
    /// Batches fetched from arenas into thread caches.
    pub cache_refills: u64,
    /// Batches flushed from thread caches back to arenas.
    pub cache_flushes: u64,
    /// Large blocks mapped or taken from the large-block cache.
    pub large_allocs: u64,
    /// Bytes of those blocks (what the program asked for).
    pub large_bytes: u64,
    /// Large blocks freed.
    pub large_frees: u64,
    /// Large blocks grown or shrunk with `mremap`/`munmap` of their tail.
    pub large_remaps: u64,
    /// Large blocks served by a freed mapping kept in the cache.
    pub large_reused: u64,
    /// Bytes of freed large mappings kept for reuse, now.
    pub large_cached_bytes: u64,
    /// Arena trims, and the bytes they gave back to the kernel.
    pub trims: u64,
    /// Bytes given back to the kernel by trims (page runs and side table).
    pub released_bytes: u64,
    /// `free`/`realloc`/`malloc_usable_size` of a pointer that is not in
    /// any arena or large mapping of this shim (forwarded to the next
    /// allocator when the shim exports `malloc`, else left alone).
    pub foreign: u64,
    /// Pointers inside our memory that are not a live block (rejected).
    pub rejected: u64,
    /// Of those, frees of a block sitting in a thread cache (double frees).
    pub double_frees: u64,
    /// Calls made by a thread that already held the lock they needed
    /// (served by a mapping of their own, a deferred free, or left alone).
    pub reentrant: u64,
    /// Calls that arrived while their thread's cache was being set up (0
    /// unless setting up a cache allocates).
    pub tls_reentry: u64,
    /// Core panics caught (the arena is then retired).
    pub core_panics: u64,
    /// Allocations answered NULL/ENOMEM.
    pub failed: u64,
    /// Bytes the cores hold for live and cached blocks (`bytes_reserved`),
    /// now.
    pub arena_live_bytes: u64,
}

/// The shim-wide counters.
#[derive(Default)]
pub struct Counters {
    pub(crate) large_allocs: AtomicU64,
    pub(crate) large_bytes: AtomicU64,
    pub(crate) large_frees: AtomicU64,
    pub(crate) large_remaps: AtomicU64,
    pub(crate) foreign: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) double_frees: AtomicU64,
    pub(crate) reentrant: AtomicU64,
    pub(crate) core_panics: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) arenas: AtomicU64,
    /// Totals of the caches of threads that exited.
    pub(crate) cache_hits: AtomicU64,
    pub(crate) cache_frees: AtomicU64,
    pub(crate) cache_refills: AtomicU64,
    pub(crate) cache_flushes: AtomicU64,
}

impl Counters {
    /// All zero.
    pub const fn new() -> Self {
        Counters {
            large_allocs: AtomicU64::new(0),
            large_bytes: AtomicU64::new(0),
            large_frees: AtomicU64::new(0),
            large_remaps: AtomicU64::new(0),
            foreign: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            double_frees: AtomicU64::new(0),
            reentrant: AtomicU64::new(0),
            core_panics: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            arenas: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            cache_frees: AtomicU64::new(0),
            cache_refills: AtomicU64::new(0),
            cache_flushes: AtomicU64::new(0),
        }
    }
}

/// Adds one to a shared counter.
#[inline]
pub fn count(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl<A: ArenaAllocator> Shim<A> {
    /// The counters, summed over the arenas and the live thread caches.
    /// Arenas locked by another thread are read without their live-byte
    /// figure.
    ///
    /// # Time complexity
    ///
    /// O(arenas × the core's `stats` + threads).
    pub fn stats(&self) -> ShimStats {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut s = ShimStats {
            arenas: load(&c.arenas),
            stripes: self.stripes() as u64,
            cache_hits: load(&c.cache_hits),
            cache_frees: load(&c.cache_frees),
            cache_refills: load(&c.cache_refills),
            cache_flushes: load(&c.cache_flushes),
            large_allocs: load(&c.large_allocs),
            large_bytes: load(&c.large_bytes),
            large_frees: load(&c.large_frees),
            large_remaps: load(&c.large_remaps),
            large_reused: load(&self.large.reused),
            large_cached_bytes: self.large.cached_bytes() as u64,
            foreign: load(&c.foreign),
            rejected: load(&c.rejected),
            double_frees: load(&c.double_frees),
            reentrant: load(&c.reentrant),
            tls_reentry: tcache::tls_reentries(),
            core_panics: load(&c.core_panics),
            failed: load(&c.failed),
            ..ShimStats::default()
        };
        tcache::for_each_live(self.id(), |tc| {
            s.cache_hits = s.cache_hits.wrapping_add(load(&tc.hits));
            s.cache_frees = s.cache_frees.wrapping_add(load(&tc.frees));
            s.cache_refills = s.cache_refills.wrapping_add(load(&tc.refills));
            s.cache_flushes = s.cache_flushes.wrapping_add(load(&tc.flushes));
        });
        for h in self.arenas() {
            let a = h.counters();
            s.arena_reallocs = s.arena_reallocs.wrapping_add(a.reallocs);
            s.trims = s.trims.wrapping_add(a.trims);
            s.released_bytes = s.released_bytes.wrapping_add(a.released);
            s.arena_allocs = s.arena_allocs.wrapping_add(a.allocs);
            s.arena_frees = s.arena_frees.wrapping_add(a.frees);
            if a.poisoned {
                s.core_panics = s.core_panics.wrapping_add(1);
            } else if let Some(mut g) = h.try_lock_for_stats()
                && let Ok((_, bytes)) = g.live()
            {
                s.arena_live_bytes = s.arena_live_bytes.wrapping_add(bytes as u64);
            }
        }
        // Blocks that reached the program through a cache.
        s.arena_allocs = s.arena_allocs.wrapping_add(s.cache_hits);
        s.arena_frees = s.arena_frees.wrapping_add(s.cache_frees);
        s
    }

    /// Writes the statistics line if `ALLOCLAB_SHIM_STATS` asked for it at
    /// start-up (the library destructor calls this).
    pub fn report_if_asked(&self) {
        let fd = self.stats_fd();
        if fd < 0 {
            return;
        }
        let s = self.stats();
        let mut l = sys::LineBuf::new();
        l.str("alloclab-shim: allocator=")
            .str(self.name())
            .str(" pid=")
            // SAFETY: getpid has no preconditions.
            .num(u64::from(unsafe { libc::getpid() }.unsigned_abs()));
        for (k, v) in [
            (" arenas=", s.arenas),
            (" stripes=", s.stripes),
            (" allocs=", s.arena_allocs),
            (" frees=", s.arena_frees),
            (" reallocs=", s.arena_reallocs),
            (" cache_hits=", s.cache_hits),
            (" cache_frees=", s.cache_frees),
            (" refills=", s.cache_refills),
            (" flushes=", s.cache_flushes),
            (" large_allocs=", s.large_allocs),
            (" large_bytes=", s.large_bytes),
            (" large_frees=", s.large_frees),
            (" large_remaps=", s.large_remaps),
            (" large_reused=", s.large_reused),
            (" trims=", s.trims),
            (" released_bytes=", s.released_bytes),
            (" live_bytes=", s.arena_live_bytes),
            (" foreign=", s.foreign),
            (" rejected=", s.rejected),
            (" double_frees=", s.double_frees),
            (" reentrant=", s.reentrant),
            (" tls_reentry=", s.tls_reentry),
            (" core_panics=", s.core_panics),
            (" failed=", s.failed),
        ] {
            l.str(k).num(v);
        }
        l.str("\n");
        sys::write_all(fd, l.as_bytes());
    }
}

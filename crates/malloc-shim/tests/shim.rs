//! The shim over each core, called directly (not through exported symbols):
//! every size regime, `realloc` across them, alignment, `calloc`, foreign
//! and double frees, threads, and two shims that must not take each other's
//! pointers.

use core::ffi::c_void;
use core::ptr;

use malloc_shim::{ArenaAllocator, ForkHandlers, LARGE_THRESHOLD, Shim};

unsafe extern "C" fn nop() {}

fn new_shim<A: ArenaAllocator>(name: &'static str, flags: u32) -> &'static Shim<A> {
    Box::leak(Box::new(shim(name, flags)))
}

/// A shim with one lock stripe: every thread refills from the same arenas,
/// whatever cache number it gets from the process-wide pool (which the other
/// tests' threads, running at the same time, also draw from).
fn new_one_stripe_shim<A: ArenaAllocator>(name: &'static str, flags: u32) -> &'static Shim<A> {
    Box::leak(Box::new(shim(name, flags).with_stripes(1)))
}

fn shim<A: ArenaAllocator>(name: &'static str, flags: u32) -> Shim<A> {
    Shim::new(
        name,
        flags,
        ForkHandlers {
            prepare: nop,
            parent: nop,
            child: nop,
        },
    )
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The byte offsets of a block that carry a pattern: the first 64 KiB, then
/// every 4099th byte (the same offsets whatever the block's size, so a
/// resized block is checked on what both sizes wrote; the tests stay fast at
/// opt-level 1).
fn marked(n: usize) -> impl Iterator<Item = usize> {
    (0..n.min(65536)).chain((65536..n).step_by(4099))
}

fn fill(p: *mut c_void, n: usize, seed: u8) {
    let p = p.cast::<u8>();
    for i in marked(n) {
        // SAFETY: callers pass a live block of at least `n` bytes.
        unsafe { p.add(i).write(seed.wrapping_add(i as u8).wrapping_mul(31)) };
    }
}

fn holds(p: *const c_void, n: usize, seed: u8) -> bool {
    let p = p.cast::<u8>();
    // SAFETY: callers pass a live block of at least `n` bytes.
    marked(n).all(|i| unsafe { p.add(i).read() } == seed.wrapping_add(i as u8).wrapping_mul(31))
}

/// A random size: mostly small, some medium, a few above the threshold.
fn size(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=69 => rng.below(300) as usize,
        70..=94 => rng.below(70_000) as usize,
        95..=98 => rng.below(LARGE_THRESHOLD as u64 + 4096) as usize,
        _ => LARGE_THRESHOLD + rng.below(6 << 20) as usize,
    }
}

/// Random malloc/calloc/realloc/memalign/free against a shadow list of
/// blocks and their contents.
fn shadow_run<A: ArenaAllocator>(s: &Shim<A>, seed: u64, ops: usize) {
    let mut rng = Rng(seed | 1);
    let mut live: Vec<(*mut c_void, usize, u8)> = Vec::new();
    for step in 0..ops {
        let tag = step as u8;
        match rng.below(10) {
            0..=3 => {
                let n = size(&mut rng);
                let p = s.malloc(n);
                assert!(
                    !p.is_null() && (p as usize).is_multiple_of(16),
                    "malloc({n})"
                );
                // SAFETY: `p` is live.
                assert!(unsafe { s.usable_size(p) } >= n);
                fill(p, n, tag);
                live.push((p, n, tag));
            }
            4 => {
                let n = size(&mut rng);
                let p = s.calloc(n.max(1), 1);
                assert!(!p.is_null());
                assert!(holds_zero(p, n.max(1)), "calloc({n}) not zeroed");
                fill(p, n, tag);
                live.push((p, n, tag));
            }
            5 => {
                let align = 1usize << rng.below(17);
                let n = size(&mut rng);
                let p = s.memalign(align, n);
                assert!(
                    !p.is_null() && (p as usize).is_multiple_of(align.max(16)),
                    "memalign({align}, {n})"
                );
                fill(p, n, tag);
                live.push((p, n, tag));
            }
            6..=7 if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                let (p, n, t) = live[i];
                let m = size(&mut rng).max(1);
                // SAFETY: `p` is live.
                let q = unsafe { s.realloc(p, m) };
                assert!(!q.is_null(), "realloc({n} -> {m})");
                assert!(
                    holds(q, n.min(m), t),
                    "realloc({n} -> {m}) lost the contents"
                );
                fill(q, m, tag);
                live[i] = (q, m, tag);
            }
            _ if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                let (p, n, t) = live.swap_remove(i);
                assert!(holds(p, n, t), "block of {n} B overwritten");
                // SAFETY: `p` is live and dropped from the list.
                unsafe { s.free(p) };
            }
            _ => {}
        }
    }
    for (p, n, t) in live {
        assert!(holds(p, n, t));
        // SAFETY: live.
        unsafe { s.free(p) };
    }
}

fn holds_zero(p: *const c_void, n: usize) -> bool {
    let p = p.cast::<u8>();
    // SAFETY: a live block of at least `n` bytes.
    marked(n).all(|i| unsafe { p.add(i).read() } == 0)
}

fn edge_cases<A: ArenaAllocator>(s: &Shim<A>) {
    // malloc(0): unique, freeable
    let (a, b) = (s.malloc(0), s.malloc(0));
    assert!(!a.is_null() && !b.is_null() && a != b);
    // SAFETY: live blocks / NULL.
    unsafe {
        s.free(a);
        s.free(b);
        s.free(ptr::null_mut());
    }
    // realloc(p, 0) frees and answers NULL; realloc(NULL, n) allocates
    // SAFETY: NULL, then a live block.
    let p = unsafe { s.realloc(ptr::null_mut(), 100) };
    assert!(!p.is_null());
    let before = s.stats();
    // SAFETY: live.
    assert!(unsafe { s.realloc(p, 0) }.is_null());
    assert_eq!(s.stats().arena_frees, before.arena_frees + 1);

    // overflow and huge sizes: NULL + ENOMEM
    assert!(s.calloc(usize::MAX / 2, 3).is_null());
    assert!(s.malloc(usize::MAX).is_null());
    assert!(s.malloc(isize::MAX as usize).is_null());
    let p = s.malloc(64);
    fill(p, 64, 9);
    // SAFETY: live.
    assert!(unsafe { s.realloc(p, usize::MAX - 100) }.is_null());
    // SAFETY: live.
    assert!(unsafe { s.reallocarray(p, usize::MAX / 2, 4) }.is_null());
    assert!(
        holds(p, 64, 9),
        "a failed realloc must leave the block alone"
    );

    // posix_memalign: EINVAL leaves *out alone
    let sentinel = 0x1234 as *mut c_void;
    for bad in [0, 1, 2, 4, 12, 24, 100, usize::MAX] {
        let mut out = sentinel;
        // SAFETY: `out` is a valid pointer slot.
        assert_eq!(unsafe { s.posix_memalign(&mut out, bad, 8) }, libc::EINVAL);
        assert_eq!(out, sentinel);
    }
    for align in [8, 16, 64, 4096, 1 << 16, 1 << 22] {
        let mut out = sentinel;
        // SAFETY: as above.
        assert_eq!(unsafe { s.posix_memalign(&mut out, align, 1000) }, 0);
        assert!((out as usize).is_multiple_of(align));
        // SAFETY: live.
        unsafe { s.free(out) };
    }
    assert!(
        s.aligned_alloc(24, 10).is_null(),
        "aligned_alloc needs a power of two"
    );
    let v = s.pvalloc(1);
    // SAFETY: live.
    assert!((v as usize).is_multiple_of(4096) && unsafe { s.usable_size(v) } >= 4096);
    // SAFETY: live.
    unsafe { s.free(v) };

    // foreign, interior and double frees are counted and ignored
    let before = s.stats();
    let mut on_stack = [0u8; 64];
    let boxed = Box::new([0u8; 64]);
    // SAFETY: the shim only reads the registry for these.
    unsafe {
        s.free(on_stack.as_mut_ptr().cast());
        s.free(ptr::from_ref(&*boxed).cast_mut().cast());
        assert_eq!(s.usable_size(on_stack.as_ptr().cast()), 0);
        assert!(s.realloc(on_stack.as_mut_ptr().cast(), 10).is_null());
    }
    assert_eq!(s.stats().foreign, before.foreign + 4);
    let p = s.malloc(200);
    let big = s.malloc(3 << 20);
    // SAFETY: interior pointers of live blocks: rejected, nothing changes.
    unsafe {
        s.free(p.cast::<u8>().add(16).cast());
        s.free(big.cast::<u8>().add(4096).cast());
        s.free(p);
        s.free(p); // double free
        s.free(big);
        s.free(big); // double free of a large block: kept in the large cache
    }
    let after = s.stats();
    assert_eq!(after.rejected, before.rejected + 4, "{after:?}");
    assert_eq!(after.double_frees, before.double_frees + 1, "{after:?}");
    assert_eq!(after.foreign, before.foreign + 4);
}

fn two_shims_keep_apart<A: ArenaAllocator, B: ArenaAllocator>(a: &Shim<A>, b: &Shim<B>) {
    let pa = a.malloc(100);
    let pb = b.malloc(100);
    let la = a.malloc(5 << 20);
    let before = (a.stats(), b.stats());
    // SAFETY: each pointer is the other shim's: foreign to this one.
    unsafe {
        b.free(pa);
        b.free(la);
        a.free(pb);
        assert_eq!(b.usable_size(pa), 0);
    }
    assert_eq!(a.stats().foreign, before.0.foreign + 1);
    assert_eq!(b.stats().foreign, before.1.foreign + 3);
    // SAFETY: live, own shim.
    unsafe {
        assert!(a.usable_size(pa) >= 100);
        a.free(pa);
        a.free(la);
        b.free(pb);
    }
}

fn threads<A: ArenaAllocator + 'static>(s: &'static Shim<A>) {
    let handles: Vec<_> = (0..4)
        .map(|t| std::thread::spawn(move || shadow_run(s, 1000 + t, 10_000)))
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    // Cross-thread frees: blocks made here, freed there.
    let blocks: Vec<usize> = (0..5000).map(|i| s.malloc(i % 700) as usize).collect();
    let h = std::thread::spawn(move || {
        for p in blocks {
            // SAFETY: live blocks handed over.
            unsafe { s.free(p as *mut c_void) };
        }
    });
    h.join().unwrap();
}

/// Producer/consumer: blocks one thread made, another frees (its cache
/// flushes them into their arena's depot), a third allocates again. A block
/// in a depot is still known as freed: a second `free` of it is a double
/// free; the third thread's refill takes the depot's blocks, contents
/// intact where the program wrote them.
fn depot<A: ArenaAllocator + 'static>(s: &'static Shim<A>) {
    let made = std::thread::spawn(move || {
        (0..3000)
            .map(|i| {
                let p = s.malloc(64);
                fill(p, 64, i as u8);
                p as usize
            })
            .collect::<Vec<_>>()
    })
    .join()
    .unwrap();
    let freed = made.clone();
    std::thread::spawn(move || {
        for (i, p) in freed.into_iter().enumerate() {
            assert!(holds(p as *const c_void, 64, i as u8));
            // SAFETY: live blocks handed over.
            unsafe { s.free(p as *mut c_void) };
        }
    })
    .join()
    .unwrap();
    // The first blocks freed were flushed first: they sit in the depot.
    let before = s.stats();
    // SAFETY: a double free, which the shim must catch and leave alone.
    unsafe { s.free(made[0] as *mut c_void) };
    let after = s.stats();
    assert_eq!(after.double_frees, before.double_frees + 1, "{after:?}");
    let again = std::thread::spawn(move || {
        (0..200)
            .map(|i| {
                let p = s.malloc(64);
                fill(p, 64, i as u8);
                p as usize
            })
            .collect::<Vec<_>>()
    })
    .join()
    .unwrap();
    let old: std::collections::HashSet<usize> = made.iter().copied().collect();
    assert!(
        again.iter().all(|p| old.contains(p)),
        "refills reuse freed blocks"
    );
    let distinct: std::collections::HashSet<usize> = again.iter().copied().collect();
    assert_eq!(distinct.len(), again.len(), "a block handed out twice");
    for (i, p) in again.into_iter().enumerate() {
        assert!(holds(p as *const c_void, 64, i as u8));
        // SAFETY: live.
        unsafe { s.free(p as *mut c_void) };
    }
}

/// A thread that frees another thread's block keeps it in its remote batch
/// (sent home later), never hands it out itself, and catches a second free
/// of it while it waits there.
fn remote_batch<A: ArenaAllocator + 'static>(s: &'static Shim<A>) {
    // Made on this thread, which stays alive (an exited thread's cache, and
    // with it its arena, would go to the next thread).
    let theirs = s.malloc(48) as usize;
    std::thread::spawn(move || {
        let mine = s.malloc(48); // this thread's home arena
        let before = s.stats();
        // SAFETY: a live block handed over, then a double free of it.
        unsafe {
            s.free(theirs as *mut c_void);
            s.free(theirs as *mut c_void);
        }
        let after = s.stats();
        assert_eq!(after.double_frees, before.double_frees + 1, "{after:?}");
        let next: Vec<_> = (0..8).map(|_| s.malloc(48)).collect();
        // Arenas are 64 MiB-aligned; with other tests' threads alive, the
        // two threads may share a stripe, hence an arena (then the block is
        // this thread's to reuse).
        let other_arena = (mine as usize) >> 26 != theirs >> 26;
        assert!(
            !other_arena || next.iter().all(|&p| p as usize != theirs),
            "the other thread's block reused by the freeing thread"
        );
        // SAFETY: live blocks of this thread.
        unsafe {
            s.free(mine);
            for p in next {
                s.free(p);
            }
        }
    })
    .join()
    .unwrap();
}

/// Every block freed: once the calling thread's cache is flushed (other
/// threads' caches were flushed when they exited), the cores hold nothing.
fn balanced<A: ArenaAllocator>(s: &Shim<A>) {
    s.trim();
    let st = s.stats();
    assert_eq!(st.arena_allocs - st.arena_frees, 0, "{st:?}");
    assert_eq!(st.large_allocs, st.large_frees, "{st:?}");
    assert_eq!(st.arena_live_bytes, 0, "{st:?}");
    assert_eq!((st.core_panics, st.reentrant), (0, 0), "{st:?}");
}

/// A chunk a trim gave back and the program filled again is given back
/// again by a later periodic trim: handing its blocks out (here through
/// thread-cache refills) clears the chunk's clean mark. A thread of its own
/// (a fresh cache); one stripe, so one arena serves both rounds.
fn trimmed_chunks_reused_are_trimmed_again<A: ArenaAllocator>(s: &'static Shim<A>) {
    std::thread::spawn(move || {
        const N: usize = 60_000; // 1 KiB blocks: 60 MiB, over four arenas
        let fill = |s: &Shim<A>| -> Vec<*mut c_void> {
            (0..N)
                .map(|_| {
                    let p = s.malloc(1024);
                    assert!(!p.is_null());
                    // SAFETY: a live block of 1 KiB.
                    unsafe { p.cast::<u8>().write_bytes(0x5a, 1024) };
                    p
                })
                .collect()
        };
        let first = fill(s);
        for p in first {
            // SAFETY: live.
            unsafe { s.free(p) };
        }
        // Everything free goes back and its chunks are marked clean.
        s.trim();
        let second = fill(s);
        // A periodic trim needs 100 ms since the last one.
        std::thread::sleep(std::time::Duration::from_millis(150));
        let before = s.stats();
        // Keep every third MiB live, so that no arena becomes (nearly)
        // empty, which would give everything back whatever the marks say;
        // free the rest, 40 MiB: past 8 MiB freed into an arena, a
        // periodic trim gives back the free runs of chunks not marked
        // clean, which the refills of `second` must have unmarked.
        let (keep, free): (Vec<_>, Vec<_>) = second
            .into_iter()
            .partition(|&p| (p as usize >> 20).is_multiple_of(3));
        for p in free {
            // SAFETY: live.
            unsafe { s.free(p) };
        }
        let after = s.stats();
        let released = after.released_bytes - before.released_bytes;
        assert!(
            released >= 4 << 20,
            "periodic trims gave back {released} bytes of the {} MiB freed: {after:?}",
            (after.arena_frees - before.arena_frees) >> 10
        );
        for p in keep {
            // SAFETY: live.
            unsafe { s.free(p) };
        }
    })
    .join()
    .unwrap();
}

macro_rules! per_core {
    ($m:ident, $ty:ty, $flags:expr) => {
        mod $m {
            use super::*;

            #[test]
            fn shadow_model() {
                let s = new_shim::<$ty>(stringify!($m), $flags);
                shadow_run(s, 42, 30_000);
                balanced(s);
            }

            #[test]
            fn edge_cases_as_glibc() {
                let s = new_shim::<$ty>(stringify!($m), $flags);
                edge_cases(s);
                let st = s.stats();
                assert!(st.arenas >= 1 && st.large_allocs >= 1, "{st:?}");
            }

            #[test]
            fn threads_and_cross_thread_frees() {
                let s = new_shim::<$ty>(stringify!($m), $flags);
                threads(s);
                balanced(s);
            }

            #[test]
            fn cross_thread_frees_pass_through_the_depot() {
                let s = new_one_stripe_shim::<$ty>(stringify!($m), $flags);
                depot(s);
                balanced(s);
            }

            #[test]
            fn a_thread_sends_other_arenas_blocks_home() {
                let s = new_shim::<$ty>(stringify!($m), $flags);
                remote_batch(s);
                balanced(s);
            }

            #[test]
            fn trimmed_chunks_filled_again_are_trimmed_again() {
                let s = new_one_stripe_shim::<$ty>(stringify!($m), $flags);
                trimmed_chunks_reused_are_trimmed_again(s);
                balanced(s);
            }

            #[test]
            fn a_full_arena_gets_a_neighbour() {
                let s = new_shim::<$ty>(stringify!($m), $flags);
                // 100 MiB of 64 KiB blocks cannot fit one 64 MiB arena.
                let blocks: Vec<_> = (0..1600).map(|_| s.malloc(64 << 10)).collect();
                assert!(blocks.iter().all(|p| !p.is_null()));
                assert!(s.stats().arenas >= 2, "{:?}", s.stats());
                for p in blocks {
                    // SAFETY: live.
                    unsafe { s.free(p) };
                }
                balanced(s);
            }
        }
    };
}

per_core!(
    mk_return_pages,
    mckusick_karels::McKusickKarels,
    plugin_abi::ALLOCATOR_FLAG_RETURN_PAGES
);
// The default mode (empty bucket runs kept until a refusal or a trim), as
// `libmckusick_karels_malloc.so` runs it.
per_core!(mk_default, mckusick_karels::McKusickKarels, 0);
per_core!(buddy_core, buddy::Buddy, 0);

#[test]
fn shims_do_not_take_each_others_pointers() {
    let a = new_shim::<mckusick_karels::McKusickKarels>("a", 0);
    let b = new_shim::<buddy::Buddy>("b", 0);
    two_shims_keep_apart(a, b);
    let c = new_shim::<buddy::Buddy>("c", 0);
    two_shims_keep_apart(c, b);
}

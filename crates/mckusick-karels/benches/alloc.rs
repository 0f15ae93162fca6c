//! ns per operation of McKusick-Karels (faithful and RETURN_PAGES) against
//! mimalloc, glibc, rlsf (TLSF), talc and a bump pointer (the floor).
//!
//! Run: `cargo bench -p mckusick-karels --bench alloc`
//! (one group: `cargo bench -p mckusick-karels --bench alloc -- small/alloc`).
//!
//! - `small/alloc`, `small/free`: 10,000 blocks of 16..=128 bytes (sizes
//!   drawn beforehand) are allocated, then freed in a random order (drawn
//!   beforehand); allocation and free are timed separately, each over the
//!   whole batch. The allocator persists from round to round (steady state).
//! - `churn`: a live set of about half a 64 MiB arena (32 MiB, sizes
//!   16..=4096), then 200,000 random allocs and frees keeping it near that
//!   size (the sequence drawn beforehand), timed as a whole.
//!
//! Criterion's "time" is **per operation**: each measurement runs whole
//! batches and scales the elapsed time to the number of operations
//! criterion asked for. Arenas are mmap'ed and pre-faulted once; the
//! allocators are called directly (inlined Rust calls for the arena
//! allocators, `mi_malloc`/`mi_free` and `malloc`/`free` for the C ones).
//! Blocks are not written to: this measures the allocators' own work.

use std::alloc::Layout;
use std::hint::black_box;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use mckusick_karels::{Config, McKusickKarels};

const ARENA: usize = 64 << 20;
const SMALL_N: usize = 10_000;
const CHURN_OPS: usize = 200_000;
const CHURN_LIVE: usize = ARENA / 2;

/// A deterministic generator, so every allocator sees the same inputs.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// An mmap'ed, pre-faulted region that lives for the whole run.
fn arena() -> *mut u8 {
    // SAFETY: an anonymous private mapping, checked below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            ARENA,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    let p = p.cast::<u8>();
    for off in (0..ARENA).step_by(4096) {
        // SAFETY: inside the mapping; touching every page faults it in.
        unsafe { p.add(off).write_volatile(1) };
    }
    p
}

/// The allocators under test, behind one static interface.
trait Allocator {
    fn alloc(&mut self, size: usize) -> *mut u8;
    /// # Safety
    /// `p` came from `alloc(size)` and is freed once.
    unsafe fn free(&mut self, p: *mut u8, size: usize);
    /// Forgets everything (bump only).
    fn reset(&mut self) {}
}

struct Mk(NonNull<McKusickKarels>);
impl Mk {
    fn new(region: *mut u8, return_pages: bool) -> Mk {
        let config = if return_pages {
            Config::RETURN_PAGES
        } else {
            Config::FAITHFUL
        };
        // SAFETY: the region is ours for the whole run; a previous allocator
        // on it is dropped (forgotten) before this one is made.
        Mk(unsafe { McKusickKarels::create(region, ARENA, config) }.unwrap())
    }
}
impl Allocator for Mk {
    #[inline]
    fn alloc(&mut self, size: usize) -> *mut u8 {
        // SAFETY: the allocator lives in the region, used only through `self`.
        let a = unsafe { self.0.as_mut() };
        a.malloc(size).map_or(std::ptr::null_mut(), NonNull::as_ptr)
    }
    #[inline]
    unsafe fn free(&mut self, p: *mut u8, _size: usize) {
        // SAFETY: as above.
        let a = unsafe { self.0.as_mut() };
        let _ = a.free(NonNull::new(p).unwrap());
    }
}

struct Mimalloc;
impl Allocator for Mimalloc {
    #[inline]
    fn alloc(&mut self, size: usize) -> *mut u8 {
        // SAFETY: plain C malloc semantics.
        unsafe { libmimalloc_sys::mi_malloc(size) }.cast()
    }
    #[inline]
    unsafe fn free(&mut self, p: *mut u8, _size: usize) {
        // SAFETY: `p` came from `mi_malloc`.
        unsafe { libmimalloc_sys::mi_free(p.cast()) }
    }
}

struct Glibc;
impl Allocator for Glibc {
    #[inline]
    fn alloc(&mut self, size: usize) -> *mut u8 {
        // SAFETY: plain C malloc.
        unsafe { libc::malloc(size) }.cast()
    }
    #[inline]
    unsafe fn free(&mut self, p: *mut u8, _size: usize) {
        // SAFETY: `p` came from `malloc`.
        unsafe { libc::free(p.cast()) }
    }
}

struct Rlsf(rlsf::Tlsf<'static, u32, u32, 28, 32>);
impl Rlsf {
    fn new(region: *mut u8) -> Rlsf {
        let mut t = rlsf::Tlsf::new();
        let block = NonNull::slice_from_raw_parts(NonNull::new(region).unwrap(), ARENA);
        // SAFETY: the region is ours for the whole run.
        unsafe { t.insert_free_block_ptr(block) }.unwrap();
        Rlsf(t)
    }
}
impl Allocator for Rlsf {
    #[inline]
    fn alloc(&mut self, size: usize) -> *mut u8 {
        let layout = Layout::from_size_align(size, 16).unwrap();
        self.0
            .allocate(layout)
            .map_or(std::ptr::null_mut(), NonNull::as_ptr)
    }
    #[inline]
    unsafe fn free(&mut self, p: *mut u8, _size: usize) {
        // SAFETY: `p` came from `allocate` with alignment 16.
        unsafe { self.0.deallocate(NonNull::new_unchecked(p), 16) }
    }
}

struct Talc(talc::base::Talc<talc::source::Manual, talc::DefaultBinning>);
impl Talc {
    fn new(region: *mut u8) -> Talc {
        let mut t = talc::base::Talc::new(talc::source::Manual);
        // SAFETY: the region is ours for the whole run.
        unsafe { t.claim(region, ARENA) }.unwrap();
        Talc(t)
    }
}
impl Allocator for Talc {
    #[inline]
    fn alloc(&mut self, size: usize) -> *mut u8 {
        let layout = Layout::from_size_align(size, 16).unwrap();
        // SAFETY: `size > 0`.
        unsafe { self.0.allocate(layout) }.map_or(std::ptr::null_mut(), NonNull::as_ptr)
    }
    #[inline]
    unsafe fn free(&mut self, p: *mut u8, size: usize) {
        // SAFETY: `p` came from `allocate` with this layout.
        unsafe {
            self.0
                .deallocate(p, Layout::from_size_align_unchecked(size, 16))
        }
    }
}

/// The floor: a pointer bump; free does nothing; wraps around when full.
struct Bump {
    base: *mut u8,
    next: usize,
}
impl Allocator for Bump {
    #[inline]
    fn alloc(&mut self, size: usize) -> *mut u8 {
        let size = (size + 15) & !15;
        if self.next + size > ARENA {
            self.next = 0;
        }
        let p = self.base.wrapping_add(self.next);
        self.next += size;
        p
    }
    #[inline]
    unsafe fn free(&mut self, _p: *mut u8, _size: usize) {}
    fn reset(&mut self) {
        self.next = 0;
    }
}

/// Calls `f` with each allocator, freshly made on the shared region where it
/// needs one.
fn for_each_allocator(
    region: *mut u8,
    mut f: impl FnMut(&str, &mut dyn FnMut() -> Box<dyn Runner>),
) {
    f("mk-faithful", &mut || Box::new(Mk::new(region, false)));
    f("mk-return-pages", &mut || Box::new(Mk::new(region, true)));
    f("mimalloc", &mut || Box::new(Mimalloc));
    f("glibc", &mut || Box::new(Glibc));
    f("rlsf", &mut || Box::new(Rlsf::new(region)));
    f("talc", &mut || Box::new(Talc::new(region)));
    f("bump", &mut || {
        Box::new(Bump {
            base: region,
            next: 0,
        })
    });
}

/// The timed loops, monomorphised per allocator (the `dyn` call is per
/// batch, not per operation).
trait Runner {
    /// Allocates `sizes` into `slots`; returns the time taken.
    fn small_alloc(&mut self, sizes: &[usize], slots: &mut [*mut u8]) -> Duration;
    /// Frees `slots` in `order`; returns the time taken.
    fn small_free(&mut self, sizes: &[usize], slots: &[*mut u8], order: &[usize]) -> Duration;
    /// Runs the churn: untimed fill, timed ops, untimed teardown.
    fn churn(&mut self, w: &Churn, slots: &mut [*mut u8]) -> Duration;
}

impl<A: Allocator> Runner for A {
    fn small_alloc(&mut self, sizes: &[usize], slots: &mut [*mut u8]) -> Duration {
        self.reset();
        let t = Instant::now();
        for (slot, &size) in slots.iter_mut().zip(sizes) {
            *slot = self.alloc(size);
        }
        let e = t.elapsed();
        assert!(slots.iter().all(|p| !p.is_null()));
        black_box(&slots);
        e
    }

    fn small_free(&mut self, sizes: &[usize], slots: &[*mut u8], order: &[usize]) -> Duration {
        let t = Instant::now();
        for &i in order {
            // SAFETY: each slot was allocated with `sizes[i]`, freed once.
            unsafe { self.free(slots[i], sizes[i]) };
        }
        t.elapsed()
    }

    fn churn(&mut self, w: &Churn, slots: &mut [*mut u8]) -> Duration {
        self.reset();
        for &(slot, size) in &w.fill {
            slots[slot as usize] = self.alloc(size as usize);
        }
        let t = Instant::now();
        for &op in &w.ops {
            match op {
                Op::Alloc(slot, size) => slots[slot as usize] = self.alloc(size as usize),
                // SAFETY: the slot holds a live block of that size.
                Op::Free(slot, size) => unsafe { self.free(slots[slot as usize], size as usize) },
            }
        }
        let e = t.elapsed();
        black_box(&slots);
        assert!(
            w.live_at_end
                .iter()
                .all(|&(s, _)| !slots[s as usize].is_null())
        );
        for &(slot, size) in &w.live_at_end {
            // SAFETY: live blocks, freed once.
            unsafe { self.free(slots[slot as usize], size as usize) };
        }
        e
    }
}

#[derive(Clone, Copy)]
enum Op {
    Alloc(u32, u32),
    Free(u32, u32),
}

/// The churn workload, drawn once.
struct Churn {
    fill: Vec<(u32, u32)>,
    ops: Vec<Op>,
    live_at_end: Vec<(u32, u32)>,
    slots: usize,
}

fn churn_workload() -> Churn {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut free_slots: Vec<u32> = Vec::new();
    let mut next_slot = 0u32;
    let mut live: Vec<(u32, u32)> = Vec::new();
    let mut live_bytes = 0usize;
    let mut take_slot = |free_slots: &mut Vec<u32>| {
        free_slots.pop().unwrap_or_else(|| {
            next_slot += 1;
            next_slot - 1
        })
    };
    let mut fill = Vec::new();
    while live_bytes < CHURN_LIVE {
        let size = 16 + rng.below(4096 - 16 + 1);
        let slot = take_slot(&mut free_slots);
        fill.push((slot, size as u32));
        live.push((slot, size as u32));
        live_bytes += size;
    }
    let mut ops = Vec::with_capacity(CHURN_OPS);
    for _ in 0..CHURN_OPS {
        let want_alloc = if live_bytes < CHURN_LIVE - (1 << 20) {
            true
        } else if live_bytes > CHURN_LIVE + (1 << 20) {
            false
        } else {
            rng.next() & 1 == 0
        };
        if want_alloc {
            let size = 16 + rng.below(4096 - 16 + 1);
            let slot = take_slot(&mut free_slots);
            ops.push(Op::Alloc(slot, size as u32));
            live.push((slot, size as u32));
            live_bytes += size;
        } else {
            let (slot, size) = live.swap_remove(rng.below(live.len()));
            ops.push(Op::Free(slot, size));
            free_slots.push(slot);
            live_bytes -= size as usize;
        }
    }
    Churn {
        fill,
        ops,
        live_at_end: live,
        slots: next_slot as usize,
    }
}

/// Time per operation for `iters` operations, measured over whole batches of `batch`.
fn per_op(iters: u64, batch: usize, mut round: impl FnMut() -> Duration) -> Duration {
    let rounds = (iters as usize).div_ceil(batch).max(1);
    let mut total = Duration::ZERO;
    for _ in 0..rounds {
        total += round();
    }
    total.mul_f64(iters as f64 / (rounds * batch) as f64)
}

fn benches(c: &mut Criterion) {
    let region = arena();
    let mut rng = XorShift(42);
    let sizes: Vec<usize> = (0..SMALL_N).map(|_| 16 + rng.below(113)).collect();
    let mut order: Vec<usize> = (0..SMALL_N).collect();
    for i in (1..SMALL_N).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let churn = churn_workload();

    let mut small_alloc = c.benchmark_group("small/alloc");
    for_each_allocator(region, |name, make| {
        let mut a = make();
        let mut slots = vec![std::ptr::null_mut(); SMALL_N];
        small_alloc.bench_function(name, |b| {
            b.iter_custom(|iters| {
                per_op(iters, SMALL_N, || {
                    let t = a.small_alloc(&sizes, &mut slots);
                    a.small_free(&sizes, &slots, &order);
                    t
                })
            })
        });
    });
    small_alloc.finish();

    let mut small_free = c.benchmark_group("small/free");
    for_each_allocator(region, |name, make| {
        let mut a = make();
        let mut slots = vec![std::ptr::null_mut(); SMALL_N];
        small_free.bench_function(name, |b| {
            b.iter_custom(|iters| {
                per_op(iters, SMALL_N, || {
                    a.small_alloc(&sizes, &mut slots);
                    a.small_free(&sizes, &slots, &order)
                })
            })
        });
    });
    small_free.finish();

    let mut g = c.benchmark_group("churn");
    g.sample_size(20);
    for_each_allocator(region, |name, make| {
        let mut a = make();
        let mut slots = vec![std::ptr::null_mut(); churn.slots];
        g.bench_function(name, |b| {
            b.iter_custom(|iters| per_op(iters, CHURN_OPS, || a.churn(&churn, &mut slots)))
        });
    });
    g.finish();
}

criterion_group!(alloc_benches, benches);
criterion_main!(alloc_benches);

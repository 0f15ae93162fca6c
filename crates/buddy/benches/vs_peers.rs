//! ns per operation of this buddy allocator against three peers, each used
//! directly (no function pointer, no lock) over the same pre-faulted 64 MiB
//! arena, with every input generated before timing.
//!
//! - `small/alloc`, `small/free`: 10,000 blocks of 16..=128 bytes from a
//!   fresh allocator; the frees in a random order (all 10,000 live first).
//! - `churn`: a live set of about half the arena (by buddy block bytes),
//!   random sizes 16..=4096, random alloc/free (one op = one call).
//!
//! Peers: `buddy_system_allocator` 0.13 (`Heap<32>`), `buddy-alloc` 0.6
//! (`BuddyAlloc` alone, leaf 16), `rlsf` 0.2 (`Tlsf`).
//!
//! Run: `cargo bench -p buddy --bench vs_peers` (add `-- small` or
//! `-- churn` to pick a group). Each reported time is one operation.
//!
//! On a busy machine, criterion's one-after-the-other groups drift with the
//! load. `INTERLEAVED=15 cargo bench -p buddy --bench vs_peers` instead runs
//! 15 rounds in which every allocator does one batch of each workload in
//! turn, and prints the median (and min, max) ns per operation: the
//! allocators see the same load.

use std::alloc::Layout;
use std::hint::black_box;
use std::ptr::{NonNull, null_mut};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};

const ARENA: usize = 64 << 20;
const SMALL_N: usize = 10_000;

/// A 4 KiB-aligned region, every page written once (pre-faulted).
struct Arena {
    ptr: *mut u8,
    layout: Layout,
}

impl Arena {
    fn new(len: usize) -> Arena {
        let layout = Layout::from_size_align(len, 4096).unwrap();
        // SAFETY: non-zero size.
        let ptr = unsafe { std::alloc::alloc(layout) };
        assert!(!ptr.is_null());
        for off in (0..len).step_by(4096) {
            // SAFETY: inside the allocation.
            unsafe { ptr.add(off).write_volatile(1) };
        }
        Arena { ptr, layout }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) };
    }
}

/// An allocator under measurement. `new` builds it over the whole arena
/// (the previous one, if any, is simply forgotten).
trait Subject {
    const NAME: &'static str;
    fn new(arena: &Arena) -> Self;
    fn alloc(&mut self, size: usize) -> *mut u8;
    /// # Safety: `p` came from `alloc(size)` of this subject and is live.
    unsafe fn free(&mut self, p: *mut u8, size: usize);
}

struct Ours(NonNull<buddy::Buddy>);

impl Subject for Ours {
    const NAME: &'static str = "buddy (ours)";
    fn new(arena: &Arena) -> Self {
        // SAFETY: the arena is valid and used by nothing else meanwhile.
        Ours(unsafe { buddy::Buddy::create(arena.ptr, ARENA) }.unwrap())
    }
    #[inline]
    fn alloc(&mut self, size: usize) -> *mut u8 {
        // SAFETY: created over the live arena, used only through `self`.
        unsafe { self.0.as_mut() }
            .alloc(size)
            .map_or(null_mut(), NonNull::as_ptr)
    }
    #[inline]
    unsafe fn free(&mut self, p: *mut u8, _size: usize) {
        // SAFETY: as in `alloc`; `p` is non-null (caller).
        let _ = unsafe { self.0.as_mut().free(NonNull::new_unchecked(p)) };
    }
}

struct Bsa(Box<buddy_system_allocator::Heap<32>>);

impl Subject for Bsa {
    const NAME: &'static str = "buddy_system_allocator 0.13";
    fn new(arena: &Arena) -> Self {
        let mut heap = Box::new(buddy_system_allocator::Heap::<32>::empty());
        // SAFETY: the arena is valid and used by nothing else meanwhile.
        unsafe { heap.init(arena.ptr as usize, ARENA) };
        Bsa(heap)
    }
    #[inline]
    fn alloc(&mut self, size: usize) -> *mut u8 {
        let layout = Layout::from_size_align(size, 16).unwrap();
        self.0.alloc(layout).map_or(null_mut(), NonNull::as_ptr)
    }
    #[inline]
    unsafe fn free(&mut self, p: *mut u8, size: usize) {
        let layout = Layout::from_size_align(size, 16).unwrap();
        // SAFETY: caller's contract.
        unsafe { self.0.dealloc(NonNull::new_unchecked(p), layout) }
    }
}

struct BuddyAlloc(buddy_alloc::buddy_alloc::BuddyAlloc);

impl Subject for BuddyAlloc {
    const NAME: &'static str = "buddy-alloc 0.6";
    fn new(arena: &Arena) -> Self {
        let param = buddy_alloc::buddy_alloc::BuddyAllocParam::new(arena.ptr, ARENA, 16);
        // SAFETY: the arena is valid and used by nothing else meanwhile.
        BuddyAlloc(unsafe { buddy_alloc::buddy_alloc::BuddyAlloc::new(param) })
    }
    #[inline]
    fn alloc(&mut self, size: usize) -> *mut u8 {
        self.0.malloc(size)
    }
    #[inline]
    unsafe fn free(&mut self, p: *mut u8, _size: usize) {
        self.0.free(p)
    }
}

struct Rlsf(Box<rlsf::Tlsf<'static, u32, u32, 28, 16>>);

impl Subject for Rlsf {
    const NAME: &'static str = "rlsf 0.2";
    fn new(arena: &Arena) -> Self {
        let mut tlsf = Box::new(rlsf::Tlsf::new());
        let pool = NonNull::slice_from_raw_parts(NonNull::new(arena.ptr).unwrap(), ARENA);
        // SAFETY: the arena is valid and used by nothing else meanwhile.
        unsafe { tlsf.insert_free_block_ptr(pool) }.unwrap();
        Rlsf(tlsf)
    }
    #[inline]
    fn alloc(&mut self, size: usize) -> *mut u8 {
        let layout = Layout::from_size_align(size, 16).unwrap();
        self.0.allocate(layout).map_or(null_mut(), NonNull::as_ptr)
    }
    #[inline]
    unsafe fn free(&mut self, p: *mut u8, _size: usize) {
        // SAFETY: caller's contract (allocated with alignment 16).
        unsafe { self.0.deallocate(NonNull::new_unchecked(p), 16) }
    }
}

/// xorshift64*: inputs are generated before timing, deterministically.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

struct SmallInputs {
    sizes: Vec<usize>,
    /// A random permutation of `0..SMALL_N`: the free order.
    order: Vec<usize>,
}

fn small_inputs() -> SmallInputs {
    let mut rng = Rng(0x5eed_1234);
    let sizes = (0..SMALL_N).map(|_| 16 + rng.below(113)).collect();
    let mut order: Vec<usize> = (0..SMALL_N).collect();
    for i in (1..SMALL_N).rev() {
        order.swap(i, rng.below(i + 1));
    }
    SmallInputs { sizes, order }
}

fn bench_small<S: Subject>(c: &mut Criterion, arena: &Arena, inp: &SmallInputs) {
    let mut g = c.benchmark_group("small");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let mut ptrs = vec![null_mut(); SMALL_N];
    g.bench_function(format!("alloc/{}", S::NAME), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let n = (iters - done).min(SMALL_N as u64) as usize;
                let mut s = S::new(arena);
                let t = Instant::now();
                for (p, &size) in ptrs[..n].iter_mut().zip(&inp.sizes) {
                    *p = s.alloc(black_box(size));
                }
                total += t.elapsed();
                assert!(ptrs[..n].iter().all(|p| !p.is_null()));
                done += n as u64;
            }
            total
        })
    });
    g.bench_function(format!("free/{}", S::NAME), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let n = (iters - done).min(SMALL_N as u64) as usize;
                let mut s = S::new(arena);
                for (p, &size) in ptrs.iter_mut().zip(&inp.sizes) {
                    *p = s.alloc(size);
                    assert!(!p.is_null());
                }
                let t = Instant::now();
                for &i in &inp.order[..n] {
                    // SAFETY: live, allocated with this size.
                    unsafe { s.free(black_box(ptrs[i]), inp.sizes[i]) };
                }
                total += t.elapsed();
                done += n as u64;
            }
            total
        })
    });
    g.finish();
}

#[derive(Clone, Copy)]
enum Op {
    Alloc { slot: u32, size: u32 },
    Free { slot: u32, size: u32 },
}

struct Churn {
    /// Allocations that build the initial live set (untimed).
    warmup: Vec<Op>,
    /// The timed operations.
    ops: Vec<Op>,
    slots: usize,
}

/// The state of the trace generator.
struct Gen {
    rng: Rng,
    live: Vec<(u32, u32)>,
    free_slots: Vec<u32>,
    next_slot: u32,
    /// Buddy block bytes of the live set.
    bytes: usize,
}

fn block(size: usize) -> usize {
    size.next_power_of_two().max(16)
}

impl Gen {
    fn alloc(&mut self) -> Op {
        let size = 16 + self.rng.below(4096 - 16 + 1);
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.next_slot += 1;
            self.next_slot - 1
        });
        self.live.push((slot, size as u32));
        self.bytes += block(size);
        Op::Alloc {
            slot,
            size: size as u32,
        }
    }

    fn free(&mut self) -> Op {
        let i = self.rng.below(self.live.len());
        let (slot, size) = self.live.swap_remove(i);
        self.bytes -= block(size as usize);
        self.free_slots.push(slot);
        Op::Free { slot, size }
    }
}

/// A trace whose live set holds about half the arena in buddy blocks.
fn churn_inputs(len: usize) -> Churn {
    let target = ARENA / 2;
    let mut g = Gen {
        rng: Rng(0xc0ffee),
        live: Vec::new(),
        free_slots: Vec::new(),
        next_slot: 0,
        bytes: 0,
    };
    let mut warmup = Vec::new();
    while g.bytes < target {
        warmup.push(g.alloc());
    }
    let mut ops = Vec::with_capacity(len);
    for _ in 0..len {
        // Balanced around the target: alloc below it, free above it, a coin
        // deciding near it.
        let alloc = match g.bytes {
            b if b < target - target / 16 => true,
            b if b > target + target / 16 => false,
            _ => g.rng.next() & 1 == 0,
        };
        ops.push(if alloc || g.live.is_empty() {
            g.alloc()
        } else {
            g.free()
        });
    }
    Churn {
        warmup,
        ops,
        slots: g.next_slot as usize,
    }
}

#[inline(always)]
fn run_op<S: Subject>(s: &mut S, ptrs: &mut [*mut u8], op: Op) {
    match op {
        Op::Alloc { slot, size } => ptrs[slot as usize] = s.alloc(size as usize),
        Op::Free { slot, size } => {
            let p = ptrs[slot as usize];
            if !p.is_null() {
                // SAFETY: live, allocated with this size.
                unsafe { s.free(p, size as usize) };
            }
        }
    }
}

fn bench_churn<S: Subject>(c: &mut Criterion, arena: &Arena, inp: &Churn) {
    let mut g = c.benchmark_group("churn");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let mut ptrs = vec![null_mut(); inp.slots];
    g.bench_function(S::NAME, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let n = (iters - done).min(inp.ops.len() as u64) as usize;
                let mut s = S::new(arena);
                ptrs.fill(null_mut());
                for &op in &inp.warmup {
                    run_op(&mut s, &mut ptrs, op);
                }
                let t = Instant::now();
                for &op in &inp.ops[..n] {
                    run_op(&mut s, &mut ptrs, black_box(op));
                }
                total += t.elapsed();
                done += n as u64;
            }
            total
        })
    });
    g.finish();
}

fn all(c: &mut Criterion) {
    let arena = Arena::new(ARENA);
    let small = small_inputs();
    bench_small::<Ours>(c, &arena, &small);
    bench_small::<BuddyAlloc>(c, &arena, &small);
    bench_small::<Rlsf>(c, &arena, &small);
    bench_small::<Bsa>(c, &arena, &small);
    let churn = churn_inputs(200_000);
    bench_churn::<Ours>(c, &arena, &churn);
    bench_churn::<BuddyAlloc>(c, &arena, &churn);
    bench_churn::<Rlsf>(c, &arena, &churn);
    bench_churn::<Bsa>(c, &arena, &churn);
}

/// One batch of `workload` on a fresh `S`: ns per operation.
fn batch<S: Subject>(arena: &Arena, workload: &str, small: &SmallInputs, churn: &Churn) -> f64 {
    let mut s = S::new(arena);
    match workload {
        "small/alloc" => {
            let mut ptrs = vec![null_mut(); SMALL_N];
            let t = Instant::now();
            for (p, &size) in ptrs.iter_mut().zip(&small.sizes) {
                *p = s.alloc(black_box(size));
            }
            let ns = t.elapsed().as_nanos() as f64;
            assert!(ptrs.iter().all(|p| !p.is_null()));
            ns / SMALL_N as f64
        }
        "small/free" => {
            let ptrs: Vec<_> = small.sizes.iter().map(|&size| s.alloc(size)).collect();
            assert!(ptrs.iter().all(|p| !p.is_null()));
            let t = Instant::now();
            for &i in &small.order {
                // SAFETY: live, allocated with this size.
                unsafe { s.free(black_box(ptrs[i]), small.sizes[i]) };
            }
            t.elapsed().as_nanos() as f64 / SMALL_N as f64
        }
        _ => {
            let mut ptrs = vec![null_mut(); churn.slots];
            for &op in &churn.warmup {
                run_op(&mut s, &mut ptrs, op);
            }
            let t = Instant::now();
            for &op in &churn.ops {
                run_op(&mut s, &mut ptrs, black_box(op));
            }
            t.elapsed().as_nanos() as f64 / churn.ops.len() as f64
        }
    }
}

/// The interleaved comparison (see the module docs).
fn interleaved(rounds: usize) {
    type Batch = fn(&Arena, &str, &SmallInputs, &Churn) -> f64;
    let subjects: [(&str, Batch); 4] = [
        (Ours::NAME, batch::<Ours>),
        (BuddyAlloc::NAME, batch::<BuddyAlloc>),
        (Rlsf::NAME, batch::<Rlsf>),
        (Bsa::NAME, batch::<Bsa>),
    ];
    let arena = Arena::new(ARENA);
    let small = small_inputs();
    let churn = churn_inputs(200_000);
    println!("ns per operation, median [min max] of {rounds} interleaved rounds");
    for workload in ["small/alloc", "small/free", "churn"] {
        let mut times = vec![Vec::new(); subjects.len()];
        for r in 0..rounds {
            for i in 0..subjects.len() {
                // Rotate the order, so no allocator always runs first.
                let j = (i + r) % subjects.len();
                let (name, f) = subjects[j];
                if name == Bsa::NAME && workload != "small/alloc" && r >= 3 {
                    continue; // 100x slower: three rounds are enough
                }
                times[j].push(f(&arena, workload, &small, &churn));
            }
        }
        for ((name, _), t) in subjects.iter().zip(&mut times) {
            t.sort_by(f64::total_cmp);
            println!(
                "{workload:12} {name:30} {:9.1} [{:.1} {:.1}]",
                t[t.len() / 2],
                t[0],
                t[t.len() - 1]
            );
        }
    }
}

criterion_group!(benches, all);

fn main() {
    if let Some(rounds) = std::env::var("INTERLEAVED")
        .ok()
        .and_then(|r| r.parse().ok())
    {
        interleaved(rounds);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

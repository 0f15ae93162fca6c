//! `alloc_many` gives exactly what as many calls of `alloc` give, in every
//! mode: the same blocks in the same order, the same statistics, and the
//! same blocks again from the next calls (so the same bucket lists).

use std::ptr::NonNull;

use alloc_testkit::TestArena;
use mckusick_karels::McKusickKarels;
use plugin_abi::{
    ALLOCATOR_FLAG_FAITHFUL, ALLOCATOR_FLAG_RETURN_PAGES, AllocatorStats, ArenaAllocator,
};
use proptest::prelude::*;

/// What a run leaves: the blocks the batch gave and those of 64 more
/// `alloc` calls of each of a few sizes (offsets from the region's start),
/// the statistics before those calls and after everything is freed, and
/// the list repairs counted.
type Outcome = (
    Vec<usize>,
    AllocatorStats,
    Vec<Option<usize>>,
    AllocatorStats,
    usize,
);

/// Replays `ops` (allocate a size, or free the live block at an index) on a
/// new allocator with `flags` in `arena`, then takes `n` blocks of `size`
/// with `alloc_many` (`batch`) or one `alloc` at a time.
fn run(
    arena: &TestArena,
    flags: u32,
    ops: &[(bool, usize, usize)],
    size: usize,
    n: usize,
    batch: bool,
) -> Outcome {
    // SAFETY: the test arena is valid and ours alone; the allocator made on
    // it is forgotten before the next one is made there.
    let mut m = unsafe { McKusickKarels::create_in(arena.start(), arena.len(), flags) }
        .expect("arena too small");
    // SAFETY: created just above, used only here.
    let m = unsafe { m.as_mut() };
    let start = arena.start() as usize;
    let off = |p: NonNull<u8>| p.as_ptr() as usize - start;
    let mut live: Vec<NonNull<u8>> = Vec::new();
    for &(alloc, sz, at) in ops {
        if alloc || live.is_empty() {
            if let Some(p) = m.alloc(sz) {
                live.push(p);
            }
        } else {
            let p = live.swap_remove(at % live.len());
            m.free(p).unwrap();
        }
    }
    let mut got = Vec::new();
    if batch {
        let k = m.alloc_many(size, n, |p| got.push(off(p)));
        assert_eq!(k, got.len());
    } else {
        for _ in 0..n {
            match m.alloc(size) {
                Some(p) => got.push(off(p)),
                None => break,
            }
        }
    }
    m.check_invariants().unwrap();
    arena.margins_intact().unwrap();
    let stats = m.stats();
    let more: Vec<Option<NonNull<u8>>> = [size, 16, 100, 3000]
        .iter()
        .flat_map(|&s| (0..64).map(move |_| s))
        .map(|s| m.alloc(s))
        .collect();
    let next = more.iter().map(|p| p.map(off)).collect();
    // Everything freed again (pages given back with RETURN_PAGES unlink
    // their objects from the middle of the lists: the links are checked,
    // a bad one repaired and counted).
    for p in more.into_iter().flatten() {
        m.free(p).unwrap();
    }
    for &o in &got {
        m.free(NonNull::new((start + o) as *mut u8).unwrap())
            .unwrap();
    }
    for p in live {
        m.free(p).unwrap();
    }
    m.check_invariants().unwrap();
    (got, stats, next, m.stats(), m.free_list_repairs())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 4 } else { 200 }, ..ProptestConfig::default() })]

    #[test]
    fn alloc_many_is_alloc_n_times(
        ops in proptest::collection::vec((any::<bool>(), 0usize..6000, any::<usize>()), 0..200),
        size in prop_oneof![0usize..64, 0usize..9000, 0usize..40000, Just(1usize << 40)],
        n in 0usize..200,
        len in (64usize << 10)..(1 << 20),
        flags in prop_oneof![Just(0), Just(ALLOCATOR_FLAG_FAITHFUL), Just(ALLOCATOR_FLAG_RETURN_PAGES)],
    ) {
        let arena = TestArena::new(len, 0);
        let one_by_one = run(&arena, flags, &ops, size, n, false);
        let batch = run(&arena, flags, &ops, size, n, true);
        prop_assert_eq!(batch, one_by_one);
    }
}

#[test]
fn a_batch_larger_than_the_arena_stops_where_alloc_fails() {
    for flags in [0, ALLOCATOR_FLAG_FAITHFUL, ALLOCATOR_FLAG_RETURN_PAGES] {
        let arena = TestArena::new(256 << 10, 0);
        let one_by_one = run(&arena, flags, &[], 64, 100_000, false);
        let batch = run(&arena, flags, &[], 64, 100_000, true);
        assert!(one_by_one.0.len() < 100_000);
        assert_eq!(batch, one_by_one);
        assert_eq!(batch.1.failed_allocs, 1);
        assert_eq!(batch.4, 0);
    }
}

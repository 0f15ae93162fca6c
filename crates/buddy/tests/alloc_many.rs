//! `alloc_many` gives exactly what as many calls of `alloc` give: the same
//! blocks in the same order, the same free areas (list order included) and
//! the same statistics after, from any state.

use std::ptr::NonNull;

use alloc_testkit::TestArena;
use buddy::{Buddy, FreeBlock};
use plugin_abi::{AllocatorStats, ArenaAllocator};
use proptest::prelude::*;

/// What a run leaves: the blocks the batch gave (offsets from the region's
/// start), the free lists in list order, the statistics.
type Outcome = (Vec<usize>, Vec<FreeBlock>, AllocatorStats);

/// Replays `ops` (allocate `size`, or free the live block at an index) on a
/// new allocator in `arena`, then takes `n` blocks of `size` with
/// `alloc_many` (`batch`) or one `alloc` at a time.
fn run(
    arena: &TestArena,
    ops: &[(bool, usize, usize)],
    size: usize,
    n: usize,
    batch: bool,
) -> Outcome {
    // SAFETY: the test arena is valid and ours alone; the allocator made on
    // it is dropped (forgotten) before the next one is made there.
    let mut b = unsafe { Buddy::create(arena.start(), arena.len()) }.expect("arena too small");
    // SAFETY: created just above, used only here.
    let b = unsafe { b.as_mut() };
    let start = arena.start() as usize;
    let mut live: Vec<NonNull<u8>> = Vec::new();
    for &(alloc, sz, at) in ops {
        if alloc || live.is_empty() {
            if let Some(p) = b.alloc(sz) {
                live.push(p);
            }
        } else {
            let p = live.swap_remove(at % live.len());
            b.free(p).unwrap();
        }
    }
    let mut got = Vec::new();
    if batch {
        let k = ArenaAllocator::alloc_many(b, size, n, |p| got.push(p.as_ptr() as usize - start));
        assert_eq!(k, got.len());
    } else {
        for _ in 0..n {
            match b.alloc(size) {
                Some(p) => got.push(p.as_ptr() as usize - start),
                None => break,
            }
        }
    }
    b.check_invariants().unwrap();
    arena.margins_intact().unwrap();
    let free = b
        .free_blocks()
        .map(|f| FreeBlock {
            addr: f.addr - start,
            order: f.order,
        })
        .collect();
    (got, free, b.stats())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 4 } else { 300 }, ..ProptestConfig::default() })]

    #[test]
    fn alloc_many_is_alloc_n_times(
        ops in proptest::collection::vec((any::<bool>(), 0usize..6000, any::<usize>()), 0..200),
        size in prop_oneof![0usize..64, 0usize..9000, Just(1usize << 40)],
        n in 0usize..200,
        len in 4096usize..(512 << 10),
        misalign in 0usize..4096,
    ) {
        let arena = TestArena::new(len, misalign);
        let one_by_one = run(&arena, &ops, size, n, false);
        let batch = run(&arena, &ops, size, n, true);
        prop_assert_eq!(batch, one_by_one);
    }
}

#[test]
fn a_batch_larger_than_the_arena_stops_where_alloc_fails() {
    let arena = TestArena::new(64 << 10, 0);
    let one_by_one = run(&arena, &[], 16, 100_000, false);
    let batch = run(&arena, &[], 16, 100_000, true);
    assert!(one_by_one.0.len() < 100_000);
    assert_eq!(batch, one_by_one);
    assert_eq!(batch.2.failed_allocs, 1);
}

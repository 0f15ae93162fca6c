//! Writes into freed blocks (the test kit's scribble cases) in every mode:
//! no block outside the arena, misaligned or overlapping a live block, no
//! live block damaged, the corrupt link found and the list rebuilt.

use alloc_testkit::scribble::{SCRIBBLES, scribble_case};
use mckusick_karels::{Config, Heap, McKusickKarels};
use plugin_abi::{ALLOCATOR_FLAG_FAITHFUL, ALLOCATOR_FLAG_RETURN_PAGES};

#[test]
fn every_scribble_of_a_freed_block_is_caught_in_every_mode() {
    for flags in [0, ALLOCATOR_FLAG_FAITHFUL, ALLOCATOR_FLAG_RETURN_PAGES] {
        for (kind, name) in SCRIBBLES.iter().enumerate() {
            for size in [16, 64, 1000, 5000] {
                let found = scribble_case::<McKusickKarels>(kind, size, flags)
                    .unwrap_or_else(|e| panic!("flags {flags:#x}: {e}"));
                // Nothing to find: a null link where the block was the only
                // free object of its bucket (one object per page; or, in the
                // singly linked modes, which carve a fresh page lazily, the
                // only object on the list: the others are still to carve,
                // see `null_link_cutting_a_list_short_is_found`), or a page
                // given back at once (one object per page, with RETURN_PAGES).
                let harmless = (kind == 1 && (size > 256 || flags != ALLOCATOR_FLAG_RETURN_PAGES))
                    || (flags == ALLOCATOR_FLAG_RETURN_PAGES && size > 4096);
                assert!(
                    found || harmless,
                    "flags {flags:#x}: {} into {size} B: not found",
                    name
                );
            }
        }
    }
}

#[test]
fn null_link_cutting_a_list_short_is_found() {
    for config in [Config::DEFAULT, Config::FAITHFUL, Config::RETURN_PAGES] {
        let mut region = vec![0u8; 256 << 10];
        let mut heap = Heap::new(&mut region, config).unwrap();
        let blocks: Vec<_> = (0..8).map(|_| heap.malloc(16).unwrap()).collect();
        for &b in &blocks[..4] {
            heap.free(b).unwrap();
        }
        // The head (the last block freed) links to the next free block: a
        // null written there hides three free blocks behind a list of one.
        // SAFETY: the freed block's first word lies in the region, in no
        // live block: the write a use-after-free does.
        unsafe { blocks[3].as_ptr().cast::<usize>().write(0) };
        let again: Vec<_> = (0..6).map(|_| heap.malloc(16).unwrap()).collect();
        assert_eq!(heap.free_list_repairs(), 1, "{config:?}");
        heap.check_invariants().unwrap();
        let mut addrs: Vec<usize> = again
            .iter()
            .chain(&blocks[4..])
            .map(|p| p.as_ptr() as usize)
            .collect();
        addrs.sort_unstable();
        addrs.dedup();
        assert_eq!(addrs.len(), 10, "{config:?}: a block handed out twice");
    }
}

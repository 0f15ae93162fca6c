//! Writes into freed blocks (the test kit's scribble cases) in every mode:
//! no block outside the arena, misaligned or overlapping a live block, no
//! live block damaged, the corrupt link found and the list rebuilt.

use alloc_testkit::scribble::{SCRIBBLES, scribble_case};
use mckusick_karels::McKusickKarels;
use plugin_abi::{ALLOCATOR_FLAG_FAITHFUL, ALLOCATOR_FLAG_RETURN_PAGES};

#[test]
fn every_scribble_of_a_freed_block_is_caught_in_every_mode() {
    for flags in [0, ALLOCATOR_FLAG_FAITHFUL, ALLOCATOR_FLAG_RETURN_PAGES] {
        for (kind, name) in SCRIBBLES.iter().enumerate() {
            for size in [16, 64, 1000, 5000] {
                let found = scribble_case::<McKusickKarels>(kind, size, flags)
                    .unwrap_or_else(|e| panic!("flags {flags:#x}: {e}"));
                // Nothing to find: a null link where the block was the only
                // free object of its bucket, or a page given back at once
                // (one object per page, with RETURN_PAGES).
                let harmless = (kind == 1 && size > 256)
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

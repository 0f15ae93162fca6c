//! Writes into freed blocks (the test kit's scribble cases): no block
//! outside the arena, misaligned or overlapping a live block, no live block
//! damaged, the corrupt link found and the free areas rebuilt.

use alloc_testkit::scribble::{SCRIBBLES, scribble_case};
use buddy::Buddy;

#[test]
fn every_scribble_of_a_freed_block_is_caught() {
    for (kind, name) in SCRIBBLES.iter().enumerate() {
        for size in [16, 64, 1000, 5000] {
            let found = scribble_case::<Buddy>(kind, size, 0).unwrap_or_else(|e| panic!("{e}"));
            assert!(found, "{} into {size} B: not found", name);
        }
    }
}

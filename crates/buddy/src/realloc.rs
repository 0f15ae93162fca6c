//! Realloc: in place where the buddy structure allows, otherwise move.
//!
//! ```text
//!   shrink order 7 -> 5 at g:  [ 5 kept | 5 free | 6 free          ]
//!   grow   order 5 -> 7 at g:  [ 5 live | 5 free | 6 free          ]  -> [ 7 live ]
//!          (g aligned to 2^7, the upper buddies free and whole at orders 5, 6)
//! ```
//!
//! Growing in place checks every buddy first and mutates nothing unless all
//! of them are free at the right order. Otherwise a new block is allocated,
//! the old contents copied and the old block freed; if that allocation
//! fails, the old block is untouched.

use core::ptr::NonNull;

use arena_api::ReallocError;

use crate::Buddy;
use crate::order::{block_bytes, granules, is_aligned, order_of_size};

impl Buddy {
    /// Resizes the block at `ptr` to hold `new_size` bytes (0 counts as 1),
    /// keeping its first `min(old, new)` bytes:
    /// - same order: returns `ptr`;
    /// - smaller order: in place, the upper halves go to the free areas;
    /// - larger order: in place if the block is aligned for the new order,
    ///   the new block fits in the range and its upper buddies are all free
    ///   and whole at the right orders; otherwise allocate, copy, free.
    ///
    /// A bad `ptr` is rejected ([`ReallocError::BadPointer`], counted in
    /// `rejected_frees`); no room gives [`ReallocError::OutOfMemory`]
    /// (counted in `failed_allocs`). On error nothing changed.
    ///
    /// # Time complexity
    ///
    /// O(log(arena / 16)) plus, when the block moves, the copy of the old
    /// block (O(old size)).
    pub fn realloc(
        &mut self,
        ptr: NonNull<u8>,
        new_size: usize,
    ) -> Result<NonNull<u8>, ReallocError> {
        let Some((owner, g, k)) = self.live_block_anywhere(ptr) else {
            self.rejected_frees += 1;
            return Err(ReallocError::BadPointer);
        };
        let Some(new) = order_of_size(new_size) else {
            self.failed_allocs += 1;
            return Err(ReallocError::OutOfMemory);
        };
        let region = self.region_mut(owner);
        if new == k {
            return Ok(region.frame.block_ptr(g));
        }
        if new < k {
            region.shrink_in_place(g, k, new);
            return Ok(region.frame.block_ptr(g));
        }
        if region.can_grow_in_place(g, k, new) {
            region.grow_in_place(g, k, new);
            return Ok(region.frame.block_ptr(g));
        }
        self.move_block(owner, g, k, new)
    }

    /// Frees the live block `(g, k)` (already validated).
    pub(crate) fn forget_and_release(&mut self, g: usize, k: u32) {
        self.map.clear_allocated(g, k);
        let bytes = block_bytes(k);
        self.reserved_bytes = self.reserved_bytes.wrapping_sub(bytes);
        self.live_blocks = self.live_blocks.wrapping_sub(1);
        self.release(g, k);
    }

    /// Makes the live block `(g, k)` of order `new < k`, freeing its upper
    /// halves. They cannot merge: each one's buddy holds the live block.
    fn shrink_in_place(&mut self, g: usize, k: u32, new: u32) {
        self.map.clear_allocated(g, k);
        self.map.mark_allocated(g, new);
        for i in new..k {
            // SAFETY: an upper half of the live block, which no longer
            // holds it: managed, in no list.
            unsafe { self.areas.push(&self.frame, g + granules(i), i) };
        }
        let bytes = block_bytes(k) - block_bytes(new);
        self.reserved_bytes = self.reserved_bytes.wrapping_sub(bytes);
    }

    /// True when the live block `(g, k)` can become `(g, new)`: aligned for
    /// `new`, inside the range, and the blocks at `g + granules(i)` for
    /// `i = k..new` free of order `i`. Reads headers only where the bitmaps
    /// prove a free block starts: each `g + granules(i)` is the buddy of
    /// `(g, i)`, a block start as long as the lower buddies were merged.
    fn can_grow_in_place(&self, g: usize, k: u32, new: u32) -> bool {
        is_aligned(g, new)
            && self.frame.fits(g, new)
            // SAFETY: the region of order i at `g + granules(i)` lies in the
            // block of order `new` at `g`, which fits in the range.
            && (k..new).all(|i| unsafe { self.is_free_of_order(g + granules(i), i) })
    }

    /// Makes the live block `(g, k)` of order `new > k`, taking its upper
    /// buddies off their free areas (`can_grow_in_place` said they are free).
    fn grow_in_place(&mut self, g: usize, k: u32, new: u32) {
        for i in k..new {
            // SAFETY: `can_grow_in_place` found a free block of order i
            // there, inside the range.
            if unsafe {
                self.areas
                    .unlink(&self.frame, &self.map, g + granules(i), i)
            }
            .is_err()
            {
                // Rebuilt from the bitmaps, the blocks above `(g, k)` are
                // exactly the free blocks of orders k..new: take them again.
                self.rebuild_free_areas();
                for j in k..new {
                    // SAFETY: as above, on rebuilt lists.
                    let ok = unsafe {
                        self.areas
                            .unlink(&self.frame, &self.map, g + granules(j), j)
                    };
                    debug_assert!(ok.is_ok());
                }
                break;
            }
        }
        self.map.clear_allocated(g, k);
        self.map.mark_allocated(g, new);
        let bytes = block_bytes(new) - block_bytes(k);
        self.reserved_bytes = self.reserved_bytes.wrapping_add(bytes);
    }
}

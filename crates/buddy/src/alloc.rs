//! Allocation: take the smallest free block that holds the request and split
//! it down to the request's order.
//!
//! ```text
//!   alloc(20): order 5 wanted, smallest free block is of order 7 at g
//!   [               order 7 at g                ]   taken off its free area
//!   [ order 6 at g         | order 6 at g+4  -> ]   free area 6
//!   [ order 5 at g | 5 at g+2 -> ]                  free area 5
//!     ^ returned
//! ```

use core::ptr::NonNull;

use crate::Buddy;
use crate::free_area::Corrupt;
use crate::order::{MAX_ORDER, MIN_ORDER, block_bytes, granules, order_of_size};

impl Buddy {
    /// A block of at least `size` bytes (`size` 0 counts as 1): the smallest
    /// free block of order `k = max(4, ceil(log2(size)))` or more, split down
    /// to order `k`. It is aligned to `2^k` bytes (so always to 16). `None`
    /// (counted in `failed_allocs`) if no free block is large enough, at once
    /// for sizes above 32 GiB.
    ///
    /// # Time complexity
    ///
    /// O(1) to find the block (a trailing-zero count on the mask of non-empty
    /// free areas), plus O(1) per split: O(log(arena / 16))
    /// worst case.
    #[inline(always)]
    pub fn alloc(&mut self, size: usize) -> Option<NonNull<u8>> {
        match order_of_size(size) {
            Some(k) => self.alloc_order(k, k),
            None => self.failed(),
        }
    }

    /// A block of at least `size` bytes aligned to `align` (a power of two;
    /// otherwise `None`). Blocks are naturally aligned, so this takes a free
    /// block of order `>= log2(align)` and splits it down to the order of
    /// `size`, keeping its aligned lower end: a small request with a large
    /// alignment costs only its own block, not `align` bytes.
    ///
    /// # Time complexity
    ///
    /// As [`Buddy::alloc`].
    pub fn alloc_aligned(&mut self, size: usize, align: usize) -> Option<NonNull<u8>> {
        if !align.is_power_of_two() {
            return self.failed();
        }
        let Some(k) = order_of_size(size) else {
            return self.failed();
        };
        let a = align.trailing_zeros().max(MIN_ORDER);
        if a > MAX_ORDER {
            return self.failed();
        }
        self.alloc_order(k, k.max(a))
    }

    /// Counts a failed allocation.
    #[cold]
    #[inline(never)]
    pub(crate) fn failed<T>(&mut self) -> Option<T> {
        self.failed_allocs += 1;
        None
    }

    /// Allocates a block of order `k` from the smallest free block of order
    /// `>= from` (`from >= k`) of any region; a failure is counted.
    #[inline(always)]
    pub(crate) fn alloc_order(&mut self, k: u32, from: u32) -> Option<NonNull<u8>> {
        match self.take_order(k, from) {
            Some(p) => Some(p),
            None => self.alloc_order_elsewhere(k, from),
        }
    }

    /// Allocates a block of order `k` from the smallest free block of order
    /// `>= from` (`from >= k`) of this region only; counts nothing. A
    /// corrupt free-area link (a write into a freed block) is not followed:
    /// the free areas are rebuilt from the bitmaps and the allocation is
    /// tried once more.
    #[inline(always)]
    pub(crate) fn take_order(&mut self, k: u32, from: u32) -> Option<NonNull<u8>> {
        match self.try_take_order(k, from) {
            Ok(p) => p,
            Err(Corrupt) => self.take_after_repair(k, from),
        }
    }

    #[cold]
    #[inline(never)]
    fn take_after_repair(&mut self, k: u32, from: u32) -> Option<NonNull<u8>> {
        self.rebuild_free_areas();
        match self.try_take_order(k, from) {
            Ok(p) => p,
            Err(Corrupt) => {
                debug_assert!(false, "rebuilt free areas are corrupt");
                None
            }
        }
    }

    #[inline(always)]
    fn try_take_order(&mut self, k: u32, from: u32) -> Result<Option<NonNull<u8>>, Corrupt> {
        let Some(j) = self.areas.smallest_at_least(from) else {
            return Ok(None);
        };
        let g = self.areas.pop(&self.frame, &self.map, j)?;
        // Split: keep the lower half, free the upper one, down to order k.
        // (Should a push find a corrupt head, the block is still free in the
        // bitmaps: the rebuild puts it back.)
        let mut i = j;
        while i > k {
            i -= 1;
            // SAFETY: the upper half of order i of the block just taken off
            // its list: managed, and in no list.
            unsafe {
                self.areas
                    .push(&self.frame, &self.map, g + granules(i), i)?
            };
        }
        self.map.mark_allocated(g, k);
        let bytes = block_bytes(k);
        self.reserved_bytes = self.reserved_bytes.wrapping_add(bytes);
        self.live_blocks = self.live_blocks.wrapping_add(1);
        Ok(Some(self.frame.block_ptr(g)))
    }
}

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

    /// Up to `n` blocks of at least `size` bytes, handed to `out` one by
    /// one: the blocks, in the order, that `n` calls of [`Buddy::alloc`]
    /// would give (and the same free areas after), stopping where one would
    /// fail (counted, as it would be). Those calls take the smallest free
    /// block of order `j >= k` (the request's order), split it, and then
    /// take its pieces one by one in address order: here its first `m`
    /// blocks of order `k` are marked allocated at once and the rest of it
    /// goes back as at most `j - k` free blocks, one list pop for up to
    /// `2^(j-k)` blocks instead of a pop and about one push per block.
    ///
    /// # Time complexity
    ///
    /// O(1) per block (its bitmap mark) plus O(log(arena / 16)) per free
    /// block carved.
    #[inline]
    pub fn alloc_many(&mut self, size: usize, n: usize, mut out: impl FnMut(NonNull<u8>)) -> usize {
        let Some(k) = order_of_size(size) else {
            if n > 0 {
                let _ = self.failed::<()>();
            }
            return 0;
        };
        let mut got = 0;
        while got < n {
            match self.try_carve(k, n - got, &mut out) {
                Ok(0) | Err(Corrupt) => break,
                Ok(m) => got += m,
            }
        }
        // The rest one by one: other regions, a repair, the failure count.
        while got < n {
            match self.alloc_order(k, k) {
                Some(p) => {
                    out(p);
                    got += 1;
                }
                None => break,
            }
        }
        got
    }

    /// Takes the smallest free block of order `>= k` of this region and
    /// hands out its first `min(want, 2^(j-k))` blocks of order `k`, in
    /// address order; the rest goes back to the free areas. `Ok(0)`: no
    /// free block large enough here; `Err(Corrupt)`: the block's list link
    /// is corrupt (nothing changed: the caller goes through the repairing
    /// path).
    #[inline(always)]
    fn try_carve(
        &mut self,
        k: u32,
        want: usize,
        out: &mut impl FnMut(NonNull<u8>),
    ) -> Result<usize, Corrupt> {
        let Some(j) = self.areas.smallest_at_least(k) else {
            return Ok(0);
        };
        let g = self.areas.pop(&self.frame, &self.map, j)?;
        // The block holds `span` blocks of order k; `m` are handed out.
        let span = 1usize << (j - k);
        let m = want.min(span);
        let step = granules(k);
        for i in 0..m {
            let b = g + i * step;
            self.map.mark_allocated(b, k);
            out(self.frame.block_ptr(b));
        }
        self.reserved_bytes = self.reserved_bytes.wrapping_add(m * block_bytes(k));
        self.live_blocks = self.live_blocks.wrapping_add(m);
        // The rest, `[m, span)` in blocks of order k, goes back as the
        // largest aligned free block at each position (those that the
        // splits of `m` calls of `alloc` leave, one per order at most).
        let mut i = m;
        while i < span {
            // 0 < i < span: a block of 2^tz(i) there fits in the span.
            let o = i.trailing_zeros();
            // SAFETY: part of the block just taken off its list and not
            // handed out: managed, in no list.
            unsafe { self.areas.push(&self.frame, g + i * step, k + o) };
            i += 1 << o;
        }
        Ok(m)
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

    /// The common case of [`Buddy::alloc`], for the C layer's fast path: a
    /// block of this region as `alloc` would give, or `None` with nothing
    /// changed (no block large enough here, a corrupt list head, a size
    /// above 32 GiB): then `alloc` itself is called, which tries the other
    /// regions, repairs and counts.
    ///
    /// # Time complexity
    ///
    /// As [`Buddy::alloc`].
    #[inline(always)]
    pub(crate) fn alloc_fast(&mut self, size: usize) -> Option<NonNull<u8>> {
        let k = order_of_size(size)?;
        // `Err` comes from the pop alone, before anything changed (a push
        // cannot fail).
        self.try_take_order(k, k).ok().flatten()
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
        let mut i = j;
        while i > k {
            i -= 1;
            // SAFETY: the upper half of order i of the block just taken off
            // its list: managed, and in no list.
            unsafe { self.areas.push(&self.frame, g + granules(i), i) };
        }
        self.map.mark_allocated(g, k);
        let bytes = block_bytes(k);
        self.reserved_bytes = self.reserved_bytes.wrapping_add(bytes);
        self.live_blocks = self.live_blocks.wrapping_add(1);
        Ok(Some(self.frame.block_ptr(g)))
    }
}

//! Free: check the pointer against the bitmaps, forget the block, merge it
//! with its buddy while the buddy is free and of the same order.
//!
//! ```text
//!   free(g, order 4):  buddy = g ^ 1             parent = g & !1
//!   [ g (freed) | g^1 free, order 4 ]  -> merge -> [ order 5 at g & !1 ]
//!   then its buddy at order 5, and so on up to the top block.
//! ```
//!
//! The merge check reads no memory a caller owns. Where the parent of a
//! block `(g, k)` lies inside the managed range, its buddy `b` is always the
//! start of *some* block: any block holding `b` but starting before it would
//! be naturally aligned to more than `2^k` and so contain `g` too. So:
//!
//! 1. the bitmaps say whether an allocated block starts at `b` (then no merge);
//! 2. if none does, `b` starts a **free** block, whose header is the
//!    allocator's own: merge iff its order is `k`.
//!
//! Up to order 12 even the header is not read: the buddy is free and whole
//! iff no allocated block starts in its aligned region, one word test
//! (`is_free_of_order`); the header is touched only to take a
//! merged buddy off its free area.
//!
//! A merged buddy leaves its free area (O(1), doubly linked) and its header
//! magic is erased.

use core::ptr::NonNull;

use arena_api::BadPointer;

use crate::Buddy;
use crate::bitmap::{AllocMap, WORD_ORDER};
use crate::free_area::Frame;
use crate::order::{MAX_ORDER, block_bytes, buddy, granules, parent};

impl Buddy {
    /// Gives back the block at `ptr`, merging it with its free buddies. A
    /// pointer that is not the start of a live block (outside the managed
    /// range, misaligned, inside a block, already freed) is rejected: counted
    /// in `rejected_frees`, nothing else changes. The decision reads only the
    /// allocator's bitmaps, never the block.
    ///
    /// # Time complexity
    ///
    /// O(1) to validate the block (two bitmap words); O(1) per merge:
    /// O(log(arena / 16)) worst case.
    #[inline(always)]
    pub fn free(&mut self, ptr: NonNull<u8>) -> Result<(), BadPointer> {
        match self.free_here(ptr) {
            Ok(()) => Ok(()),
            Err(BadPointer) => self.free_elsewhere(ptr),
        }
    }

    /// The common case of [`Buddy::free`], for the C layer's fast path:
    /// `true` when `ptr` was a live block of this region, now freed;
    /// `false`, with nothing changed, otherwise (then `free` itself is
    /// called: another region's block, or a pointer to reject and count).
    /// NULL is never in the managed range (which starts after this state):
    /// `false`.
    ///
    /// # Time complexity
    ///
    /// As [`Buddy::free`].
    #[inline(always)]
    pub(crate) fn free_fast(&mut self, ptr: *mut u8) -> bool {
        self.free_at(ptr.addr()).is_ok()
    }

    /// `free` in this region only; counts nothing.
    #[inline(always)]
    pub(crate) fn free_here(&mut self, ptr: NonNull<u8>) -> Result<(), BadPointer> {
        self.free_at(ptr.as_ptr().addr())
    }

    /// [`Buddy::free_here`] of the block at address `addr`.
    #[inline(always)]
    fn free_at(&mut self, addr: usize) -> Result<(), BadPointer> {
        let g = self.frame.granule_of(addr).ok_or(BadPointer)?;
        let k = self.map.take_start(g);
        if k == 0 {
            return Err(BadPointer);
        }
        let bytes = block_bytes(k);
        self.reserved_bytes = self.reserved_bytes.wrapping_sub(bytes);
        self.live_blocks = self.live_blocks.wrapping_sub(1);
        self.release(g, k);
        Ok(())
    }

    /// The size of the live block at `ptr` (`2^k`, at least what was asked),
    /// or `None` if `ptr` is not the start of a live block.
    ///
    /// # Time complexity
    ///
    /// O(1).
    pub fn usable_size(&self, ptr: NonNull<u8>) -> Option<usize> {
        self.live_block_anywhere(ptr)
            .map(|(_, _, k)| block_bytes(k))
    }

    /// Counts a rejected pointer.
    #[cold]
    #[inline(never)]
    pub(crate) fn rejected<T>(&mut self) -> Result<T, BadPointer> {
        self.rejected_frees += 1;
        Err(BadPointer)
    }

    /// `(granule, order)` of the live block starting at `ptr`, if one does.
    #[inline(always)]
    pub(crate) fn live_block(&self, ptr: NonNull<u8>) -> Option<(usize, u32)> {
        let g = self.frame.granule_of(ptr.as_ptr().addr())?;
        let k = self.map.start_order(g);
        (k != 0).then_some((g, k))
    }

    /// True when `b` starts a free block of order `k`, given that `b` is a
    /// block start whose parent (with the block at `b ^ granules(k)`, not
    /// free) lies in the range.
    ///
    /// Up to order 12 this reads only the bitmaps: the aligned region of
    /// order `k` at `b` is a single free block iff no allocated block starts
    /// in it. (Were it all free but cut into several free blocks, the
    /// smallest of them and its buddy, of the same order, would be two
    /// unmerged free buddies; and no free block holding it can be larger,
    /// its parent holds the other half.) Above, the block at `b` is a free
    /// block when no allocated one starts there, and its header tells its
    /// order.
    ///
    /// # Safety
    ///
    /// The region of order `k` at `b` lies inside the managed range.
    #[inline(always)]
    pub(crate) unsafe fn is_free_of_order(&self, b: usize, k: u32) -> bool {
        // SAFETY: the caller's contract.
        unsafe { free_of_order(&self.frame, &self.map, b, k) }
    }

    /// Puts the (already forgotten) block of order `k` at `g` back in the
    /// free areas, merging it with its buddy while possible.
    #[inline(always)]
    pub(crate) fn release(&mut self, mut g: usize, mut k: u32) {
        // Copies in registers: see `AllocMap`.
        let (frame, map) = (self.frame, self.map);
        let (start, end) = (frame.start, frame.end);
        // granules(k), kept as k grows rather than recomputed.
        let mut size = granules(k);
        while k < MAX_ORDER {
            // parent(g, k) = g & !size, buddy(g, k) = g ^ size.
            let p = g & !size;
            if p < start || p + 2 * size > end {
                break; // a top block: its buddy is not in the range
            }
            let b = g ^ size;
            debug_assert_eq!((p, b), (parent(g, k), buddy(g, k)));
            // SAFETY: `b`'s region is half of the parent, in the range.
            if !unsafe { free_of_order(&frame, &map, b, k) } {
                break;
            }
            // The next level's buddy, whose header a merge there reads:
            // its load starts now, beside this level's unlink (the bitmaps
            // decide that merge, not this one's headers).
            frame.prefetch(p ^ (size << 1));
            // SAFETY: `b` lies in the range (its parent does) and starts a
            // free block of order k (just checked).
            if unsafe { self.areas.unlink(&frame, &map, b, k) }.is_err() {
                // A write into a freed block: the bitmaps already show the
                // block at `g` free, the rebuild merges it.
                return self.rebuild_free_areas();
            }
            g = p;
            k += 1;
            size <<= 1;
        }
        debug_assert!(frame.fits(g, k));
        // SAFETY: `(g, k)` is the freed block or a parent of it made of free
        // buddies just taken off their lists: managed, in no list.
        unsafe { self.areas.push(&frame, g, k) };
    }
}

/// [`Buddy::is_free_of_order`] on a frame and bitmaps given by value.
///
/// # Safety
///
/// As for [`Buddy::is_free_of_order`].
#[inline(always)]
unsafe fn free_of_order(frame: &Frame, map: &AllocMap, b: usize, k: u32) -> bool {
    if k <= WORD_ORDER {
        // SAFETY: the region lies in the managed range (caller), which the
        // bitmaps cover.
        unsafe { map.no_start_in(b, k) }
    } else {
        !map.has_start(b) && u32::from(frame.header_order(b)) == k
    }
}

//! Memory added after creation ([`Buddy::add_region`]), as Linux's buddy
//! allocator gets more zones and `buddy_system_allocator` gets `add_to_heap`.
//!
//! An added region is set up exactly as the arena was at creation (its own
//! state, bitmaps and managed range, tiled with the largest naturally
//! aligned blocks that fit: [`crate::order::covering`]) and linked into a
//! list from the first region's state:
//!
//! ```text
//!   arena:     [Buddy | bitmaps | blocks ...]   more -> region 2
//!   region 2:  [Buddy | bitmaps | blocks ...]   more -> region 1 (added first)
//!   region 1:  [Buddy | bitmaps | blocks ...]   more -> none
//! ```
//!
//! The first region's hot paths are unchanged: `alloc` looks at the other
//! regions only when its own free areas have no block large enough, `free`
//! only when the pointer lies outside its managed range (cold paths, one
//! range test per region). Blocks never merge across regions (two regions
//! are two sets of top blocks, even when adjacent). The counters of failed
//! and rejected calls live in the first region's state only.

use core::ptr::{self, NonNull};

use arena_api::{AddRegionError, BadPointer, ReallocError};

use crate::Buddy;
use crate::order::block_bytes;

/// Which region's state holds a block.
#[derive(Clone, Copy)]
pub(crate) enum Owner {
    /// The first region (`self`).
    Here,
    /// An added region.
    More(NonNull<Buddy>),
}

/// The added regions, newest first.
pub(crate) struct More(Option<NonNull<Buddy>>);

impl Iterator for More {
    type Item = NonNull<Buddy>;

    fn next(&mut self) -> Option<NonNull<Buddy>> {
        let b = self.0?;
        // SAFETY: every link points to the state of a live added region
        // (`add_region`), which is only read here.
        self.0 = unsafe { b.as_ref() }.more;
        Some(b)
    }
}

impl Buddy {
    /// Gives the allocator another region, `[region, region + len)`, of any
    /// size and alignment: it gets its own state and bitmaps (about 1 % of
    /// it, as at creation) and is tiled with the largest naturally aligned
    /// blocks that fit. `stats().arena_bytes` grows by `len`. Refused, with
    /// nothing changed, when the region is null, too small for its state and
    /// one 16-byte block (about 300 bytes) or overlaps the arena or a region
    /// added before.
    ///
    /// # Safety
    ///
    /// `region` is valid for reads and writes of `len` bytes for as long as
    /// the allocator or any block from it is used, and nothing else accesses
    /// it meanwhile except through handed-out blocks.
    ///
    /// # Time complexity
    ///
    /// O(len / 512) (the bitmaps are zeroed) plus O(log len) plus O(regions)
    /// (the overlap check).
    ///
    /// # Example
    ///
    /// ```
    /// let mut first = vec![0u8; 4096];
    /// let mut second = vec![0u8; 64 << 10];
    /// let heap = buddy::Buddy::new_in(&mut first).unwrap();
    /// assert!(heap.alloc(8 << 10).is_none()); // 4 KiB cannot hold 8 KiB
    /// // SAFETY: `second` outlives `heap` and is not used otherwise.
    /// unsafe { heap.add_region(second.as_mut_ptr(), second.len()) }.unwrap();
    /// let p = heap.alloc(8 << 10).unwrap();
    /// heap.free(p).unwrap();
    /// assert_eq!(heap.stats().arena_bytes, 4096 + (64 << 10));
    /// ```
    pub unsafe fn add_region(&mut self, region: *mut u8, len: usize) -> Result<(), AddRegionError> {
        let Some(end) = region.addr().checked_add(len) else {
            return Err(AddRegionError::TooSmall);
        };
        if region.is_null() {
            return Err(AddRegionError::TooSmall);
        }
        let overlaps =
            |b: &Buddy| region.addr() < b.region_addr + b.region_len && b.region_addr < end;
        if overlaps(self)
            || self.more().any(|b| {
                // SAFETY: a live added region's state, only read.
                overlaps(unsafe { b.as_ref() })
            })
        {
            return Err(AddRegionError::Overlaps);
        }
        // SAFETY: the caller's contract is `create`'s.
        let Some(mut added) = (unsafe { Buddy::create(region, len) }) else {
            return Err(AddRegionError::TooSmall);
        };
        // SAFETY: just created in the new region, which no other state
        // overlaps (checked above): this is its only reference.
        unsafe { added.as_mut() }.more = self.more;
        self.more = Some(added);
        Ok(())
    }

    /// The added regions' states, newest first.
    pub(crate) fn more(&self) -> More {
        More(self.more)
    }

    /// The state of region `o`.
    #[inline]
    pub(crate) fn region_mut(&mut self, o: Owner) -> &mut Buddy {
        match o {
            Owner::Here => self,
            // SAFETY: an added region's state lies in that region, apart
            // from `self` (no overlap, checked by `add_region`); `&mut self`
            // makes this the only reference to any state of the allocator.
            Owner::More(b) => unsafe { &mut *b.as_ptr() },
        }
    }

    /// The added region whose managed range holds address `addr`.
    #[cold]
    pub(crate) fn added_region_of(&self, addr: usize) -> Option<NonNull<Buddy>> {
        self.more().find(|b| {
            // SAFETY: a live added region's state, only read.
            let (start, len) = unsafe { b.as_ref() }.managed_range();
            addr.wrapping_sub(start) < len
        })
    }

    /// `alloc_order` when the first region has no free block of order
    /// `>= from`: the first added region that has one, newest first.
    #[cold]
    #[inline(never)]
    pub(crate) fn alloc_order_elsewhere(&mut self, k: u32, from: u32) -> Option<NonNull<u8>> {
        let mut next = self.more;
        while let Some(b) = next {
            let b = self.region_mut(Owner::More(b));
            if let Some(p) = b.take_order(k, from) {
                return Some(p);
            }
            next = b.more;
        }
        self.failed()
    }

    /// `free` of a pointer outside the first region's managed range.
    #[cold]
    #[inline(never)]
    pub(crate) fn free_elsewhere(&mut self, ptr: NonNull<u8>) -> Result<(), BadPointer> {
        let Some(b) = self.added_region_of(ptr.as_ptr().addr()) else {
            return self.rejected();
        };
        match self.region_mut(Owner::More(b)).free_here(ptr) {
            Ok(()) => Ok(()),
            Err(BadPointer) => self.rejected(),
        }
    }

    /// `(region, granule, order)` of the live block at `ptr`, in any region.
    pub(crate) fn live_block_anywhere(&self, ptr: NonNull<u8>) -> Option<(Owner, usize, u32)> {
        if let Some((g, k)) = self.live_block(ptr) {
            return Some((Owner::Here, g, k));
        }
        let b = self.added_region_of(ptr.as_ptr().addr())?;
        // SAFETY: a live added region's state, only read.
        let (g, k) = unsafe { b.as_ref() }.live_block(ptr)?;
        Some((Owner::More(b), g, k))
    }

    /// Moves the live block `(g, k)` of region `o` to a new block of order
    /// `new` from any region, copying its `2^k` bytes (`new > k`).
    pub(crate) fn move_block(
        &mut self,
        o: Owner,
        g: usize,
        k: u32,
        new: u32,
    ) -> Result<NonNull<u8>, ReallocError> {
        let Some(q) = self.alloc_order(new, new) else {
            return Err(ReallocError::OutOfMemory);
        };
        let old = self.region_mut(o);
        // SAFETY: both blocks are live, distinct (the new one was free), and
        // hold at least `2^k` bytes (the old block's size, < the new one's).
        unsafe {
            ptr::copy_nonoverlapping(old.frame.block_ptr(g).as_ptr(), q.as_ptr(), block_bytes(k))
        };
        old.forget_and_release(g, k);
        Ok(q)
    }
}

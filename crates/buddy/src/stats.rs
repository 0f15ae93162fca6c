//! Accounting: the stats of `include/allocator.h` and a view of the free
//! areas.

use arena_api::{ALLOCATOR_STAT_UNKNOWN, AllocatorStats};

use crate::Buddy;
use crate::free_area::NIL;
use crate::order::{MAX_ORDER, MIN_ORDER, block_bytes};

impl Buddy {
    /// A snapshot of the accounting: `metadata_bytes` (the state, the
    /// bitmaps, alignment padding and the unusable tail) `+ bytes_reserved +
    /// bytes_free == arena_bytes` exactly; `largest_free_block` is the size of
    /// the largest free block (every `alloc` up to it succeeds);
    /// `bytes_requested` is `ALLOCATOR_STAT_UNKNOWN` (there is no per-block
    /// record of the size asked).
    ///
    /// # Time complexity
    ///
    /// O(1).
    pub fn stats(&self) -> AllocatorStats {
        let mut s = self.region_stats();
        for b in self.more() {
            // SAFETY: a live added region's state, only read.
            s.add_region(&unsafe { b.as_ref() }.region_stats());
        }
        s
    }

    /// The accounting of this region alone (with the failure counters,
    /// which only the first region keeps).
    fn region_stats(&self) -> AllocatorStats {
        let managed = self.managed_range().1;
        AllocatorStats {
            arena_bytes: self.region_len,
            metadata_bytes: self.region_len - managed,
            bytes_requested: ALLOCATOR_STAT_UNKNOWN,
            bytes_reserved: self.reserved_bytes,
            bytes_free: self.free_bytes(),
            largest_free_block: self.areas.largest().map_or(0, block_bytes),
            live_blocks: self.live_blocks,
            failed_allocs: self.failed_allocs,
            rejected_frees: self.rejected_frees,
        }
    }

    /// The size of the largest free block of any region, 0 if none.
    ///
    /// # Time complexity
    ///
    /// O(regions): a leading-zero count on each one's mask of non-empty free
    /// areas.
    pub fn largest_free_block(&self) -> usize {
        self.more()
            .fold(self.areas.largest().map_or(0, block_bytes), |m, b| {
                // SAFETY: a live added region's state, only read.
                m.max(unsafe { b.as_ref() }.areas.largest().map_or(0, block_bytes))
            })
    }

    /// The free blocks of the first region (not of regions added later),
    /// free area by free area (order 4 first), each list from its head.
    ///
    /// # Time complexity
    ///
    /// O(1) per block, O(number of free blocks + orders) in all.
    pub fn free_blocks(&self) -> FreeBlocks<'_> {
        FreeBlocks {
            buddy: self,
            order: MIN_ORDER,
            next: self.areas.head(MIN_ORDER),
            budget: self.frame.end - self.frame.start,
        }
    }
}

/// A free block: its address and order (it holds `2^order` bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FreeBlock {
    /// Address of its first byte.
    pub addr: usize,
    /// Its order.
    pub order: u32,
}

/// Iterator over the free blocks, from [`Buddy::free_blocks`].
#[derive(Debug)]
pub struct FreeBlocks<'a> {
    buddy: &'a Buddy,
    order: u32,
    next: u32,
    /// Steps left: a corrupt (cyclic) list cannot make it loop forever.
    budget: usize,
}

impl Iterator for FreeBlocks<'_> {
    type Item = FreeBlock;

    fn next(&mut self) -> Option<FreeBlock> {
        let f = &self.buddy.frame;
        loop {
            if self.budget == 0 {
                return None;
            }
            if let Some(g) = f.link(self.next) {
                if !f.contains(g) {
                    return None;
                }
                self.budget -= 1;
                self.next = f.read_header(g).0;
                return Some(FreeBlock {
                    addr: f.addr_of(g),
                    order: self.order,
                });
            }
            if self.order >= MAX_ORDER {
                self.next = NIL;
                return None;
            }
            self.order += 1;
            self.next = self.buddy.areas.head(self.order);
        }
    }
}

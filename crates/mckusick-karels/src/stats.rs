//! `stats`: the accounting, from the counters the buckets and the page
//! allocator keep (nothing is walked but the longest free-run class).

use arena_api::{ALLOCATOR_STAT_UNKNOWN, AllocatorStats};

use crate::allocator::McKusickKarels;
use crate::bucket::MINBUCKET;

impl McKusickKarels {
    /// A snapshot of the accounting:
    ///
    /// - `metadata_bytes`: the state, the descriptor table, the alignment
    ///   padding, the tail after the last page, and the in-page bitmaps of
    ///   bucket pages with more than 64 objects (these come and go with the
    ///   pages of the 16- and 32-byte buckets);
    /// - `bytes_free`: free objects in buckets plus free pages;
    /// - `bytes_reserved`: the rest (live objects at their bucket size, live
    ///   large runs at whole pages); `metadata + reserved + free == arena`;
    /// - `largest_free_block`: the largest request that would succeed now,
    ///   the larger of the longest free run (counting, in the default mode,
    ///   the empty bucket runs a failing request would take back) and the
    ///   largest bucket holding a free object;
    /// - `bytes_requested`: [`ALLOCATOR_STAT_UNKNOWN`] (no header records it).
    ///
    /// # Time complexity
    ///
    /// O(regions × (buckets + free-run classes)), plus the runs of the
    /// highest non-empty power-of-two class (see
    /// [`crate::page_alloc::PageAlloc::largest_run`]); in the default mode,
    /// O(runs) while some bucket holds a page's worth of free objects.
    pub fn stats(&self) -> AllocatorStats {
        let mut s = self.region_stats();
        for r in self.more() {
            // SAFETY: a live added region's state, only read.
            s.add_region(&unsafe { r.as_ref() }.region_stats());
        }
        s
    }

    /// The accounting of this region alone (with the failure counters,
    /// which only the first region keeps).
    fn region_stats(&self) -> AllocatorStats {
        let mut free = self.pages.free_pages << self.page_shift;
        let mut live = self.large_live;
        let mut largest_object = 0;
        for (indx, kb) in self.buckets.iter().enumerate().skip(MINBUCKET as usize) {
            let carve = self.carve[indx].left(indx as u32);
            free += (kb.kb_totalfree + carve) << indx;
            live += self.kb_total[indx].saturating_sub(kb.kb_totalfree + carve);
            if kb.kb_totalfree + carve > 0 {
                largest_object = 1 << indx;
            }
        }
        // Empty bucket runs kept by their bucket go back before a request
        // fails: their in-page bitmaps count as free, not metadata.
        let (run, reclaimable_bitmaps) = self.largest_run_reclaimable();
        let metadata =
            self.region_len - self.pages_len + self.inpage_bitmap_bytes - reclaimable_bitmaps;
        let largest_run = (run as usize) << self.page_shift;
        free += reclaimable_bitmaps;
        AllocatorStats {
            arena_bytes: self.region_len,
            metadata_bytes: metadata,
            bytes_requested: ALLOCATOR_STAT_UNKNOWN,
            bytes_reserved: self.region_len - metadata - free,
            bytes_free: free,
            largest_free_block: largest_run.max(largest_object),
            live_blocks: live,
            failed_allocs: self.failed_allocs,
            rejected_frees: self.rejected_frees,
        }
    }
}

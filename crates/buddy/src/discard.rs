//! Which free memory may go back to the operating system
//! ([`ArenaAllocator::discardable`](arena_api::ArenaAllocator::discardable)).
//!
//! A free block's only content the allocator relies on is its 16-byte header
//! (links, order, magic) at the block's start; the rest is never read before
//! the block is handed out or split (a split writes the new upper half's
//! header before anything reads it). So of a free block of order `k` whose
//! size is at least two pages, every page but the first may be discarded.

use core::ptr::NonNull;

use arena_api::whole_pages;

use crate::Buddy;
use crate::order::{GRANULE, MAX_ORDER, MIN_ORDER, block_bytes};

impl Buddy {
    /// Calls `f(start, len)` for the discardable part of every free block of
    /// at least `max(min_len, 2 × page)` bytes: the block less the page that
    /// holds its header. `page` is a power of two.
    ///
    /// # Time complexity
    ///
    /// O(free blocks of those orders + orders).
    pub fn discardable(&self, page: usize, min_len: usize, f: &mut dyn FnMut(NonNull<u8>, usize)) {
        self.discardable_here(page, min_len, f);
        for b in self.more() {
            // SAFETY: a live added region's state, only read.
            unsafe { b.as_ref() }.discardable_here(page, min_len, f);
        }
    }

    /// [`Buddy::discardable`] of this region only.
    fn discardable_here(&self, page: usize, min_len: usize, f: &mut dyn FnMut(NonNull<u8>, usize)) {
        if !page.is_power_of_two() {
            return;
        }
        let least = min_len.max(page.saturating_mul(2));
        let mut budget = self.frame.end - self.frame.start;
        for k in MIN_ORDER..=MAX_ORDER {
            if block_bytes(k) < least {
                continue;
            }
            let mut next = self.areas.head(k);
            while let Some(g) = self.frame.link(next) {
                if budget == 0 {
                    return; // a corrupt (cyclic) list: stop
                }
                budget -= 1;
                let addr = self.frame.addr_of(g);
                if let Some((s, len)) = whole_pages(addr + GRANULE, block_bytes(k) - GRANULE, page)
                {
                    let p = self.frame.block_ptr(g).as_ptr().wrapping_add(s - addr);
                    if let Some(p) = NonNull::new(p) {
                        f(p, len);
                    }
                }
                next = self.frame.read_header(g).0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Buddy;

    #[test]
    fn discardable_ranges_are_free_pages_after_each_header() {
        let mut mem = vec![0u8; 1 << 20];
        let heap = Buddy::new_in(&mut mem).unwrap();
        let block = heap.alloc(64 << 10).unwrap();
        let mut ranges = Vec::new();
        heap.discardable(4096, 0, &mut |p, len| ranges.push((p, len)));
        assert!(!ranges.is_empty());
        let a = block.as_ptr() as usize;
        for &(p, len) in &ranges {
            let s = p.as_ptr() as usize;
            assert_eq!(s % 4096, 0);
            assert_eq!(len % 4096, 0);
            assert!(s + len <= a || s >= a + (64 << 10), "inside the live block");
        }
        // Scribbling over every discardable byte (as MADV_DONTNEED zeroes
        // them) leaves the allocator intact.
        for &(p, len) in &ranges {
            // SAFETY: free memory the allocator said it does not read.
            unsafe { core::ptr::write_bytes(p.as_ptr(), 0, len) };
        }
        heap.check_invariants().unwrap();
        let mut blocks = Vec::new();
        while let Some(p) = heap.alloc(4096) {
            blocks.push(p);
        }
        for p in blocks {
            heap.free(p).unwrap();
        }
        heap.free(block).unwrap();
        heap.check_invariants().unwrap();
        let mut big = Vec::new();
        heap.discardable(4096, 256 << 10, &mut |_, len| big.push(len));
        assert!(big.iter().all(|&l| l >= (256 << 10) - 4096), "{big:?}");
    }
}

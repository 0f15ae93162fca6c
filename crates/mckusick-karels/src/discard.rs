//! Which free memory may go back to the operating system
//! ([`ArenaAllocator::discardable`](arena_api::ArenaAllocator::discardable)).
//!
//! A free page run keeps all its state in its boundary descriptors in the
//! `kmemusage` table (links, length, kind), none in its pages: every page of
//! a free run may be discarded. (Bucket pages keep their free lists and, for
//! the 16- and 32-byte buckets, a bitmap inside the page: never reported.)

use core::ptr::NonNull;

use arena_api::whole_pages;

use crate::allocator::McKusickKarels;
use crate::kmemusage::NIL;
use crate::page_alloc::{NCLASSES, class_min_len};

impl McKusickKarels {
    /// Calls `f(start, len)` for every free page run of at least `min_len`
    /// bytes (its whole pages of `page` bytes, a power of two).
    ///
    /// # Time complexity
    ///
    /// O(free runs in the lists that can hold runs of `min_len` bytes).
    pub fn discardable(&self, page: usize, min_len: usize, f: &mut dyn FnMut(NonNull<u8>, usize)) {
        self.discardable_here(page, min_len, f);
        for r in self.more() {
            // SAFETY: a live added region's state, only read.
            unsafe { r.as_ref() }.discardable_here(page, min_len, f);
        }
    }

    /// [`McKusickKarels::discardable`] of this region only.
    fn discardable_here(&self, page: usize, min_len: usize, f: &mut dyn FnMut(NonNull<u8>, usize)) {
        if !page.is_power_of_two() {
            return;
        }
        let mut budget = self.pages.npages as usize;
        for c in 0..NCLASSES {
            // Runs of class `c` are shorter than the next class's minimum.
            let longest = if c + 1 < NCLASSES {
                class_min_len(c + 1).saturating_sub(1)
            } else {
                u64::MAX
            };
            if (longest as u128) << self.page_shift < min_len as u128 {
                continue;
            }
            let mut run = self.pages.heads[c];
            while run != NIL && run < self.pages.npages {
                if budget == 0 {
                    return; // a corrupt (cyclic) list: stop
                }
                budget -= 1;
                // SAFETY: `run < npages`; no other reference to the table is
                // live while `&self` is borrowed.
                let d = unsafe { *self.pages.kup(run) };
                let off = (run as usize) << self.page_shift;
                let bytes = (d.ku_pagecnt as usize) << self.page_shift;
                if bytes >= min_len && off.saturating_add(bytes) <= self.pages_len {
                    let start = self.base.wrapping_add(off);
                    if let Some((s, len)) = whole_pages(start as usize, bytes, page)
                        && let Some(p) = NonNull::new(start.wrapping_add(s - start as usize))
                    {
                        f(p, len);
                    }
                }
                run = d.next();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use arena_api::ArenaAllocator;

    use crate::allocator::{Config, McKusickKarels};

    #[test]
    fn discardable_ranges_are_the_free_runs() {
        let mut mem = vec![0u8; 1 << 20];
        // SAFETY: the vector outlives the allocator, used by nothing else.
        let a =
            unsafe { McKusickKarels::create(mem.as_mut_ptr(), mem.len(), Config::RETURN_PAGES) }
                .unwrap();
        // SAFETY: just created.
        let a = unsafe { &mut *a.as_ptr() };
        let block = a.alloc(64 << 10).unwrap();
        let big = block.as_ptr() as usize;
        let small: Vec<_> = (0..100).map(|_| a.alloc(100).unwrap()).collect();
        let mut ranges = Vec::new();
        a.discardable(4096, 0, &mut |p, len| ranges.push((p, len)));
        let free: usize = ranges.iter().map(|r| r.1).sum();
        assert_eq!(
            free,
            a.stats().bytes_free - free_in_buckets(a),
            "{ranges:?}"
        );
        for &(p, len) in &ranges {
            let s = p.as_ptr() as usize;
            assert_eq!((s % 4096, len % 4096), (0, 0));
            assert!(s + len <= big || s >= big + (64 << 10));
            // SAFETY: free pages the allocator does not read.
            unsafe { core::ptr::write_bytes(p.as_ptr(), 0, len) };
        }
        a.check_invariants().unwrap();
        for p in small {
            a.free(p).unwrap();
        }
        a.free(block).unwrap();
        a.check_invariants().unwrap();
        let mut total = 0;
        a.discardable(4096, 512 << 10, &mut |_, len| total += len);
        assert_eq!(total, a.stats().bytes_free, "one run: everything");
    }

    /// Free bytes inside bucket pages (not page runs).
    fn free_in_buckets(a: &McKusickKarels) -> usize {
        a.stats().bytes_free - (a.pages.free_pages << a.page_shift)
    }
}

//! `malloc`: pop from the bucket, or refill it from the page allocator, or
//! take a run of whole pages.

use core::ptr::{self, NonNull};

use crate::allocator::McKusickKarels;
use crate::bucket::{
    bucket_index, next_of, objects_per_run, pages_per_run, prefetch, reserved_slots, set_next,
    set_prev, slots_per_run,
};
use crate::kmemusage::{BUCKET, BUCKET_TAIL, KmemUsage, LARGE, LARGE_TAIL};

impl McKusickKarels {
    /// A block of at least `size` bytes (0 counts as 1), 16-byte aligned, or
    /// `None` (counted in `failed_allocs`). A request up to `MAXALLOCSAVE`
    /// gets an object of its bucket, exactly `2^ceil(log2(size))` bytes (at
    /// least 16); a larger one gets `ceil(size / page)` whole pages.
    ///
    /// # Time complexity
    ///
    /// O(1) when the bucket has a free object (the common case: a
    /// leading-zero count and a list pop). Refilling an empty bucket is
    /// O(objects per page) (the page is cut into objects, as in 4.4BSD) plus
    /// a page-run search (O(1) typical, see [`crate::page_alloc`]). A large
    /// request is a page-run search.
    #[inline(always)]
    pub fn malloc(&mut self, size: usize) -> Option<NonNull<u8>> {
        let p = self.malloc_uncounted(size);
        if p.is_none() {
            self.failed_allocs += 1;
        }
        p
    }

    /// [`McKusickKarels::malloc`] without counting a failure, from any region.
    #[inline(always)]
    pub(crate) fn malloc_uncounted(&mut self, size: usize) -> Option<NonNull<u8>> {
        match self.malloc_here(size) {
            Some(p) => Some(p),
            None => self.malloc_elsewhere(size),
        }
    }

    /// [`McKusickKarels::malloc`] in this region only, counting nothing.
    #[inline(always)]
    pub(crate) fn malloc_here(&mut self, size: usize) -> Option<NonNull<u8>> {
        if size > self.maxallocsave {
            return self.malloc_large(size);
        }
        let indx = bucket_index(size);
        debug_assert!((indx as usize) < self.buckets.len());
        // SAFETY: `size <= MAXALLOCSAVE <= 2^17`, so `indx <= 17 < NBUCKETS`.
        let kbp = unsafe { self.buckets.get_unchecked_mut(indx as usize) };
        let va = kbp.kb_next;
        if va.is_null() {
            return self.refill(indx);
        }
        let totalfree = kbp.kb_totalfree;
        // SAFETY: the head is always a checked free object of bucket `indx`:
        // its first word is its link (possibly overwritten by a caller).
        let next = unsafe { next_of(va) };
        // SAFETY: `va` is a free object of bucket `indx`, leaving the list.
        unsafe { self.mark_allocated(va, indx) };
        let Some(next) = self.checked_link(next, indx, totalfree) else {
            return self.repair_after_pop(va, indx);
        };
        // SAFETY: as above.
        let kbp = unsafe { self.buckets.get_unchecked_mut(indx as usize) };
        kbp.kb_next = next;
        kbp.kb_totalfree = totalfree - 1;
        prefetch(next);
        if self.return_pages && !next.is_null() {
            // SAFETY: `next` was just checked: a free object of this bucket.
            unsafe { set_prev(next, ptr::null_mut()) };
        }
        // SAFETY: objects lie inside the arena, so `va` is non-null.
        Some(unsafe { NonNull::new_unchecked(va) })
    }

    /// The link read from `va` (just marked allocated) is corrupt: rebuild
    /// the list from the bitmaps and hand `va` out.
    #[cold]
    #[inline(never)]
    fn repair_after_pop(&mut self, va: *mut u8, indx: u32) -> Option<NonNull<u8>> {
        self.rebuild_bucket(indx);
        NonNull::new(va)
    }

    /// Sets the allocated bit of object `va` of bucket `indx`, one fewer free
    /// object in its page.
    ///
    /// # Safety
    ///
    /// `va` is an object of a `BUCKET` run of bucket `indx`, just taken off
    /// the free list.
    #[inline(always)]
    unsafe fn mark_allocated(&mut self, va: *mut u8, indx: u32) {
        let off = va.addr() - self.base.addr();
        let page = self.page_of(off);
        // SAFETY: the object's page is a BUCKET page of bucket `indx`.
        unsafe {
            let (word, mask) = self.bit_of(page, indx, off & self.page_mask);
            *word |= mask;
            self.pages.kup(page).ku_freecnt -= 1;
        }
    }

    /// Takes a page run for bucket `indx`, cuts it into objects, chains them
    /// onto the (empty) bucket list and hands out the first.
    ///
    /// As 4.4BSD does, the objects are chained from the last one down to the
    /// first, so a fresh page is handed out in *descending* address order.
    #[cold]
    #[inline(never)]
    fn refill(&mut self, indx: u32) -> Option<NonNull<u8>> {
        let shift = self.page_shift;
        let npg = pages_per_run(shift, indx) as u32;
        let page = self.alloc_pages(npg)?;
        let slots = slots_per_run(shift, indx);
        let reserved = reserved_slots(shift, indx);
        let nobj = objects_per_run(shift, indx);
        self.pages.set_tags(
            page,
            npg,
            KmemUsage {
                ku_indx: indx as u8,
                ku_kind: BUCKET,
                ku_freecnt: nobj as u16,
                ku_pagecnt: npg,
                ku_un: 0,
            },
            BUCKET_TAIL,
        );
        let size = 1usize << indx;
        let doubly = self.return_pages;
        // SAFETY: the run `[page, page + npg)` is ours, inside the arena.
        let va = unsafe { self.base.add((page as usize) << shift) };
        if reserved > 0 {
            // SAFETY: the in-page bitmap (`slots / 8` bytes) lies in the
            // reserved slots at the start of the page.
            unsafe { ptr::write_bytes(va, 0, slots / 8) };
            self.inpage_bitmap_bytes += reserved << indx;
        }
        // SAFETY: slots `reserved..slots` are objects of the new run, each
        // valid for writes of `size >= 16` bytes and 16-aligned.
        unsafe {
            for i in reserved..slots {
                let obj = va.add(i * size);
                let below = if i > reserved {
                    va.add((i - 1) * size)
                } else {
                    ptr::null_mut()
                };
                set_next(obj, below);
                if doubly {
                    let above = if i + 1 < slots {
                        va.add((i + 1) * size)
                    } else {
                        ptr::null_mut()
                    };
                    set_prev(obj, above);
                }
            }
        }
        // SAFETY: `indx < NBUCKETS` (see `malloc_uncounted`).
        let kbp = unsafe { self.buckets.get_unchecked_mut(indx as usize) };
        debug_assert!(kbp.kb_next.is_null());
        // SAFETY: the last slot is inside the run.
        kbp.kb_next = unsafe { va.add((slots - 1) * size) };
        kbp.kb_totalfree += nobj;
        kbp.kb_total += nobj;
        // SAFETY: the list now holds the new run's objects.
        let obj = unsafe { kbp.pop(doubly) };
        // SAFETY: `obj` was a free object of bucket `indx`.
        unsafe { self.mark_allocated(obj, indx) };
        NonNull::new(obj)
    }

    /// A run of `ceil(size / page)` whole pages (`size > MAXALLOCSAVE`).
    #[inline(never)]
    pub(crate) fn malloc_large(&mut self, size: usize) -> Option<NonNull<u8>> {
        let npg = size.checked_add(self.page_mask)? >> self.page_shift;
        if npg > self.pages.npages as usize {
            return None;
        }
        let page = self.alloc_pages(npg as u32)?;
        self.pages
            .set_tags(page, npg as u32, KmemUsage::head(LARGE, 0), LARGE_TAIL);
        self.large_live += 1;
        // SAFETY: the run is inside the arena.
        NonNull::new(unsafe { self.base.add((page as usize) << self.page_shift) })
    }

    /// A block of at least `size` bytes aligned to `align` (a power of two),
    /// or `None` (counted in `failed_allocs`), also when `align` is not a
    /// power of two.
    ///
    /// Alignments up to the page size come free: an object of `2^k` bytes
    /// is aligned to `min(2^k, page)` and page runs to the page, so the
    /// request is served as `malloc(max(size, align))`. A larger alignment
    /// takes a page run `align / page - 1` pages longer than needed and gives
    /// the unaligned head and the tail back; it may return `None` although
    /// an aligned run exists inside a shorter free run.
    ///
    /// # Time complexity
    ///
    /// As [`McKusickKarels::malloc`]; over-page alignments: three page-run
    /// operations.
    pub fn malloc_aligned(&mut self, size: usize, align: usize) -> Option<NonNull<u8>> {
        let p = if !align.is_power_of_two() {
            None
        } else if align <= self.page_mask + 1 {
            self.malloc_uncounted(size.max(align))
        } else {
            self.overaligned_here(size, align)
                .or_else(|| self.overaligned_elsewhere(size, align))
        };
        if p.is_none() {
            self.failed_allocs += 1;
        }
        p
    }

    /// An over-page-aligned run in this region only.
    pub(crate) fn overaligned_here(&mut self, size: usize, align: usize) -> Option<NonNull<u8>> {
        let shift = self.page_shift;
        let npg = size.max(1).checked_add(self.page_mask)? >> shift;
        let extra = (align >> shift) - 1;
        let total = npg.checked_add(extra)?;
        if total > self.pages.npages as usize {
            return None;
        }
        let start = self.alloc_pages(total as u32)?;
        let addr = self.base.addr() + ((start as usize) << shift);
        let lead = ((addr.next_multiple_of(align) - addr) >> shift) as u32;
        let (npg, total) = (npg as u32, total as u32);
        let first = start + lead;
        self.pages
            .set_tags(first, npg, KmemUsage::head(LARGE, 0), LARGE_TAIL);
        if lead > 0 {
            self.pages.free_run(start, lead);
        }
        let trail = total - lead - npg;
        if trail > 0 {
            self.pages.free_run(first + npg, trail);
        }
        self.large_live += 1;
        // SAFETY: the run is inside the arena.
        NonNull::new(unsafe { self.base.add((first as usize) << shift) })
    }
}

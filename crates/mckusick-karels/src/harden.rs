//! Hardened free lists: a bucket's list link lives in a free object, where a
//! use-after-free write can change it. No link is followed before the page
//! descriptors and the allocated bitmaps (which no caller can reach through a
//! block) confirm that it points at a free object of the same bucket:
//!
//! - inside the pages, aligned to the object size (to the page for the
//!   two-page bucket), not in the reserved bitmap slots;
//! - on a page whose descriptor says `BUCKET` of this bucket;
//! - with its allocated bit clear;
//! - and the list ends exactly when `kb_totalfree` says it does (a link
//!   that skips objects is found at the end of the list).
//!
//! Doubly linked lists (every mode but the faithful one) also check both
//! neighbours before unlinking an object from the middle of a list
//! (`prev.next == obj && next.prev == obj`, the "safe unlink" of glibc).
//!
//! The objects of a bucket's carve range (see [`crate::bucket::Carve`]) are
//! on no list: one a corrupt link handed out is found allocated when the
//! carving reaches it.
//!
//! A link that fails is never followed: the bucket's list is rebuilt from
//! the bitmaps (every object whose bit is clear, O(pages + objects), once per
//! detected corruption), counted in [`McKusickKarels::free_list_repairs`],
//! and `allocator_check` reports it. Nothing is lost and nothing else
//! changes: the scribbled block is free memory the allocator still owns.
//!
//! # What it costs
//!
//! `malloc` checks the *head* when it pops it (`take_free` in `malloc.rs`),
//! before it reads its link: a subtraction and two compares (inside the
//! pages; aligned, with a per-bucket mask), one 16-bit descriptor load
//! (kind and bucket in one compare), a compare with the bucket's bitmap
//! slots, and the bit test on the bitmap word that `malloc` then sets. The
//! descriptor and the word are the ones marking the object allocated reads
//! anyway: no new cache line, a handful of instructions and predicted
//! branches. The link read from the popped object becomes the head
//! unchecked; it is checked when it is popped in its turn. `free` checks
//! nothing more. With doubly linked lists the new head is also checked when
//! it is installed (`checked_link`), since a back link is written into it.

use crate::allocator::McKusickKarels;
use crate::bucket::{
    Carve, KmemBuckets, next_of, objects_per_run, prev_of, reserved_slots, set_next, set_prev,
    slots_per_run,
};
use crate::kmemusage::BUCKET;

impl McKusickKarels {
    /// `p` as a pointer derived from the arena, if it is a free object of
    /// bucket `indx`: inside the pages, aligned, on a `BUCKET` page of that
    /// bucket, outside the reserved bitmap slots, allocated bit clear. Reads
    /// only the descriptor table and the bitmaps, never `p` (whose value may
    /// come from a caller's write: the pointer returned carries the arena's
    /// provenance, not the link's).
    ///
    /// # Time complexity
    ///
    /// O(1).
    #[inline(always)]
    pub(crate) fn checked_free_object(&self, p: *mut u8, indx: u32) -> Option<*mut u8> {
        let off = p.addr().wrapping_sub(self.base.addr());
        let align = ((1usize << indx) - 1) & self.page_mask;
        if off >= self.pages_len || off & align != 0 {
            return None;
        }
        let page = self.page_of(off);
        // SAFETY: `page < npages` since `off < pages_len`.
        let d = unsafe { *self.pages.kmemusage.add(page as usize) };
        let in_page = off & self.page_mask;
        if d.ku_kind != BUCKET
            || d.ku_indx as u32 != indx
            || in_page < reserved_slots(self.page_shift, indx) << indx
        {
            return None;
        }
        // SAFETY: a BUCKET page of bucket `indx`, offset a multiple of the
        // object size.
        let (word, mask) = unsafe { self.bit_of(page, indx, in_page) };
        // SAFETY: the bitmap word is in the table or the page's reserved
        // slots; `off` is inside the pages.
        unsafe { (*word & mask == 0).then(|| self.base.add(off)) }
    }

    /// The new head of bucket `indx`'s list when `next` was read from the
    /// free object being popped and the list held `totalfree` objects
    /// before the pop; `None` when `next` must not be followed.
    #[inline(always)]
    pub(crate) fn checked_link(
        &self,
        next: *mut u8,
        indx: u32,
        totalfree: usize,
    ) -> Option<*mut u8> {
        if next.is_null() {
            (totalfree == 1).then_some(next)
        } else if totalfree > 1 {
            self.checked_free_object(next, indx)
        } else {
            None
        }
    }

    /// Rebuilds bucket `indx`'s free list from the allocated bitmaps of its
    /// pages, after a corrupt link was found (counted).
    ///
    /// # Time complexity
    ///
    /// O(pages + objects of the bucket).
    #[cold]
    #[inline(never)]
    pub(crate) fn rebuild_bucket(&mut self, indx: u32) {
        self.list_repairs += 1;
        self.relink_bucket(indx);
    }

    /// Threads bucket `indx`'s free list anew through the free objects of its
    /// runs (allocated bits clear), and recounts them.
    ///
    /// # Time complexity
    ///
    /// O(pages + objects of the bucket).
    fn relink_bucket(&mut self, indx: u32) {
        let shift = self.page_shift;
        let (reserved, slots) = (reserved_slots(shift, indx), slots_per_run(shift, indx));
        let doubly = self.return_pages;
        let mut list = KmemBuckets::EMPTY;
        let mut total = 0;
        let mut page = 0u32;
        while page < self.pages.npages {
            // SAFETY: `page < npages`.
            let d = unsafe { *self.pages.kmemusage.add(page as usize) };
            if d.ku_kind == BUCKET && d.ku_indx as u32 == indx {
                let mut free = 0usize;
                for slot in reserved..slots {
                    let in_page = slot << indx;
                    // SAFETY: a BUCKET page of bucket `indx`, aligned slot.
                    let (word, mask) = unsafe { self.bit_of(page, indx, in_page) };
                    // SAFETY: the word is in the table or the reserved slots.
                    if unsafe { *word } & mask == 0 {
                        // SAFETY: a free object of this run, inside the pages.
                        let obj = unsafe { self.base.add(((page as usize) << shift) + in_page) };
                        // SAFETY: a free object belongs to the allocator.
                        unsafe { list.push(obj, obj, doubly) };
                        free += 1;
                    }
                }
                total += objects_per_run(shift, indx);
                // A list rebuilt after a repair may find a run all free.
                if free == objects_per_run(shift, indx) {
                    self.run_emptied = true;
                }
            }
            page += d.ku_pagecnt.max(1);
        }
        self.buckets[indx as usize] = list;
        self.kb_total[indx as usize] = total;
        // The objects not carved yet are on the list now.
        self.carve[indx as usize] = Carve::EMPTY;
    }

    /// Unlinks the free object `obj` of bucket `indx` from its doubly linked
    /// list after checking both neighbours point back at it; `false` (and
    /// nothing changed) when they do not.
    ///
    /// # Safety
    ///
    /// Doubly linked lists; `obj` is a free object of bucket `indx`.
    pub(crate) unsafe fn safe_unlink(&mut self, obj: *mut u8, indx: u32) -> bool {
        // SAFETY: `obj` is a free object: its two links are the allocator's.
        let (next, prev) = unsafe { (next_of(obj), prev_of(obj)) };
        let kbp = &self.buckets[indx as usize];
        // A link to itself (a scribble can write one that passes the checks
        // below) would leave the object on the list; so would a back link
        // on the head.
        if next == obj || prev == obj || (!prev.is_null() && kbp.kb_next == obj) {
            return false;
        }
        let prev = if prev.is_null() {
            if kbp.kb_next != obj {
                return false;
            }
            prev
        } else {
            match self.checked_free_object(prev, indx) {
                // SAFETY: a checked free object of this bucket holds its links.
                Some(p) if unsafe { next_of(p) }.addr() == obj.addr() => p,
                _ => return false,
            }
        };
        let next = if next.is_null() {
            next
        } else {
            match self.checked_free_object(next, indx) {
                // SAFETY: as above.
                Some(n) if unsafe { prev_of(n) }.addr() == obj.addr() => n,
                _ => return false,
            }
        };
        if kbp.kb_totalfree == 0 {
            return false;
        }
        // SAFETY: both neighbours are free objects of the bucket, checked.
        unsafe {
            if prev.is_null() {
                self.buckets[indx as usize].kb_next = next;
            } else {
                set_next(prev, next);
            }
            if !next.is_null() {
                set_prev(next, prev);
            }
        }
        self.buckets[indx as usize].kb_totalfree -= 1;
        true
    }

    /// Gives every bucket run whose objects are all free back to the page
    /// allocator (default mode: before a request for pages fails, and when
    /// the owner of the memory asks, [`McKusickKarels::release_cached`]),
    /// then
    /// threads the lists of the buckets concerned anew through their
    /// remaining free objects (they are singly linked). Returns the pages
    /// given back.
    ///
    /// # Time complexity
    ///
    /// O(1) when no free emptied a run since the last call
    /// ([`McKusickKarels::run_emptied`]); otherwise O(pages + free objects
    /// of the buckets concerned).
    #[cold]
    #[inline(never)]
    pub(crate) fn reclaim_empty_runs(&mut self) -> usize {
        if !self.run_emptied {
            return 0;
        }
        self.run_emptied = false;
        self.reclaim_walk()
    }

    /// The walk of [`McKusickKarels::reclaim_empty_runs`].
    fn reclaim_walk(&mut self) -> usize {
        let shift = self.page_shift;
        let mut returned = 0;
        let mut touched = 0u64;
        let n = self.pages.npages;
        let mut page = 0u32;
        // SAFETY: page 0 exists (an allocator has at least one page).
        let mut d = unsafe { *self.pages.kmemusage };
        while page < n {
            let len = d.ku_pagecnt.max(1);
            let next = page + len;
            // Read the next run's head before this run goes back: giving it
            // back may merge it with that run and rewrite its descriptors.
            // SAFETY: `next < npages`.
            let after = (next < n).then(|| unsafe { *self.pages.kmemusage.add(next as usize) });
            let indx = d.ku_indx as u32;
            // SAFETY: a BUCKET head of bucket `indx`.
            if d.ku_kind == BUCKET && unsafe { self.run_all_free(page, indx) } {
                // Its objects stay on the list until the relink below.
                self.inpage_bitmap_bytes -= reserved_slots(shift, indx) << indx;
                self.pages.free_run(page, len);
                touched |= 1 << indx;
                returned += len as usize;
            }
            page = next;
            d = after.unwrap_or_default();
        }
        while touched != 0 {
            let indx = touched.trailing_zeros();
            touched &= touched - 1;
            self.relink_bucket(indx);
        }
        returned
    }

    /// True when a bucket run may be all free (default mode only): see
    /// [`McKusickKarels::run_emptied`].
    fn may_hold_empty_runs(&self) -> bool {
        self.reclaim && self.run_emptied
    }

    /// The longest run of pages a request would get, counting the bucket
    /// runs that [`McKusickKarels::reclaim_empty_runs`] would give back
    /// (they merge with their free neighbours), and the bytes of in-page
    /// bitmaps those runs hold (metadata that would become free).
    ///
    /// # Time complexity
    ///
    /// O(1) plus the page allocator's `largest_run` when no bucket can hold
    /// an empty run; otherwise O(runs).
    pub(crate) fn largest_run_reclaimable(&self) -> (u32, usize) {
        let largest = self.pages.largest_run();
        if !self.may_hold_empty_runs() {
            return (largest, 0);
        }
        let shift = self.page_shift;
        let mut bitmaps = 0;
        let (mut best, mut cur, mut page) = (largest, 0u32, 0u32);
        while page < self.pages.npages {
            // SAFETY: `page < npages`: a run head (the walk follows the tags).
            let d = unsafe { *self.pages.kmemusage.add(page as usize) };
            let len = d.ku_pagecnt.max(1);
            let free = d.ku_kind == crate::kmemusage::FREE
                // SAFETY: a BUCKET head of bucket `ku_indx`.
                || (d.ku_kind == BUCKET && unsafe { self.run_all_free(page, d.ku_indx as u32) });
            if free && d.ku_kind == BUCKET {
                bitmaps += reserved_slots(shift, d.ku_indx as u32) << d.ku_indx;
            }
            cur = if free { cur + len } else { 0 };
            best = best.max(cur);
            page += len;
        }
        (best, bitmaps)
    }

    /// A run of `n` pages from the page allocator; in the default mode, when
    /// none is free, the empty bucket runs are given back first, and when
    /// the run takes pages never used before, the empty runs go back after
    /// it (see [`McKusickKarels::grew`]).
    #[inline]
    pub(crate) fn alloc_pages(&mut self, n: u32) -> Option<u32> {
        if self.reclaim_due {
            // Here, not in `grew`: the run `grew` saw was not set up yet.
            self.reclaim_due = false;
            self.reclaim_empty_runs();
        }
        if let Some(p) = self.pages.alloc_run(n) {
            if p + n > self.touched_end {
                self.grew(p + n);
            }
            return Some(p);
        }
        if !self.reclaim || self.reclaim_empty_runs() == 0 {
            return None;
        }
        self.pages.alloc_run(n)
    }

    /// A run ending at page `end` took pages never handed out before (the
    /// page allocator splits runs from their start, so the untouched pages
    /// are those from [`McKusickKarels::touched_end`] on). In the default
    /// mode, when a run emptied since the last search and the footprint
    /// has grown by an eighth (at least 16 pages) since the last search
    /// here, the empty bucket runs go back to the page allocator at the
    /// next request for pages (not now: the caller has not set up the run
    /// it just got, which the walk would misread), so that the requests
    /// after it reuse them instead of touching more new pages:
    /// memory freed in one size class serves another before the footprint
    /// grows much, while the search stays rare (O(pages) at most once per
    /// eighth of growth).
    ///
    /// # Time complexity
    ///
    /// O(1), or [`McKusickKarels::reclaim_empty_runs`]'s walk.
    #[cold]
    #[inline(never)]
    fn grew(&mut self, end: u32) {
        self.touched_end = end;
        if self.reclaim && self.run_emptied && end >= self.reclaim_at {
            self.reclaim_due = true;
            self.reclaim_at = end.saturating_add((end / 8).max(16));
        }
    }

    /// Gives the runs the buckets keep empty (default mode: 4.4BSD's buckets
    /// kept them for ever) back to the page allocator, in every region, so
    /// that other sizes can use them and
    /// [`ArenaAllocator::discardable`](arena_api::ArenaAllocator::discardable)
    /// reports them. Returns the bytes given back (0 in the other modes:
    /// eager return leaves no empty run, faithful mode never returns one).
    ///
    /// # Time complexity
    ///
    /// O(1) per region when no `free` emptied a run there since the last
    /// search; otherwise O(pages + free objects of the buckets concerned).
    pub fn release_cached(&mut self) -> usize {
        if !self.reclaim {
            return 0;
        }
        let mut bytes = self.reclaim_empty_runs() << self.page_shift;
        let mut r = self.more;
        while let Some(mut region) = r {
            // SAFETY: an added region's state lies in that region, apart from
            // `self` (checked by `add_region`), and is reached only through
            // `&mut self`.
            let region = unsafe { region.as_mut() };
            bytes += region.reclaim_empty_runs() << region.page_shift;
            r = region.more;
        }
        bytes
    }

    /// Corrupt free-list links found (each one a write into a freed block)
    /// and repaired by rebuilding the list from the bitmaps.
    ///
    /// # Time complexity
    ///
    /// O(1).
    pub fn free_list_repairs(&self) -> usize {
        self.list_repairs
    }
}

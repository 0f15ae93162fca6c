//! `check_invariants`: walks page runs, descriptors, allocated bitmaps,
//! free-run lists and bucket lists, and checks every invariant the allocator
//! keeps. For tests: O(pages + objects).

use arena_api::{InvariantViolation, ensure};

use crate::allocator::McKusickKarels;
use crate::bucket::{
    Carve, MINBUCKET, NBUCKETS, bitmap_in_page, next_of, objects_per_run, pages_per_run, prev_of,
    reserved_slots, slots_per_run,
};
use crate::kmemusage::{BUCKET, FREE, LARGE, NIL, kind_name, tail_kind};
use crate::page_alloc::{NCLASSES, run_class};

impl McKusickKarels {
    /// Checks every invariant:
    ///
    /// - the page runs tile the pages; each run's first and last descriptors
    ///   describe it (kind, length); no interior page has a head kind
    ///   (`BUCKET`/`LARGE`); no two free runs are adjacent;
    /// - a bucket run has the right length for its bucket, and no bit is
    ///   set for a reserved (bitmap) slot or beyond the last object;
    /// - each free-run list holds exactly the free runs of its class, doubly
    ///   linked; its bit in `nonempty` is set iff it is non-empty;
    ///   `free_pages` is their total length;
    /// - each bucket list holds exactly `kb_totalfree` distinct free objects
    ///   of that bucket (in range, aligned, allocated bit clear; back links
    ///   consistent when doubly linked), `kb_totalfree` = the free objects
    ///   of its runs (objects − allocated bits) not in its carve range,
    ///   `kb_total` = objects in its runs;
    /// - the large-run count and the in-page bitmap bytes match.
    ///
    /// # Time complexity
    ///
    /// O(pages + free objects).
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        self.check_region()?;
        let mut seen = 0usize;
        for r in self.more() {
            seen += 1;
            // Each region holds at least a state of this size, in disjoint
            // memory: more of them than fit in the address space is a cycle.
            ensure!(
                seen <= usize::MAX / size_of::<McKusickKarels>(),
                "the list of added regions has a cycle"
            );
            // SAFETY: a live added region's state, only read.
            let r = unsafe { r.as_ref() };
            r.check_region().map_err(|e| {
                InvariantViolation::new(format_args!("added region {:#x}: {e}", r.region_addr))
            })?;
            ensure!(
                r.failed_allocs == 0 && r.rejected_frees == 0,
                "added region {:#x} counts failures (only the first one does)",
                r.region_addr
            );
            ensure!(
                r.config() == self.config(),
                "added region {:#x} has another page size or mode",
                r.region_addr
            );
            let disjoint = |o: &McKusickKarels| {
                r.region_addr + r.region_len <= o.region_addr
                    || o.region_addr + o.region_len <= r.region_addr
            };
            ensure!(
                disjoint(self),
                "added region {:#x} overlaps the arena",
                r.region_addr
            );
            for other in self.more().take(seen - 1) {
                // SAFETY: as above.
                let other = unsafe { other.as_ref() };
                ensure!(
                    disjoint(other),
                    "added region {:#x} overlaps another",
                    r.region_addr
                );
            }
        }
        Ok(())
    }

    /// [`McKusickKarels::check_invariants`] of this region alone.
    fn check_region(&self) -> Result<(), InvariantViolation> {
        let n = self.pages.npages;
        let shift = self.page_shift;
        let top = shift + 1; // the MAXALLOCSAVE bucket
        let mut objs = [0usize; NBUCKETS];
        let mut free_objs = [0usize; NBUCKETS];
        let mut runs_in_class = [0usize; NCLASSES];
        let (mut free_pages, mut large, mut bitmap_bytes) = (0usize, 0usize, 0usize);
        let mut prev_free = false;
        let mut page = 0u32;
        while page < n {
            // SAFETY: `page < npages`.
            let d = unsafe { *self.pages.kup(page) };
            let len = d.ku_pagecnt;
            ensure!(
                len >= 1 && page as u64 + len as u64 <= n as u64,
                "page {page}: run of {len} pages does not fit in {n} pages"
            );
            if len >= 2 {
                // SAFETY: the last page of the run is in range (checked).
                let t = unsafe { *self.pages.kup(page + len - 1) };
                ensure!(
                    t.ku_kind == tail_kind(d.ku_kind) && t.ku_pagecnt == len,
                    "run at page {page} ({} x {len}): tail is {} x {}",
                    kind_name(d.ku_kind),
                    kind_name(t.ku_kind),
                    t.ku_pagecnt
                );
            }
            for q in page + 1..page + len {
                // SAFETY: inside the run, in range.
                let k = unsafe { self.pages.kup(q) }.ku_kind;
                ensure!(
                    k != BUCKET && k != LARGE,
                    "interior page {q} of the run at {page} has head kind {}",
                    kind_name(k)
                );
            }
            match d.ku_kind {
                FREE => {
                    ensure!(
                        !prev_free,
                        "free runs before page {page} and at it are not merged"
                    );
                    free_pages += len as usize;
                    runs_in_class[run_class(len)] += 1;
                }
                BUCKET => {
                    let indx = d.ku_indx as u32;
                    ensure!(
                        (MINBUCKET..=top).contains(&indx),
                        "bucket page {page}: bad index {indx}"
                    );
                    ensure!(
                        len as usize == pages_per_run(shift, indx),
                        "bucket page {page} (index {indx}): run of {len} pages"
                    );
                    let allocated = self.count_allocated(page, indx)?;
                    let nobj = objects_per_run(shift, indx);
                    ensure!(
                        !self.return_pages || allocated > 0,
                        "bucket page {page}: all objects free but the page was not returned"
                    );
                    ensure!(
                        allocated > 0 || self.run_emptied || !self.reclaim,
                        "bucket page {page}: all objects free but no free noted it \
                         (run_emptied is clear: it would not be given back)"
                    );
                    objs[indx as usize] += nobj;
                    free_objs[indx as usize] += nobj - allocated;
                    bitmap_bytes += reserved_slots(shift, indx) << indx;
                }
                LARGE => large += 1,
                k => ensure!(
                    false,
                    "page {page} heads a run but has kind {}",
                    kind_name(k)
                ),
            }
            prev_free = d.ku_kind == FREE;
            page += len;
        }
        ensure!(
            free_pages == self.pages.free_pages,
            "free runs hold {free_pages} pages, the counter says {}",
            self.pages.free_pages
        );
        ensure!(
            large == self.large_live,
            "{large} large runs, the counter says {}",
            self.large_live
        );
        ensure!(
            bitmap_bytes == self.inpage_bitmap_bytes,
            "in-page bitmaps take {bitmap_bytes} bytes, the counter says {}",
            self.inpage_bitmap_bytes
        );
        self.check_run_lists(&runs_in_class)?;
        for indx in 0..NBUCKETS as u32 {
            let kb = &self.buckets[indx as usize];
            let total = self.kb_total[indx as usize];
            let carve = self.check_carve(indx)?;
            ensure!(
                total == objs[indx as usize] && kb.kb_totalfree + carve == free_objs[indx as usize],
                "bucket {indx}: kb_total {total} / kb_totalfree {} + {carve} to carve, pages hold {} / {} free",
                kb.kb_totalfree,
                objs[indx as usize],
                free_objs[indx as usize]
            );
            self.check_bucket_list(indx)?;
        }
        Ok(())
    }

    /// Allocated bits of a bucket page, checking that none is set outside
    /// its objects.
    fn count_allocated(&self, page: u32, indx: u32) -> Result<usize, InvariantViolation> {
        let shift = self.page_shift;
        let slots = slots_per_run(shift, indx);
        let reserved = reserved_slots(shift, indx);
        if bitmap_in_page(shift, indx) {
            let mut count = 0;
            for w in 0..slots / 64 {
                // SAFETY: the bitmap words lie at the start of the page.
                let word = unsafe {
                    self.base
                        .add(((page as usize) << shift) + w * 8)
                        .cast::<u64>()
                        .read()
                };
                if w == 0 {
                    ensure!(
                        word & ((1u64 << reserved) - 1) == 0,
                        "bucket page {page}: a bitmap slot is marked allocated"
                    );
                }
                count += word.count_ones() as usize;
            }
            Ok(count)
        } else {
            // SAFETY: `page < npages`.
            let bits = unsafe { self.pages.kup(page) }.ku_un;
            ensure!(
                slots == 64 || bits >> slots == 0,
                "bucket page {page}: bits set beyond its {slots} objects"
            );
            Ok(bits.count_ones() as usize)
        }
    }

    fn check_run_lists(&self, runs_in_class: &[usize; NCLASSES]) -> Result<(), InvariantViolation> {
        for (c, &expected) in runs_in_class.iter().enumerate() {
            let head = self.pages.heads[c];
            ensure!(
                (self.pages.nonempty >> c & 1 == 1) == (head != NIL),
                "class {c}: nonempty bit disagrees with its list"
            );
            let (mut p, mut prev, mut count) = (head, NIL, 0usize);
            while p != NIL {
                ensure!(
                    count < expected,
                    "class {c}: list longer than its {expected} runs"
                );
                ensure!(
                    p < self.pages.npages,
                    "class {c}: link to page {p} out of range"
                );
                // SAFETY: `p < npages`.
                let d = unsafe { *self.pages.kup(p) };
                ensure!(
                    d.ku_kind == FREE && run_class(d.ku_pagecnt) == c,
                    "class {c}: page {p} is {} x {}",
                    kind_name(d.ku_kind),
                    d.ku_pagecnt
                );
                ensure!(
                    d.prev() == prev,
                    "class {c}: page {p} has a wrong back link"
                );
                prev = p;
                p = d.next();
                count += 1;
            }
            ensure!(
                count == expected,
                "class {c}: list holds {count} runs, the pages {expected}"
            );
        }
        Ok(())
    }

    /// The objects bucket `indx` has left to carve, checking that they lie
    /// in one of its runs, aligned, with their allocated bits clear.
    fn check_carve(&self, indx: u32) -> Result<usize, InvariantViolation> {
        let c = self.carve[indx as usize];
        if c == Carve::EMPTY || c.next == c.end {
            return Ok(0);
        }
        let shift = self.page_shift;
        ensure!(
            !self.return_pages
                && (MINBUCKET..=shift + 1).contains(&indx)
                && c.next < c.end
                && c.end <= self.pages_len
                && (c.end - c.next).is_multiple_of(1 << indx)
                && c.next.is_multiple_of(1 << indx.min(shift)),
            "bucket {indx}: carve range {:#x}..{:#x} is not a run's objects",
            c.next,
            c.end
        );
        let page = self.page_of(c.next);
        // SAFETY: `page < npages` since `c.next < pages_len`.
        let d = unsafe { *self.pages.kup(page) };
        let run_end = ((page as usize) << shift) + (slots_per_run(shift, indx) << indx);
        ensure!(
            d.ku_kind == BUCKET && d.ku_indx as u32 == indx && c.end == run_end,
            "bucket {indx}: carve range {:#x}..{:#x} is not the end of one of its runs",
            c.next,
            c.end
        );
        ensure!(
            c.next & self.page_mask >= reserved_slots(shift, indx) << indx,
            "bucket {indx}: carve range starts in the bitmap slots"
        );
        let mut off = c.next;
        while off < c.end {
            // SAFETY: a BUCKET page of bucket `indx`, aligned offset.
            let (word, mask) = unsafe { self.bit_of(page, indx, off & self.page_mask) };
            // SAFETY: the bitmap word is in the arena or the table.
            let bit = unsafe { *word } & mask;
            ensure!(
                bit == 0,
                "bucket {indx}: object at offset {off:#x} is still to carve but allocated"
            );
            off += 1 << indx;
        }
        Ok(c.left(indx))
    }

    fn check_bucket_list(&self, indx: u32) -> Result<(), InvariantViolation> {
        let kb = &self.buckets[indx as usize];
        let mut p = kb.kb_next;
        let mut prev_off: Option<usize> = None;
        let mut count = 0usize;
        while !p.is_null() {
            ensure!(
                count < kb.kb_totalfree,
                "bucket {indx}: list longer than kb_totalfree {} (a cycle or a stray object)",
                kb.kb_totalfree
            );
            let off = p.addr().wrapping_sub(self.base.addr());
            ensure!(
                off < self.pages_len && off.is_multiple_of(16),
                "bucket {indx}: list entry {p:?} outside the pages or misaligned"
            );
            let page = self.page_of(off);
            // SAFETY: `page < npages`.
            let d = unsafe { *self.pages.kup(page) };
            let in_page = off & self.page_mask;
            ensure!(
                d.ku_kind == BUCKET
                    && d.ku_indx as u32 == indx
                    && in_page & ((1 << indx) - 1) == 0
                    && in_page >> indx >= reserved_slots(self.page_shift, indx),
                "bucket {indx}: list entry at offset {off:#x} is not an object of this bucket"
            );
            // SAFETY: a BUCKET page of bucket `indx`, aligned offset.
            let (word, mask) = unsafe { self.bit_of(page, indx, in_page) };
            // SAFETY: the bitmap word is in the arena or the table.
            let bit = unsafe { *word } & mask;
            ensure!(
                bit == 0,
                "bucket {indx}: object at offset {off:#x} is on the free list but allocated"
            );
            let c = self.carve[indx as usize];
            ensure!(
                !(c.next..c.end).contains(&off),
                "bucket {indx}: object at offset {off:#x} is on the free list and still to carve"
            );
            // Re-derive the pointer from `base` rather than trusting the link.
            // SAFETY: `off` is a free object of this bucket, inside the pages.
            let obj = unsafe { self.base.add(off) };
            if self.return_pages {
                // SAFETY: a free object holds two links.
                let back = unsafe { prev_of(obj) };
                let want = prev_off.map_or(0, |o| self.base.addr() + o);
                ensure!(
                    back.addr() == want,
                    "bucket {indx}: object at offset {off:#x} has a wrong back link"
                );
            }
            prev_off = Some(off);
            // SAFETY: as above.
            p = unsafe { next_of(obj) };
            count += 1;
        }
        ensure!(
            count == kb.kb_totalfree,
            "bucket {indx}: list holds {count} objects, kb_totalfree is {}",
            kb.kb_totalfree
        );
        Ok(())
    }
}

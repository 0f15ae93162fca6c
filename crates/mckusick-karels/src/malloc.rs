//! `malloc`: pop from the bucket, or carve its newest run, or give it a new
//! run from the page allocator, or take a run of whole pages.

use core::ptr::{self, NonNull};

use crate::allocator::{C_PAGE_SHIFT, McKusickKarels, bit_set_if_clear};
use crate::bucket::{
    Carve, bucket_index, maxallocsave, next_of, objects_per_run, pages_per_run, prefetch,
    reserved_slots, set_next, set_prev, slots_per_run,
};
use crate::kmemusage::{BUCKET, BUCKET_TAIL, KmemUsage, LARGE, LARGE_TAIL};

/// [`bucket_index`] of every size up to `MAXALLOCSAVE` with 4 KiB pages, by
/// `ceil(size / 16)`: one load instead of a leading-zero count and its
/// clamping (all sizes in `(16 (k - 1), 16 k]` share the bucket of `16 k`).
/// A `const`, not a `static`: the plugin then reaches it PC-relative, not
/// through the GOT (one load fewer).
const SIZE_CLASS: [u8; 513] = {
    let mut t = [0u8; 513];
    let mut k = 0;
    while k < t.len() {
        t[k] = bucket_index(k * 16) as u8;
        k += 1;
    }
    t
};

/// Why the head of a bucket was not popped.
enum Miss {
    /// The list is empty (or its head and count disagree).
    Empty,
    /// The head is not a free object of the bucket: a link was overwritten.
    Corrupt,
}

impl McKusickKarels {
    /// A block of at least `size` bytes (0 counts as 1), 16-byte aligned, or
    /// `None` (counted in `failed_allocs`). A request up to `MAXALLOCSAVE`
    /// gets an object of its bucket, exactly `2^ceil(log2(size))` bytes (at
    /// least 16); a larger one gets `ceil(size / page)` whole pages.
    ///
    /// # Time complexity
    ///
    /// O(1) when the bucket has a free object or objects left to carve
    /// (the common case: a leading-zero count and a checked list pop, or a
    /// bump of the carve range). A new run for an empty bucket is a page-run
    /// search (O(1) typical, see [`crate::page_alloc`]), plus O(objects per
    /// page) with doubly linked lists (the page is threaded, as in 4.4BSD).
    /// A large request is a page-run search.
    #[inline(always)]
    pub fn malloc(&mut self, size: usize) -> Option<NonNull<u8>> {
        let p = self.malloc_uncounted(size);
        if p.is_none() {
            self.failed_allocs += 1;
        }
        p
    }

    /// Up to `n` blocks of at least `size` bytes, handed to `out` one by
    /// one: the blocks, in the order, that `n` calls of
    /// [`McKusickKarels::malloc`] would give (and the same state after),
    /// stopping where one would fail (counted, as it would be). The bucket
    /// is found once and its list popped (each object checked as `malloc`
    /// checks it) in a loop; an empty or corrupt list, a large size or
    /// another region go through `malloc` itself.
    ///
    /// # Time complexity
    ///
    /// As `n` calls of `malloc`.
    #[inline]
    pub fn malloc_many(
        &mut self,
        size: usize,
        n: usize,
        mut out: impl FnMut(NonNull<u8>),
    ) -> usize {
        let mut got = if self.page_shift == C_PAGE_SHIFT {
            self.pop_many::<C_PAGE_SHIFT>(size, n, &mut out)
        } else {
            self.pop_many::<0>(size, n, &mut out)
        };
        while got < n {
            match self.malloc(size) {
                Some(p) => {
                    out(p);
                    got += 1;
                }
                None => break,
            }
        }
        got
    }

    /// The part of [`McKusickKarels::malloc_many`] that pops bucket lists
    /// of this region (what `malloc_in` does when the pop succeeds); stops
    /// at the first pop that does not, which changed nothing.
    #[inline(always)]
    fn pop_many<const S: u32>(
        &mut self,
        size: usize,
        n: usize,
        out: &mut impl FnMut(NonNull<u8>),
    ) -> usize {
        if size > maxallocsave(self.shift::<S>()) {
            return 0;
        }
        let indx = bucket_index(size);
        let mut got = 0;
        while got < n {
            let Ok((obj, next, totalfree)) = self.pop::<S>(indx) else {
                break;
            };
            if self.return_pages {
                self.doubly_new_head(next, indx, totalfree);
            }
            out(obj);
            got += 1;
        }
        got
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
        if self.page_shift == C_PAGE_SHIFT {
            self.malloc_in::<C_PAGE_SHIFT>(size)
        } else {
            self.malloc_in::<0>(size)
        }
    }

    /// [`McKusickKarels::malloc_here`] compiled for page shift `S` (0: any).
    #[inline(always)]
    fn malloc_in<const S: u32>(&mut self, size: usize) -> Option<NonNull<u8>> {
        if size > maxallocsave(self.shift::<S>()) {
            return self.malloc_large(size);
        }
        let indx = bucket_index(size);
        match self.pop::<S>(indx) {
            Ok((obj, next, totalfree)) => {
                if self.return_pages {
                    self.doubly_new_head(next, indx, totalfree);
                }
                Some(obj)
            }
            Err(Miss::Empty) => self.malloc_empty(indx),
            Err(Miss::Corrupt) => self.repair_and_retry(indx),
        }
    }

    /// The C ABI's `malloc` fast path (4 KiB pages, singly linked lists):
    /// the head of the bucket, or `None` with nothing changed. No call, no
    /// panic: the C layer runs it outside `catch_unwind`.
    ///
    /// # Time complexity
    ///
    /// O(1).
    #[inline(always)]
    pub(crate) fn malloc_fast(&mut self, size: usize) -> Option<NonNull<u8>> {
        // 0 when the fast paths do not apply (see `fast_size_limit`).
        if size >= self.fast_size_limit {
            return None;
        }
        // SAFETY: `fast_size_limit` is at most `MAXALLOCSAVE + 1`.
        unsafe { core::hint::assert_unchecked(size <= maxallocsave(C_PAGE_SHIFT)) };
        // SAFETY: `size <= 8192`, so the index is at most 512.
        let indx = unsafe { *SIZE_CLASS.get_unchecked(size.div_ceil(16)) } as u32;
        self.pop::<C_PAGE_SHIFT>(indx).ok().map(|(obj, _, _)| obj)
    }

    /// Pops the head of bucket `indx` (`indx <= S + 1`, or `<= page_shift +
    /// 1` for `S == 0`), checked first: the object, the new head (the link
    /// read from it, checked when it is popped in its turn) and the count
    /// before the pop. Nothing changed on `Err`.
    ///
    /// # Time complexity
    ///
    /// O(1).
    #[inline(always)]
    fn pop<const S: u32>(&mut self, indx: u32) -> Result<(NonNull<u8>, *mut u8, usize), Miss> {
        debug_assert!((indx as usize) < self.buckets.len());
        // SAFETY: `indx <= MAX_PAGE_SHIFT + 1 < NBUCKETS` (caller's contract).
        let kbp = unsafe { self.buckets.get_unchecked(indx as usize) };
        let (va, totalfree) = (kbp.kb_next, kbp.kb_totalfree);
        if totalfree == 0 {
            return self.carve_one::<S>(indx);
        }
        // The head is a link read from a free object, which a caller may
        // have overwritten: it is checked (and marked allocated) before
        // anything is read from it. A null head with objects counted (a
        // null link that cut the list short) fails the range check: `base`
        // is not null, so its offset wraps far beyond the pages.
        // SAFETY: `indx` is a bucket index; `take_free` trusts nothing of `va`.
        let Some(obj) = (unsafe { self.take_free::<S>(va, indx) }) else {
            return Err(Miss::Corrupt);
        };
        // SAFETY: `obj` is a free object of bucket `indx` (just checked):
        // its first word is its link.
        let next = unsafe { next_of(obj) };
        // SAFETY: as above.
        let kbp = unsafe { self.buckets.get_unchecked_mut(indx as usize) };
        kbp.kb_next = next;
        kbp.kb_totalfree = totalfree - 1;
        prefetch(next);
        // SAFETY: objects lie inside the arena, so `obj` is non-null.
        Ok((unsafe { NonNull::new_unchecked(obj) }, next, totalfree))
    }

    /// Bucket `indx`'s list is empty: the next object of its carve range
    /// (checked: its bit may have been set through an overwritten link that
    /// pointed there). A list whose head and count disagree (a null link
    /// written over a free object's, cutting the list short, or a link to an
    /// object counted elsewhere) is `Corrupt`. Nothing changed on `Err`.
    #[inline(always)]
    fn carve_one<const S: u32>(
        &mut self,
        indx: u32,
    ) -> Result<(NonNull<u8>, *mut u8, usize), Miss> {
        // SAFETY: `indx < NBUCKETS` (see `pop`).
        let (kb, c) = unsafe {
            (
                self.buckets.get_unchecked(indx as usize),
                *self.carve.get_unchecked(indx as usize),
            )
        };
        if !kb.kb_next.is_null() || kb.kb_totalfree != 0 {
            return Err(Miss::Corrupt);
        }
        if c.next == c.end {
            return Err(Miss::Empty);
        }
        // SAFETY: `indx` is a bucket index and `c.next` an object of its
        // carve range.
        let obj = unsafe { self.take_carved::<S>(c.next, indx) }.ok_or(Miss::Corrupt)?;
        // SAFETY: as above.
        unsafe { self.carve.get_unchecked_mut(indx as usize) }.next = c.next + (1 << indx);
        // Nothing was read from the object: ask for its line now, as the
        // caller is about to write it (and `free` will write its link).
        // 4.4BSD's threading of the page brought every line in at once.
        prefetch(obj);
        // SAFETY: objects lie inside the arena, so `obj` is non-null.
        Ok((unsafe { NonNull::new_unchecked(obj) }, ptr::null_mut(), 0))
    }

    /// The object at offset `off` of bucket `indx`'s carve range, marked
    /// allocated, if its allocated bit is clear; `None`, with nothing
    /// changed, if it is set (an overwritten link pointed there and the
    /// list handed it out). The carve range is the allocator's own state,
    /// never read from a free object: it lies in a `BUCKET` run of the
    /// bucket, past the in-page bitmap's slots, aligned (`new_run` sets it,
    /// a relink of the bucket empties it), so of [`McKusickKarels::take_free`]'s
    /// checks only the bit is needed.
    ///
    /// # Safety
    ///
    /// `off` is the next object of bucket `indx`'s carve range (`indx <
    /// NBUCKETS`); `S` is 0 or the page shift.
    ///
    /// # Time complexity
    ///
    /// O(1).
    #[inline(always)]
    unsafe fn take_carved<const S: u32>(&mut self, off: usize, indx: u32) -> Option<*mut u8> {
        debug_assert!(off < self.pages_len && off & ((1 << indx) - 1) & self.page_mask == 0);
        debug_assert!(off & self.page_mask >= self.reserved::<S>(indx));
        // SAFETY: the page `off >> shift < npages` since `off < pages_len`.
        let d = unsafe { self.pages.kmemusage.add(off >> self.shift::<S>()) };
        debug_assert!({
            // SAFETY: as above.
            let k = unsafe { *d };
            k.ku_kind == BUCKET && k.ku_indx as u32 == indx
        });
        // SAFETY: a BUCKET page of bucket `indx`, offset a multiple of the
        // object size.
        let (word, bit) = unsafe { self.bit_at_slot::<S>(d, off, indx) };
        // SAFETY: the bitmap word is in the table or the page's reserved
        // slots; `off` is inside the pages; no reference to the descriptor
        // is live.
        unsafe {
            let (w, was_clear) = bit_set_if_clear(*word, bit);
            if !was_clear {
                return None;
            }
            *word = w;
            Some(self.base.add(off))
        }
    }

    /// The object at `p` as a pointer derived from the arena, marked
    /// allocated, if `p` is a free
    /// object of bucket `indx`: inside the pages, aligned, on a `BUCKET`
    /// page of that bucket, outside the reserved bitmap slots, allocated bit
    /// clear. `None`, with nothing changed, otherwise. Only the descriptor
    /// and the bitmap word are read, never `p` itself.
    ///
    /// # Safety
    ///
    /// `indx` is a bucket index (`< NBUCKETS`); `S` is 0 or the page shift.
    ///
    /// # Time complexity
    ///
    /// O(1).
    #[inline(always)]
    pub(crate) unsafe fn take_free<const S: u32>(
        &mut self,
        p: *mut u8,
        indx: u32,
    ) -> Option<*mut u8> {
        let (shift, page_mask) = (self.shift::<S>(), self.mask::<S>());
        let off = p.addr().wrapping_sub(self.base.addr());
        if off >= self.pages_len || off & self.align_mask::<S>(indx) != 0 {
            return None;
        }
        // SAFETY: the page `off >> shift < npages` since `off < pages_len`.
        let d = unsafe { self.pages.kmemusage.add(off >> shift) };
        // Bucket and kind, the first two bytes of the descriptor, in one
        // compare.
        // SAFETY: as above; the descriptor is `repr(C)`, `ku_indx` first.
        let tag = unsafe { d.cast::<u16>().read() };
        let in_page = off & page_mask;
        if tag != u16::from_ne_bytes([indx as u8, BUCKET]) || in_page < self.reserved::<S>(indx) {
            return None;
        }
        // SAFETY: a BUCKET page of bucket `indx`, offset a multiple of the
        // object size.
        let (word, bit) = unsafe { self.bit_at_slot::<S>(d, off, indx) };
        // SAFETY: the bitmap word is in the table or the page's reserved
        // slots; `off` is inside the pages; no reference to the descriptor
        // is live.
        unsafe {
            let (w, was_clear) = bit_set_if_clear(*word, bit);
            if !was_clear {
                return None;
            }
            *word = w;
            // `p`'s address (in a register) with the arena's provenance:
            // no `base + off`.
            Some(self.base.with_addr(p.addr()))
        }
    }

    /// Doubly linked lists (`ALLOCATOR_FLAG_RETURN_PAGES`): the new head
    /// `next` (read from the object just popped, when the list held
    /// `totalfree` objects) gets a null back link, once checked: the back
    /// link is written into it, so it must be checked before, not when it
    /// is popped.
    #[inline(never)]
    fn doubly_new_head(&mut self, next: *mut u8, indx: u32, totalfree: usize) {
        match self.checked_link(next, indx, totalfree) {
            // SAFETY: a checked free object of this bucket holds two links.
            Some(n) if !n.is_null() => unsafe { set_prev(n, ptr::null_mut()) },
            Some(_) => {}
            None => self.rebuild_bucket(indx),
        }
    }

    /// A corrupt link was found in bucket `indx`: rebuild its list from the
    /// bitmaps (counted) and serve the request from it.
    #[cold]
    #[inline(never)]
    fn repair_and_retry(&mut self, indx: u32) -> Option<NonNull<u8>> {
        self.rebuild_bucket(indx);
        // After the rebuild the list and its count agree and every entry is
        // a checked free object: this does not come back here.
        self.malloc_here(1 << indx)
    }

    /// Bucket `indx` has no free object left: take a new run for it and
    /// serve the request from it.
    #[cold]
    #[inline(never)]
    fn malloc_empty(&mut self, indx: u32) -> Option<NonNull<u8>> {
        if !self.new_run(indx) {
            return None;
        }
        self.malloc_here(1 << indx)
    }

    /// Takes a page run for bucket `indx` and makes its objects available:
    /// as the carve range of the bucket (singly linked modes: handed out in
    /// address order, nothing written to the run but the bitmap), or, with
    /// doubly linked lists, threaded onto the (empty) list from the last
    /// object down to the first, as 4.4BSD did. False when no run is free.
    ///
    /// # Time complexity
    ///
    /// A page-run search, plus O(objects per run) with doubly linked lists.
    fn new_run(&mut self, indx: u32) -> bool {
        let shift = self.page_shift;
        let npg = pages_per_run(shift, indx) as u32;
        let Some(page) = self.alloc_pages(npg) else {
            return false;
        };
        let slots = slots_per_run(shift, indx);
        let reserved = reserved_slots(shift, indx);
        let nobj = objects_per_run(shift, indx);
        self.pages.set_tags(
            page,
            npg,
            KmemUsage {
                ku_indx: indx as u8,
                ku_kind: BUCKET,
                ku_spare: 0,
                ku_pagecnt: npg,
                ku_un: 0,
            },
            BUCKET_TAIL,
        );
        let size = 1usize << indx;
        let start = (page as usize) << shift;
        // SAFETY: the run `[page, page + npg)` is ours, inside the arena.
        let va = unsafe { self.base.add(start) };
        if reserved > 0 {
            // SAFETY: the in-page bitmap (`slots / 8` bytes) lies in the
            // reserved slots at the start of the page.
            unsafe { ptr::write_bytes(va, 0, slots / 8) };
            self.inpage_bitmap_bytes += reserved << indx;
        }
        self.kb_total[indx as usize] += nobj;
        if !self.return_pages {
            self.carve[indx as usize] = Carve {
                next: start + (reserved << indx),
                end: start + (slots << indx),
            };
            return true;
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
                let above = if i + 1 < slots {
                    va.add((i + 1) * size)
                } else {
                    ptr::null_mut()
                };
                set_next(obj, below);
                set_prev(obj, above);
            }
        }
        // SAFETY: `indx < NBUCKETS` (see `malloc_in`).
        let kbp = unsafe { self.buckets.get_unchecked_mut(indx as usize) };
        debug_assert!(kbp.kb_next.is_null());
        // SAFETY: the last slot is inside the run.
        kbp.kb_next = unsafe { va.add((slots - 1) * size) };
        kbp.kb_totalfree += nobj;
        true
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

//! `free`: find the block's size from its page descriptor (no header),
//! check the pointer deterministically, and push the object back onto its
//! bucket (or give a large run back to the page allocator).
//!
//! A pointer is accepted iff:
//! 1. it lies in the pages (`base <= p < base + pages_len`);
//! 2. its page's descriptor has kind `BUCKET`, the offset in the page is a
//!    multiple of the object size `1 << ku_indx`, and the object's allocated
//!    bit is set; or the kind is `LARGE` and `p` is the page's start.
//!
//! Nothing in the object itself is read to decide, so a caller's bytes can
//! never make a bad pointer pass: interior, misaligned, double and foreign
//! frees are all rejected, counted, and change nothing else.

use core::ptr::NonNull;

use arena_api::BadPointer;

use crate::allocator::{C_PAGE_SHIFT, McKusickKarels, bit_clear_if_set};
use crate::bucket::{pages_per_run, reserved_slots, slots_per_run};
use crate::kmemusage::{BUCKET, LARGE};

/// A live block, as its page descriptor describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Block {
    /// Object of bucket `indx`, `off` bytes after `base`, in page `page`.
    Object {
        /// Offset from `base`.
        off: usize,
        /// Its page.
        page: u32,
        /// Its bucket.
        indx: u32,
    },
    /// A large run of `pagecnt` pages starting at page `page`.
    Large {
        /// First page.
        page: u32,
        /// Length in pages.
        pagecnt: u32,
    },
}

impl McKusickKarels {
    /// The live block starting at `p`, if `p` is the start of one.
    ///
    /// # Time complexity
    ///
    /// O(1).
    #[inline]
    pub(crate) fn lookup(&self, p: NonNull<u8>) -> Option<Block> {
        let off = p.as_ptr().addr().wrapping_sub(self.base.addr());
        if off >= self.pages_len {
            return None;
        }
        let page = self.page_of(off);
        // SAFETY: `page < npages` since `off < pages_len`.
        let kup = unsafe { *self.pages.kup(page) };
        let in_page = off & self.page_mask;
        if kup.ku_kind == BUCKET {
            let indx = kup.ku_indx as u32;
            if in_page & ((1usize << indx) - 1) != 0 {
                return None;
            }
            // SAFETY: a BUCKET page of bucket `indx`, offset a multiple of
            // the object size.
            let (word, mask) = unsafe { self.bit_of(page, indx, in_page) };
            // SAFETY: the bitmap word is inside the arena (or the table).
            (unsafe { *word } & mask != 0).then_some(Block::Object { off, page, indx })
        } else if kup.ku_kind == LARGE && in_page == 0 {
            Some(Block::Large {
                page,
                pagecnt: kup.ku_pagecnt,
            })
        } else {
            None
        }
    }

    /// Gives back the block starting at `p`, or rejects `p` (counted in
    /// `rejected_frees`) and changes nothing else.
    ///
    /// # Time complexity
    ///
    /// O(1) for an object (a descriptor lookup, a bit test, a list push);
    /// with `return_pages`, the free that empties a page also unlinks its
    /// objects, O(objects per page). A large run: O(1) (boundary-tag merge).
    #[inline(always)]
    pub fn free(&mut self, p: NonNull<u8>) -> Result<(), BadPointer> {
        match self.free_here(p) {
            Ok(()) => Ok(()),
            Err(BadPointer) => self.free_elsewhere(p),
        }
    }

    /// `free` in this region only, counting nothing.
    #[inline(always)]
    pub(crate) fn free_here(&mut self, p: NonNull<u8>) -> Result<(), BadPointer> {
        if self.page_shift == C_PAGE_SHIFT {
            self.free_in::<C_PAGE_SHIFT>(p)
        } else {
            self.free_in::<0>(p)
        }
    }

    /// [`McKusickKarels::free_here`] compiled for page shift `S` (0: any).
    #[inline(always)]
    fn free_in<const S: u32>(&mut self, p: NonNull<u8>) -> Result<(), BadPointer> {
        if self.free_object_at::<S, true>(p.as_ptr()) {
            return Ok(());
        }
        let off = p.as_ptr().addr().wrapping_sub(self.base.addr());
        if off < self.pages_len && off & self.page_mask == 0 {
            let page = self.page_of(off);
            // SAFETY: `page < npages` since `off < pages_len`.
            if unsafe { self.pages.kup(page) }.ku_kind == LARGE {
                self.free_large(page);
                return Ok(());
            }
        }
        Err(BadPointer)
    }

    /// The C ABI's `free` fast path (4 KiB pages, singly linked lists): true
    /// when `p` was a live object and is freed, false with nothing changed
    /// otherwise (a large run, a pointer to reject, null). No call, no
    /// panic: the C layer runs it outside `catch_unwind`.
    ///
    /// # Time complexity
    ///
    /// O(1).
    #[inline(always)]
    pub(crate) fn free_fast(&mut self, p: *mut u8) -> bool {
        self.free_object_at::<C_PAGE_SHIFT, false>(p)
    }

    /// Frees `p` if it is a live object of a bucket (inside the pages, on a
    /// `BUCKET` page, a multiple of the object size, allocated bit set);
    /// false, with nothing changed, otherwise. `EAGER`: the lists may be
    /// doubly linked; false: the fast path, which takes no pointer unless
    /// the fast paths apply (`fast_pages_len` is 0 otherwise).
    #[inline(always)]
    fn free_object_at<const S: u32, const EAGER: bool>(&mut self, p: *mut u8) -> bool {
        // Null, like any address outside the pages, wraps or lands beyond
        // `pages_len` (`base` is not null).
        let off = p.addr().wrapping_sub(self.base.addr());
        let limit = if EAGER {
            self.pages_len
        } else {
            self.fast_pages_len
        };
        if off >= limit {
            return false;
        }
        let page = off >> self.shift::<S>();
        // SAFETY: `page < npages` since `off < pages_len`; the first two
        // bytes of the `repr(C)` descriptor are `ku_indx`, `ku_kind`.
        let d = unsafe { self.pages.kmemusage.add(page) };
        // SAFETY: as above.
        let [indx, kind] = unsafe { d.cast::<[u8; 2]>().read() };
        let indx = indx as u32;
        if kind != BUCKET || off & self.align_mask::<S>(indx) != 0 {
            return false;
        }
        // SAFETY: a BUCKET page of bucket `indx`, offset a multiple of the
        // object size.
        let (word, bit) = unsafe { self.bit_at_slot::<S>(d, off, indx) };
        // SAFETY: the bitmap word is inside the arena (or table).
        let (rest, was_set) = bit_clear_if_set(unsafe { *word }, bit);
        if !was_set {
            return false;
        }
        // SAFETY: the object is live: clear its bit and push it, writing its
        // link through the caller's pointer.
        unsafe {
            *word = rest;
            if EAGER && self.return_pages {
                self.free_object(off, page as u32, indx, rest, p);
            } else {
                // An all-free run has every bitmap word zero (no bit is set
                // for the in-page bitmap's own slots): a test of the word
                // already in a register filters the test of the others.
                // `p`'s address with the arena's provenance: no `base + off`.
                let obj = self.base.with_addr(p.addr());
                if rest == 0 {
                    self.note_word_cleared::<S>(obj, indx);
                }
                self.buckets
                    .get_unchecked_mut(indx as usize)
                    .push(obj, p, false);
            }
        }
        true
    }

    /// Frees a block found by [`McKusickKarels::lookup`] from the caller's
    /// pointer `p`.
    pub(crate) fn free_block(&mut self, b: Block, p: NonNull<u8>) {
        match b {
            Block::Object { off, page, indx } => {
                // SAFETY: `lookup` found the object live at `p`.
                unsafe {
                    let (word, mask) = self.bit_of(page, indx, off & self.page_mask);
                    let rest = *word & !mask;
                    *word = rest;
                    self.free_object(off, page, indx, rest, p.as_ptr());
                }
            }
            Block::Large { page, .. } => self.free_large(page),
        }
    }

    /// Pushes the object at `off` (allocated bit already cleared, leaving
    /// `rest` in its bitmap word) back onto its bucket; with
    /// `return_pages`, gives its run back once all its objects are free.
    ///
    /// # Safety
    ///
    /// `off` is an object of bucket `indx` in BUCKET page `page`, live until
    /// its bit was just cleared; `via` is the caller's pointer to it.
    #[inline(always)]
    unsafe fn free_object(&mut self, off: usize, page: u32, indx: u32, rest: u64, via: *mut u8) {
        // SAFETY: `off` is inside the pages; `indx < NBUCKETS`.
        unsafe {
            let va = self.base.add(off);
            self.buckets
                .get_unchecked_mut(indx as usize)
                .push(va, via, self.return_pages);
        }
        // The run is all free iff every word of its bitmap is zero: the
        // one just written first, the others only then.
        // SAFETY: `page` heads a BUCKET run of bucket `indx`.
        if rest == 0 && unsafe { self.run_all_free(page, indx) } {
            if self.return_pages {
                self.return_run(page, indx);
            } else {
                self.run_emptied = true;
            }
        }
    }

    /// Doubly linked lists: unlinks every object of the (all free) bucket run
    /// at `page` from bucket `indx`'s list and gives the run back to the page
    /// allocator. A neighbour link that does not point back (a write into a
    /// freed object) stops the unlinking: the run goes back and the list is
    /// rebuilt from the bitmaps.
    ///
    /// # Time complexity
    ///
    /// O(objects per page).
    #[cold]
    #[inline(never)]
    pub(crate) fn return_run(&mut self, page: u32, indx: u32) {
        let shift = self.page_shift;
        let size = 1usize << indx;
        let reserved = reserved_slots(shift, indx);
        let slots = slots_per_run(shift, indx);
        let mut intact = true;
        // SAFETY: the run is inside the arena; every slot from `reserved` on
        // is a free object of bucket `indx` (its bitmap is all zero).
        unsafe {
            let va = self.base.add((page as usize) << shift);
            for i in reserved..slots {
                if !self.safe_unlink(va.add(i * size), indx) {
                    intact = false;
                    break;
                }
            }
        }
        self.inpage_bitmap_bytes -= reserved << indx;
        self.pages.free_run(page, pages_per_run(shift, indx) as u32);
        if intact {
            self.kb_total[indx as usize] -= slots - reserved;
        } else {
            self.rebuild_bucket(indx);
        }
    }

    /// Gives the large run at `page` back to the page allocator.
    ///
    /// # Time complexity
    ///
    /// O(1).
    pub(crate) fn free_large(&mut self, page: u32) {
        // SAFETY: `page` heads a live large run.
        let n = unsafe { self.pages.kup(page) }.ku_pagecnt;
        self.large_live -= 1;
        self.pages.free_run(page, n);
    }

    /// The usable size of the live block at `p` (`1 << ku_indx` for an
    /// object, `ku_pagecnt` pages for a large run), or `None`. Counts nothing.
    ///
    /// # Time complexity
    ///
    /// O(1).
    pub fn usable_size(&self, p: NonNull<u8>) -> Option<usize> {
        Some(match self.lookup_anywhere(p)?.1 {
            Block::Object { indx, .. } => 1 << indx,
            Block::Large { pagecnt, .. } => (pagecnt as usize) << self.page_shift,
        })
    }
}

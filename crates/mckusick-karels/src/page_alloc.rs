//! The page allocator under the buckets: page runs with boundary tags and
//! size-segregated free-run lists (4.4BSD used the kernel map, `kmem_malloc`
//! and `kmem_free`, here it must live inside the arena).
//!
//! A **page run** is a sequence of whole pages that is, as one unit, free, a
//! bucket's run (one or two pages cut into objects) or a large allocation.
//! The runs tile the arena's pages exactly. The first and last descriptor of
//! every run are its **boundary tags** (see [`crate::kmemusage`]): freeing the
//! run `[s, s + n)` looks at descriptor `s - 1` (the last page of the run
//! before) and `s + n` (the first page of the run after) and merges with
//! whichever is free, in O(1).
//!
//! Free runs are kept in **free-run lists** by length class, linked through
//! the `ku_un` field of each free run's first descriptor:
//!
//! ```text
//!  class:    0   1   2  ...  15 | 16      17      18       ...  43
//!  lengths:  1   2   3  ...  16 | 17..31  32..63  64..127  ...  2^31..
//!            exact classes      | power-of-two classes
//!  nonempty: bit c set iff heads[c] != NIL
//!
//!  heads[2] ─▶ run@40 (3 pages) ◀─▶ run@7 (3 pages) ─▶ NIL
//! ```
//!
//! Finding a run of `n` pages: for `n <= 16` the lowest non-empty class at or
//! above `n`'s exact class fits, found with one `trailing_zeros` on the
//! bitmask (best fit among the exact classes). For `n > 16`, a few runs of
//! `n`'s own class are probed first (they may be shorter than `n`), then the
//! lowest non-empty class above it (every run there fits), and only when no
//! larger run exists is the rest of `n`'s own class scanned. So the search is
//! O(1) unless the only runs that fit are in `n`'s own class, and it never
//! fails while a run of `n` pages exists. The chosen run is split: its first
//! `n` pages are handed out, the rest goes back to the list of its class.
//!
//! Lists are LIFO (a freed run is pushed at the head): O(1), and a run freed
//! recently is reused first. An address-ordered list would fragment less but
//! costs O(list) per insertion.

use crate::kmemusage::{FREE, FREE_TAIL, KmemUsage, NIL};

/// Run lengths `1..=EXACT_CLASSES` have a class each.
pub const EXACT_CLASSES: u32 = 16;
/// Number of free-run classes: 16 exact ones, then one per power of two up
/// to `2^31..2^32` pages.
pub const NCLASSES: usize = EXACT_CLASSES as usize + 28;
/// Runs of `n`'s own (power-of-two) class probed before a larger class is
/// split.
const PROBES: usize = 4;

const _: () = assert!(NCLASSES <= 64);

/// The free-run class of a run of `len >= 1` pages.
///
/// # Time complexity
///
/// O(1).
#[inline]
pub const fn run_class(len: u32) -> usize {
    if len <= EXACT_CLASSES {
        len as usize - 1
    } else {
        EXACT_CLASSES as usize + (31 - len.leading_zeros()) as usize - 4
    }
}

/// The shortest run length in class `class`.
///
/// # Time complexity
///
/// O(1).
#[inline]
pub const fn class_min_len(class: usize) -> u64 {
    if class < EXACT_CLASSES as usize {
        class as u64 + 1
    } else if class == EXACT_CLASSES as usize {
        EXACT_CLASSES as u64 + 1
    } else {
        1 << (class - EXACT_CLASSES as usize + 4)
    }
}

/// The page allocator's state (inside the allocator's state, in the arena).
///
/// Invariants:
/// - the runs tile pages `[0, npages)`; no two free runs are adjacent;
/// - bit `c` of `nonempty` is set iff `heads[c] != NIL`;
/// - list `c` holds exactly the free runs whose length is in class `c`,
///   doubly linked through their first descriptors;
/// - `free_pages` = the total length of the free runs.
#[repr(C)]
#[derive(Debug)]
pub struct PageAlloc {
    /// The descriptor table, `npages` entries.
    pub(crate) kmemusage: *mut KmemUsage,
    /// Pages in the arena.
    pub(crate) npages: u32,
    /// Bit `c` set iff class `c` has a free run.
    pub(crate) nonempty: u64,
    /// First free run of each class, or [`NIL`].
    pub(crate) heads: [u32; NCLASSES],
    /// Pages in free runs.
    pub(crate) free_pages: usize,
}

impl PageAlloc {
    /// A page allocator over `npages` pages, all free as one run.
    ///
    /// # Safety
    ///
    /// `kmemusage` is valid for reads and writes of `npages` descriptors for
    /// as long as the allocator is used, and used by nothing else.
    ///
    /// # Time complexity
    ///
    /// O(1): only the two boundary descriptors are written.
    pub unsafe fn new(kmemusage: *mut KmemUsage, npages: u32) -> PageAlloc {
        let mut pa = PageAlloc {
            kmemusage,
            npages,
            nonempty: 0,
            heads: [NIL; NCLASSES],
            free_pages: 0,
        };
        if npages > 0 {
            pa.free_run(0, npages);
        }
        pa
    }

    /// The descriptor of `page`.
    ///
    /// # Safety
    ///
    /// `page < npages`, and no other reference to that descriptor is live.
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn kup(&self, page: u32) -> &mut KmemUsage {
        debug_assert!(page < self.npages);
        // SAFETY: in bounds (caller's contract); the table is ours alone and
        // lies outside `self`, so this does not alias `self`.
        unsafe { &mut *self.kmemusage.add(page as usize) }
    }

    /// Writes the boundary tags of the run `[start, start + len)`: its head
    /// descriptor becomes `head` (with `ku_pagecnt = len`), and for `len >= 2`
    /// its last descriptor becomes a `tail_kind` tag of the same length.
    ///
    /// # Time complexity
    ///
    /// O(1).
    #[inline]
    pub fn set_tags(&mut self, start: u32, len: u32, head: KmemUsage, tail_kind: u8) {
        debug_assert!(len >= 1 && start as u64 + len as u64 <= self.npages as u64);
        // SAFETY: both pages are in bounds (the run lies in the arena).
        unsafe {
            *self.kup(start) = KmemUsage {
                ku_pagecnt: len,
                ..head
            };
            if len >= 2 {
                *self.kup(start + len - 1) = KmemUsage::head(tail_kind, len);
            }
        }
    }

    fn insert(&mut self, page: u32) {
        // SAFETY: `page` heads a free run, inside the arena.
        let c = run_class(unsafe { self.kup(page) }.ku_pagecnt);
        let head = self.heads[c];
        // SAFETY: `page` and `head` (if any) head free runs.
        unsafe {
            self.kup(page).set_links(NIL, head);
            if head != NIL {
                self.kup(head).set_prev(page);
            }
        }
        self.heads[c] = page;
        self.nonempty |= 1 << c;
    }

    fn remove(&mut self, page: u32) {
        // SAFETY: `page` heads a free run on its class list, and so do its
        // neighbours on that list.
        unsafe {
            let d = *self.kup(page);
            let c = run_class(d.ku_pagecnt);
            let (prev, next) = (d.prev(), d.next());
            if prev == NIL {
                self.heads[c] = next;
                if next == NIL {
                    self.nonempty &= !(1 << c);
                }
            } else {
                self.kup(prev).set_next(next);
            }
            if next != NIL {
                self.kup(next).set_prev(prev);
            }
        }
    }

    /// First run of class `c` with at least `n` pages, looking at `limit` runs.
    fn probe(&self, c: usize, n: u32, limit: usize) -> Option<u32> {
        let mut p = self.heads[c];
        let mut seen = 0;
        while p != NIL && seen < limit {
            // SAFETY: `p` heads a free run on list `c`.
            let d = unsafe { self.kup(p) };
            if d.ku_pagecnt >= n {
                return Some(p);
            }
            p = d.next();
            seen += 1;
        }
        None
    }

    /// Takes the first `n` pages of the free run at `page` (of at least `n`
    /// pages); the rest stays free. The caller writes the new run's tags.
    fn take(&mut self, page: u32, n: u32) {
        // SAFETY: `page` heads a free run.
        let len = unsafe { self.kup(page) }.ku_pagecnt;
        debug_assert!(len >= n);
        self.remove(page);
        if len > n {
            self.set_tags(page + n, len - n, KmemUsage::head(FREE, 0), FREE_TAIL);
            self.insert(page + n);
        }
        self.free_pages -= n as usize;
    }

    /// Takes a run of `n >= 1` pages; returns its first page. The caller must
    /// then write its boundary tags ([`PageAlloc::set_tags`]).
    ///
    /// # Time complexity
    ///
    /// O(1) (a bitmask search and a split) unless the only runs long enough
    /// are in `n`'s own power-of-two class, behind `PROBES` shorter ones:
    /// then O(runs in that class).
    pub fn alloc_run(&mut self, n: u32) -> Option<u32> {
        debug_assert!(n >= 1);
        let c = run_class(n);
        let page = if c < EXACT_CLASSES as usize {
            let fits = self.nonempty & (!0u64 << c);
            if fits == 0 {
                return None;
            }
            self.heads[fits.trailing_zeros() as usize]
        } else if let Some(p) = self.probe(c, n, PROBES) {
            p
        } else {
            let above = self.nonempty & (!0u64).checked_shl(c as u32 + 1).unwrap_or(0);
            if above != 0 {
                self.heads[above.trailing_zeros() as usize]
            } else {
                self.probe(c, n, usize::MAX)?
            }
        };
        self.take(page, n);
        Some(page)
    }

    /// Gives back the run `[start, start + n)`, merging it with the free runs
    /// before and after it.
    ///
    /// # Time complexity
    ///
    /// O(1).
    pub fn free_run(&mut self, start: u32, n: u32) {
        debug_assert!(n >= 1 && start as u64 + n as u64 <= self.npages as u64);
        // The old head (and tail) may end up interior: they must not keep a
        // BUCKET or LARGE kind (see `crate::kmemusage`).
        // SAFETY: both pages lie in the run, inside the arena.
        unsafe {
            self.kup(start).ku_kind = FREE_TAIL;
            self.kup(start + n - 1).ku_kind = FREE_TAIL;
        }
        let (mut s, mut len) = (start, n);
        if s > 0 {
            // SAFETY: `s - 1` is the last page of the run before.
            let before = unsafe { *self.kup(s - 1) };
            if before.ku_kind == FREE || before.ku_kind == FREE_TAIL {
                let ps = s - before.ku_pagecnt;
                self.remove(ps);
                s = ps;
                len += before.ku_pagecnt;
            }
        }
        let end = start + n;
        if end < self.npages {
            // SAFETY: `end` is the first page of the run after.
            let after = unsafe { *self.kup(end) };
            if after.ku_kind == FREE {
                self.remove(end);
                len += after.ku_pagecnt;
            }
        }
        self.set_tags(s, len, KmemUsage::head(FREE, 0), FREE_TAIL);
        self.insert(s);
        self.free_pages += n as usize;
    }

    /// Extends the allocated run `[start, start + n)` by `extra` pages taken
    /// from the free run right after it, if that one is long enough. The
    /// caller then rewrites the run's tags.
    ///
    /// # Time complexity
    ///
    /// O(1).
    pub fn grow_in_place(&mut self, start: u32, n: u32, extra: u32) -> bool {
        let end = start as u64 + n as u64;
        if end >= self.npages as u64 {
            return false;
        }
        let end = end as u32;
        // SAFETY: `end` is in the arena: the first page of the next run.
        let after = unsafe { *self.kup(end) };
        if after.ku_kind != FREE || after.ku_pagecnt < extra {
            return false;
        }
        self.take(end, extra);
        true
    }

    /// The longest free run, in pages.
    ///
    /// # Time complexity
    ///
    /// O(1) when the highest non-empty class is an exact one; otherwise
    /// O(runs in that class), which holds the longest runs and so few of
    /// them.
    pub fn largest_run(&self) -> u32 {
        if self.nonempty == 0 {
            return 0;
        }
        let c = 63 - self.nonempty.leading_zeros() as usize;
        if c < EXACT_CLASSES as usize {
            return c as u32 + 1;
        }
        let mut best = 0;
        let mut p = self.heads[c];
        while p != NIL {
            // SAFETY: `p` heads a free run on list `c`.
            let d = unsafe { self.kup(p) };
            best = best.max(d.ku_pagecnt);
            p = d.next();
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmemusage::{LARGE, LARGE_TAIL};

    #[test]
    fn classes_cover_lengths_in_order() {
        assert_eq!(run_class(1), 0);
        assert_eq!(run_class(16), 15);
        assert_eq!(run_class(17), 16);
        assert_eq!(run_class(31), 16);
        assert_eq!(run_class(32), 17);
        assert_eq!(run_class(63), 17);
        assert_eq!(run_class(64), 18);
        assert_eq!(run_class(u32::MAX), NCLASSES - 1);
        let mut last = 0;
        let top = if cfg!(miri) { 3000 } else { 100_000u32 };
        for len in 1..top {
            let c = run_class(len);
            assert!(c >= last);
            last = c;
            assert!(class_min_len(c) <= len as u64);
            if c + 1 < NCLASSES {
                assert!(class_min_len(c + 1) > len as u64, "{len}");
            }
        }
    }

    fn table(n: usize) -> Vec<KmemUsage> {
        vec![KmemUsage::default(); n]
    }

    fn mark_large(pa: &mut PageAlloc, start: u32, n: u32) {
        pa.set_tags(start, n, KmemUsage::head(LARGE, 0), LARGE_TAIL);
    }

    #[test]
    fn split_and_merge_restore_one_run() {
        let mut t = table(64);
        // SAFETY: the table outlives the allocator and has 64 entries.
        let mut pa = unsafe { PageAlloc::new(t.as_mut_ptr(), 64) };
        assert_eq!(pa.largest_run(), 64);
        let a = pa.alloc_run(3).unwrap();
        mark_large(&mut pa, a, 3);
        let b = pa.alloc_run(20).unwrap();
        mark_large(&mut pa, b, 20);
        let c = pa.alloc_run(1).unwrap();
        mark_large(&mut pa, c, 1);
        assert_eq!((a, b, c), (0, 3, 23));
        assert_eq!(pa.free_pages, 40);
        assert_eq!(pa.largest_run(), 40);
        pa.free_run(b, 20); // between two live runs: no merge
        assert_eq!(pa.largest_run(), 40);
        assert_eq!(pa.alloc_run(41), None);
        pa.free_run(c, 1); // merges with both neighbours
        assert_eq!(pa.largest_run(), 61);
        pa.free_run(a, 3);
        assert_eq!(pa.largest_run(), 64);
        assert_eq!(pa.free_pages, 64);
        assert_eq!(pa.nonempty.count_ones(), 1);
        assert_eq!(pa.alloc_run(64), Some(0));
        assert_eq!(pa.nonempty, 0);
    }

    #[test]
    fn a_long_enough_run_is_always_found() {
        let mut t = table(200);
        // SAFETY: as above.
        let mut pa = unsafe { PageAlloc::new(t.as_mut_ptr(), 200) };
        // Runs of 17, 25, 18 pages separated by live single pages: all class 16.
        let mut starts = Vec::new();
        for len in [17, 1, 25, 1, 18, 1] {
            let s = pa.alloc_run(len).unwrap();
            mark_large(&mut pa, s, len);
            starts.push((s, len));
        }
        let rest = pa.alloc_run(pa.largest_run()).unwrap();
        mark_large(&mut pa, rest, 200 - 63);
        for &(s, len) in starts.iter().step_by(2) {
            pa.free_run(s, len);
        }
        assert_eq!(pa.largest_run(), 25);
        // 25 is in class 16 behind shorter runs; nothing larger exists.
        let s = pa.alloc_run(25).unwrap();
        assert_eq!(s, starts[2].0);
        assert_eq!(pa.alloc_run(25), None);
    }

    #[test]
    fn grow_takes_the_next_free_run() {
        let mut t = table(10);
        // SAFETY: as above.
        let mut pa = unsafe { PageAlloc::new(t.as_mut_ptr(), 10) };
        let a = pa.alloc_run(2).unwrap();
        mark_large(&mut pa, a, 2);
        assert!(pa.grow_in_place(a, 2, 5));
        mark_large(&mut pa, a, 7);
        assert_eq!(pa.free_pages, 3);
        assert!(!pa.grow_in_place(a, 7, 4));
        assert!(pa.grow_in_place(a, 7, 3));
        mark_large(&mut pa, a, 10);
        assert_eq!(pa.free_pages, 0);
        assert!(!pa.grow_in_place(a, 10, 1));
    }
}

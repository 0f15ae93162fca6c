//! `kmemusage`: the page descriptor table.
//!
//! One 16-byte [`KmemUsage`] per page of the arena, kept in an array at the
//! start of the arena (4.4BSD kept `kmemusage[]` beside `kmem_map`). The
//! descriptor of the page holding an address is found by arithmetic alone
//! (`btokup(addr)` in 4.4BSD): `kmemusage[(addr - base) >> page_shift]`.
//!
//! ```text
//!  byte  0        1        2..4          4..8          8..16
//!       +--------+--------+-------------+-------------+---------------------------+
//!       |ku_indx |ku_kind |ku_spare     |ku_pagecnt   | ku_un                     |
//!       |  u8    |  u8    |  u16        |  u32        | allocated bitmap (u64)    |
//!       |        |        |             |             |  or run links (u32, u32)  |
//!       +--------+--------+-------------+-------------+---------------------------+
//! ```
//!
//! What each field means depends on `ku_kind`:
//!
//! | `ku_kind`      | page is                                   | fields used |
//! |----------------|-------------------------------------------|-------------|
//! | [`FREE`]       | first page of a free page run             | `ku_pagecnt` = run length; `ku_un` = prev/next run of its free list |
//! | [`FREE_TAIL`]  | last page of a free run of ≥ 2 pages      | `ku_pagecnt` = run length |
//! | [`BUCKET`]     | first page of a bucket's page run         | `ku_indx`, `ku_pagecnt` = 1 or 2, `ku_un` = allocated bitmap when ≤ 64 objects per page |
//! | [`BUCKET_TAIL`]| second page of a two-page bucket run      | `ku_pagecnt` = 2 |
//! | [`LARGE`]      | first page of a large allocation          | `ku_pagecnt` = run length |
//! | [`LARGE_TAIL`] | last page of a large run of ≥ 2 pages     | `ku_pagecnt` = run length |
//!
//! **Boundary tags.** The first and the last descriptor of every page run
//! (free, bucket or large) describe that run exactly; for a one-page run they
//! are the same descriptor, of the head kind. Descriptors of interior pages are
//! don't-care for the page allocator, with one safety rule that `free` relies
//! on: **only the first page of a live bucket run has kind `BUCKET`, and only
//! the first page of a live large run has kind `LARGE`**. Every transition
//! away from those kinds rewrites that one descriptor (O(1)), so a stale
//! interior descriptor can only hold a free or tail kind, which `free` rejects.

/// First page of a free page run; `ku_un` holds the links of its free-run list.
pub const FREE: u8 = 1;
/// Last page of a free run of two or more pages.
pub const FREE_TAIL: u8 = 2;
/// First page of a bucket's page run (objects of `1 << ku_indx` bytes).
pub const BUCKET: u8 = 3;
/// Second page of a two-page bucket run (one object of `MAXALLOCSAVE` bytes).
pub const BUCKET_TAIL: u8 = 4;
/// First page of a large allocation (a run of whole pages).
pub const LARGE: u8 = 5;
/// Last page of a large allocation of two or more pages.
pub const LARGE_TAIL: u8 = 6;

/// "No page": the end of a free-run list.
pub const NIL: u32 = u32::MAX;

/// The descriptor of one page (`struct kmemusage` of 4.4BSD, widened: see the
/// module docs).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KmemUsage {
    /// Bucket index of a [`BUCKET`] page: its objects are `1 << ku_indx` bytes.
    pub ku_indx: u8,
    /// What the page is: [`FREE`], [`BUCKET`], [`LARGE`], or a tail kind.
    pub ku_kind: u8,
    /// Unused (zero). 4.4BSD's `ku_freecnt` (free objects of a bucket
    /// page) is not kept: `malloc` and `free` would update it on every
    /// call, and the allocated bitmap already says it (a popcount), and
    /// whether the run is all free (every bitmap word zero), where that is
    /// needed.
    pub ku_spare: u16,
    /// Length in pages of the run this page heads or ends.
    pub ku_pagecnt: u32,
    /// A [`BUCKET`] page with at most 64 objects: bit `i` set iff object `i`
    /// is allocated. A [`FREE`] page: `prev | next << 32`, page indices of
    /// its neighbours in its free-run list ([`NIL`] for none).
    pub ku_un: u64,
}

const _: () = assert!(size_of::<KmemUsage>() == 16);

impl KmemUsage {
    /// The descriptor of the head (and, if one page long, tail) of a run.
    #[inline]
    pub const fn head(kind: u8, pagecnt: u32) -> KmemUsage {
        KmemUsage {
            ku_indx: 0,
            ku_kind: kind,
            ku_spare: 0,
            ku_pagecnt: pagecnt,
            ku_un: 0,
        }
    }

    /// Previous run in this free run's list.
    #[inline]
    pub const fn prev(&self) -> u32 {
        self.ku_un as u32
    }

    /// Next run in this free run's list.
    #[inline]
    pub const fn next(&self) -> u32 {
        (self.ku_un >> 32) as u32
    }

    /// Sets both free-list links.
    #[inline]
    pub fn set_links(&mut self, prev: u32, next: u32) {
        self.ku_un = prev as u64 | (next as u64) << 32;
    }

    /// Sets the previous-run link.
    #[inline]
    pub fn set_prev(&mut self, prev: u32) {
        self.ku_un = (self.ku_un & !0xFFFF_FFFF) | prev as u64;
    }

    /// Sets the next-run link.
    #[inline]
    pub fn set_next(&mut self, next: u32) {
        self.ku_un = (self.ku_un & 0xFFFF_FFFF) | (next as u64) << 32;
    }
}

/// The tail kind that goes with a head kind.
#[inline]
pub const fn tail_kind(head: u8) -> u8 {
    match head {
        FREE => FREE_TAIL,
        BUCKET => BUCKET_TAIL,
        _ => LARGE_TAIL,
    }
}

/// A short name of a kind, for invariant messages.
pub fn kind_name(kind: u8) -> &'static str {
    match kind {
        FREE => "FREE",
        FREE_TAIL => "FREE_TAIL",
        BUCKET => "BUCKET",
        BUCKET_TAIL => "BUCKET_TAIL",
        LARGE => "LARGE",
        LARGE_TAIL => "LARGE_TAIL",
        _ => "invalid",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_pack_into_the_union() {
        let mut d = KmemUsage::head(FREE, 3);
        d.set_links(7, NIL);
        assert_eq!((d.prev(), d.next()), (7, NIL));
        d.set_next(9);
        assert_eq!((d.prev(), d.next()), (7, 9));
        d.set_prev(NIL);
        assert_eq!((d.prev(), d.next()), (NIL, 9));
        assert_eq!(d.ku_pagecnt, 3);
    }

    #[test]
    fn tails_pair_with_heads() {
        assert_eq!(tail_kind(FREE), FREE_TAIL);
        assert_eq!(tail_kind(BUCKET), BUCKET_TAIL);
        assert_eq!(tail_kind(LARGE), LARGE_TAIL);
        assert_eq!(kind_name(LARGE_TAIL), "LARGE_TAIL");
        assert_eq!(kind_name(0), "invalid");
    }
}

//! The allocator's state and its placement in the arena.
//!
//! ```text
//!  region                                                          region + len
//!  |pad| McKusickKarels | kmemusage[npages] |pad| page 0 | page 1 | ... |tail|
//!      ^ state (64-aligned)                      ^ base: page-aligned in
//!                                                  absolute address
//!  metadata = everything but the pages (+ in-page bitmaps of small buckets)
//! ```

use core::ptr::{self, NonNull};

use crate::bucket::{
    Carve, KmemBuckets, MAX_PAGE_SHIFT, MIN_PAGE_SHIFT, MINBUCKET, NBUCKETS, bitmap_in_page,
    maxallocsave, reserved_bytes, slots_per_run,
};
use crate::kmemusage::KmemUsage;
use crate::page_alloc::PageAlloc;

/// The page shift of the C ABI (4 KiB pages): `malloc` and `free` are
/// compiled once with it as a constant, and once for any page size.
pub(crate) const C_PAGE_SHIFT: u32 = 12;

/// Per-bucket constants of the hot paths for page shift `S`, as tables
/// (one load instead of a few shifts and compares).
struct Geometry<const S: u32>;

impl<const S: u32> Geometry<S> {
    /// `(object size - 1) & page_mask` per bucket slot.
    const ALIGN: [u32; NBUCKETS] = {
        let mut t = [0; NBUCKETS];
        let mut i = 0;
        while i < NBUCKETS {
            t[i] = (((1usize << i) - 1) & ((1usize << S) - 1)) as u32;
            i += 1;
        }
        t
    };
    /// [`reserved_bytes`] per bucket slot.
    const RESERVED: [u32; NBUCKETS] = {
        let mut t = [0; NBUCKETS];
        let mut i = MINBUCKET;
        while i <= S + 1 && (i as usize) < NBUCKETS {
            t[i as usize] = reserved_bytes(S, i) as u32;
            i += 1;
        }
        t
    };
}

/// When a bucket's page goes back to the page allocator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PageReturn {
    /// Never: 4.4BSD's behaviour (`ALLOCATOR_FLAG_FAITHFUL`). Bucket lists
    /// are singly linked; memory freed in one size class cannot serve
    /// another.
    Never,
    /// The default: a bucket keeps its empty pages (4.4BSD's hot paths, no
    /// page re-carved at a boundary) until a request for pages would fail;
    /// then every bucket run whose objects are all free goes back to the
    /// page allocator at once (4.4BSD's `kb_couldfree` made real) and the
    /// request is retried. Lists stay singly linked.
    #[default]
    Hysteresis,
    /// At once: a page goes back as soon as all its objects are free
    /// (`ALLOCATOR_FLAG_RETURN_PAGES`).
    Eager,
}

/// How an allocator is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Bytes per page: a power of two from 256 to 65536 (4096 by default, and
    /// always through the C ABI). `MAXALLOCSAVE` is two pages.
    pub page_size: usize,
    /// When bucket pages go back to the page allocator (by default, before
    /// a request for pages fails; see [`PageReturn`]).
    pub page_return: PageReturn,
}

impl Default for Config {
    fn default() -> Self {
        Config::DEFAULT
    }
}

impl Config {
    /// 4 KiB pages, empty bucket pages returned when pages run out (the
    /// default).
    pub const DEFAULT: Config = Config {
        page_size: 4096,
        page_return: PageReturn::Hysteresis,
    };

    /// The strictly faithful 4.4BSD behaviour with 4 KiB pages: bucket pages
    /// are never returned (`ALLOCATOR_FLAG_FAITHFUL`).
    pub const FAITHFUL: Config = Config {
        page_size: 4096,
        page_return: PageReturn::Never,
    };

    /// 4 KiB pages, and bucket pages go back to the page pool as soon as they
    /// are empty (`ALLOCATOR_FLAG_RETURN_PAGES`).
    pub const RETURN_PAGES: Config = Config {
        page_size: 4096,
        page_return: PageReturn::Eager,
    };

    /// log2 of the page size, if the page size is acceptable.
    pub(crate) fn page_shift(&self) -> Option<u32> {
        let s = self.page_size.trailing_zeros();
        (self.page_size.is_power_of_two() && (MIN_PAGE_SHIFT..=MAX_PAGE_SHIFT).contains(&s))
            .then_some(s)
    }
}

/// Why an allocator could not be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateError {
    /// The page size is not a power of two between 256 and 65536.
    BadPageSize,
    /// The region is null, wraps around the address space, or cannot hold the
    /// state, one page descriptor and one aligned page.
    TooSmall,
}

impl core::fmt::Display for CreateError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            CreateError::BadPageSize => "page size must be a power of two from 256 to 65536",
            CreateError::TooSmall => "region too small for the allocator's state and one page",
        })
    }
}

impl core::error::Error for CreateError {}

/// A McKusick-Karels allocator. The value lives at the start of the region it
/// manages; get one with [`McKusickKarels::create`] (raw) or use the safe
/// [`crate::Heap`].
///
/// Invariants: see [`McKusickKarels::check_invariants`], which checks all of
/// them.
#[repr(C, align(64))]
#[derive(Debug)]
pub struct McKusickKarels {
    // The fields `malloc` and `free` read on every call come first: with the
    // descriptor table's address (the first field of `pages`) they fill the
    // first cache line of the state.
    /// The first page (`kmembase`).
    pub(crate) base: *mut u8,
    /// `npages << page_shift`: the bytes of all pages.
    pub(crate) pages_len: usize,
    /// `page_size - 1`.
    pub(crate) page_mask: usize,
    /// Requests above this get whole pages.
    pub(crate) maxallocsave: usize,
    /// log2 of the page size.
    pub(crate) page_shift: u32,
    /// Bucket lists are doubly linked and an empty run goes back to the
    /// pages at once ([`PageReturn::Eager`]).
    pub(crate) return_pages: bool,
    /// Empty bucket runs go back before a request for pages fails
    /// ([`PageReturn::Hysteresis`], the default).
    pub(crate) reclaim: bool,
    /// When the C ABI's fast paths apply (4 KiB pages, [`C_PAGE_SHIFT`],
    /// and singly linked lists, not [`PageReturn::Eager`]):
    /// `MAXALLOCSAVE + 1`, the sizes `malloc_fast` takes being below it;
    /// otherwise 0, so that it takes none. One compare for both tests.
    pub(crate) fast_size_limit: usize,
    /// `pages_len` when the fast paths apply, otherwise 0, so that
    /// `free_fast` takes no pointer: one compare for both tests.
    pub(crate) fast_pages_len: usize,
    /// Runs, boundary tags, free-run lists; owns the `kmemusage` table.
    pub(crate) pages: PageAlloc,
    /// `bucket[indx]`: free objects of `1 << indx` bytes (slots below
    /// `MINBUCKET` unused, as in 4.4BSD).
    pub(crate) buckets: [KmemBuckets; NBUCKETS],
    /// Per bucket: the objects of its newest run not yet handed out, which
    /// are on no list (singly linked modes: a fresh run is carved lazily).
    pub(crate) carve: [Carve; NBUCKETS],
    /// Per bucket: objects in all its runs, free or not (`kb_total` of
    /// 4.4BSD's `kmembuckets`, kept apart: only refills and returns change it).
    pub(crate) kb_total: [usize; NBUCKETS],
    /// Live large allocations.
    pub(crate) large_live: usize,
    /// Bytes of bucket pages that hold in-page bitmaps (metadata).
    pub(crate) inpage_bitmap_bytes: usize,
    /// Allocation requests answered `None`.
    pub(crate) failed_allocs: usize,
    /// Pointers rejected by `free`/`realloc`.
    pub(crate) rejected_frees: usize,
    /// `len` given at creation.
    pub(crate) region_len: usize,
    /// The address of the region given at creation.
    pub(crate) region_addr: usize,
    /// The regions added after creation, newest first (`regions.rs`).
    pub(crate) more: Option<NonNull<McKusickKarels>>,
    /// Corrupt free-list links detected (and the list rebuilt from the
    /// bitmaps): each one a write into a freed block.
    pub(crate) list_repairs: usize,
    /// A free emptied a bucket run (all its objects free) since the last
    /// search for empty runs ([`McKusickKarels::reclaim_empty_runs`], which
    /// gives every such run back and clears it). Runs become empty only
    /// through frees, so when it is clear there is none and the search (a
    /// walk of the whole descriptor table) is skipped: a full arena whose
    /// free objects are scattered is not walked on every refused request.
    pub(crate) run_emptied: bool,
    /// Pages from here on were never handed out (the page allocator splits
    /// runs from their start): a run that reaches past it grows the
    /// footprint ([`McKusickKarels::grew`]).
    pub(crate) touched_end: u32,
    /// The footprint ([`McKusickKarels::touched_end`]) from which growing
    /// it searches for empty runs again.
    pub(crate) reclaim_at: u32,
    /// The next request for pages first gives the empty bucket runs back
    /// (set by [`McKusickKarels::grew`]).
    pub(crate) reclaim_due: bool,
}

impl McKusickKarels {
    /// Bytes a region needs at most, beyond whatever alignment padding its
    /// address needs, to hold the state, one descriptor and one page of
    /// `page_size` bytes.
    pub const fn min_region(page_size: usize) -> usize {
        size_of::<McKusickKarels>() + size_of::<KmemUsage>() + 2 * page_size
    }

    /// Places an allocator in `[region, region + len)` and returns a pointer
    /// to it (at the start of the region, after alignment padding). All
    /// its state, tables and blocks stay inside the region.
    ///
    /// # Safety
    ///
    /// `region` must be valid for reads and writes of `len` bytes for as long
    /// as the allocator or any block from it is used, and nothing else may
    /// access the region meanwhile except through blocks it handed out.
    ///
    /// # Time complexity
    ///
    /// O(pages): the descriptor table is zeroed.
    pub unsafe fn create(
        region: *mut u8,
        len: usize,
        config: Config,
    ) -> Result<NonNull<McKusickKarels>, CreateError> {
        let shift = config.page_shift().ok_or(CreateError::BadPageSize)?;
        let fast = shift == C_PAGE_SHIFT && config.page_return != PageReturn::Eager;
        let page = 1usize << shift;
        if region.is_null() || region.addr().checked_add(len).is_none() {
            return Err(CreateError::TooSmall);
        }
        let pad = region.align_offset(align_of::<McKusickKarels>());
        let table_off = pad
            .checked_add(size_of::<McKusickKarels>())
            .filter(|&t| t <= len)
            .ok_or(CreateError::TooSmall)?;
        let desc = size_of::<KmemUsage>();
        // The most pages that could fit, then fewer until the padding to a
        // page boundary fits too (at most two steps: the padding is < a page).
        let mut n = ((len - table_off) / (page + desc)).min(u32::MAX as usize - 1);
        let start = region.addr();
        let pages_off = loop {
            if n == 0 {
                return Err(CreateError::TooSmall);
            }
            let table_end = start + table_off + n * desc;
            let first_page = table_end.next_multiple_of(page);
            let off = first_page - start;
            if off <= len && (len - off) / page >= n {
                break off;
            }
            n -= 1;
        };
        // SAFETY: every offset below is at most `len` (checked above), and the
        // region is ours (caller's contract).
        unsafe {
            let this = region.add(pad).cast::<McKusickKarels>();
            let table = region.add(table_off).cast::<KmemUsage>();
            ptr::write_bytes(table, 0, n);
            let pages = PageAlloc::new(table, n as u32);
            this.write(McKusickKarels {
                base: region.add(pages_off),
                pages_len: n << shift,
                page_mask: page - 1,
                maxallocsave: maxallocsave(shift),
                page_shift: shift,
                return_pages: config.page_return == PageReturn::Eager,
                reclaim: config.page_return == PageReturn::Hysteresis,
                fast_size_limit: if fast { maxallocsave(shift) + 1 } else { 0 },
                fast_pages_len: if fast { n << shift } else { 0 },
                pages,
                buckets: [KmemBuckets::EMPTY; NBUCKETS],
                carve: [Carve::EMPTY; NBUCKETS],
                kb_total: [0; NBUCKETS],
                large_live: 0,
                inpage_bitmap_bytes: 0,
                failed_allocs: 0,
                rejected_frees: 0,
                region_len: len,
                region_addr: region.addr(),
                more: None,
                list_repairs: 0,
                run_emptied: false,
                touched_end: 0,
                reclaim_at: 0,
                reclaim_due: false,
            });
            Ok(NonNull::new_unchecked(this))
        }
    }

    /// The configuration it was created with.
    pub fn config(&self) -> Config {
        Config {
            page_size: 1 << self.page_shift,
            page_return: match (self.return_pages, self.reclaim) {
                (true, _) => PageReturn::Eager,
                (false, true) => PageReturn::Hysteresis,
                (false, false) => PageReturn::Never,
            },
        }
    }

    /// Bytes per page.
    pub fn page_size(&self) -> usize {
        1 << self.page_shift
    }

    /// Pages in the arena (the first region: see [`McKusickKarels::add_region`]).
    pub fn npages(&self) -> usize {
        self.pages.npages as usize
    }

    /// `MAXALLOCSAVE`: the largest request served from a bucket (two pages).
    pub fn maxallocsave(&self) -> usize {
        self.maxallocsave
    }

    /// Page index of an offset from `base` (`btokup` of 4.4BSD, less the table).
    #[inline(always)]
    pub(crate) fn page_of(&self, off: usize) -> u32 {
        (off >> self.page_shift) as u32
    }

    /// log2 of the page size: the constant `S` in the hot paths compiled
    /// for one page size ([`C_PAGE_SHIFT`]), the field otherwise (`S == 0`).
    #[inline(always)]
    pub(crate) fn shift<const S: u32>(&self) -> u32 {
        if S == 0 { self.page_shift } else { S }
    }

    /// `page_size - 1`, as [`McKusickKarels::shift`].
    #[inline(always)]
    pub(crate) fn mask<const S: u32>(&self) -> usize {
        if S == 0 { self.page_mask } else { (1 << S) - 1 }
    }

    /// A `free` of the object at `p` cleared the last set bit of its
    /// bitmap word, in a run of bucket `indx`: notes the run is all free
    /// ([`McKusickKarels::run_emptied`]) when its bitmap's other words (an
    /// in-page bitmap of several words, in the line of the word cleared)
    /// are zero too. One branch on the constant kind of bitmap for `S > 0`.
    ///
    /// # Safety
    ///
    /// `p` is an object of a one-page `BUCKET` run of bucket `indx` (the
    /// buckets with an in-page bitmap are), derived from the arena; `S` is
    /// 0 or the page shift.
    #[inline(always)]
    pub(crate) unsafe fn note_word_cleared<const S: u32>(&mut self, p: *const u8, indx: u32) {
        let shift = self.shift::<S>();
        // An in-page bitmap starts the page (page-aligned in absolute
        // address), the page `p` lies in (not a word in a register: the
        // word's address then needs no register of its own).
        let first = p.map_addr(|a| a & !self.mask::<S>()).cast::<u64>();
        // SAFETY: the bitmap at `first` holds `slots / 64` words.
        if !bitmap_in_page(shift, indx) || unsafe { words_zero(first, shift, indx) } {
            self.run_emptied = true;
        }
    }

    /// True when every object of the bucket run at `page` (of bucket
    /// `indx`) is free: its allocated bitmap is zero (no bit is ever set for
    /// the in-page bitmap's own slots).
    ///
    /// # Safety
    ///
    /// `page` heads a `BUCKET` run of bucket `indx`.
    ///
    /// # Time complexity
    ///
    /// O(1): one word, or the few words of an in-page bitmap (4 at most
    /// with 4 KiB pages).
    #[inline]
    pub(crate) unsafe fn run_all_free(&self, page: u32, indx: u32) -> bool {
        let shift = self.page_shift;
        if bitmap_in_page(shift, indx) {
            // SAFETY: the run is inside the pages, its bitmap at its start.
            unsafe { words_zero(self.base.add((page as usize) << shift).cast(), shift, indx) }
        } else {
            // SAFETY: `page` is in the table.
            unsafe { (*self.pages.kmemusage.add(page as usize)).ku_un == 0 }
        }
    }

    /// `(object size - 1) & page_mask` of bucket `indx`: an object's offset
    /// from `base` has none of these bits set. A table lookup for `S > 0`.
    #[inline(always)]
    pub(crate) fn align_mask<const S: u32>(&self, indx: u32) -> usize {
        if S == 0 {
            ((1usize << indx) - 1) & self.page_mask
        } else {
            // SAFETY: `indx < NBUCKETS` (every caller's bucket index).
            (unsafe { *Geometry::<S>::ALIGN.get_unchecked(indx as usize) }) as usize
        }
    }

    /// [`reserved_bytes`] of bucket `indx`: a table lookup for `S > 0`.
    #[inline(always)]
    pub(crate) fn reserved<const S: u32>(&self, indx: u32) -> usize {
        if S == 0 {
            reserved_bytes(self.page_shift, indx)
        } else {
            // SAFETY: `indx < NBUCKETS` (every caller's bucket index).
            (unsafe { *Geometry::<S>::RESERVED.get_unchecked(indx as usize) }) as usize
        }
    }

    /// The allocated-bit word and mask of the object at page offset
    /// `in_page` of the bucket page `page` (objects of `1 << indx` bytes).
    ///
    /// # Safety
    ///
    /// `page` is a `BUCKET` page of bucket `indx`, `in_page` a multiple of
    /// the object size below the page size; no reference to the page's
    /// descriptor is live.
    #[inline(always)]
    pub(crate) unsafe fn bit_of(&self, page: u32, indx: u32, in_page: usize) -> (*mut u64, u64) {
        // SAFETY: the caller's contract.
        unsafe { self.bit_in::<0>(page, indx, in_page) }
    }

    /// [`McKusickKarels::bit_of`] for page shift `S` (see
    /// [`McKusickKarels::shift`]).
    ///
    /// # Safety
    ///
    /// As for [`McKusickKarels::bit_of`]; `S` is 0 or the page shift.
    #[inline(always)]
    pub(crate) unsafe fn bit_in<const S: u32>(
        &self,
        page: u32,
        indx: u32,
        in_page: usize,
    ) -> (*mut u64, u64) {
        let off = ((page as usize) << self.shift::<S>()) + in_page;
        // SAFETY: `page` is in the table (caller's contract).
        let d = unsafe { self.pages.kmemusage.add(page as usize) };
        // SAFETY: the caller's contract.
        unsafe { self.bit_at::<S>(d, off, indx) }
    }

    /// The allocated-bit word and mask of the object at offset `off` from
    /// `base`, whose page descriptor is `d`, of bucket `indx`.
    ///
    /// # Safety
    ///
    /// As for [`McKusickKarels::bit_at_slot`].
    #[inline(always)]
    pub(crate) unsafe fn bit_at<const S: u32>(
        &self,
        d: *mut KmemUsage,
        off: usize,
        indx: u32,
    ) -> (*mut u64, u64) {
        // SAFETY: the caller's contract.
        let (word, bit) = unsafe { self.bit_at_slot::<S>(d, off, indx) };
        (word, 1 << (bit & 63))
    }

    /// The allocated-bit word and the bit's number in it (modulo 64: the
    /// bit is `slot % 64`, as `bt`, `bts`, `btr` take it) of the object at
    /// offset `off` from `base`, whose page descriptor is `d`, of
    /// bucket `indx`. The hot paths test and set, or test and clear, the
    /// bit with [`bit_set_if_clear`] and [`bit_clear_if_set`]: a `bt` and a
    /// `bts` or `btr` on x86-64, on a bit number in a register.
    ///
    /// # Safety
    ///
    /// `d` is the descriptor of `off`'s page, a `BUCKET` page of bucket
    /// `indx`; `off` is a multiple of the object size inside the pages; no
    /// reference to the descriptor is live; `S` is 0 or the page shift.
    #[inline(always)]
    pub(crate) unsafe fn bit_at_slot<const S: u32>(
        &self,
        d: *mut KmemUsage,
        off: usize,
        indx: u32,
    ) -> (*mut u64, u32) {
        let in_page = off & self.mask::<S>();
        let slot = in_page >> indx;
        // Both candidate words are computed and one is selected without a
        // branch: the 16- and 32-byte buckets (bitmap in the page) and the
        // others (bitmap in the descriptor) interleave unpredictably in a
        // mixed workload, and a mispredicted branch here cost ~2 ns a call.
        // Pages are aligned in absolute address: the page's start is the
        // object's address with the low bits cleared (the caller's pointer,
        // which the compiler has in a register, less `base` is `off`).
        // The word before the bitmap is selected (the descriptor's first
        // word, or the one before the page), then the slot's word taken
        // from it: a descriptor's bitmap (`ku_un`, its second word) has at
        // most 64 slots, so `slot / 64` is 0 there, and one indexed load
        // with a displacement serves both, no address computed apart.
        let page_start = self.base.addr().wrapping_add(off) & !self.mask::<S>();
        let before_page = self
            .base
            .with_addr(page_start)
            .cast::<u64>()
            .wrapping_sub(1);
        const _: () = assert!(core::mem::offset_of!(KmemUsage, ku_un) == 8);
        let before = core::hint::select_unpredictable(
            bitmap_in_page(self.shift::<S>(), indx),
            before_page,
            d.cast::<u64>(),
        );
        (before.wrapping_add(1 + (slot >> 6)), slot as u32)
    }
}

/// `w` with bit `bit % 64` set, and whether it was clear before: a `bt`
/// and a `bts` on x86-64 (LLVM emits the `bt`, then builds a mask with a
/// shift through `cl` for an `or`: three more instructions, and `cl`).
#[inline(always)]
pub(crate) fn bit_set_if_clear(w: u64, bit: u32) -> (u64, bool) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        // The test in Rust (a `bt` and a branch on its flag), the update
        // in assembly: asm cannot hand a flag to a branch.
        let was_clear = (w >> (bit & 63)) & 1 == 0;
        let mut w = w;
        // SAFETY: one register-only instruction, no memory or stack.
        unsafe {
            core::arch::asm!(
                "bts {w}, {b}",
                w = inout(reg) w,
                b = in(reg) u64::from(bit),
                options(pure, nomem, nostack),
            );
        }
        (w, was_clear)
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    {
        (w | 1 << (bit & 63), (w >> (bit & 63)) & 1 == 0)
    }
}

/// `w` with bit `bit % 64` clear, and whether it was set before: a `bt`
/// and a `btr` on x86-64 (see [`bit_set_if_clear`]).
#[inline(always)]
pub(crate) fn bit_clear_if_set(w: u64, bit: u32) -> (u64, bool) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        // The test in Rust (a `bt` and a branch on its flag), the update
        // in assembly: asm cannot hand a flag to a branch.
        let was_set = (w >> (bit & 63)) & 1 != 0;
        let mut w = w;
        // SAFETY: one register-only instruction, no memory or stack.
        unsafe {
            core::arch::asm!(
                "btr {w}, {b}",
                w = inout(reg) w,
                b = in(reg) u64::from(bit),
                options(pure, nomem, nostack),
            );
        }
        (w, was_set)
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    {
        (w & !(1 << (bit & 63)), (w >> (bit & 63)) & 1 != 0)
    }
}

/// True when the in-page bitmap at `first` (of a run of bucket `indx`,
/// `slots / 64` words) is all zero.
///
/// # Safety
///
/// `first` is the first word of the in-page bitmap of such a run.
#[inline(always)]
unsafe fn words_zero(first: *const u64, shift: u32, indx: u32) -> bool {
    let words = slots_per_run(shift, indx) / 64;
    // SAFETY: the bitmap holds `words` words (caller's contract).
    (0..words).all(|i| unsafe { *first.add(i) } == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: if cfg!(miri) { 4 } else { 256 },
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// For any region size, misalignment and page size, the state, the
        /// table and the pages lie inside the region, pages are page-aligned
        /// in absolute address, and the page of an offset is `off / page`.
        #[test]
        fn layout_fits_and_pages_of_pointers_are_arithmetic(
            len in 0usize..(if cfg!(miri) { 8 << 10 } else { 300 << 10 }),
            misalign in 0usize..4096,
            shift in MIN_PAGE_SHIFT..=MAX_PAGE_SHIFT,
            probe in any::<usize>(),
        ) {
            let mut mem = vec![0u8; len + misalign];
            let region = mem.as_mut_ptr().wrapping_add(misalign);
            let config = Config { page_size: 1 << shift, page_return: PageReturn::Never };
            // SAFETY: `[region, region + len)` lies inside `mem`.
            match unsafe { McKusickKarels::create(region, len, config) } {
                Err(e) => {
                    prop_assert_eq!(e, CreateError::TooSmall);
                    prop_assert!(len < 64 + McKusickKarels::min_region(1 << shift));
                }
                Ok(a) => {
                    // SAFETY: just created, used by nothing else.
                    let a = unsafe { a.as_ref() };
                    let (lo, hi) = (region.addr(), region.addr() + len);
                    let state = (a as *const McKusickKarels).addr();
                    let table = a.pages.kmemusage.addr();
                    let base = a.base.addr();
                    prop_assert!(lo <= state && state + size_of::<McKusickKarels>() <= table);
                    prop_assert!(table + a.npages() * size_of::<KmemUsage>() <= base);
                    prop_assert!(base + a.pages_len <= hi);
                    prop_assert_eq!(base % (1 << shift), 0);
                    prop_assert_eq!(a.pages_len, a.npages() << shift);
                    // One page more (and its descriptor) would not have fitted.
                    let more = a.npages() + 1;
                    let first = (table + more * size_of::<KmemUsage>()).next_multiple_of(1 << shift);
                    prop_assert!(first + (more << shift) > hi);
                    let off = probe % a.pages_len;
                    prop_assert_eq!(a.page_of(off) as usize, off / (1 << shift));
                    let s = a.stats();
                    prop_assert_eq!(s.bytes_free, a.pages_len);
                    prop_assert_eq!(s.largest_free_block, a.pages_len);
                    prop_assert!(s.adds_up());
                    prop_assert!(a.check_invariants().is_ok());
                }
            }
        }
    }
}

//! `kmembuckets`: the power-of-two buckets and their arithmetic.
//!
//! Bucket `indx` holds free objects of exactly `1 << indx` bytes, from
//! [`MINBUCKET`] (16 bytes) up to `MAXALLOCSAVE` (two pages). Its free list
//! `kb_next` is threaded through the free objects themselves: the first word
//! of a free object points to the next free object (and, when pages are
//! returned, the second word to the previous one).
//!
//! ```text
//!  bucket[4]  (16 B)  kb_next ─▶ [obj]─▶[obj]─▶[obj]─▶ null
//!  bucket[5]  (32 B)  kb_next ─▶ null                      (empty: next malloc carves)
//!  ...
//!  bucket[13] (8 KiB) kb_next ─▶ [obj spanning 2 pages]─▶ null
//! ```
//!
//! A request of `size` bytes goes to the bucket of the next power of two,
//! computed with a leading-zero count ([`bucket_index`]) instead of 4.4BSD's
//! sixteen-deep ternary `BUCKETINDX`.

use core::ptr;

/// log2 of the smallest object: 16 bytes, enough for the two links of a free
/// object and the 16-byte alignment every block must have.
pub const MINBUCKET: u32 = 4;
/// The smallest object, `1 << MINBUCKET` bytes (`MINALLOCSIZE` of 4.4BSD).
pub const MINALLOCSIZE: usize = 1 << MINBUCKET;
/// Number of bucket slots (`MINBUCKET + 16`, as 4.4BSD's `bucket[]`); slots
/// below `MINBUCKET` are never used, so a bucket's slot is its index.
pub const NBUCKETS: usize = MINBUCKET as usize + 16;
/// log2 of the smallest page size a [`crate::Config`] accepts.
pub const MIN_PAGE_SHIFT: u32 = 8;
/// log2 of the largest page size a [`crate::Config`] accepts (`MAXALLOCSAVE`
/// must have a bucket slot).
pub const MAX_PAGE_SHIFT: u32 = 16;

const _: () = assert!(MAX_PAGE_SHIFT + 1 < NBUCKETS as u32);
const _: () = assert!(MINALLOCSIZE >= 2 * size_of::<*mut u8>());

/// `MAXALLOCSAVE` for a page size: two pages. Requests up to it are served
/// from buckets; larger ones get a run of whole pages.
///
/// # Time complexity
///
/// O(1).
#[inline]
pub const fn maxallocsave(page_shift: u32) -> usize {
    2 << page_shift
}

/// The bucket index for a request of `size` bytes: `ceil(log2(size))`, at
/// least [`MINBUCKET`] (so 0 and 1 map to the 16-byte bucket). Only
/// meaningful for `size <= MAXALLOCSAVE`.
///
/// # Time complexity
///
/// O(1): one leading-zero count.
#[inline]
pub const fn bucket_index(size: usize) -> u32 {
    let s = if size < MINALLOCSIZE {
        MINALLOCSIZE
    } else {
        size
    };
    // `| 1` changes nothing (`s - 1 >= 15`) but tells the compiler the
    // operand is not zero: a bare `bsr`, no zero case.
    usize::BITS - ((s - 1) | 1).leading_zeros()
}

/// Pages taken from the page allocator when bucket `indx` is refilled: one,
/// or as many as one object needs (two for `MAXALLOCSAVE`).
///
/// # Time complexity
///
/// O(1).
#[inline]
pub const fn pages_per_run(page_shift: u32, indx: u32) -> usize {
    if indx > page_shift {
        1 << (indx - page_shift)
    } else {
        1
    }
}

/// Object slots in a run of bucket `indx` (`kb_elmpercl` of 4.4BSD).
///
/// # Time complexity
///
/// O(1).
#[inline]
pub const fn slots_per_run(page_shift: u32, indx: u32) -> usize {
    if indx >= page_shift {
        1
    } else {
        1 << (page_shift - indx)
    }
}

/// True when the allocated bitmap of a bucket's page does not fit the 64
/// bits of its descriptor and is kept at the start of the page itself.
///
/// # Time complexity
///
/// O(1).
#[inline]
pub const fn bitmap_in_page(page_shift: u32, indx: u32) -> bool {
    // slots = 2^(page_shift - indx) > 64 = 2^6
    indx + 6 < page_shift
}

/// Leading object slots of a page of bucket `indx` that hold its in-page
/// bitmap (0 when the bitmap is in the descriptor). With 4 KiB pages: 2 slots
/// of 16 B (32 bytes of bitmap), 1 slot of 32 B.
///
/// # Time complexity
///
/// O(1).
#[inline]
pub const fn reserved_slots(page_shift: u32, indx: u32) -> usize {
    if bitmap_in_page(page_shift, indx) {
        let bitmap_bytes = slots_per_run(page_shift, indx) / 8;
        bitmap_bytes.div_ceil(1 << indx)
    } else {
        0
    }
}

/// Bytes at the start of a page of bucket `indx` that hold its in-page
/// bitmap, `reserved_slots(..) << indx`, computed without a division or a
/// branch (`malloc` checks a link against it): `2^max(log2(bitmap bytes),
/// indx)` when the bitmap is in the page, else 0.
///
/// # Time complexity
///
/// O(1).
#[inline(always)]
pub const fn reserved_bytes(page_shift: u32, indx: u32) -> usize {
    // slots / 8 = 2^(page_shift - indx - 3) bytes of bitmap, rounded up to
    // whole objects of 2^indx bytes.
    let log = page_shift.saturating_sub(indx + 3);
    let log = if log > indx { log } else { indx };
    let in_page = bitmap_in_page(page_shift, indx) as usize;
    in_page << log
}

/// Objects a run of bucket `indx` holds for callers.
///
/// # Time complexity
///
/// O(1).
#[inline]
pub const fn objects_per_run(page_shift: u32, indx: u32) -> usize {
    slots_per_run(page_shift, indx) - reserved_slots(page_shift, indx)
}

/// A bucket (`struct kmembuckets`): the two fields `malloc` and `free` touch
/// on every call, 16 bytes (`kb_total` lives apart, in the allocator).
///
/// Invariants (checked by [`crate::McKusickKarels::check_invariants`]):
/// - `kb_next` is null iff `kb_totalfree == 0`; the list holds exactly the
///   `kb_totalfree` free objects of this bucket's runs that are not in its
///   [`Carve`] range, each once.
#[repr(C)]
#[derive(Debug)]
pub struct KmemBuckets {
    /// The first free object, or null.
    pub kb_next: *mut u8,
    /// Free objects on the list.
    pub kb_totalfree: usize,
}

impl KmemBuckets {
    /// An empty bucket.
    pub const EMPTY: KmemBuckets = KmemBuckets {
        kb_next: ptr::null_mut(),
        kb_totalfree: 0,
    };
}

/// The part of a bucket's newest run not handed out yet (singly linked
/// modes): objects at offsets `next, next + size, .. end` from the first
/// page, all free (allocated bit clear) and on no list. 4.4BSD threaded a
/// fresh page's objects into the list at once (one write per object, every
/// line of the page touched); here `malloc` takes them in address order
/// when the list is empty, as a bump pointer. `next == end` when empty.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Carve {
    /// Offset from `base` of the next object to hand out.
    pub next: usize,
    /// Offset from `base` of the end of the run.
    pub end: usize,
}

impl Carve {
    /// Nothing left to carve.
    pub const EMPTY: Carve = Carve { next: 0, end: 0 };

    /// Objects of `1 << indx` bytes left.
    ///
    /// # Time complexity
    ///
    /// O(1).
    #[inline]
    pub const fn left(&self, indx: u32) -> usize {
        (self.end - self.next) >> indx
    }
}

/// Offset of the `prev` link in a free object (return-pages mode only).
const PREV: usize = size_of::<*mut u8>();

/// The `next` link of a free object.
///
/// # Safety
///
/// `obj` is a free object of at least 16 bytes, valid for reads, 8-aligned.
#[inline(always)]
pub unsafe fn next_of(obj: *mut u8) -> *mut u8 {
    // SAFETY: caller's contract; the first word of a free object is its link.
    unsafe { obj.cast::<*mut u8>().read() }
}

/// The `prev` link of a free object (return-pages mode).
///
/// # Safety
///
/// As for [`next_of`].
#[inline(always)]
pub unsafe fn prev_of(obj: *mut u8) -> *mut u8 {
    // SAFETY: caller's contract; the second word of a free object is `prev`.
    unsafe { obj.add(PREV).cast::<*mut u8>().read() }
}

/// Sets the `next` link of a free object.
///
/// # Safety
///
/// `obj` is an object of this allocator not handed out (or being taken
/// back), valid for writes of 16 bytes, 8-aligned.
#[inline(always)]
pub unsafe fn set_next(obj: *mut u8, next: *mut u8) {
    // SAFETY: caller's contract.
    unsafe { obj.cast::<*mut u8>().write(next) }
}

/// Sets the `prev` link of a free object.
///
/// # Safety
///
/// As for [`set_next`].
#[inline(always)]
pub unsafe fn set_prev(obj: *mut u8, prev: *mut u8) {
    // SAFETY: caller's contract.
    unsafe { obj.add(PREV).cast::<*mut u8>().write(prev) }
}

/// Asks the CPU to bring the new list head's cache line in: the next `pop`
/// of this bucket reads its link. Free lists are in free order, so in a
/// random workload consecutive objects are far apart and the read would
/// otherwise miss. A hint only (no fault on any address, null included).
#[inline(always)]
pub(crate) fn prefetch(p: *mut u8) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    // SAFETY: `_mm_prefetch` is a hint that never faults, SSE is part of the
    // x86_64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
            p.cast_const().cast(),
        );
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    let _ = p;
}

impl KmemBuckets {
    /// Pops the first free object (singly linked list: faithful mode).
    ///
    /// # Safety
    ///
    /// `kb_next` is non-null and the list is well formed.
    ///
    /// # Time complexity
    ///
    /// O(1).
    #[inline(always)]
    pub unsafe fn pop(&mut self, doubly: bool) -> *mut u8 {
        let va = self.kb_next;
        // SAFETY: `va` is a free object of this bucket (caller's contract).
        let next = unsafe { next_of(va) };
        self.kb_next = next;
        prefetch(next);
        if doubly && !next.is_null() {
            // SAFETY: `next` is a free object of this bucket.
            unsafe { set_prev(next, ptr::null_mut()) };
        }
        self.kb_totalfree -= 1;
        va
    }

    /// Pushes a free object at the head of the list (LIFO). Its links are
    /// written through `via`, a pointer to the same object: the caller's
    /// pointer on `free` (whose borrow may still be protected, e.g. a `Box`
    /// argument being dropped), so that the write is the caller's own and
    /// not a foreign one under Rust's aliasing models; `obj` (derived from
    /// the arena) is what the list keeps.
    ///
    /// # Safety
    ///
    /// `obj` is an object of this bucket that is not on the list, `via` is a
    /// pointer to it valid for writes of its size; the list is well formed.
    ///
    /// # Time complexity
    ///
    /// O(1).
    #[inline(always)]
    pub unsafe fn push(&mut self, obj: *mut u8, via: *mut u8, doubly: bool) {
        debug_assert_eq!(obj.addr(), via.addr());
        let head = self.kb_next;
        // SAFETY: caller's contract: the object is ours to write through `via`.
        unsafe { set_next(via, head) };
        if doubly {
            // SAFETY: the object and `head` (if any) are free objects of this bucket.
            unsafe {
                set_prev(via, ptr::null_mut());
                if !head.is_null() {
                    set_prev(head, obj);
                }
            }
        }
        self.kb_next = obj;
        self.kb_totalfree = self.kb_totalfree.wrapping_add(1);
    }

    /// Unlinks a free object from anywhere in a doubly linked list.
    ///
    /// # Safety
    ///
    /// The list is doubly linked (return-pages mode) and `obj` is on it.
    ///
    /// # Time complexity
    ///
    /// O(1).
    #[inline]
    pub unsafe fn unlink(&mut self, obj: *mut u8) {
        // SAFETY: `obj` is on the list, so it and its neighbours are free
        // objects of this bucket, valid for reads and writes of their links.
        unsafe {
            let next = next_of(obj);
            let prev = prev_of(obj);
            if prev.is_null() {
                self.kb_next = next;
            } else {
                set_next(prev, next);
            }
            if !next.is_null() {
                set_prev(next, prev);
            }
        }
        self.kb_totalfree -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_of_a_size_is_the_next_power_of_two() {
        assert_eq!(bucket_index(0), MINBUCKET);
        assert_eq!(bucket_index(1), MINBUCKET);
        assert_eq!(bucket_index(16), 4);
        assert_eq!(bucket_index(17), 5);
        assert_eq!(bucket_index(32), 5);
        assert_eq!(bucket_index(33), 6);
        assert_eq!(bucket_index(4096), 12);
        assert_eq!(bucket_index(4097), 13);
        assert_eq!(bucket_index(8192), 13);
        let top = if cfg!(miri) { 3000 } else { 70_000usize };
        for size in 1..=top {
            let i = bucket_index(size);
            assert!(1usize << i >= size, "{size}");
            assert!(i == MINBUCKET || 1usize << (i - 1) < size, "{size}");
        }
    }

    #[test]
    fn sizes_in_one_sixteen_byte_step_share_a_bucket() {
        for size in 1..=8192usize {
            assert_eq!(
                bucket_index(size),
                bucket_index(size.div_ceil(16) * 16),
                "{size}"
            );
        }
    }

    #[test]
    fn geometry_of_4k_pages() {
        let s = 12;
        assert_eq!(maxallocsave(s), 8192);
        assert_eq!(slots_per_run(s, 4), 256);
        assert_eq!(reserved_slots(s, 4), 2);
        assert_eq!(objects_per_run(s, 4), 254);
        assert_eq!(reserved_slots(s, 5), 1);
        assert_eq!(objects_per_run(s, 5), 127);
        assert!(!bitmap_in_page(s, 6));
        assert_eq!(objects_per_run(s, 6), 64);
        assert_eq!(objects_per_run(s, 12), 1);
        assert_eq!(pages_per_run(s, 12), 1);
        assert_eq!(objects_per_run(s, 13), 1);
        assert_eq!(pages_per_run(s, 13), 2);
    }

    #[test]
    fn geometry_holds_for_every_page_size() {
        for s in MIN_PAGE_SHIFT..=MAX_PAGE_SHIFT {
            for i in MINBUCKET..=s + 1 {
                let slots = slots_per_run(s, i);
                let r = reserved_slots(s, i);
                assert_eq!(bitmap_in_page(s, i), slots > 64);
                // The bitmap fits the reserved slots, and they are a small share.
                if bitmap_in_page(s, i) {
                    assert!(r << i >= slots / 8);
                    assert!(r * 64 <= slots, "s={s} i={i}: {r} of {slots}");
                }
                assert_eq!(reserved_bytes(s, i), r << i, "s={s} i={i}");
                assert!(objects_per_run(s, i) >= 1);
                assert!(objects_per_run(s, i) <= u16::MAX as usize);
                assert_eq!(pages_per_run(s, i) << s, slots << i);
            }
        }
    }

    #[test]
    fn lists_push_pop_unlink() {
        let mut mem = [[0u64; 2]; 4];
        let objs: Vec<*mut u8> = mem.iter_mut().map(|m| m.as_mut_ptr().cast()).collect();
        for doubly in [false, true] {
            let mut b = KmemBuckets::EMPTY;
            // SAFETY: the objects are distinct 16-byte, 8-aligned cells.
            unsafe {
                for &o in &objs {
                    b.push(o, o, doubly);
                }
                assert_eq!(b.kb_totalfree, 4);
                if doubly {
                    b.unlink(objs[2]); // middle
                    b.unlink(objs[3]); // head
                    assert_eq!(b.pop(doubly), objs[1]);
                    assert_eq!(b.pop(doubly), objs[0]);
                } else {
                    for &o in objs.iter().rev() {
                        assert_eq!(b.pop(doubly), o);
                    }
                }
            }
            assert!(b.kb_next.is_null());
            assert_eq!(b.kb_totalfree, 0);
        }
    }
}

//! Free areas: per order, an intrusive doubly linked list of the free blocks
//! of that order, and a mask of the orders whose list is not empty.
//!
//! ```text
//!   heads[k-4] ──► [next|prev|k|magic .... free block of order k ...]
//!                    │  ▲
//!                    ▼  │
//!                  [next|prev|k|magic ....]──► NIL
//!   nonempty: bit k set iff heads[k-4] != NIL
//! ```
//!
//! A free block carries its own 16-byte header (links as `u32` granule
//! indices from the bitmaps' base, its order, a magic byte). A header is
//! only ever read at a position the out-of-band bits prove to be a free
//! block's start (see [`crate::free`]): never inside memory a caller owns.
//! Lists are LIFO (push and pop at the head): the block freed last is reused
//! first, while its cache lines are warm.
//!
//! Invariants (checked by [`crate::Buddy::check`]):
//! - a block is in list `k` iff it is a free block of order `k`, and then its
//!   header has `order == k` and `magic == MAGIC`;
//! - `next` is NIL iff the block is its list's tail; `x.next == y` iff
//!   `y.prev == x` for every `y` but the head, whose `prev` is not kept (so
//!   taking the head off touches no other block: `alloc` costs one cache
//!   line less).

use core::ptr::NonNull;

use crate::bitmap::{AllocMap, WORD_ORDER};
use crate::order::{GRANULE_SHIFT, MIN_ORDER, NUM_ORDERS, granules, is_aligned};

/// A free-area link or header that a write into a freed block changed: the
/// list was not followed (nothing was written), and the caller rebuilds the
/// free areas from the bitmaps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Corrupt;

/// "No block" in a link.
pub(crate) const NIL: u32 = u32::MAX;
/// The magic byte of a live free-block header (erased when the block stops
/// being a free block).
pub(crate) const MAGIC: u8 = 0xB5;

/// The header at the start of every free block.
#[repr(C)]
struct Header {
    next: u32,
    prev: u32,
    order: u8,
    magic: u8,
    /// Written as zero: no byte of the header is left uninitialised.
    _pad: [u8; 2],
}

const _: () = assert!(size_of::<Header>() <= 16 && align_of::<Header>() <= 16);

/// The managed range and the pointer from which every block pointer is
/// derived (so all of them carry the arena's provenance).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Frame {
    /// Points to the address `base_g * 16` (which may lie before the arena:
    /// only offset with wrapping arithmetic, dereferenced only inside
    /// `[start, end)`).
    base: *mut u8,
    /// Absolute granule of `base`.
    base_g: usize,
    /// First managed granule.
    pub(crate) start: usize,
    /// One past the last managed granule.
    pub(crate) end: usize,
}

impl Frame {
    /// # Safety
    ///
    /// `base` has the provenance of a region that holds `[start, end)`
    /// (granules, absolute) for as long as the frame is used, `base` is at
    /// address `base_g * 16`, `base_g <= start <= end` and
    /// `end - base_g < u32::MAX`.
    pub(crate) unsafe fn new(base: *mut u8, base_g: usize, start: usize, end: usize) -> Self {
        Frame {
            base,
            base_g,
            start,
            end,
        }
    }

    /// Absolute granule of bitmap index 0.
    pub(crate) fn base_g(&self) -> usize {
        self.base_g
    }

    /// True when granule `g` is managed.
    #[inline(always)]
    pub(crate) fn contains(&self, g: usize) -> bool {
        g >= self.start && g < self.end
    }

    /// True when a block of order `k` at `g` lies inside the managed range.
    #[inline(always)]
    pub(crate) fn fits(&self, g: usize, k: u32) -> bool {
        // No overflow: granule numbers are below 2^60, blocks below 2^32.
        g >= self.start && g + granules(k) <= self.end
    }

    /// The managed granule at address `addr`, if `addr` is one's start.
    #[inline(always)]
    pub(crate) fn granule_of(&self, addr: usize) -> Option<usize> {
        let g = addr >> GRANULE_SHIFT;
        (addr & ((1 << GRANULE_SHIFT) - 1) == 0 && self.contains(g)).then_some(g)
    }

    /// The address of granule `g`.
    #[inline(always)]
    pub(crate) fn addr_of(&self, g: usize) -> usize {
        g << GRANULE_SHIFT
    }

    /// A pointer to granule `g`, with the arena's provenance.
    #[inline(always)]
    fn ptr(&self, g: usize) -> *mut u8 {
        self.base
            .wrapping_add(g.wrapping_sub(self.base_g) << GRANULE_SHIFT)
    }

    /// The block pointer of managed granule `g`.
    #[inline(always)]
    pub(crate) fn block_ptr(&self, g: usize) -> NonNull<u8> {
        debug_assert!(self.contains(g));
        // SAFETY: managed granules lie inside the arena, which does not
        // contain address 0.
        unsafe { NonNull::new_unchecked(self.ptr(g)) }
    }

    #[inline(always)]
    fn rel(&self, g: usize) -> u32 {
        (g - self.base_g) as u32
    }

    /// The header of granule `g` (dereferenced only for managed granules).
    #[inline(always)]
    fn header(&self, g: usize) -> *mut Header {
        self.ptr(g).cast()
    }

    /// Starts loading the header at `g` into the cache, if `g` is managed
    /// (a hint: nothing is read or written, and a wrong guess costs only
    /// the cache line).
    ///
    /// # Time complexity
    ///
    /// O(1).
    #[inline(always)]
    pub(crate) fn prefetch(&self, g: usize) {
        #[cfg(target_arch = "x86_64")]
        if self.contains(g) {
            // SAFETY: SSE, which `_mm_prefetch` needs, is part of every
            // x86_64 target; a prefetch reads nothing (it cannot fault).
            unsafe {
                core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                    self.ptr(g).cast_const().cast(),
                )
            };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = g;
    }

    /// `(next, prev, order, magic)` of the header at `g` (all NIL/0 if `g`
    /// is not managed, which a consistent caller never asks).
    #[inline(always)]
    pub(crate) fn read_header(&self, g: usize) -> (u32, u32, u8, u8) {
        if !self.contains(g) {
            return (NIL, NIL, 0, 0);
        }
        let h = self.header(g);
        // SAFETY: a managed granule: 16 bytes inside the arena, 16-aligned.
        unsafe { ((*h).next, (*h).prev, (*h).order, (*h).magic) }
    }

    /// The order written in the header at `g` (0 if `g` is not managed).
    #[inline(always)]
    pub(crate) fn header_order(&self, g: usize) -> u8 {
        if !self.contains(g) {
            return 0;
        }
        // SAFETY: as in `read_header`.
        unsafe { (*self.header(g)).order }
    }

    /// The managed granule a link points to, or `None` for NIL. A link that
    /// points outside the range (a header overwritten after free) is also
    /// `None`: the lists never lead outside the arena.
    #[inline(always)]
    pub(crate) fn link(&self, r: u32) -> Option<usize> {
        // One comparison: NIL is above every managed index (end - base_g
        // < u32::MAX), and so is anything below `start` after the wrap.
        let from_start = (r as usize).wrapping_sub(self.start - self.base_g);
        (from_start < self.end - self.start).then(|| self.start + from_start)
    }
}

/// The free areas: list heads and the non-empty mask.
#[derive(Debug)]
pub(crate) struct FreeAreas {
    /// `heads[k - 4]`: the first free block of order `k`, or NIL.
    heads: [u32; NUM_ORDERS],
    /// Bit `k` set iff `heads[k - 4] != NIL`.
    nonempty: u64,
}

#[inline(always)]
fn slot(k: u32) -> usize {
    (k - MIN_ORDER) as usize
}

impl FreeAreas {
    /// No free block.
    pub(crate) const fn new() -> Self {
        FreeAreas {
            heads: [NIL; NUM_ORDERS],
            nonempty: 0,
        }
    }

    /// The smallest order `>= k` with a free block.
    ///
    /// # Time complexity
    ///
    /// O(1): one trailing-zero count.
    #[inline(always)]
    pub(crate) fn smallest_at_least(&self, k: u32) -> Option<u32> {
        let m = self.nonempty >> k;
        (m != 0).then(|| k + m.trailing_zeros())
    }

    /// The largest order with a free block.
    #[inline]
    pub(crate) fn largest(&self) -> Option<u32> {
        (self.nonempty != 0).then(|| 63 - self.nonempty.leading_zeros())
    }

    /// The mask of non-empty orders.
    pub(crate) fn nonempty(&self) -> u64 {
        self.nonempty
    }

    /// The raw head link of order `k`.
    pub(crate) fn head(&self, k: u32) -> u32 {
        self.heads[slot(k)]
    }

    /// True when the bitmaps and the header at `g` agree that a free block of
    /// order `k` starts there, given that `g` is managed, aligned to the
    /// order and the block inside the range (the callers' part of the
    /// check): no allocated block starting inside it (one word test up to
    /// 4 KiB; at its start above), and a header with the magic and order
    /// `k`. A *checked free block* is one that passes both parts.
    ///
    /// # Time complexity
    ///
    /// O(1).
    #[inline(always)]
    fn free_in_range(f: &Frame, map: &AllocMap, g: usize, k: u32) -> bool {
        let no_start = if k <= WORD_ORDER {
            // SAFETY: the region lies in the managed range (caller).
            unsafe { map.no_start_in(g, k) }
        } else {
            !map.has_start(g)
        };
        no_start && Self::header_is(f, g, k)
    }

    /// True when the header at `g` has the magic and order `k`.
    ///
    /// `g` is a managed granule where no live block starts (the caller
    /// checked the bitmaps, or pushed it there itself).
    #[inline(always)]
    fn header_is(f: &Frame, g: usize, k: u32) -> bool {
        let h = f.header(g);
        // `order` and `magic` are adjacent bytes: one 16-bit compare.
        let want = u16::from_ne_bytes([k as u8, MAGIC]);
        // SAFETY: a managed granule: its 16 bytes are in the arena, and no
        // live block starts there, so they are the allocator's; `order` is
        // at offset 8 of a 16-aligned header, so 2-aligned.
        k <= u32::from(u8::MAX)
            && unsafe { core::ptr::addr_of!((*h).order).cast::<u16>().read() } == want
    }

    /// The managed free block of order `k` a link points to, checked
    /// ([`FreeAreas::free_in_range`]); `Ok(None)` for NIL.
    #[inline(always)]
    fn checked(f: &Frame, map: &AllocMap, r: u32, k: u32) -> Result<Option<usize>, Corrupt> {
        // NIL is tested only when the link leads out of the range (a
        // managed link, the common case, skips that branch); a managed `g`
        // is at least `start`, so only the block's end is compared.
        match f.link(r) {
            Some(g)
                if is_aligned(g, k)
                    && g + granules(k) <= f.end
                    && Self::free_in_range(f, map, g, k) =>
            {
                Ok(Some(g))
            }
            None if r == NIL => Ok(None),
            _ => Err(Corrupt),
        }
    }

    /// Makes the block of order `k` at `g` a free block at the head of its
    /// list (its `prev` is left NIL; it is not kept for the head), and
    /// writes the old head's back link. The old head is not read: every
    /// head was checked when it became one (a block this allocator pushed,
    /// or a link that [`FreeAreas::pop`] or [`FreeAreas::unlink`] checked
    /// before making it the head), and it is still a free block of order
    /// `k`, since blocks leave a list only through `pop` and `unlink`, which
    /// change the head. Its header may have been written since (a use after
    /// free), but only its `prev` is written here, inside that free block;
    /// whoever takes it checks its header first.
    ///
    /// # Safety
    ///
    /// `g` is a managed granule that starts a block of order `k` that is in
    /// no list (its bytes belong to the allocator).
    ///
    /// # Time complexity
    ///
    /// O(1).
    #[inline(always)]
    pub(crate) unsafe fn push(&mut self, f: &Frame, g: usize, k: u32) {
        debug_assert!(f.fits(g, k), "push {g:#x} of order {k}");
        let old = self.heads[slot(k)];
        let r = f.rel(g);
        // SAFETY: `g` is managed (caller): its header lies in the arena, and
        // the block is the allocator's.
        unsafe {
            f.header(g).write(Header {
                next: old,
                prev: NIL,
                order: k as u8,
                magic: MAGIC,
                _pad: [0; 2],
            })
        };
        match f.link(old) {
            // SAFETY: the head of list k: a free block of order k (above).
            Some(o) => unsafe { (*f.header(o)).prev = r },
            None => self.nonempty |= 1 << k,
        }
        self.heads[slot(k)] = r;
    }

    /// Makes `next`, a link read from the old head's header and checked
    /// ([`FreeAreas::checked`]), the head of list `k`.
    #[inline(always)]
    fn set_head(&mut self, k: u32, next: u32) {
        self.heads[slot(k)] = next;
        if next == NIL {
            self.nonempty &= !(1 << k);
        }
    }

    /// Takes the first free block of order `k` off its list, after checking
    /// its header (order and magic: the block was checked when it became the
    /// head, but a use after free may have written its header since) and
    /// the block its `next` link names, which becomes the head. `Err`, with
    /// nothing changed, if a check fails (or the list is empty).
    ///
    /// # Time complexity
    ///
    /// O(1).
    #[inline(always)]
    pub(crate) fn pop(&mut self, f: &Frame, map: &AllocMap, k: u32) -> Result<usize, Corrupt> {
        let head = self.heads[slot(k)];
        let g = match f.link(head) {
            Some(g) if Self::header_is(f, g, k) => g,
            _ => return Err(Corrupt),
        };
        let h = f.header(g);
        // SAFETY: the head: a free block of order k (see `push`), whose
        // header is the allocator's.
        let next = unsafe { (*h).next };
        Self::checked(f, map, next, k)?;
        // SAFETY: as above.
        unsafe { (*h).magic = 0 };
        // The new head's `prev` is not kept: nothing to write there.
        self.set_head(k, next);
        Ok(g)
    }

    /// Takes the free block of order `k` at `g` off its list, after checking
    /// its header (magic, order) and that its neighbours point back at it
    /// (`prev.next == g`, `next.prev == g`, both checked free blocks of
    /// order `k`). The bitmaps are not read again for `g`: the caller just
    /// proved it free.
    ///
    /// # Safety
    ///
    /// The block of order `k` at `g` lies in the managed range, aligned,
    /// and the bitmaps show that no allocated block starts inside it
    /// ([`crate::Buddy::is_free_of_order`]).
    ///
    /// # Time complexity
    ///
    /// O(1).
    #[inline(always)]
    pub(crate) unsafe fn unlink(
        &mut self,
        f: &Frame,
        map: &AllocMap,
        g: usize,
        k: u32,
    ) -> Result<(), Corrupt> {
        debug_assert!(
            is_aligned(g, k) && f.fits(g, k),
            "unlink {g:#x} of order {k}"
        );
        let h = f.header(g);
        let r = f.rel(g);
        // SAFETY: the bitmaps show a free block at `g` (caller): its header
        // is the allocator's.
        let (next, prev, order, magic) = unsafe { ((*h).next, (*h).prev, (*h).order, (*h).magic) };
        if magic != MAGIC || u32::from(order) != k {
            return Err(Corrupt);
        }
        if self.heads[slot(k)] == r {
            // The head: its `prev` is not kept, and nothing is written into
            // the next block (its `prev` is not kept once it is the head):
            // `next` becomes the head once checked.
            Self::checked(f, map, next, k)?;
            // SAFETY: `g`'s header is the allocator's (above).
            unsafe { (*h).magic = 0 };
            self.set_head(k, next);
            return Ok(());
        }
        // The safe unlink: both neighbours checked free blocks of order k
        // ([`FreeAreas::free_in_range`]) that point back at `g`. Their two
        // checks are made side by side, the order dispatched once: a block
        // without a next neighbour checks its previous one twice.
        let p = f.link(prev).ok_or(Corrupt)?;
        let n = match f.link(next) {
            Some(n) => Some(n),
            None if next == NIL => None,
            None => return Err(Corrupt),
        };
        let m = n.unwrap_or(p);
        // `p` and `m` are managed (`link`): only their ends are compared.
        if !(is_aligned(p | m, k) && p.max(m) + granules(k) <= f.end) {
            return Err(Corrupt);
        }
        let no_start = if k <= WORD_ORDER {
            // SAFETY: both regions lie in the managed range (just checked).
            unsafe { map.no_start_in_both(p, m, k) }
        } else {
            !map.has_start(p) && !map.has_start(m)
        };
        if !(no_start && Self::header_is(f, p, k) && Self::header_is(f, m, k)) {
            return Err(Corrupt);
        }
        // SAFETY: checked free blocks: their headers are the allocator's.
        let linked_back =
            unsafe { (*f.header(p)).next == r && n.is_none_or(|n| (*f.header(n)).prev == r) };
        if !linked_back {
            return Err(Corrupt);
        }
        // SAFETY: `g`, `p` and `n` are checked free blocks of order k.
        unsafe {
            (*h).magic = 0;
            (*f.header(p)).next = next;
            if let Some(n) = n {
                (*f.header(n)).prev = prev;
            }
        }
        Ok(())
    }
}

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

use crate::order::{GRANULE_SHIFT, MIN_ORDER, NUM_ORDERS, granules};

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

    #[inline(always)]
    fn abs(&self, r: u32) -> usize {
        self.base_g + r as usize
    }

    /// The header of managed granule `g`, or `None` if `g` is not managed
    /// (which a consistent caller never asks).
    #[inline(always)]
    fn header(&self, g: usize) -> Option<*mut Header> {
        if !self.contains(g) {
            debug_assert!(false, "header outside the managed range: {g:#x}");
            return None;
        }
        Some(self.ptr(g).cast())
    }

    /// `(next, prev, order, magic)` of the header at `g` (all NIL/0 outside).
    #[inline(always)]
    pub(crate) fn read_header(&self, g: usize) -> (u32, u32, u8, u8) {
        match self.header(g) {
            // SAFETY: a managed granule: 16 bytes inside the arena, 16-aligned.
            Some(h) => unsafe { ((*h).next, (*h).prev, (*h).order, (*h).magic) },
            None => (NIL, NIL, 0, 0),
        }
    }

    /// The order written in the header at `g` (0 outside the range).
    #[inline(always)]
    pub(crate) fn header_order(&self, g: usize) -> u8 {
        match self.header(g) {
            // SAFETY: as in `read_header`.
            Some(h) => unsafe { (*h).order },
            None => 0,
        }
    }

    #[inline(always)]
    fn write_header(&self, g: usize, next: u32, prev: u32, order: u32) {
        if let Some(h) = self.header(g) {
            // SAFETY: as in `read_header`; the block is free, so the
            // allocator owns its bytes.
            unsafe {
                h.write(Header {
                    next,
                    prev,
                    order: order as u8,
                    magic: MAGIC,
                })
            }
        }
    }

    #[inline(always)]
    fn set_next(&self, g: usize, next: u32) {
        if let Some(h) = self.header(g) {
            // SAFETY: as in `write_header`.
            unsafe { (*h).next = next }
        }
    }

    #[inline(always)]
    fn set_prev(&self, g: usize, prev: u32) {
        if let Some(h) = self.header(g) {
            // SAFETY: as in `write_header`.
            unsafe { (*h).prev = prev }
        }
    }

    /// Erases the magic of the header at `g`: the block stopped being a free
    /// block (it was allocated or absorbed by a merge).
    #[inline(always)]
    fn erase(&self, g: usize) {
        if let Some(h) = self.header(g) {
            // SAFETY: as in `write_header`.
            unsafe { (*h).magic = 0 }
        }
    }

    /// The granule a link points to, or `None` for NIL.
    #[inline(always)]
    pub(crate) fn link(&self, r: u32) -> Option<usize> {
        (r != NIL).then(|| self.abs(r))
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

    /// Makes the block of order `k` at `g` a free block at the head of its
    /// list (its `prev` is left NIL; it is not kept for the head).
    ///
    /// # Time complexity
    ///
    /// O(1).
    #[inline(always)]
    pub(crate) fn push(&mut self, f: &Frame, g: usize, k: u32) {
        let head = &mut self.heads[slot(k)];
        let old = *head;
        let r = f.rel(g);
        f.write_header(g, old, NIL, k);
        match f.link(old) {
            Some(o) => f.set_prev(o, r),
            None => self.nonempty |= 1 << k,
        }
        *head = r;
    }

    /// Takes the first free block of order `k` off its list.
    ///
    /// # Time complexity
    ///
    /// O(1).
    #[inline(always)]
    pub(crate) fn pop(&mut self, f: &Frame, k: u32) -> Option<usize> {
        let g = f.link(self.heads[slot(k)])?;
        let (next, _, _order, _magic) = f.read_header(g);
        debug_assert!(_order as u32 == k && _magic == MAGIC, "bad head {g:#x}");
        // The new head's `prev` is not kept: nothing to write there.
        self.heads[slot(k)] = next;
        if next == NIL {
            self.nonempty &= !(1 << k);
        }
        f.erase(g);
        Some(g)
    }

    /// Takes the free block of order `k` at `g` off its list.
    ///
    /// # Time complexity
    ///
    /// O(1).
    #[inline(always)]
    pub(crate) fn unlink(&mut self, f: &Frame, g: usize, k: u32) {
        let (next, prev, _order, _magic) = f.read_header(g);
        debug_assert!(_order as u32 == k && _magic == MAGIC, "unlink {g:#x}");
        let head = &mut self.heads[slot(k)];
        if *head == f.rel(g) {
            // The head: its `prev` is not kept, nor is the next one's.
            *head = next;
            if next == NIL {
                self.nonempty &= !(1 << k);
            }
        } else {
            if let Some(p) = f.link(prev) {
                f.set_next(p, next);
            }
            if let Some(n) = f.link(next) {
                f.set_prev(n, prev);
            }
        }
        f.erase(g);
    }
}

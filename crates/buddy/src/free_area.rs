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

    /// Makes the block of order `k` at `g` a free block at the head of its
    /// list (its `prev` is left NIL; it is not kept for the head).
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
        let head = &mut self.heads[slot(k)];
        let old = *head;
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
            // SAFETY: `link` returns managed granules only; `o` is a free
            // block (the head of list k).
            Some(o) => unsafe { (*f.header(o)).prev = r },
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
        let h = f.header(g);
        // SAFETY: `link` returns managed granules only; `g` is the head of
        // list k, a free block, whose header is the allocator's.
        let next = unsafe {
            debug_assert!(
                (*h).order as u32 == k && (*h).magic == MAGIC,
                "bad head {g:#x}"
            );
            (*h).magic = 0;
            (*h).next
        };
        // The new head's `prev` is not kept: nothing to write there.
        self.heads[slot(k)] = next;
        if next == NIL {
            self.nonempty &= !(1 << k);
        }
        Some(g)
    }

    /// Takes the free block of order `k` at `g` off its list.
    ///
    /// # Safety
    ///
    /// `g` is a managed granule that starts a free block of order `k`.
    ///
    /// # Time complexity
    ///
    /// O(1).
    #[inline(always)]
    pub(crate) unsafe fn unlink(&mut self, f: &Frame, g: usize, k: u32) {
        let h = f.header(g);
        // SAFETY: `g` is a managed free block (caller): its header is the
        // allocator's.
        let (next, prev) = unsafe {
            debug_assert!(
                (*h).order as u32 == k && (*h).magic == MAGIC,
                "unlink {g:#x}"
            );
            (*h).magic = 0;
            ((*h).next, (*h).prev)
        };
        let head = &mut self.heads[slot(k)];
        if *head == f.rel(g) {
            // The head: its `prev` is not kept, nor is the next one's.
            *head = next;
            if next == NIL {
                self.nonempty &= !(1 << k);
            }
        } else {
            // SAFETY: `link` returns managed granules only; they are the
            // free blocks before and after `g` in list k.
            unsafe {
                if let Some(p) = f.link(prev) {
                    (*f.header(p)).next = next;
                }
                if let Some(n) = f.link(next) {
                    (*f.header(n)).prev = prev;
                }
            }
        }
    }
}

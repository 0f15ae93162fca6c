//! Memory added after creation ([`McKusickKarels::add_region`]): more pages.
//!
//! 4.4BSD's `kmem_malloc` took pages from the kernel map, which could grow.
//! Here pages are numbered from one base with one descriptor table per
//! region, so an added region is set up as the arena was at creation (its
//! own state, `kmemusage` table and page allocator, with the same page size
//! and mode) and linked into a list from the first region's state:
//!
//! ```text
//!   arena:     [McKusickKarels | kmemusage | pages ...]   more -> region 2
//!   region 2:  [McKusickKarels | kmemusage | pages ...]   more -> region 1
//!   region 1:  [McKusickKarels | kmemusage | pages ...]   more -> none
//! ```
//!
//! The first region's hot paths are unchanged: `malloc` turns to the added
//! regions (newest first) only when the first one cannot serve the request
//! (its bucket is empty and it has no free page for a refill, or no page run
//! long enough), `free` only when the pointer lies outside its pages. Each
//! region's buckets hold that region's objects: an object freed in a region
//! is reused from there. Page runs never span two regions. The failed and
//! rejected counters live in the first region's state only.

use core::ptr::{self, NonNull};

use arena_api::{AddRegionError, BadPointer};

use crate::allocator::McKusickKarels;
use crate::free::Block;

/// Which region's state holds a block.
#[derive(Clone, Copy)]
pub(crate) enum Owner {
    /// The first region (`self`).
    Here,
    /// An added region.
    More(NonNull<McKusickKarels>),
}

/// The added regions, newest first.
pub(crate) struct More(Option<NonNull<McKusickKarels>>);

impl Iterator for More {
    type Item = NonNull<McKusickKarels>;

    fn next(&mut self) -> Option<NonNull<McKusickKarels>> {
        let r = self.0?;
        // SAFETY: every link points to the state of a live added region
        // (`add_region`), which is only read here.
        self.0 = unsafe { r.as_ref() }.more;
        Some(r)
    }
}

impl McKusickKarels {
    /// Gives the allocator more pages: `[region, region + len)`, of any size
    /// and alignment, gets its own state and descriptor table (16 bytes a
    /// page, as at creation), with the page size and mode of this allocator.
    /// `stats().arena_bytes` grows by `len`. Refused, with nothing changed,
    /// when the region is null, cannot hold the state, a descriptor and one
    /// aligned page ([`McKusickKarels::min_region`]), or overlaps the arena
    /// or a region added before.
    ///
    /// # Safety
    ///
    /// `region` is valid for reads and writes of `len` bytes for as long as
    /// the allocator or any block from it is used, and nothing else accesses
    /// it meanwhile except through handed-out blocks.
    ///
    /// # Time complexity
    ///
    /// O(len / page) (the table is zeroed) plus O(regions) (the overlap
    /// check).
    pub unsafe fn add_region(&mut self, region: *mut u8, len: usize) -> Result<(), AddRegionError> {
        let Some(end) = region.addr().checked_add(len) else {
            return Err(AddRegionError::TooSmall);
        };
        if region.is_null() {
            return Err(AddRegionError::TooSmall);
        }
        let overlaps = |r: &McKusickKarels| {
            region.addr() < r.region_addr + r.region_len && r.region_addr < end
        };
        if overlaps(self)
            || self.more().any(|r| {
                // SAFETY: a live added region's state, only read.
                overlaps(unsafe { r.as_ref() })
            })
        {
            return Err(AddRegionError::Overlaps);
        }
        // SAFETY: the caller's contract is `create`'s.
        let Ok(mut added) = (unsafe { McKusickKarels::create(region, len, self.config()) }) else {
            return Err(AddRegionError::TooSmall);
        };
        // SAFETY: just created in the new region, which no other state
        // overlaps (checked above): this is its only reference.
        unsafe { added.as_mut() }.more = self.more;
        self.more = Some(added);
        Ok(())
    }

    /// The added regions' states, newest first.
    pub(crate) fn more(&self) -> More {
        More(self.more)
    }

    /// The state of region `o`.
    #[inline]
    pub(crate) fn region_mut(&mut self, o: Owner) -> &mut McKusickKarels {
        match o {
            Owner::Here => self,
            // SAFETY: an added region's state lies in that region, apart
            // from `self` (no overlap, checked by `add_region`); `&mut self`
            // makes this the only reference to any state of the allocator.
            Owner::More(r) => unsafe { &mut *r.as_ptr() },
        }
    }

    /// True when address `addr` lies in this region's pages.
    #[inline]
    fn in_pages(&self, addr: usize) -> bool {
        addr.wrapping_sub(self.base.addr()) < self.pages_len
    }

    /// The added region whose pages hold address `addr`.
    #[cold]
    fn added_region_of(&self, addr: usize) -> Option<NonNull<McKusickKarels>> {
        self.more().find(|r| {
            // SAFETY: a live added region's state, only read.
            unsafe { r.as_ref() }.in_pages(addr)
        })
    }

    /// The live block at `p` and its region, in any region.
    #[inline]
    pub(crate) fn lookup_anywhere(&self, p: NonNull<u8>) -> Option<(Owner, Block)> {
        match self.lookup(p) {
            Some(b) => Some((Owner::Here, b)),
            None => self.lookup_elsewhere(p),
        }
    }

    #[cold]
    fn lookup_elsewhere(&self, p: NonNull<u8>) -> Option<(Owner, Block)> {
        let r = self.added_region_of(p.as_ptr().addr())?;
        // SAFETY: a live added region's state, only read.
        let b = unsafe { r.as_ref() }.lookup(p)?;
        Some((Owner::More(r), b))
    }

    /// `malloc` when the first region cannot serve `size`: the first added
    /// region that can, newest first. Counts nothing.
    #[cold]
    #[inline(never)]
    pub(crate) fn malloc_elsewhere(&mut self, size: usize) -> Option<NonNull<u8>> {
        let mut next = self.more;
        while let Some(r) = next {
            let r = self.region_mut(Owner::More(r));
            if let Some(p) = r.malloc_here(size) {
                return Some(p);
            }
            next = r.more;
        }
        None
    }

    /// `malloc_overaligned` in the added regions, newest first.
    #[cold]
    #[inline(never)]
    pub(crate) fn overaligned_elsewhere(
        &mut self,
        size: usize,
        align: usize,
    ) -> Option<NonNull<u8>> {
        let mut next = self.more;
        while let Some(r) = next {
            let r = self.region_mut(Owner::More(r));
            if let Some(p) = r.overaligned_here(size, align) {
                return Some(p);
            }
            next = r.more;
        }
        None
    }

    /// `free` of a pointer outside the first region's pages (or rejected
    /// there): freed in its region, or rejected and counted.
    #[cold]
    #[inline(never)]
    pub(crate) fn free_elsewhere(&mut self, p: NonNull<u8>) -> Result<(), BadPointer> {
        let freed = match self.added_region_of(p.as_ptr().addr()) {
            Some(r) => self.region_mut(Owner::More(r)).free_here(p),
            None => Err(BadPointer),
        };
        if freed.is_err() {
            self.rejected_frees += 1;
        }
        freed
    }

    /// Allocates `new_size` bytes in any region, copies `min(old, new_size)`
    /// bytes of `block` (of region `o`, the caller's pointer `p`) into them
    /// and frees `block`; `None` (nothing changed) if the allocation fails.
    pub(crate) fn move_block(
        &mut self,
        o: Owner,
        block: Block,
        p: NonNull<u8>,
        old: usize,
        new_size: usize,
    ) -> Option<NonNull<u8>> {
        let q = self.malloc_uncounted(new_size)?;
        // SAFETY: the old block (`old` bytes at `p`, the caller's pointer to
        // it) and the new one (at least `new_size` bytes) are both live and
        // distinct.
        unsafe {
            ptr::copy_nonoverlapping(p.as_ptr(), q.as_ptr(), old.min(new_size));
        }
        self.region_mut(o).free_block(block, p);
        Some(q)
    }
}

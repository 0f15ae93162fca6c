//! Hardened free areas: a free block's header (its list links, order and
//! magic) lives in memory a use-after-free write can reach. Nothing in a
//! header is followed or written before the bitmaps, which no caller can
//! reach through a block, confirm it:
//!
//! - a link read from a header becomes a list head (`pop`, or an unlink
//!   of the head) only if it is a managed granule aligned to the order, the
//!   block fits the range, no allocated block starts inside it (one bitmap
//!   word up to 4 KiB; at its start above) and its header has the magic and
//!   the order; so every head is a free block of its order (below);
//! - a block is unlinked from the middle of a list (a merge, a `realloc`
//!   that grows) only if, in addition, its neighbours are such blocks and
//!   point back at it (`prev.next == self && next.prev == self`).
//!
//! When a check fails nothing is written: the free areas are rebuilt from
//! the bitmaps ([`Buddy::rebuild_free_areas`], O(allocated blocks × log)
//! once per detected corruption), counted in [`Buddy::free_list_repairs`],
//! and `allocator_check` reports it. No block is lost: with the invariant
//! that free buddies are merged, the free blocks are exactly the maximal
//! naturally aligned regions that hold no allocated block, which the
//! bitmaps determine.
//!
//! What a caller could still fool: a link that points inside a larger
//! *allocated* block whose bytes there mimic a header (the magic byte and
//! the order at offsets 9 and 8, at an address aligned to the order): only a
//! deliberate forgery, not a stray write, does that.
//!
//! # Heads are checked when they become heads
//!
//! A list head is a block this allocator pushed itself, or a `next` link
//! that was checked (above) before `pop` or an unlink of the head made it
//! the head; nothing changes on a failed check. It stays a free block of
//! its order while it is the head: blocks leave a list only through `pop`
//! and `unlink`, which change the head. So `push` writes its back link
//! without reading it, and `pop` takes it with no bitmap check (its
//! header's order and magic are still compared before its `next` is read:
//! its bytes may have been written since it was freed, but only its own
//! header is ever written, inside a block that is free).
//!
//! An earlier version checked a head read from a link when it was next
//! used instead (a *trusted* bit per list told which heads needed it):
//! whether a call found its list's head checked or not depended on the
//! order of the calls, a branch the processor mispredicted about every
//! other call of `churn`. Checking the link in `pop` costs the same loads
//! (the new head's bitmap word and header, which the next `pop` or `push`
//! of that list touches anyway) with no such branch.
//!
//! # What it costs
//!
//! `alloc` checks the new head: its bitmap word and its header, about
//! fifteen instructions and five well-predicted branches, and a load of a
//! header the next `alloc` of the order reads anyway. `free` pushes for
//! nothing more than an unchecked push. A merge reads the buddy's header (which
//! any buddy allocator reads to unlink it) and, unless the buddy is its
//! list's head, both neighbours' headers and bitmap words: one or two more
//! cache misses per merge than an unchecked unlink, which only writes
//! them. The crate docs' *Cost per call* gives the counts.

use crate::Buddy;
use crate::bitmap::WORD_ORDER;
use crate::free_area::FreeAreas;
use crate::order::{MIN_ORDER, covering, granules};

impl Buddy {
    /// Rebuilds every free area from the bitmaps, after a corrupt link or
    /// header was found (counted).
    ///
    /// # Time complexity
    ///
    /// O(top blocks + allocated blocks × log(arena / 16)).
    #[cold]
    #[inline(never)]
    pub(crate) fn rebuild_free_areas(&mut self) {
        self.list_repairs += 1;
        self.areas = FreeAreas::new();
        let (start, end) = (self.frame.start, self.frame.end);
        for (g, k) in covering(start, end) {
            if self.collect(g, k) {
                self.push_rebuilt(g, k);
            }
        }
    }

    /// Lists the free blocks inside the region of order `k` at `g` (a top
    /// block or half of a region that holds an allocated block), except
    /// when the whole region is free: then returns `true` and lists nothing
    /// (its parent decides).
    fn collect(&mut self, g: usize, k: u32) -> bool {
        let start = self.map.start_order(g);
        if start == k {
            return false; // an allocated block of this order
        }
        debug_assert!(start < k, "block of order {start} across {g:#x}/{k}");
        // SAFETY: the region lies in the managed range (a top block or a
        // half of one).
        if k <= WORD_ORDER && unsafe { self.map.no_start_in(g, k) } {
            return true;
        }
        if k == MIN_ORDER {
            return start == 0;
        }
        let half = granules(k - 1);
        let lo = self.collect(g, k - 1);
        let hi = self.collect(g + half, k - 1);
        if lo && hi {
            return true;
        }
        if lo {
            self.push_rebuilt(g, k - 1);
        }
        if hi {
            self.push_rebuilt(g + half, k - 1);
        }
        false
    }

    fn push_rebuilt(&mut self, g: usize, k: u32) {
        // SAFETY: a free region the bitmaps show, in no list (the lists were
        // emptied and hold only blocks pushed here, with fresh headers).
        unsafe { self.areas.push(&self.frame, g, k) };
    }

    /// Corrupt free-area links or headers found (each one a write into a
    /// freed block) and repaired by rebuilding the free areas, in every
    /// region.
    ///
    /// # Time complexity
    ///
    /// O(regions).
    pub fn free_list_repairs(&self) -> usize {
        self.more().fold(self.list_repairs, |n, b| {
            // SAFETY: a live added region's state, only read.
            n + unsafe { b.as_ref() }.list_repairs
        })
    }
}

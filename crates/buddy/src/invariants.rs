//! The whole-state check: every invariant of [`Buddy`], its bitmaps and its
//! free areas, stated once and walked in full.
//!
//! 1. The managed range is non-empty and covered by the bitmaps; every quad
//!    wholly outside it is `FREE`.
//! 2. Walking the range block by block from its start (a block starts where
//!    an allocated one does, by the bitmaps, or where a free-block header
//!    with the magic is): every block is naturally aligned and ends inside
//!    the range; the quad codes are exactly those its allocated blocks
//!    determine (start codes, order digits, `FREE` elsewhere); no free block has a
//!    free buddy of the same order (they would have been merged).
//! 3. The free area of order `k` holds exactly the free blocks of order `k`
//!    found by the walk: each list node is a free block of order `k` (found
//!    from its top block downwards), `prev` links mirror `next` links (but
//!    the head's, which is not kept), the
//!    list is no longer than the number of such blocks (no cycle) and no
//!    shorter; bit `k` of the mask is set iff the list is not empty.
//! 4. The counters agree with the walk, and `metadata + reserved + free`
//!    is the arena.
//!
//! The check allocates nothing (it can run inside a global allocator's
//! lock): a failure is a [`Corruption`], formatted only by
//! [`Buddy::check_invariants`].

use core::fmt;

use arena_api::InvariantViolation;

use crate::Buddy;
use crate::free_area::{MAGIC, NIL};
use crate::order::{
    MAX_ORDER, MIN_ORDER, NUM_ORDERS, block_bytes, buddy, granules, is_aligned, parent,
    top_block_containing,
};
use crate::quad::{self, DIGIT, FREE, ORDER_DIGITS, WIDE, WIDE_MIN_ORDER, exact};

/// A broken invariant: what, where (an address, or 0), and one number that
/// helps (an order, a code, a count).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Corruption {
    /// The invariant that does not hold.
    pub what: &'static str,
    /// The address concerned, or 0.
    pub addr: usize,
    /// A detail: the order, code or count concerned.
    pub detail: usize,
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at {:#x}, {})", self.what, self.addr, self.detail)
    }
}

macro_rules! require {
    ($cond:expr, $what:expr, $addr:expr, $detail:expr) => {
        if !$cond {
            return Err(Corruption {
                what: $what,
                addr: $addr,
                detail: $detail as usize,
            });
        }
    };
}

/// The allocated small blocks (order 4 or 5) seen so far in one quad.
struct SmallQuad {
    /// Absolute granule of the quad's first granule, or `usize::MAX`.
    g0: usize,
    /// `orders[i]`: order of the allocated block starting at granule `i`, or 0.
    orders: [u8; 4],
}

impl Buddy {
    /// Walks the whole state and checks every invariant (see the module
    /// docs of `invariants.rs`), without allocating.
    ///
    /// # Time complexity
    ///
    /// O(arena / 64 + free blocks * log²(arena / 16)).
    pub fn check(&self) -> Result<(), Corruption> {
        let f = &self.frame;
        let (start, end) = (f.start, f.end);
        require!(
            f.base_g() <= start && start < end,
            "the managed range is empty or before the bitmaps",
            f.addr_of(start),
            end.wrapping_sub(start)
        );
        require!(
            end - f.base_g() <= self.map.quads() * 4,
            "the bitmaps do not cover the managed range",
            f.addr_of(end),
            self.map.quads()
        );
        let managed = self.managed_range().1;
        require!(
            managed <= self.region_len,
            "the managed range is larger than the arena",
            0,
            managed
        );

        // 1. Quads wholly outside the range.
        for qi in 0..self.map.quads() {
            let g0 = f.base_g() + 4 * qi;
            if g0 + 4 <= start || g0 >= end {
                let c = self.map.code(g0);
                require!(
                    c == FREE,
                    "a quad outside the managed range has a code",
                    f.addr_of(g0),
                    c
                );
            }
        }

        // 2. The blocks, in address order.
        let mut free_count = [0usize; NUM_ORDERS];
        let (mut free, mut reserved, mut live) = (0usize, 0usize, 0usize);
        let mut small = SmallQuad {
            g0: usize::MAX,
            orders: [0; 4],
        };
        let mut g = start;
        while g < end {
            let a = self.map.start_order(g);
            let (k, allocated) = if a != 0 {
                (a, true)
            } else {
                let (_, _, order, magic) = f.read_header(g);
                require!(
                    magic == MAGIC,
                    "a block start holds neither an allocated block nor a free-block header",
                    f.addr_of(g),
                    magic
                );
                let order = u32::from(order);
                require!(
                    (MIN_ORDER..=MAX_ORDER).contains(&order),
                    "a free-block header has an impossible order",
                    f.addr_of(g),
                    order
                );
                (order, false)
            };
            require!(
                is_aligned(g, k),
                "a block is not naturally aligned",
                f.addr_of(g),
                k
            );
            require!(
                f.fits(g, k),
                "a block crosses the end of the managed range",
                f.addr_of(g),
                k
            );
            if k <= 5 {
                let g0 = g & !3;
                if small.g0 != g0 {
                    self.check_small_quad(&small)?;
                    small = SmallQuad { g0, orders: [0; 4] };
                }
                if allocated {
                    small.orders[g & 3] = k as u8;
                }
            } else {
                self.check_small_quad(&small)?;
                small.g0 = usize::MAX;
                self.check_wide_block(g, k, allocated)?;
            }
            if allocated {
                live += 1;
                reserved += block_bytes(k);
            } else {
                free_count[(k - MIN_ORDER) as usize] += 1;
                free += block_bytes(k);
                if k < MAX_ORDER && f.fits(parent(g, k), k + 1) {
                    let b = buddy(g, k);
                    let (_, _, order, magic) = f.read_header(b);
                    require!(
                        self.map.has_start(b) || magic != MAGIC || u32::from(order) != k,
                        "two free buddies are left unmerged",
                        f.addr_of(g),
                        k
                    );
                }
            }
            g += granules(k);
        }
        self.check_small_quad(&small)?;

        // 3. The free areas.
        for k in MIN_ORDER..=MAX_ORDER {
            let head = self.areas.head(k);
            let bit = (self.areas.nonempty() >> k) & 1 == 1;
            require!(
                bit == (head != NIL),
                "the non-empty mask disagrees with a free area",
                0,
                k
            );
            let expected = free_count[(k - MIN_ORDER) as usize];
            let (mut prev, mut cur, mut n) = (NIL, head, 0usize);
            while cur != NIL {
                let Some(x) = f.link(cur) else {
                    return Err(Corruption {
                        what: "a free-area link points outside the range",
                        addr: 0,
                        detail: cur as usize,
                    });
                };
                require!(
                    n < expected,
                    "a free area is longer than its free blocks (a stray node or a cycle)",
                    f.addr_of(x),
                    k
                );
                require!(
                    self.block_containing(x) == Some((x, k, false)),
                    "a free-area node is not a free block of that order",
                    f.addr_of(x),
                    k
                );
                let (next, p, _, _) = f.read_header(x);
                require!(
                    cur == head || p == prev,
                    "a prev link is broken",
                    f.addr_of(x),
                    k
                );
                n += 1;
                prev = cur;
                cur = next;
            }
            require!(
                n == expected,
                "a free area misses free blocks of its order",
                0,
                k
            );
        }
        let orders_mask = ((1u64 << (MAX_ORDER + 1)) - 1) & !((1u64 << MIN_ORDER) - 1);
        require!(
            self.areas.nonempty() & !orders_mask == 0,
            "the non-empty mask has bits of no order",
            0,
            self.areas.nonempty()
        );

        // 4. Counters.
        require!(
            free == self.free_bytes(),
            "free bytes disagree with the free blocks",
            0,
            self.free_bytes()
        );
        require!(
            reserved == self.reserved_bytes,
            "reserved bytes disagree with the allocated blocks",
            0,
            self.reserved_bytes
        );
        require!(
            live == self.live_blocks,
            "live blocks disagree with the allocated blocks",
            0,
            self.live_blocks
        );
        require!(
            free + reserved == managed,
            "free and reserved bytes do not add up to the managed range",
            0,
            free + reserved
        );
        Ok(())
    }

    /// [`Buddy::check`], with the failure as an [`InvariantViolation`].
    ///
    /// # Time complexity
    ///
    /// As [`Buddy::check`].
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        self.check_all_regions()
            .map_err(|c| InvariantViolation::new(format_args!("{c}")))
    }

    /// [`Buddy::check`] of the first region and of every region added
    /// since, and their list: no cycle, no overlap with the first region,
    /// no failure counted outside the first region.
    ///
    /// # Time complexity
    ///
    /// That of [`Buddy::check`] for every region, plus O(regions²).
    pub fn check_all_regions(&self) -> Result<(), Corruption> {
        self.check()?;
        let mut seen = 0usize;
        for b in self.more() {
            seen += 1;
            // Each region holds at least a state of this size, in disjoint
            // memory: more of them than fit in the address space is a cycle.
            require!(
                seen <= usize::MAX / size_of::<Buddy>(),
                "the list of added regions has a cycle",
                b.as_ptr().addr(),
                seen
            );
            // SAFETY: a live added region's state, only read.
            let r = unsafe { b.as_ref() };
            r.check()?;
            require!(
                r.failed_allocs == 0 && r.rejected_frees == 0,
                "an added region counts failures (only the first one does)",
                r.region_addr,
                r.failed_allocs + r.rejected_frees
            );
            for other in self.more().take(seen - 1) {
                // SAFETY: as above.
                let o = unsafe { other.as_ref() };
                require!(
                    r.region_addr + r.region_len <= o.region_addr
                        || o.region_addr + o.region_len <= r.region_addr,
                    "two added regions overlap",
                    r.region_addr,
                    o.region_addr
                );
            }
            require!(
                r.region_addr + r.region_len <= self.region_addr
                    || self.region_addr + self.region_len <= r.region_addr,
                "an added region overlaps the arena",
                r.region_addr,
                self.region_addr
            );
        }
        Ok(())
    }

    /// The code of a quad holding only blocks of order <= 5 is the one its
    /// allocated small blocks determine.
    fn check_small_quad(&self, q: &SmallQuad) -> Result<(), Corruption> {
        if q.g0 == usize::MAX {
            return Ok(());
        }
        let f = &self.frame;
        let expected = quad::state_of_small_blocks(q.orders).map(quad::encode);
        let c = self.map.code(q.g0);
        require!(
            expected == Some(c),
            "a quad's code is not the one of its small allocated blocks",
            f.addr_of(q.g0),
            c
        );
        Ok(())
    }

    /// The quads of a block of order >= 6: if allocated, `exact(k)` or
    /// `WIDE` then the order digits, the rest `FREE`; all `FREE` if free.
    fn check_wide_block(&self, g: usize, k: u32, allocated: bool) -> Result<(), Corruption> {
        let f = &self.frame;
        let mut d = 0;
        while d < granules(k) {
            let expected = match (allocated, d) {
                (false, _) => FREE,
                (true, 0) if k < WIDE_MIN_ORDER => exact(k),
                (true, 0) => WIDE,
                (true, d) if k >= WIDE_MIN_ORDER && d / 4 <= ORDER_DIGITS as usize => {
                    if (k - WIDE_MIN_ORDER) >> (d / 4 - 1) & 1 == 1 {
                        DIGIT
                    } else {
                        FREE
                    }
                }
                _ => FREE,
            };
            let c = self.map.code(g + d);
            require!(
                c == expected,
                "a quad code inside a block is wrong",
                f.addr_of(g + d),
                c
            );
            d += 4;
        }
        Ok(())
    }

    /// The block holding granule `x`, found from its top block downwards:
    /// `(start, order, allocated)`, or `None` if the state is inconsistent on
    /// the way. O(log²(arena / 16)).
    fn block_containing(&self, x: usize) -> Option<(usize, u32, bool)> {
        let f = &self.frame;
        let (mut t, mut m) = top_block_containing(f.start, f.end, x)?;
        loop {
            // `t` is a block start: an allocated block, a free block, or the
            // lower end of smaller blocks.
            let a = self.map.start_order(t);
            if a == m {
                return Some((t, m, true));
            }
            if a > m {
                return None;
            }
            if a == 0 {
                let (_, _, order, magic) = f.read_header(t);
                let order = u32::from(order);
                if magic != MAGIC || order > m {
                    return None;
                }
                if order == m {
                    return Some((t, m, false));
                }
            }
            if m == MIN_ORDER {
                return None;
            }
            m -= 1;
            if x >= t + granules(m) {
                t += granules(m);
            }
        }
    }
}

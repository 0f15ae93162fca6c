//! The buddy system's index arithmetic, as pure functions.
//!
//! Blocks are named by their first *granule* (16 bytes) as an **absolute**
//! granule number `g = address / 16`, and by their *order* `k`: a block of
//! order `k` holds `2^k` bytes, that is `2^(k-4)` granules, and starts at an
//! address that is a multiple of `2^k` (it is *naturally aligned*). So, as in
//! Linux's `mm/page_alloc.c` with pages replaced by granules:
//!
//! ```text
//! granules(k) = 1 << (k - 4)
//! buddy(g, k)  = g ^ granules(k)      the other half of the parent
//! parent(g, k) = g & !granules(k)     the parent, of order k + 1
//! ```
//!
//! Because alignment is absolute, the arithmetic never depends on where the
//! arena starts; an arena of any size and alignment is covered by the largest
//! naturally aligned blocks that fit ([`covering`]).

/// log2 of [`GRANULE`].
pub const GRANULE_SHIFT: u32 = 4;
/// The unit of the bitmaps and the smallest block: 16 bytes.
pub const GRANULE: usize = 1 << GRANULE_SHIFT;
/// The smallest order: a block of 16 bytes.
pub const MIN_ORDER: u32 = GRANULE_SHIFT;
/// The largest order: blocks of 32 GiB on 64-bit targets (granule indices are
/// `u32`, see [`MAX_GRANULES`]); half the address space on 32-bit ones.
pub const MAX_ORDER: u32 = if usize::BITS >= 64 {
    35
} else {
    usize::BITS - 2
};
/// How many orders there are: `MIN_ORDER..=MAX_ORDER`.
pub const NUM_ORDERS: usize = (MAX_ORDER - MIN_ORDER + 1) as usize;
/// How many granules one allocator can index, counted from its bitmap base
/// (free-list links are `u32` granule indices and `u32::MAX` means "none"):
/// `2^32 - 64` granules, a little less than 64 GiB. A larger arena is managed
/// up to that point; the rest is counted as its unusable tail.
pub const MAX_GRANULES: usize = if usize::BITS >= 64 {
    (u32::MAX as usize) - 63
} else {
    usize::MAX >> GRANULE_SHIFT
};

// The orders fit the `u64` mask of non-empty free areas and the `u8` of a
// free block's header.
const _: () = assert!(MAX_ORDER < 64 && MIN_ORDER == 4);
const _: () = assert!(MAX_GRANULES.is_multiple_of(64) || usize::BITS < 64);

/// The order of the smallest block that holds `size` bytes (`size` 0 counts
/// as 1), or `None` if no block of at most [`MAX_ORDER`] does.
///
/// # Time complexity
///
/// O(1): one leading-zero count.
#[inline]
pub const fn order_of_size(size: usize) -> Option<u32> {
    // ceil(log2(max(size, 1))), by the bits of size - 1; sizes 0..=16 give 4.
    let bits = usize::BITS - (size.saturating_sub(1)).leading_zeros();
    let k = if bits < MIN_ORDER { MIN_ORDER } else { bits };
    if k <= MAX_ORDER { Some(k) } else { None }
}

/// Bytes in a block of order `k` (`k <= MAX_ORDER`).
///
/// # Time complexity
///
/// O(1).
#[inline]
pub const fn block_bytes(k: u32) -> usize {
    1 << k
}

/// Granules in a block of order `k` (`MIN_ORDER <= k <= MAX_ORDER`).
///
/// # Time complexity
///
/// O(1).
#[inline]
pub const fn granules(k: u32) -> usize {
    1 << (k - GRANULE_SHIFT)
}

/// The buddy of the block of order `k` at granule `g`: `g ^ granules(k)`.
///
/// # Time complexity
///
/// O(1).
#[inline]
pub const fn buddy(g: usize, k: u32) -> usize {
    g ^ granules(k)
}

/// The parent (order `k + 1`) of the block of order `k` at granule `g`:
/// `g & !granules(k)`, the lower of the two buddies.
///
/// # Time complexity
///
/// O(1).
#[inline]
pub const fn parent(g: usize, k: u32) -> usize {
    g & !granules(k)
}

/// True when granule `g` may start a block of order `k` (its address is a
/// multiple of `2^k`).
///
/// # Time complexity
///
/// O(1).
#[inline]
pub const fn is_aligned(g: usize, k: u32) -> bool {
    g & (granules(k) - 1) == 0
}

/// The largest order of a block that starts at granule `g`, is naturally
/// aligned and ends at or before granule `end` (`g < end`), capped at
/// [`MAX_ORDER`]: the block Linux's `__free_pages_core` would free there.
///
/// # Time complexity
///
/// O(1).
#[inline]
pub const fn largest_order_at(g: usize, end: usize) -> u32 {
    let by_alignment = g.trailing_zeros();
    let by_room = (usize::BITS - 1) - (end - g).leading_zeros();
    let mut k = MIN_ORDER
        + if by_alignment < by_room {
            by_alignment
        } else {
            by_room
        };
    if k > MAX_ORDER {
        k = MAX_ORDER;
    }
    k
}

/// The blocks that cover the granules `[start, end)`: from `start`, each the
/// largest naturally aligned block that fits ([`largest_order_at`]), as
/// Linux frees a zone's memory. They are the *top blocks*: no block of the
/// allocator ever crosses their boundaries, and after everything is freed
/// they are the free areas again. At most about `2 * (MAX_ORDER - 3)` blocks.
///
/// # Time complexity
///
/// O(1) per block.
pub fn covering(start: usize, end: usize) -> impl Iterator<Item = (usize, u32)> {
    let mut g = start;
    core::iter::from_fn(move || {
        if g >= end {
            return None;
        }
        let k = largest_order_at(g, end);
        let block = (g, k);
        g += granules(k);
        Some(block)
    })
}

/// The top block of [`covering`]`(start, end)` that contains granule `x`
/// (`start <= x < end`).
///
/// # Time complexity
///
/// O(number of top blocks) = O(log(arena / 16)).
pub fn top_block_containing(start: usize, end: usize, x: usize) -> Option<(usize, u32)> {
    covering(start, end).find(|&(g, k)| g <= x && x - g < granules(k))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn order_of_small_and_huge_sizes() {
        assert_eq!(order_of_size(0), Some(4));
        assert_eq!(order_of_size(1), Some(4));
        assert_eq!(order_of_size(16), Some(4));
        assert_eq!(order_of_size(17), Some(5));
        assert_eq!(order_of_size(32), Some(5));
        assert_eq!(order_of_size(4096), Some(12));
        assert_eq!(order_of_size(4097), Some(13));
        assert_eq!(order_of_size(1 << MAX_ORDER), Some(MAX_ORDER));
        assert_eq!(order_of_size((1 << MAX_ORDER) + 1), None);
        assert_eq!(order_of_size(usize::MAX), None);
        assert_eq!(order_of_size(usize::MAX / 2 + 1), None);
    }

    #[test]
    fn buddies_and_parents_by_hand() {
        // granule 6 (address 96) of order 4: buddy 7, parent 6 of order 5.
        assert_eq!(buddy(6, 4), 7);
        assert_eq!(buddy(7, 4), 6);
        assert_eq!(parent(7, 4), 6);
        // order 6 (4 granules): 8 and 12 are buddies, 8 their parent.
        assert_eq!(buddy(12, 6), 8);
        assert_eq!(parent(12, 6), 8);
        assert!(is_aligned(8, 7) && !is_aligned(12, 7));
    }

    #[test]
    fn covering_of_an_odd_range() {
        // granules [3, 21): 3(4) 4(6) 8(7) 16(6) 20(4)
        let blocks: Vec<_> = covering(3, 21).collect();
        assert_eq!(blocks, vec![(3, 4), (4, 6), (8, 7), (16, 6), (20, 4)]);
        assert_eq!(top_block_containing(3, 21, 11), Some((8, 7)));
        assert_eq!(top_block_containing(3, 21, 21), None);
    }

    /// `cases` cases (a few under Miri), and no failure file under Miri
    /// (its isolation forbids `getcwd`).
    pub(crate) fn config(cases: u32) -> ProptestConfig {
        ProptestConfig {
            cases: if cfg!(miri) { 4 } else { cases },
            failure_persistence: if cfg!(miri) {
                None
            } else {
                ProptestConfig::default().failure_persistence
            },
            ..ProptestConfig::default()
        }
    }

    proptest! {
        #![proptest_config(config(256))]
        #[test]
        fn order_of_size_is_the_smallest_that_holds(size in 0usize..(1 << 40)) {
            match order_of_size(size) {
                Some(k) => {
                    prop_assert!(block_bytes(k) >= size.max(1));
                    prop_assert!(k == MIN_ORDER || block_bytes(k - 1) < size);
                }
                None => prop_assert!(size > block_bytes(MAX_ORDER)),
            }
        }

        #[test]
        fn buddy_is_an_involution_within_the_parent(g in 1usize..(1 << 40), k in MIN_ORDER..MAX_ORDER) {
            let g = g & !(granules(k) - 1); // a block start of order k
            let b = buddy(g, k);
            prop_assert_eq!(buddy(b, k), g);
            prop_assert_eq!(parent(g, k), parent(b, k));
            prop_assert_eq!(parent(g, k), g.min(b));
            prop_assert!(is_aligned(parent(g, k), k + 1));
            prop_assert_eq!(g.abs_diff(b), granules(k));
        }

        #[test]
        fn covering_is_exact_aligned_and_maximal(start in 1usize..100_000, len in 0usize..100_000) {
            let end = start + len;
            let mut next = start;
            for (g, k) in covering(start, end) {
                prop_assert_eq!(g, next);
                prop_assert!(is_aligned(g, k));
                prop_assert!(g + granules(k) <= end);
                // Maximal: the parent does not fit inside the range.
                if k < MAX_ORDER {
                    let p = parent(g, k);
                    prop_assert!(p < start || p + granules(k + 1) > end);
                }
                next = g + granules(k);
            }
            prop_assert_eq!(next, end.max(start));
            prop_assert!(covering(start, end).count() <= 2 * (MAX_ORDER as usize));
        }
    }
}

//! Where the allocator puts its state inside the arena it is given.
//!
//! ```text
//!  region                                                          region + len
//!  |pad| Buddy (state) | A bitmap | Q bitmap |pad| managed range ...     |tail|
//!                                                ^ start (16-aligned)  ^ end
//!  |<-------- bitmaps index granules from base = start & !4095 ------->|
//! ```
//!
//! The bitmaps cover the granules from `base` (the managed start rounded down
//! to 4 KiB, so that an A word covers an aligned 1 KiB, a Q word an aligned
//! 4 KiB, and quads are aligned 64 bytes) to `end`. Their size depends on where the managed range
//! starts, which depends on their size: [`compute`] finds the smallest size
//! that covers the range it leaves (a binary search, the need shrinks as the
//! bitmaps grow).

use crate::order::{GRANULE_SHIFT, MAX_GRANULES};

/// Granules covered by one word of the A bitmap (one bit per granule).
pub const GRANULES_PER_A_WORD: usize = 64;
/// A words covered by one word of the Q bitmap (one bit per quad).
pub const A_WORDS_PER_Q_WORD: usize = 4;
/// The bitmaps' base is aligned to this many bytes.
pub const BASE_ALIGN: usize = 4096;

/// The layout of an allocator inside `[addr, addr + len)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Offset of the state struct from the region start.
    pub state_off: usize,
    /// Offset of the A bitmap (`u64` words).
    pub a_off: usize,
    /// Words of the A bitmap.
    pub a_words: usize,
    /// Offset of the Q bitmap (`u64` words), right after the A bitmap.
    pub q_off: usize,
    /// Words of the Q bitmap.
    pub q_words: usize,
    /// Absolute granule number of the bitmaps' bit 0.
    pub base_g: usize,
    /// First managed granule (absolute).
    pub start_g: usize,
    /// One past the last managed granule (absolute).
    pub end_g: usize,
}

impl Layout {
    /// Bytes of the managed range.
    ///
    /// # Time complexity
    ///
    /// O(1).
    pub fn managed_bytes(&self) -> usize {
        (self.end_g - self.start_g) << GRANULE_SHIFT
    }
}

#[inline]
fn align_up(x: usize, a: usize) -> Option<usize> {
    Some(x.checked_add(a - 1)? & !(a - 1))
}

/// What `a_words` bitmap words imply: the managed range they leave.
/// Returns `(start_g, end_g, base_g)`, with `start_g >= end_g` when nothing
/// is left.
fn range_for(
    tables_start: usize,
    a_words: usize,
    end_addr: usize,
) -> Option<(usize, usize, usize)> {
    let q_words = a_words.div_ceil(A_WORDS_PER_Q_WORD);
    let tables = a_words.checked_add(q_words)?.checked_mul(8)?;
    let m = align_up(tables_start.checked_add(tables)?, 1 << GRANULE_SHIFT)?;
    let base_g = (m & !(BASE_ALIGN - 1)) >> GRANULE_SHIFT;
    let start_g = m >> GRANULE_SHIFT;
    let end_g = (end_addr >> GRANULE_SHIFT).min(base_g + MAX_GRANULES);
    Some((start_g, end_g, base_g))
}

/// The layout for a region at address `addr` of `len` bytes, with a state of
/// `state_size` bytes aligned to `state_align`; `None` if the region cannot
/// hold the state, the bitmaps and one 16-byte block.
///
/// # Time complexity
///
/// O(log(len)): a binary search on the bitmap size.
pub fn compute(addr: usize, len: usize, state_size: usize, state_align: usize) -> Option<Layout> {
    let region_end = addr.checked_add(len)?;
    let state_addr = align_up(addr, state_align)?;
    let tables_start = align_up(state_addr.checked_add(state_size)?, 8)?;
    let end_addr = region_end & !((1 << GRANULE_SHIFT) - 1);
    if tables_start >= end_addr {
        return None;
    }
    // Enough for any start: every granule from the region's 4 KiB-aligned
    // base to the end (and no more than MAX_GRANULES).
    let most = ((end_addr >> GRANULE_SHIFT) - ((addr & !(BASE_ALIGN - 1)) >> GRANULE_SHIFT))
        .min(MAX_GRANULES);
    let ok = |w: usize| -> Option<bool> {
        let (start_g, end_g, base_g) = range_for(tables_start, w, end_addr)?;
        let need = if start_g < end_g { end_g - base_g } else { 0 };
        Some(need <= w.checked_mul(GRANULES_PER_A_WORD)?)
    };
    let (mut lo, mut hi) = (1, most.div_ceil(GRANULES_PER_A_WORD).max(1));
    if !ok(hi)? {
        return None;
    }
    // Smallest w in [lo, hi] with ok(w): ok is monotone (more words, later
    // start, fewer granules to cover).
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if ok(mid)? {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let a_words = lo;
    let (start_g, end_g, base_g) = range_for(tables_start, a_words, end_addr)?;
    if start_g >= end_g {
        return None;
    }
    Some(Layout {
        state_off: state_addr - addr,
        a_off: tables_start - addr,
        a_words,
        q_off: tables_start - addr + a_words * 8,
        q_words: a_words.div_ceil(A_WORDS_PER_Q_WORD),
        base_g,
        start_g,
        end_g,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(addr: usize, len: usize) -> Option<Layout> {
        let l = compute(addr, len, 200, 8)?;
        let meta_end = addr + l.q_off + l.q_words * 8;
        assert!(l.state_off + 200 <= l.a_off);
        assert!(
            meta_end <= l.start_g << 4,
            "bitmaps overlap the managed range"
        );
        assert!(l.end_g << 4 <= addr + len, "managed range past the region");
        assert!(l.base_g <= l.start_g && l.base_g % 256 == 0);
        assert!(l.end_g - l.base_g <= l.a_words * 64, "A bitmap too small");
        assert!(l.a_words * 16 <= l.q_words * 64, "Q bitmap too small");
        assert!(l.end_g - l.base_g <= MAX_GRANULES);
        Some(l)
    }

    #[test]
    fn tiny_regions_are_refused_and_the_smallest_is_taken() {
        assert_eq!(compute(4096, 0, 200, 8), None);
        assert_eq!(compute(4096, 200 + 16, 200, 8), None);
        // State (200), two bitmap words (16), padding to 16 (8), a granule.
        let smallest = (0..400).find(|&len| compute(4096, len, 200, 8).is_some());
        assert_eq!(smallest, Some(200 + 16 + 8 + 16));
        let l = check(4096, 240).unwrap();
        assert_eq!(l.end_g - l.start_g, 1);
        assert_eq!(compute(usize::MAX - 10, 100, 200, 8), None);
    }

    #[test]
    fn one_mib_costs_under_one_percent() {
        let l = check(1 << 30, 1 << 20).unwrap();
        let meta = (1 << 20) - l.managed_bytes();
        assert!(meta * 100 < 1 << 20, "metadata {meta} bytes");
        // The bitmaps are minimal: one word less would not cover the range.
        assert!(l.end_g - l.base_g > (l.a_words - 1) * 64);
    }

    #[test]
    fn huge_arenas_manage_up_to_max_granules() {
        // 128 GiB at 1 MiB: computed, never touched.
        let l = check(1 << 20, 128 << 30).unwrap();
        assert_eq!(l.end_g - l.base_g, MAX_GRANULES);
        assert!(l.managed_bytes() > (64 << 30) - (1 << 30));
    }

    proptest! {
        #![proptest_config(crate::order::tests::config(256))]
        #[test]
        fn layouts_are_sound(addr in 1usize..(1 << 40), len in 0usize..(8 << 20)) {
            if let Some(l) = check(addr, len) {
                // Not wasteful: at most four A words more than the granules they
                // cover need (one word less may move the base down by 4 KiB
                // and then need it back).
                prop_assert!(l.a_words <= (l.end_g - l.base_g).div_ceil(64) + 4);
                let meta = len - l.managed_bytes();
                if len > 1 << 20 {
                    prop_assert!(meta * 100 < len, "{} of {}", meta, len);
                }
            } else {
                prop_assert!(len < 200 + 7 + 16 + 15 + 16 + 15);
            }
        }
    }
}

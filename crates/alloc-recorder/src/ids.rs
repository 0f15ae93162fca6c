//! Block ids: always the smallest id not in use, so that a trace's ids stay
//! below its peak number of live blocks and a replayer keeps its blocks in
//! a plain array.
//!
//! A five-level bitmap in one anonymous mapping (reserved with
//! `MAP_NORESERVE`: only the pages of ids actually used are ever touched).
//! Level 0 has a bit per id (1 = in use); a bit of level k+1 is 1 when the
//! 64-bit word below it at level k is full. The smallest free id is found by
//! descending from the single top word: O(levels) = O(1) for 2^30 ids.

use core::ptr::NonNull;

use malloc_shim::sys;

const LEVELS: usize = 5;
/// Ids `0..CAPACITY` can be handed out.
pub const CAPACITY: u64 = 1 << 30;

/// Words per level: 2^24, 2^18, 2^12, 2^6, 1.
const WORDS: [usize; LEVELS] = [1 << 24, 1 << 18, 1 << 12, 1 << 6, 1];

const fn offsets() -> [usize; LEVELS] {
    let mut o = [0; LEVELS];
    let mut i = 1;
    while i < LEVELS {
        o[i] = o[i - 1] + WORDS[i - 1];
        i += 1;
    }
    o
}

const OFFSET: [usize; LEVELS] = offsets();
const TOTAL_WORDS: usize = OFFSET[LEVELS - 1] + 1;

/// The smallest-free-id allocator.
pub struct IdAlloc {
    words: NonNull<u64>,
}

// SAFETY: the mapping is owned by the value; the recorder uses it under its lock.
unsafe impl Send for IdAlloc {}

impl IdAlloc {
    /// Reserves the bitmap (about 130 MiB of address space, no memory).
    pub fn new() -> Option<IdAlloc> {
        let p = sys::map(TOTAL_WORDS * 8, true)?;
        Some(IdAlloc { words: p.cast() })
    }

    fn word(&self, level: usize, i: usize) -> *mut u64 {
        debug_assert!(i < WORDS[level]);
        // SAFETY: `OFFSET[level] + i < TOTAL_WORDS`, inside the mapping.
        unsafe { self.words.as_ptr().add(OFFSET[level] + i) }
    }

    /// The smallest free id, now in use; `None` when all `CAPACITY` are.
    ///
    /// # Time complexity
    ///
    /// O(levels): one word per level down, at most one per level back up.
    pub fn alloc(&mut self) -> Option<u64> {
        let mut i = 0usize;
        for level in (0..LEVELS).rev() {
            // SAFETY: `word` points into the mapping.
            let w = unsafe { *self.word(level, i) };
            if w == u64::MAX {
                return None; // only possible at the top: everything is full
            }
            i = i * 64 + (!w).trailing_zeros() as usize;
        }
        let id = i as u64;
        // Set the bit, and the parents' bits while words become full.
        for level in 0..LEVELS {
            let w = self.word(level, i / 64);
            // SAFETY: inside the mapping.
            let full = unsafe {
                *w |= 1 << (i % 64);
                *w == u64::MAX
            };
            if !full {
                break;
            }
            i /= 64;
        }
        Some(id)
    }

    /// Gives `id` back (an id not in use is ignored).
    ///
    /// # Time complexity
    ///
    /// O(levels).
    pub fn free(&mut self, id: u64) {
        if id >= CAPACITY {
            return;
        }
        let mut i = id as usize;
        for level in 0..LEVELS {
            let w = self.word(level, i / 64);
            // SAFETY: inside the mapping.
            let was_full = unsafe {
                let was_full = *w == u64::MAX;
                *w &= !(1 << (i % 64));
                was_full
            };
            if !was_full {
                break;
            }
            i /= 64;
        }
    }
}

impl Drop for IdAlloc {
    fn drop(&mut self) {
        // SAFETY: our mapping, of this size.
        unsafe { sys::unmap(self.words.as_ptr().cast(), TOTAL_WORDS * 8) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smallest_free_id_first() {
        let mut ids = IdAlloc::new().unwrap();
        for want in 0..10_000 {
            assert_eq!(ids.alloc(), Some(want));
        }
        ids.free(4095);
        ids.free(64);
        ids.free(9_999);
        ids.free(3);
        assert_eq!(ids.alloc(), Some(3));
        assert_eq!(ids.alloc(), Some(64));
        assert_eq!(ids.alloc(), Some(4095));
        assert_eq!(ids.alloc(), Some(9_999));
        assert_eq!(ids.alloc(), Some(10_000));
    }

    #[test]
    fn matches_a_naive_model() {
        // The model: ids below `next` that were freed, and `next`.
        let mut ids = IdAlloc::new().unwrap();
        let mut freed = std::collections::BTreeSet::new();
        let mut used = Vec::new();
        let mut next = 0u64;
        let mut x = 12345u64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if !x.is_multiple_of(3) || used.is_empty() {
                let want = freed.pop_first().unwrap_or_else(|| {
                    next += 1;
                    next - 1
                });
                assert_eq!(ids.alloc(), Some(want));
                used.push(want);
            } else {
                let victim = used.swap_remove((x >> 8) as usize % used.len());
                freed.insert(victim);
                ids.free(victim);
            }
        }
    }

    #[test]
    fn crossing_a_full_level_one_word() {
        let mut ids = IdAlloc::new().unwrap();
        for _ in 0..(64 * 64 + 5) {
            ids.alloc().unwrap();
        }
        ids.free(100);
        assert_eq!(ids.alloc(), Some(100));
        assert_eq!(ids.alloc(), Some(64 * 64 + 5));
    }
}

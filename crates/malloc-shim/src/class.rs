//! Size classes of the thread caches, and the one byte per 16 bytes of arena
//! (the *side table*) that tells, without any lock, what a pointer is.
//!
//! Classes are the powers of two from 16 bytes to [`MAX_CACHED`] (32 KiB):
//! both cores round a request up to a power of two anyway (the buddy system
//! always; McKusick-Karels up to its two-page buckets, and a 16 or 32 KiB
//! page run is a whole number of pages), so a cached block holds exactly what
//! the core would have given.
//!
//! # The side table
//!
//! Every arena keeps one byte per 16-byte granule of its address range
//! ([`crate::arena`]). The byte of a granule that starts a block handed out
//! in a cached class is [`live`]`(class)`; of one that starts such a block
//! while it sits in a thread cache, [`cached`]`(class)`; of every other
//! granule (blocks of other sizes, interiors, free memory), `0`. So `free(p)`
//! reads one byte to learn `p`'s class, and a second `free` of a cached block
//! (a double free) finds the cached mark.
//!
//! Invariant (kept by every path that moves a block between a core and the
//! shim): a non-zero byte is at the start of a live or cached block of its
//! class. Bytes are written only by the thread that owns the block at that
//! moment (the program's thread that frees or gets it, or the holder of the
//! arena lock when the block goes to or comes from the core), with relaxed
//! atomic stores; readers load them the same way. A program that passes a
//! block between threads orders those accesses itself (it must, to pass the
//! block); a racy double free from two threads is a bug of the program that
//! may go undetected, but is no data race in the shim.

/// log2 of the smallest class.
pub const MIN_SHIFT: u32 = 4;
/// The largest request a thread cache serves.
pub const MAX_CACHED: usize = 32 << 10;
/// Number of classes: 16 B, 32 B, ..., 32 KiB.
pub const NCLASSES: usize = (MAX_CACHED.trailing_zeros() - MIN_SHIFT + 1) as usize;
/// Bytes covered by one side-table byte.
pub const GRANULE: usize = 16;

/// The cache's mark in a side byte.
const CACHED: u8 = 0x80;

const _: () = assert!(NCLASSES < 0x7f);

/// The class serving a request of `n` bytes (`n` ≤ [`MAX_CACHED`]; 0 counts
/// as 1).
///
/// # Time complexity
///
/// O(1): a leading-zero count.
#[inline(always)]
pub const fn class_of(n: usize) -> usize {
    // n - 1 has its top bit at log2(rounded-up size) - 1 (n = 0 and 1: none).
    let bits = usize::BITS.wrapping_sub(n.saturating_sub(1).leading_zeros());
    if bits <= MIN_SHIFT {
        0
    } else {
        bits.wrapping_sub(MIN_SHIFT) as usize
    }
}

/// The bytes of a block of class `c`.
#[inline(always)]
pub const fn class_size(c: usize) -> usize {
    1 << (c as u32).wrapping_add(MIN_SHIFT)
}

/// How many blocks a thread may keep of class `c`: 64, or fewer so that a
/// full bin holds at most 64 KiB (32 KiB blocks: 2).
#[inline(always)]
pub const fn capacity(c: usize) -> usize {
    let by_bytes = (64usize << 10).wrapping_shr((c as u32).wrapping_add(MIN_SHIFT));
    if by_bytes < 64 { by_bytes } else { 64 }
}

/// The side byte of a live block of class `c`.
#[inline(always)]
pub const fn live(c: usize) -> u8 {
    (c as u8).wrapping_add(1)
}

/// The side byte of a cached block of class `c`.
#[inline(always)]
pub const fn cached(c: usize) -> u8 {
    CACHED | live(c)
}

/// What a side byte says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Not the start of a cached-class block (another kind of block, an
    /// interior pointer, free memory): the core decides.
    Other,
    /// The start of a live block of this class.
    Live(usize),
    /// The start of a block of this class sitting in a thread cache: a
    /// `free` of it is a double free.
    Cached(usize),
}

/// Decodes a side byte.
#[inline(always)]
pub const fn decode(b: u8) -> Side {
    if b == 0 {
        Side::Other
    } else if b & CACHED == 0 {
        Side::Live(b.wrapping_sub(1) as usize)
    } else {
        Side::Cached((b & !CACHED).wrapping_sub(1) as usize)
    }
}

/// The class whose size is exactly `usable`, if there is one (a block a core
/// resized, whose usable size is known).
#[inline]
pub const fn exact_class(usable: usize) -> Option<usize> {
    if usable.is_power_of_two() && usable >= 1 << MIN_SHIFT && usable <= MAX_CACHED {
        Some(usable.trailing_zeros().wrapping_sub(MIN_SHIFT) as usize)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_round_up_to_powers_of_two() {
        assert_eq!(NCLASSES, 12);
        assert_eq!(class_of(0), 0);
        assert_eq!(class_of(1), 0);
        assert_eq!(class_of(16), 0);
        assert_eq!(class_of(17), 1);
        assert_eq!(class_of(32), 1);
        assert_eq!(class_of(33), 2);
        assert_eq!(class_of(MAX_CACHED), NCLASSES - 1);
        for n in 1..=MAX_CACHED {
            let c = class_of(n);
            assert!(
                class_size(c) >= n && (c == 0 || class_size(c - 1) < n),
                "{n}"
            );
        }
        assert_eq!(capacity(0), 64);
        assert_eq!(capacity(NCLASSES - 1), 2);
        assert_eq!(exact_class(4096), Some(8));
        assert_eq!(exact_class(4097), None);
        assert_eq!(exact_class(8), None);
        assert_eq!(exact_class(MAX_CACHED * 2), None);
    }

    #[test]
    fn side_bytes_round_trip() {
        for c in 0..NCLASSES {
            assert_eq!(decode(live(c)), Side::Live(c));
            assert_eq!(decode(cached(c)), Side::Cached(c));
        }
        assert_eq!(decode(0), Side::Other);
    }
}

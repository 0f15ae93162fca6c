//! Which 64 MiB slots of the address space hold a header of this shim: one
//! bit per slot, so that `free` can tell, in O(1) and without reading the
//! pointed-to memory, whether a pointer can be ours.
//!
//! An arena, and the first slot of a large block's own mapping, start at a
//! multiple of [`ARENA`]; the header sits at that address. A pointer `p` is
//! looked up at `p & !(ARENA - 1)`: if that slot's bit is clear, `p` is
//! foreign (never dereferenced); if set, the header there is mapped and says
//! what `p` may be.
//!
//! The user address space of x86_64 and aarch64 Linux is 47/48 bits: 2^21
//! slots of 64 MiB below 2^47, a 256 KiB bitmap in `.bss` (zero pages cost
//! nothing until a bit in them is set). Addresses above 2^47 (only handed out
//! by the kernel to a caller who asks) are never registered, hence foreign.

use core::sync::atomic::{AtomicU64, Ordering};

/// log2 of the arena size.
pub const ARENA_SHIFT: u32 = 26;
/// Bytes in an arena, and the alignment of every arena and large mapping.
pub const ARENA: usize = 1 << ARENA_SHIFT;
/// Addresses at or above this are never ours.
pub const ADDRESS_LIMIT: usize = 1 << 47;
const SLOTS: usize = ADDRESS_LIMIT >> ARENA_SHIFT;
const WORDS: usize = SLOTS / 64;

/// The bitmap (shared by every [`crate::Shim`] of this library; a header
/// names the shim that owns it).
static BITS: [AtomicU64; WORDS] = [const { AtomicU64::new(0) }; WORDS];

/// The start of the slot holding `addr`.
#[inline]
pub const fn slot_base(addr: usize) -> usize {
    addr & !(ARENA - 1)
}

#[inline]
fn word_and_bit(base: usize) -> Option<(&'static AtomicU64, u64)> {
    if base >= ADDRESS_LIMIT {
        return None;
    }
    let slot = base >> ARENA_SHIFT;
    Some((BITS.get(slot / 64)?, 1u64 << (slot % 64)))
}

/// True if `base` can be registered (it lies below [`ADDRESS_LIMIT`]).
#[inline]
pub const fn in_range(base: usize) -> bool {
    base < ADDRESS_LIMIT
}

/// Marks the slot starting at `base` (a multiple of [`ARENA`]) as holding a
/// header. False if `base` is out of range (then it stays foreign).
///
/// Release ordering: a thread that sees the bit sees the header written
/// before.
pub fn register(base: usize) -> bool {
    match word_and_bit(base) {
        Some((w, bit)) => {
            w.fetch_or(bit, Ordering::Release);
            true
        }
        None => false,
    }
}

/// Clears the slot's bit (before its mapping goes away).
pub fn unregister(base: usize) {
    if let Some((w, bit)) = word_and_bit(base) {
        w.fetch_and(!bit, Ordering::AcqRel);
    }
}

/// True if the slot holding `addr` is registered.
///
/// # Time complexity
///
/// O(1): one load.
#[inline]
pub fn contains(addr: usize) -> bool {
    match word_and_bit(slot_base(addr)) {
        Some((w, bit)) => w.load(Ordering::Acquire) & bit != 0,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_follow_registration() {
        let base = 0x7000_0000_0000usize & !(ARENA - 1);
        assert!(!contains(base + 123));
        assert!(register(base));
        assert!(contains(base));
        assert!(contains(base + ARENA - 1));
        assert!(!contains(base + ARENA));
        assert!(!contains(base - 1));
        unregister(base);
        assert!(!contains(base + 123));
        assert!(!register(ADDRESS_LIMIT));
        assert!(!contains(usize::MAX));
        assert!(!contains(0));
    }
}

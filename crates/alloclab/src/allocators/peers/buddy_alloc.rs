//! buddy-alloc 0.6 (`BuddyAlloc`, after MIT 6.828's buddy allocator) used
//! alone over the arena, with 16-byte leaves.
//!
//! `BuddyAlloc::new(BuddyAllocParam::new(base, len, 16))` puts its tables
//! (per order: a free-list head, an "allocated" bitmap and a "split" bitmap)
//! at the start of the span it is given, then cuts the rest into blocks. Its
//! `free(p)` finds the block's order from the split bitmaps: no size needed,
//! no header. It has no realloc, and no way to ask a block's size, so the
//! emulated `realloc` (allocate, copy, free) cannot know how many bytes the
//! old block holds: it copies `min(new size, bytes to the end of the arena)`,
//! which keeps the old contents (the block's bytes come first) at the cost
//! of over-copying when growing.
//!
//! The crate checks the span's size only with `debug_assert!` (a release
//! build writes its tables past a too-small span), and `malloc` loops for
//! ever on a size near `usize::MAX` (its size doubling overflows to 0): the
//! adapter checks both before calling it.

use std::ffi::c_void;
use std::ptr::null_mut;

use buddy_alloc::buddy_alloc::{BuddyAlloc, BuddyAllocParam};
use plugin_abi::Allocator;
use plugin_abi::loader::PluginApi;

use super::{Peer, Rest, Slot, emulated_realloc};
use crate::allocators::facts::{ReallocKind, TypedFacts};
use crate::allocators::table;

const MAGIC: u64 = u64::from_le_bytes(*b"buddyalc");

/// The smallest block, and the alignment of every block.
pub const LEAF: usize = 16;

/// The adapter's state: the crate's allocator and the end of the arena.
pub(crate) struct Inner {
    /// Set by `create` (the crate builds it from the span it manages).
    ba: Option<BuddyAlloc>,
    /// One past the arena's last byte.
    end: usize,
    /// Bytes the crate manages (from after the adapter's state to the end).
    len: usize,
}

/// Documented facts (buddy-alloc README and docs).
pub const FACTS: TypedFacts = TypedFacts {
    calls: "BuddyAlloc::new(BuddyAllocParam::new(base, len, leaf_size)), malloc(nbytes), free(ptr)",
    free_needs_size: false,
    realloc: ReallocKind::Emulated,
    threads: "not thread-safe (README: implement locks on your own)",
    introspection: "available_bytes()",
    adapter_header: 0,
    uses_arena: true,
};

/// Whether `BuddyAlloc::new` fits its tables and at least one leaf in
/// `[base, base + len)`: its own computation (buddy-alloc 0.6
/// `BuddyAlloc::new`), done before the call because the crate only
/// `debug_assert!`s it.
pub(crate) fn fits(base: usize, len: usize) -> bool {
    const LEAF2BASE: u32 = LEAF.trailing_zeros();
    let roundup = |n: usize, shift: u32| (((n - 1) >> shift) + 1) << shift;
    let Some(end) = base.checked_add(len) else {
        return false;
    };
    let mut at = roundup(base, LEAF2BASE);
    if at >= end || (end - at) >> LEAF2BASE == 0 {
        return false;
    }
    let leaves = (end - at) >> LEAF2BASE;
    let entries = leaves.ilog2() as usize + 2;
    // Entries (3 pointers each), then a list head (2 pointers) per entry.
    at += entries * (3 * size_of::<usize>() + 2 * size_of::<usize>());
    // "alloc" bitmaps for orders 0.., "split" bitmaps for orders 1..
    let bitmap = |k: usize| roundup(1 << (entries - k - 1), 3) >> 3;
    at += (0..entries).map(bitmap).sum::<usize>();
    at += (1..entries).map(bitmap).sum::<usize>();
    at = roundup(at, LEAF2BASE);
    at < end && end - at >= LEAF
}

unsafe extern "C" fn create(memory: *mut c_void, size: usize) -> *mut Allocator {
    let setup = |inner: &mut Inner, rest: Rest| {
        if !fits(rest.start as usize, rest.len) {
            return false;
        }
        let param = BuddyAllocParam::new(rest.start, rest.len, LEAF);
        // SAFETY: the span is ours until destroy and large enough (`fits`).
        inner.ba = Some(unsafe { BuddyAlloc::new(param) });
        inner.end = rest.start as usize + rest.len;
        inner.len = rest.len;
        true
    };
    let new = || Inner {
        ba: None,
        end: 0,
        len: 0,
    };
    // SAFETY: the `allocator_create` contract.
    unsafe { Slot::<Inner>::create(memory, size, MAGIC, new, setup) }
}

unsafe extern "C" fn destroy(a: *mut Allocator) {
    // SAFETY: the `allocator_destroy` contract; the state is all in the arena.
    unsafe { Slot::<Inner>::kill(a, MAGIC) };
}

unsafe extern "C" fn alloc(a: *mut Allocator, size: usize) -> *mut c_void {
    // SAFETY: the `allocator_alloc` contract.
    let Some(s) = (unsafe { Slot::<Inner>::get(a, MAGIC) }) else {
        return null_mut();
    };
    s.run(null_mut(), |inner| match inner.ba.as_mut() {
        // More than the span can never fit (and would hang `malloc`).
        Some(ba) if size <= inner.len => ba.malloc(size).cast(),
        _ => null_mut(),
    })
}

unsafe extern "C" fn free(a: *mut Allocator, p: *mut c_void) {
    if p.is_null() {
        return;
    }
    // SAFETY: the `allocator_free` contract.
    let Some(s) = (unsafe { Slot::<Inner>::get(a, MAGIC) }) else {
        return;
    };
    s.run((), |inner| {
        if let Some(ba) = inner.ba.as_mut() {
            // `p` is a live block of this peer (else undefined, as documented).
            ba.free(p.cast());
        }
    })
}

unsafe extern "C" fn realloc(a: *mut Allocator, p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() {
        // SAFETY: forwarded contract.
        return unsafe { alloc(a, size) };
    }
    if size == 0 {
        // SAFETY: forwarded contract.
        unsafe { free(a, p) };
        return null_mut();
    }
    // SAFETY: the `allocator_realloc` contract.
    let Some(s) = (unsafe { Slot::<Inner>::get(a, MAGIC) }) else {
        return null_mut();
    };
    // The old block's size is unknown: everything to the end of the arena
    // may be it.
    let copy = s.inner.end.saturating_sub(p as usize);
    // SAFETY: `p` is a live block of this peer (else undefined, as
    // documented) and the `copy` bytes after it are inside the arena.
    unsafe { emulated_realloc((alloc, free), a, p, size, copy) }
}

/// buddy-alloc behind the plugin ABI.
pub fn api() -> PluginApi {
    PluginApi {
        realloc: Some(realloc),
        ..table(create, destroy, alloc, free)
    }
}

/// The buddy-alloc peer.
pub fn peer() -> Peer {
    Peer {
        name: "buddy-alloc",
        api: api(),
        facts: FACTS,
    }
}

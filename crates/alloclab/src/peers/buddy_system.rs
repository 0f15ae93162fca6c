//! buddy_system_allocator 0.13 (rCore's `Heap<ORDER>`) over the arena: a
//! binary buddy system with one singly linked free list per order.
//!
//! `Heap::<32>` (blocks up to 2^31 bytes) is used directly; `init` adds the
//! arena after the adapter's state, cut into naturally aligned power-of-two
//! blocks. `dealloc(ptr, layout)` needs the layout, so the adapter keeps the
//! size in a [`HEADER`]-byte header in front of each block, as a C caller
//! with a `free(ptr)` API would have to. A buddy rounds every request up to a
//! power of two, so the header makes a power-of-two request take the next
//! power (4096 bytes asked: 4112 with the header, an 8192-byte block).
//! `Heap` has no realloc (its `LockedHeap` uses `GlobalAlloc`'s default), so
//! `realloc` is emulated: allocate, copy, free.
//!
//! `dealloc` merges buddies by scanning the free list of each order for the
//! buddy's address: O(free blocks of that order) per step.

use std::ffi::c_void;
use std::ptr::null_mut;

use buddy_system_allocator::Heap;
use plugin_abi::Allocator;
use plugin_abi::loader::PluginApi;

use super::{HEADER, Peer, Rest, Slot, emulated_realloc, get_header, header_layout, put_header};
use crate::facts::{ReallocKind, TypedFacts};

const MAGIC: u64 = u64::from_le_bytes(*b"buddysys");

/// Orders 0..ORDER: the largest block is 2^(ORDER-1) bytes (2 GiB).
pub const ORDER: usize = 32;

type Inner = Heap<ORDER>;

/// The smallest span given to the heap: it always holds one smallest block.
const MIN_HEAP: usize = 4 * HEADER;

/// Documented facts (buddy_system_allocator docs).
pub const FACTS: TypedFacts = TypedFacts {
    calls: "Heap::<ORDER>::new(), init(start, size) / add_to_heap(start, end), alloc(layout), dealloc(ptr, layout)",
    free_needs_size: true,
    realloc: ReallocKind::Emulated,
    threads: "Heap needs &mut: LockedHeap (spin::Mutex, feature use_spin) to share it",
    introspection: "stats_alloc_user(), stats_alloc_actual(), stats_total_bytes()",
    adapter_header: HEADER,
    uses_arena: true,
};

unsafe extern "C" fn create(memory: *mut c_void, size: usize) -> *mut Allocator {
    let setup = |h: &mut Inner, rest: Rest| {
        // The smallest block (header + 1 byte) takes 32 bytes, 32-byte
        // aligned: 64 bytes from a 16-byte aligned start always hold one.
        if rest.len < MIN_HEAP {
            return false;
        }
        // SAFETY: the rest of the arena is ours until destroy and was never
        // added to this heap.
        unsafe { h.init(rest.start as usize, rest.len) };
        true
    };
    // SAFETY: the `allocator_create` contract.
    unsafe { Slot::<Inner>::create(memory, size, MAGIC, Heap::new, setup) }
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
    let Some(layout) = header_layout(size) else {
        return null_mut();
    };
    s.run(null_mut(), |h| match h.alloc(layout) {
        // SAFETY: a fresh block of `layout` gets its header.
        Ok(b) => unsafe { put_header(b, size) },
        Err(()) => null_mut(),
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
    s.run((), |h| {
        // SAFETY: `p` is a live block of this peer (else undefined, as
        // documented), so its header gives the layout it was allocated with.
        unsafe {
            let (block, size) = get_header(p);
            h.dealloc(block, header_layout(size).unwrap_unchecked());
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
    if unsafe { Slot::<Inner>::get(a, MAGIC) }.is_none() {
        return null_mut();
    }
    // SAFETY: `p` is a live block of this peer (else undefined, as documented).
    let (_, old) = unsafe { get_header(p) };
    // SAFETY: `p` is live with `old` readable bytes; `size > 0`.
    unsafe { emulated_realloc((alloc, free), a, p, size, old) }
}

/// buddy_system_allocator behind the plugin ABI.
pub fn api() -> PluginApi {
    PluginApi {
        create,
        destroy,
        alloc,
        free,
        realloc: Some(realloc),
        create_with_flags: None,
        alloc_aligned: None,
        usable_size: None,
        stats: None,
        check: None,
        info: None,
        add_region: None,
    }
}

/// The buddy_system_allocator peer.
pub fn peer() -> Peer {
    Peer {
        name: "buddy_system_allocator",
        api: api(),
        facts: FACTS,
    }
}

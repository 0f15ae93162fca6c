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

use std::alloc::Layout;
use std::ptr::NonNull;

use buddy_system_allocator::Heap;

use super::headered::{self, HeaderedCrate};
use super::{HEADER, Peer, Rest};
use crate::allocators::facts::{ReallocKind, TypedFacts};

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

// SAFETY: the buddy heap hands out disjoint blocks of the layout asked for,
// inside the memory given to `init`.
unsafe impl HeaderedCrate for Inner {
    const MAGIC: u64 = u64::from_le_bytes(*b"buddysys");
    fn new() -> Inner {
        Heap::new()
    }
    unsafe fn setup(&mut self, rest: Rest) -> bool {
        // The smallest block (header + 1 byte) takes 32 bytes, 32-byte
        // aligned: 64 bytes from a 16-byte aligned start always hold one.
        if rest.len < MIN_HEAP {
            return false;
        }
        // SAFETY: the rest of the arena is ours until destroy and was never
        // added to this heap.
        unsafe { self.init(rest.start as usize, rest.len) };
        true
    }
    fn allocate(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        self.alloc(layout).ok()
    }
    unsafe fn deallocate(&mut self, block: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { self.dealloc(block, layout) }
    }
}

/// The buddy_system_allocator peer.
pub fn peer() -> Peer {
    Peer {
        name: "buddy_system_allocator",
        api: headered::api::<Inner>(),
        facts: FACTS,
    }
}

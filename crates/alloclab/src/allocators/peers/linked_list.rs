//! linked_list_allocator 0.10 (`Heap`, as in Philipp Oppermann's "Writing an
//! OS in Rust") over the arena: a first-fit list of holes sorted by address.
//!
//! `Heap::init` takes the arena after the adapter's state. `deallocate(ptr,
//! layout)` needs the layout, so the adapter keeps the size in a
//! [`HEADER`]-byte header in front of each block, as a C caller with a
//! `free(ptr)` API would have to. `Heap` has no realloc (its `LockedHeap`
//! uses `GlobalAlloc`'s default: allocate, copy, deallocate), so `realloc`
//! is emulated the same way.
//!
//! The crate checks a freed block against its neighbouring holes and panics
//! ("Freed node aliases existing hole! Bad free?") on a double free it
//! notices; the adapter catches the panic and poisons the instance.
//! `allocate_first_fit` and `deallocate` walk the hole list: O(holes).

use std::alloc::Layout;
use std::ptr::NonNull;

use linked_list_allocator::Heap;

use super::headered::{self, HeaderedCrate};
use super::{HEADER, Peer, Rest};
use crate::allocators::facts::{ReallocKind, TypedFacts};

type Inner = Heap;

/// The smallest span handed to `Heap::init` (it panics below two or three
/// words; one block of the smallest request needs 32 bytes).
const MIN_HEAP: usize = 64;

/// Documented facts (linked_list_allocator docs).
pub const FACTS: TypedFacts = TypedFacts {
    calls: "Heap::empty(), init(bottom, size), allocate_first_fit(layout), deallocate(ptr, layout)",
    free_needs_size: true,
    realloc: ReallocKind::Emulated,
    threads: "Heap needs &mut: LockedHeap (spinning_top spin lock, feature use_spin) to share it",
    introspection: "Heap::used(), free(), size()",
    adapter_header: HEADER,
    uses_arena: true,
};

// SAFETY: linked_list_allocator hands out disjoint blocks of the layout
// asked for, inside its heap.
unsafe impl HeaderedCrate for Inner {
    const MAGIC: u64 = u64::from_le_bytes(*b"llalloc\0");
    fn new() -> Inner {
        Heap::empty()
    }
    unsafe fn setup(&mut self, rest: Rest) -> bool {
        if rest.len < MIN_HEAP {
            return false;
        }
        // SAFETY: the rest of the arena is ours until destroy; init once.
        unsafe { self.init(rest.start, rest.len) };
        true
    }
    fn allocate(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        self.allocate_first_fit(layout).ok()
    }
    unsafe fn deallocate(&mut self, block: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { Heap::deallocate(self, block, layout) }
    }
}

/// The linked_list_allocator peer.
pub fn peer() -> Peer {
    Peer {
        name: "linked_list_allocator",
        api: headered::api::<Inner>(),
        facts: FACTS,
    }
}

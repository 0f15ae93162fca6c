//! talc 5 (`talc::base::Talc` with the `Manual` source) over the arena.
//!
//! talc is a dlmalloc-style allocator with boundary tags and binned free
//! lists. In talc 5 the source that never asks for more memory is
//! `source::Manual` (talc 4 called it `ErrOnOom`); the arena after the
//! adapter's state is given to it with one `claim`, which also places talc's
//! bin table at the start of that span.
//!
//! `Talc::deallocate(ptr, layout)` needs the layout, so the adapter keeps the
//! size in a [`HEADER`]-byte header in front of each block, as a C caller
//! with a `free(ptr)` API would have to. `realloc` is talc's own:
//! `try_realloc_in_place` (shrink always in place, grow in place into a free
//! neighbour), else allocate + copy + deallocate: exactly what talc's
//! `GlobalAlloc::realloc` does.
//!
//! Blocks are talc chunks: `CHUNK_UNIT` (32 bytes) aligned, a chunk holds its
//! request plus an 8-byte tag rounded up to 32 bytes; the user pointer is
//! 16 bytes into the chunk, so 16-byte aligned.

use std::alloc::Layout;
use std::ptr::NonNull;

use talc::DefaultBinning;
use talc::base::Talc;
use talc::source::Manual;

use super::headered::{self, HeaderedCrate};
use super::{HEADER, Peer, Rest};
use crate::allocators::facts::{ReallocKind, TypedFacts};

type Inner = Talc<Manual, DefaultBinning>;

/// Documented facts (talc 5 README and docs).
pub const FACTS: TypedFacts = TypedFacts {
    calls: "Talc::new(Manual) (or TalcCell::new / TalcLock::new), claim(base, size), allocate(layout), deallocate(ptr, layout), try_realloc_in_place(ptr, layout, new_size)",
    free_needs_size: true,
    realloc: ReallocKind::Native,
    threads: "one Talc needs &mut: TalcLock<R: lock_api::RawMutex> (e.g. spinning_top) to share it, TalcCell for one thread",
    introspection: "Talc::counters() with the `counters` feature (off here): allocation_count, allocated_bytes, available_bytes, fragment_count, claimed_bytes",
    adapter_header: HEADER,
    uses_arena: true,
};

// SAFETY: talc hands out disjoint blocks of the layout asked for, inside
// the memory it claimed.
unsafe impl HeaderedCrate for Inner {
    const MAGIC: u64 = u64::from_le_bytes(*b"talc5\0\0\0");
    fn new() -> Inner {
        Talc::new(Manual)
    }
    unsafe fn setup(&mut self, rest: Rest) -> bool {
        // SAFETY: the rest of the arena is ours until destroy; `Manual`
        // allows manual heap management.
        unsafe { self.claim(rest.start, rest.len) }.is_some()
    }
    fn allocate(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        // SAFETY: the layout's size is nonzero (it includes the header).
        unsafe { Talc::allocate(self, layout) }
    }
    unsafe fn deallocate(&mut self, block: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { Talc::deallocate(self, block.as_ptr(), layout) }
    }
    unsafe fn resize_in_place(&mut self, block: NonNull<u8>, old: Layout, new: usize) -> bool {
        // SAFETY: forwarded contract; talc shrinks always in place and grows
        // in place into a free neighbour.
        unsafe { self.try_realloc_in_place(block.as_ptr(), old, new) }
    }
}

/// The talc peer.
pub fn peer() -> Peer {
    Peer {
        name: "talc",
        api: headered::api::<Inner>(),
        facts: FACTS,
    }
}

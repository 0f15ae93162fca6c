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

use std::ffi::c_void;
use std::ptr::null_mut;

use plugin_abi::Allocator;
use plugin_abi::loader::PluginApi;
use talc::DefaultBinning;
use talc::base::Talc;
use talc::source::Manual;

use super::{HEADER, Peer, Rest, Slot, get_header, header_layout, put_header};
use crate::facts::{ReallocKind, TypedFacts};

const MAGIC: u64 = u64::from_le_bytes(*b"talc5\0\0\0");

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

unsafe extern "C" fn create(memory: *mut c_void, size: usize) -> *mut Allocator {
    let setup = |t: &mut Inner, rest: Rest| {
        // SAFETY: the rest of the arena is ours until destroy; `Manual`
        // allows manual heap management.
        unsafe { t.claim(rest.start, rest.len) }.is_some()
    };
    // SAFETY: the `allocator_create` contract.
    unsafe { Slot::<Inner>::create(memory, size, MAGIC, || Talc::new(Manual), setup) }
}

unsafe extern "C" fn destroy(a: *mut Allocator) {
    // SAFETY: the `allocator_destroy` contract. talc's state is all in the
    // arena: nothing to release.
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
    s.run(null_mut(), |t| {
        // SAFETY: the layout's size is nonzero; a fresh block gets its header.
        unsafe {
            t.allocate(layout)
                .map_or(null_mut(), |b| put_header(b, size))
        }
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
    s.run((), |t| {
        // SAFETY: `p` is a live block of this peer (else undefined, as
        // documented), so its header gives the layout it was allocated with.
        unsafe {
            let (block, size) = get_header(p);
            let layout = header_layout(size).unwrap_unchecked();
            t.deallocate(block.as_ptr(), layout);
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
    let Some(new_layout) = header_layout(size) else {
        return null_mut();
    };
    // SAFETY: the `allocator_realloc` contract.
    let Some(s) = (unsafe { Slot::<Inner>::get(a, MAGIC) }) else {
        return null_mut();
    };
    s.run(null_mut(), |t| {
        // SAFETY: `p` is a live block of this peer, its header gives its
        // layout; on any failure the old block is left as it was.
        unsafe {
            let (block, old) = get_header(p);
            let old_layout = header_layout(old).unwrap_unchecked();
            if t.try_realloc_in_place(block.as_ptr(), old_layout, new_layout.size()) {
                return put_header(block, size);
            }
            let Some(fresh) = t.allocate(new_layout) else {
                return null_mut();
            };
            // Only growing can fail in place: all `old` bytes fit.
            fresh
                .as_ptr()
                .add(HEADER)
                .copy_from_nonoverlapping(p.cast::<u8>(), old);
            t.deallocate(block.as_ptr(), old_layout);
            put_header(fresh, size)
        }
    })
}

/// talc behind the plugin ABI.
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

/// The talc peer.
pub fn peer() -> Peer {
    Peer {
        name: "talc",
        api: api(),
        facts: FACTS,
    }
}

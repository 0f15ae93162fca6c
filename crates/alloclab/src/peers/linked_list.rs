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

use std::ffi::c_void;
use std::ptr::null_mut;

use linked_list_allocator::Heap;
use plugin_abi::Allocator;
use plugin_abi::loader::PluginApi;

use super::{HEADER, Peer, Rest, Slot, emulated_realloc, get_header, header_layout, put_header};
use crate::facts::{ReallocKind, TypedFacts};

const MAGIC: u64 = u64::from_le_bytes(*b"llalloc\0");

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

unsafe extern "C" fn create(memory: *mut c_void, size: usize) -> *mut Allocator {
    let setup = |h: &mut Heap, rest: Rest| {
        if rest.len < MIN_HEAP {
            return false;
        }
        // SAFETY: the rest of the arena is ours until destroy; init once.
        unsafe { h.init(rest.start, rest.len) };
        true
    };
    // SAFETY: the `allocator_create` contract.
    unsafe { Slot::<Heap>::create(memory, size, MAGIC, Heap::empty, setup) }
}

unsafe extern "C" fn destroy(a: *mut Allocator) {
    // SAFETY: the `allocator_destroy` contract; the state is all in the arena.
    unsafe { Slot::<Heap>::kill(a, MAGIC) };
}

unsafe extern "C" fn alloc(a: *mut Allocator, size: usize) -> *mut c_void {
    // SAFETY: the `allocator_alloc` contract.
    let Some(s) = (unsafe { Slot::<Heap>::get(a, MAGIC) }) else {
        return null_mut();
    };
    let Some(layout) = header_layout(size) else {
        return null_mut();
    };
    s.run(null_mut(), |h| match h.allocate_first_fit(layout) {
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
    let Some(s) = (unsafe { Slot::<Heap>::get(a, MAGIC) }) else {
        return;
    };
    s.run((), |h| {
        // SAFETY: `p` is a live block of this peer (else undefined, as
        // documented), so its header gives the layout it was allocated with.
        unsafe {
            let (block, size) = get_header(p);
            h.deallocate(block, header_layout(size).unwrap_unchecked());
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
    if unsafe { Slot::<Heap>::get(a, MAGIC) }.is_none() {
        return null_mut();
    }
    // SAFETY: `p` is a live block of this peer (else undefined, as documented).
    let (_, old) = unsafe { get_header(p) };
    // SAFETY: `p` is live with `old` readable bytes; `size > 0`.
    unsafe { emulated_realloc((alloc, free), a, p, size, old) }
}

/// linked_list_allocator behind the plugin ABI.
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

/// The linked_list_allocator peer.
pub fn peer() -> Peer {
    Peer {
        name: "linked_list_allocator",
        api: api(),
        facts: FACTS,
    }
}

//! mimalloc (Microsoft's allocator, through `libmimalloc-sys`, which builds
//! mimalloc v3 from source): `mi_malloc`/`mi_free`/`mi_realloc` called
//! directly, not through `mimalloc::MiMalloc` (whose `GlobalAlloc` goes
//! through `mi_malloc_aligned`).
//!
//! A system allocator: it takes memory from the OS itself, so the arena holds
//! only the adapter's handle (a magic number). `destroy` cannot free the
//! blocks still live: they stay allocated, like any `mi_malloc`ed memory
//! never freed.
//!
//! mimalloc's smallest size class is 8 bytes and its blocks are only 8-byte
//! aligned (`mi_malloc(1..=8)` returns addresses ending in 8 half the time),
//! so the adapter asks for at least [`ALIGN`] bytes: the 16-byte class, whose
//! blocks are 16-byte aligned.
//!
//! Not done: an arena mode (`mi_manage_os_memory` + `mi_heap_new_in_arena`).
//! In the bundled mimalloc v3 an arena must be at least 32 MiB
//! (`MI_ARENA_MIN_SIZE`; smaller memory is refused with a warning) and is
//! carved in 64 KiB slices; a heap belongs to the thread that made it; and no
//! call gives an arena back, so the runner could never unmap the memory it
//! handed over. Not simple and robust enough over the runner's 1 MiB arenas.

use std::ffi::c_void;
use std::ptr::null_mut;

use libmimalloc_sys as mi;
use plugin_abi::Allocator;
use plugin_abi::loader::PluginApi;

use super::{ALIGN, Peer, Slot};
use crate::facts::{ReallocKind, TypedFacts};

const MAGIC: u64 = u64::from_le_bytes(*b"mimalloc");

/// Documented facts (mimalloc's `mimalloc.h` and its documentation).
pub const FACTS: TypedFacts = TypedFacts {
    calls: "mi_malloc(size), mi_free(ptr), mi_realloc(ptr, size)",
    free_needs_size: false,
    realloc: ReallocKind::Native,
    threads: "thread-safe (thread-local heaps; a block may be freed from any thread)",
    introspection: "mi_stats_print() (detailed counters only in a build with MI_STAT), mi_process_info(), mi_usable_size(ptr), mi_heap_visit_blocks()",
    adapter_header: 0,
    uses_arena: false,
};

unsafe extern "C" fn create(memory: *mut c_void, size: usize) -> *mut Allocator {
    // SAFETY: the `allocator_create` contract.
    unsafe { Slot::<()>::create(memory, size, MAGIC, || (), |_, _| true) }
}

unsafe extern "C" fn destroy(a: *mut Allocator) {
    // SAFETY: the `allocator_destroy` contract.
    unsafe { Slot::<()>::kill(a, MAGIC) };
}

/// True when `a` is a live handle of this peer.
///
/// # Safety
///
/// The ABI's handle contract.
unsafe fn live(a: *const Allocator) -> bool {
    // SAFETY: forwarded contract.
    unsafe { Slot::<()>::get(a, MAGIC) }.is_some()
}

unsafe extern "C" fn alloc(a: *mut Allocator, size: usize) -> *mut c_void {
    // SAFETY: the `allocator_alloc` contract.
    if !unsafe { live(a) } {
        return null_mut();
    }
    // SAFETY: mi_malloc accepts any size (NULL when too large).
    unsafe { mi::mi_malloc(size.max(ALIGN)) }
}

unsafe extern "C" fn free(a: *mut Allocator, p: *mut c_void) {
    // SAFETY: the `allocator_free` contract.
    if unsafe { live(a) } {
        // SAFETY: `p` is NULL or a block from this peer (else undefined, as documented).
        unsafe { mi::mi_free(p) }
    }
}

unsafe extern "C" fn realloc(a: *mut Allocator, p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: the `allocator_realloc` contract.
    if !unsafe { live(a) } {
        return null_mut();
    }
    if size == 0 {
        // The ABI's rule (mi_realloc(p, 0) would return a new small block).
        // SAFETY: as in `free`.
        unsafe { mi::mi_free(p) };
        return null_mut();
    }
    // SAFETY: `p` is NULL or a live block of this peer; on failure mimalloc
    // returns NULL and leaves `p` untouched.
    unsafe { mi::mi_realloc(p, size.max(ALIGN)) }
}

unsafe extern "C" fn alloc_aligned(a: *mut Allocator, size: usize, align: usize) -> *mut c_void {
    // SAFETY: the `allocator_alloc_aligned` contract.
    if !unsafe { live(a) } || !align.is_power_of_two() {
        return null_mut();
    }
    // SAFETY: `align` is a power of two; the result is freed with mi_free.
    unsafe { mi::mi_malloc_aligned(size.max(ALIGN), align.max(ALIGN)) }
}

unsafe extern "C" fn usable_size(a: *const Allocator, p: *const c_void) -> usize {
    // SAFETY: the `allocator_usable_size` contract.
    if !unsafe { live(a) } || p.is_null() {
        return 0;
    }
    // SAFETY: `p` is a live block of this peer.
    unsafe { mi::mi_usable_size(p) }
}

/// mimalloc behind the plugin ABI.
pub fn api() -> PluginApi {
    PluginApi {
        create,
        destroy,
        alloc,
        free,
        realloc: Some(realloc),
        create_with_flags: None,
        alloc_aligned: Some(alloc_aligned),
        usable_size: Some(usable_size),
        stats: None,
        check: None,
        info: None,
        add_region: None,
    }
}

/// The mimalloc peer.
pub fn peer() -> Peer {
    Peer {
        name: "mimalloc",
        api: api(),
        facts: FACTS,
    }
}

//! mimalloc (Microsoft's allocator, through `libmimalloc-sys`, which builds
//! mimalloc v3 from source): `mi_malloc`/`mi_free`/`mi_realloc` called
//! directly, not through `mimalloc::MiMalloc` (whose `GlobalAlloc` goes
//! through `mi_malloc_aligned`).
//!
//! A system allocator, behind the system allocators' one adapter
//! (`system.rs`).
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

use libmimalloc_sys as mi;

use super::system::{self, SystemMalloc};
use super::{ALIGN, Peer};
use crate::allocators::facts::{ReallocKind, TypedFacts};

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

/// mimalloc's calls.
pub struct Mimalloc;

// SAFETY: mimalloc's own functions, with the C library's contracts.
unsafe impl SystemMalloc for Mimalloc {
    const MAGIC: u64 = u64::from_le_bytes(*b"mimalloc");
    const MIN_SIZE: usize = ALIGN;
    unsafe fn malloc(size: usize) -> *mut c_void {
        // SAFETY: forwarded contract.
        unsafe { mi::mi_malloc(size) }
    }
    unsafe fn free(p: *mut c_void) {
        // SAFETY: forwarded contract.
        unsafe { mi::mi_free(p) }
    }
    unsafe fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
        // SAFETY: forwarded contract.
        unsafe { mi::mi_realloc(p, size) }
    }
    unsafe fn aligned(size: usize, align: usize) -> *mut c_void {
        // SAFETY: forwarded contract; freed with mi_free.
        unsafe { mi::mi_malloc_aligned(size, align) }
    }
    unsafe fn usable_size(p: *const c_void) -> usize {
        // SAFETY: forwarded contract.
        unsafe { mi::mi_usable_size(p) }
    }
}

/// The mimalloc peer.
pub fn peer() -> Peer {
    Peer {
        name: "mimalloc",
        api: system::api::<Mimalloc>(),
        facts: FACTS,
    }
}

//! glibc's `malloc`/`free`/`realloc` (through the `libc` crate): the
//! allocator a C program gets by default.
//!
//! A system allocator (`brk`/`mmap`), behind the system allocators' one
//! adapter (`system.rs`).

use std::ffi::c_void;

use super::Peer;
use super::system::{self, SystemMalloc, via_posix_memalign};
use crate::allocators::facts::{ReallocKind, TypedFacts};

/// Documented facts (glibc manual, "Memory Allocation"; malloc(3), mallinfo2(3)).
pub const FACTS: TypedFacts = TypedFacts {
    calls: "malloc(size), free(ptr), realloc(ptr, size)",
    free_needs_size: false,
    realloc: ReallocKind::Native,
    threads: "thread-safe (per-thread arenas and tcache)",
    introspection: "mallinfo2(), malloc_stats(), malloc_info() (XML), malloc_usable_size(ptr)",
    adapter_header: 0,
    uses_arena: false,
};

/// glibc's calls.
pub struct Glibc;

// SAFETY: the C library's own functions, with their contracts.
unsafe impl SystemMalloc for Glibc {
    const MAGIC: u64 = u64::from_le_bytes(*b"glibc\0\0\0");
    // glibc's blocks are all 16-byte aligned.
    const MIN_SIZE: usize = 0;
    unsafe fn malloc(size: usize) -> *mut c_void {
        // SAFETY: forwarded contract.
        unsafe { libc::malloc(size) }
    }
    unsafe fn free(p: *mut c_void) {
        // SAFETY: forwarded contract.
        unsafe { libc::free(p) }
    }
    unsafe fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
        // SAFETY: forwarded contract.
        unsafe { libc::realloc(p, size) }
    }
    unsafe fn aligned(size: usize, align: usize) -> *mut c_void {
        // SAFETY: forwarded contract.
        unsafe { via_posix_memalign(libc::posix_memalign, size, align) }
    }
    unsafe fn usable_size(p: *const c_void) -> usize {
        // SAFETY: forwarded contract.
        unsafe { libc::malloc_usable_size(p.cast_mut()) }
    }
}

/// The glibc peer.
pub fn peer() -> Peer {
    Peer {
        name: "glibc",
        api: system::api::<Glibc>(),
        facts: FACTS,
    }
}

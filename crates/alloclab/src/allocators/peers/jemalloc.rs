//! jemalloc (through `tikv-jemalloc-sys`, which builds jemalloc 5.3 from
//! source): the `_rjem_`-prefixed `malloc`/`free`/`realloc`, so glibc's
//! `malloc` stays the process allocator and the two never mix.
//!
//! A system allocator, behind the system allocators' one adapter
//! (`system.rs`).
//!
//! jemalloc's smallest size class is 8 bytes and its blocks are only 8-byte
//! aligned (`malloc(1..=8)` returns addresses ending in 8 half the time), so
//! the adapter asks for at least [`ALIGN`] bytes: the 16-byte class, whose
//! blocks are 16-byte aligned.

use std::ffi::c_void;

use tikv_jemalloc_sys as je;

use super::system::{self, SystemMalloc, via_posix_memalign};
use super::{ALIGN, Peer};
use crate::allocators::facts::{ReallocKind, TypedFacts};

/// Documented facts (jemalloc(3); `tikv-jemalloc-sys` docs).
pub const FACTS: TypedFacts = TypedFacts {
    calls: "malloc(size), free(ptr), realloc(ptr, size) (here _rjem_-prefixed; also mallocx/sdallocx)",
    free_needs_size: false,
    realloc: ReallocKind::Native,
    threads: "thread-safe (thread caches, several arenas)",
    introspection: "mallctl(\"stats.*\") and malloc_stats_print() (need --enable-stats: tikv-jemalloc-sys feature `stats`, off by default and here), malloc_usable_size(ptr)",
    adapter_header: 0,
    uses_arena: false,
};

/// jemalloc's `_rjem_` calls.
pub struct Jemalloc;

// SAFETY: jemalloc's own functions, with the C library's contracts.
unsafe impl SystemMalloc for Jemalloc {
    const MAGIC: u64 = u64::from_le_bytes(*b"jemalloc");
    const MIN_SIZE: usize = ALIGN;
    unsafe fn malloc(size: usize) -> *mut c_void {
        // SAFETY: forwarded contract.
        unsafe { je::malloc(size) }
    }
    unsafe fn free(p: *mut c_void) {
        // SAFETY: forwarded contract.
        unsafe { je::free(p) }
    }
    unsafe fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
        // SAFETY: forwarded contract.
        unsafe { je::realloc(p, size) }
    }
    unsafe fn aligned(size: usize, align: usize) -> *mut c_void {
        // SAFETY: forwarded contract.
        unsafe { via_posix_memalign(je::posix_memalign, size, align) }
    }
    unsafe fn usable_size(p: *const c_void) -> usize {
        // SAFETY: forwarded contract.
        unsafe { je::malloc_usable_size(p) }
    }
}

/// The jemalloc peer.
pub fn peer() -> Peer {
    Peer {
        name: "jemalloc",
        api: system::api::<Jemalloc>(),
        facts: FACTS,
    }
}

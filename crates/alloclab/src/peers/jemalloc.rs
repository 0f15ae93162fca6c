//! jemalloc (through `tikv-jemalloc-sys`, which builds jemalloc 5.3 from
//! source): the `_rjem_`-prefixed `malloc`/`free`/`realloc`, so glibc's
//! `malloc` stays the process allocator and the two never mix.
//!
//! A system allocator: it takes memory from the OS itself, so the arena holds
//! only the adapter's handle (a magic number). `destroy` cannot free the
//! blocks still live: they stay allocated, like any `malloc`ed memory never
//! freed.
//!
//! jemalloc's smallest size class is 8 bytes and its blocks are only 8-byte
//! aligned (`malloc(1..=8)` returns addresses ending in 8 half the time), so
//! the adapter asks for at least [`ALIGN`] bytes: the 16-byte class, whose
//! blocks are 16-byte aligned.

use std::ffi::c_void;
use std::ptr::null_mut;

use plugin_abi::Allocator;
use plugin_abi::loader::PluginApi;
use tikv_jemalloc_sys as je;

use super::{ALIGN, Peer, Slot};
use crate::facts::{ReallocKind, TypedFacts};

const MAGIC: u64 = u64::from_le_bytes(*b"jemalloc");

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
    // SAFETY: malloc accepts any size (NULL when too large).
    unsafe { je::malloc(size.max(ALIGN)) }
}

unsafe extern "C" fn free(a: *mut Allocator, p: *mut c_void) {
    // SAFETY: the `allocator_free` contract.
    if unsafe { live(a) } {
        // SAFETY: `p` is NULL or a block from this peer (else undefined, as documented).
        unsafe { je::free(p) }
    }
}

unsafe extern "C" fn realloc(a: *mut Allocator, p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: the `allocator_realloc` contract.
    if !unsafe { live(a) } {
        return null_mut();
    }
    if size == 0 {
        // The ABI's rule (jemalloc's own answer depends on opt.zero_realloc).
        // SAFETY: as in `free`.
        unsafe { je::free(p) };
        return null_mut();
    }
    // SAFETY: `p` is NULL or a live block of this peer; on failure jemalloc
    // returns NULL and leaves `p` untouched.
    unsafe { je::realloc(p, size.max(ALIGN)) }
}

unsafe extern "C" fn alloc_aligned(a: *mut Allocator, size: usize, align: usize) -> *mut c_void {
    // SAFETY: the `allocator_alloc_aligned` contract.
    if !unsafe { live(a) } || !align.is_power_of_two() {
        return null_mut();
    }
    let mut p = null_mut();
    // SAFETY: `align` is a power of two and a multiple of sizeof(void *);
    // `p` is a valid out-pointer; the result is freed with `free`.
    match unsafe { je::posix_memalign(&mut p, align.max(ALIGN), size.max(ALIGN)) } {
        0 => p,
        _ => null_mut(),
    }
}

unsafe extern "C" fn usable_size(a: *const Allocator, p: *const c_void) -> usize {
    // SAFETY: the `allocator_usable_size` contract.
    if !unsafe { live(a) } || p.is_null() {
        return 0;
    }
    // SAFETY: `p` is a live block of this peer.
    unsafe { je::malloc_usable_size(p) }
}

/// jemalloc behind the plugin ABI.
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

/// The jemalloc peer.
pub fn peer() -> Peer {
    Peer {
        name: "jemalloc",
        api: api(),
        facts: FACTS,
    }
}

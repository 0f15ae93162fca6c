//! glibc's `malloc`/`free`/`realloc` (through the `libc` crate): the
//! allocator a C program gets by default.
//!
//! A system allocator: it takes memory from the OS itself (`brk`/`mmap`), so
//! the arena holds only the adapter's handle (a magic number). `destroy`
//! cannot free the blocks still live (glibc keeps no list of them for us):
//! they stay allocated, like any `malloc`ed memory never freed.

use std::ffi::c_void;
use std::ptr::null_mut;

use plugin_abi::Allocator;
use plugin_abi::loader::PluginApi;

use super::{ALIGN, Peer, Slot};
use crate::facts::{ReallocKind, TypedFacts};

const MAGIC: u64 = u64::from_le_bytes(*b"glibc\0\0\0");

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
    // SAFETY: malloc accepts any size; 0 gives a unique freeable block.
    unsafe { libc::malloc(size) }
}

unsafe extern "C" fn free(a: *mut Allocator, p: *mut c_void) {
    // SAFETY: the `allocator_free` contract.
    if unsafe { live(a) } {
        // SAFETY: `p` is NULL or a block from this peer (else undefined, as documented).
        unsafe { libc::free(p) }
    }
}

unsafe extern "C" fn realloc(a: *mut Allocator, p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: the `allocator_realloc` contract.
    if !unsafe { live(a) } {
        return null_mut();
    }
    if size == 0 {
        // The ABI's rule (glibc's too): free and return NULL.
        // SAFETY: as in `free`.
        unsafe { libc::free(p) };
        return null_mut();
    }
    // SAFETY: `p` is NULL or a live block of this peer; on failure glibc
    // returns NULL and leaves `p` untouched.
    unsafe { libc::realloc(p, size) }
}

unsafe extern "C" fn alloc_aligned(a: *mut Allocator, size: usize, align: usize) -> *mut c_void {
    // SAFETY: the `allocator_alloc_aligned` contract.
    if !unsafe { live(a) } || !align.is_power_of_two() {
        return null_mut();
    }
    let mut p = null_mut();
    // SAFETY: `align` is a power of two and a multiple of sizeof(void *);
    // `p` is a valid out-pointer.
    match unsafe { libc::posix_memalign(&mut p, align.max(ALIGN), size) } {
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
    unsafe { libc::malloc_usable_size(p.cast_mut()) }
}

/// glibc behind the plugin ABI.
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

/// The glibc peer.
pub fn peer() -> Peer {
    Peer {
        name: "glibc",
        api: api(),
        facts: FACTS,
    }
}

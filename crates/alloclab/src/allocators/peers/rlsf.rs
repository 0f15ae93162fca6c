//! rlsf 0.2: TLSF (two-level segregated fit, Masmano et al. 2004) over the
//! arena, `Tlsf<'static, u32, u32, FLLEN = 24, SLLEN = 32>`.
//!
//! Parameters: rlsf's granularity is 32 bytes and one pool (and so one block)
//! is at most `32 << FLLEN` bytes. `FLLEN = 24` makes that 512 MiB, so every
//! arena from 1 MiB to 256 MiB (the runner's range), and up to 512 MiB, is
//! one pool in which a single block may span all the free memory; a larger
//! arena still works, split by rlsf into 512 MiB pools. `SLLEN = 32` is the
//! classic TLSF second level (SLI = 5 in Masmano's and Conte's C
//! implementations): 32 size classes per power of two, so a search rounds a
//! request up by at most 1/32. The price is the table: `first_free` is
//! FLLEN × SLLEN pointers, 6 KiB (0.6 % of a 1 MiB arena), paid once, in
//! the arena.
//!
//! `deallocate(ptr, align)` and `reallocate(ptr, layout)` need only the
//! alignment, which is always 16 here: no header. rlsf's own `reallocate`
//! resizes in place when the next block is free, else allocates, copies and
//! frees.

use std::alloc::Layout;
use std::ffi::c_void;
use std::ptr::{NonNull, null_mut};

use plugin_abi::Allocator;
use plugin_abi::loader::PluginApi;
use rlsf::Tlsf;

use super::{ALIGN, Peer, Rest, Slot};
use crate::allocators::facts::{ReallocKind, TypedFacts};
use crate::allocators::table;

const MAGIC: u64 = u64::from_le_bytes(*b"rlsf\0\0\0\0");

/// First-level classes: one pool covers up to `32 << FLLEN` bytes (512 MiB).
pub const FLLEN: usize = 24;
/// Second-level classes per first-level class.
pub const SLLEN: usize = 32;

type Inner = Tlsf<'static, u32, u32, FLLEN, SLLEN>;

/// Documented facts (rlsf README and docs).
pub const FACTS: TypedFacts = TypedFacts {
    calls: "Tlsf::<FLBitmap, SLBitmap, FLLEN, SLLEN>::new(), insert_free_block_ptr(pool), allocate(layout), deallocate(ptr, align), reallocate(ptr, new_layout)",
    free_needs_size: false,
    realloc: ReallocKind::Native,
    threads: "Tlsf needs &mut and supports no concurrent access: one external lock per pool (README); GlobalTlsf locks internally",
    introspection: "none (iter_blocks and allocation_usable_size only with the `unstable` feature)",
    adapter_header: 0,
    uses_arena: true,
};

unsafe extern "C" fn create(memory: *mut c_void, size: usize) -> *mut Allocator {
    let setup = |t: &mut Inner, rest: Rest| {
        let Some(start) = NonNull::new(rest.start) else {
            return false;
        };
        let pool = NonNull::slice_from_raw_parts(start, rest.len);
        // SAFETY: the rest of the arena is ours until destroy, and the
        // `Tlsf` lives (in the arena) no longer than that.
        unsafe { t.insert_free_block_ptr(pool) }.is_some()
    };
    // SAFETY: the `allocator_create` contract.
    unsafe { Slot::<Inner>::create(memory, size, MAGIC, Tlsf::new, setup) }
}

unsafe extern "C" fn destroy(a: *mut Allocator) {
    // SAFETY: the `allocator_destroy` contract; the state is all in the arena.
    unsafe { Slot::<Inner>::kill(a, MAGIC) };
}

/// The layout of every rlsf block: `max(size, 1)` bytes, 16-byte aligned.
fn layout(size: usize) -> Option<Layout> {
    Layout::from_size_align(size.max(1), ALIGN).ok()
}

unsafe extern "C" fn alloc(a: *mut Allocator, size: usize) -> *mut c_void {
    // SAFETY: the `allocator_alloc` contract.
    let Some(s) = (unsafe { Slot::<Inner>::get(a, MAGIC) }) else {
        return null_mut();
    };
    let Some(layout) = layout(size) else {
        return null_mut();
    };
    s.run(null_mut(), |t| {
        t.allocate(layout).map_or(null_mut(), |p| p.as_ptr().cast())
    })
}

unsafe extern "C" fn free(a: *mut Allocator, p: *mut c_void) {
    let Some(p) = NonNull::new(p.cast::<u8>()) else {
        return;
    };
    // SAFETY: the `allocator_free` contract.
    let Some(s) = (unsafe { Slot::<Inner>::get(a, MAGIC) }) else {
        return;
    };
    s.run((), |t| {
        // SAFETY: `p` is a live block of this peer (else undefined, as
        // documented), allocated with alignment 16.
        unsafe { t.deallocate(p, ALIGN) }
    })
}

unsafe extern "C" fn realloc(a: *mut Allocator, p: *mut c_void, size: usize) -> *mut c_void {
    let Some(block) = NonNull::new(p.cast::<u8>()) else {
        // SAFETY: forwarded contract.
        return unsafe { alloc(a, size) };
    };
    if size == 0 {
        // SAFETY: forwarded contract.
        unsafe { free(a, p) };
        return null_mut();
    }
    let Some(layout) = layout(size) else {
        return null_mut();
    };
    // SAFETY: the `allocator_realloc` contract.
    let Some(s) = (unsafe { Slot::<Inner>::get(a, MAGIC) }) else {
        return null_mut();
    };
    s.run(null_mut(), |t| {
        // SAFETY: `p` is a live block of this peer, allocated with alignment
        // 16; on failure rlsf returns None and leaves it intact.
        unsafe { t.reallocate(block, layout) }.map_or(null_mut(), |q| q.as_ptr().cast())
    })
}

/// rlsf behind the plugin ABI.
pub fn api() -> PluginApi {
    PluginApi {
        realloc: Some(realloc),
        ..table(create, destroy, alloc, free)
    }
}

/// The rlsf peer.
pub fn peer() -> Peer {
    Peer {
        name: "rlsf",
        api: api(),
        facts: FACTS,
    }
}

//! A bump allocator over the arena: the speed floor. `alloc` rounds the size
//! up to 16 bytes and moves a pointer; `free` does nothing; when the arena is
//! used up, `alloc` returns NULL (memory comes back only with a new
//! `create`). `realloc` resizes the last block in place (grow if it fits,
//! shrink always); any other block is copied to a new one. Since blocks keep
//! no size, the copy takes `min(new size, bytes up to the bump pointer)`:
//! the old contents come first, and the rest is harmless over-copy.
//!
//! Not a crate: a dozen lines written here, so that every figure of the
//! other allocators can be read against "allocation as cheap as it gets".

use std::ffi::{c_int, c_void};
use std::ptr::{self, null_mut};

use plugin_abi::loader::PluginApi;
use plugin_abi::{ALLOCATOR_STAT_UNKNOWN, Allocator, AllocatorStats};

use super::{ALIGN, Peer, Rest, Slot};
use crate::allocators::facts::{ReallocKind, TypedFacts};
use crate::allocators::table;

const MAGIC: u64 = u64::from_le_bytes(*b"bumpbump");

/// The bump allocator's state.
pub(crate) struct Bump {
    /// The size given to `create` (for stats).
    arena_bytes: usize,
    /// First byte handed out (16-byte aligned).
    base: usize,
    /// Next free byte (16-byte aligned).
    top: usize,
    /// One past the last usable byte.
    end: usize,
    /// Start of the block handed out last (0: none), which `realloc` may
    /// resize in place.
    last: usize,
    /// `alloc` calls (and moving reallocs) that succeeded, minus frees.
    live: usize,
    /// Calls answered NULL.
    failed: usize,
}

impl Bump {
    /// Takes `size` bytes (rounded up to 16, at least 16) off the top.
    fn take(&mut self, size: usize) -> Option<usize> {
        let n = size.max(1).checked_next_multiple_of(ALIGN)?;
        if n > self.end - self.top {
            self.failed += 1;
            return None;
        }
        let p = self.top;
        self.top += n;
        self.last = p;
        self.live += 1;
        Some(p)
    }
}

/// Documented facts (of the code above).
pub const FACTS: TypedFacts = TypedFacts {
    calls: "create(memory, size), alloc(size), free(ptr) (does nothing), realloc(ptr, size)",
    free_needs_size: false,
    realloc: ReallocKind::Native,
    threads: "one instance per thread (no lock)",
    introspection: "allocator_stats (exact: bytes used, bytes left, live blocks)",
    adapter_header: 0,
    uses_arena: true,
};

unsafe extern "C" fn create(memory: *mut c_void, size: usize) -> *mut Allocator {
    let setup = |b: &mut Bump, rest: Rest| {
        let base = rest.start as usize;
        let end = base + rest.len / ALIGN * ALIGN;
        *b = Bump {
            arena_bytes: size,
            base,
            top: base,
            end,
            last: 0,
            live: 0,
            failed: 0,
        };
        end > base
    };
    let new = || Bump {
        arena_bytes: 0,
        base: 0,
        top: 0,
        end: 0,
        last: 0,
        live: 0,
        failed: 0,
    };
    // SAFETY: the `allocator_create` contract.
    unsafe { Slot::<Bump>::create(memory, size, MAGIC, new, setup) }
}

unsafe extern "C" fn destroy(a: *mut Allocator) {
    // SAFETY: the `allocator_destroy` contract.
    unsafe { Slot::<Bump>::kill(a, MAGIC) };
}

unsafe extern "C" fn alloc(a: *mut Allocator, size: usize) -> *mut c_void {
    // SAFETY: the `allocator_alloc` contract.
    match unsafe { Slot::<Bump>::get(a, MAGIC) } {
        Some(s) => s.inner.take(size).map_or(null_mut(), |p| p as *mut c_void),
        None => null_mut(),
    }
}

unsafe extern "C" fn free(a: *mut Allocator, p: *mut c_void) {
    // SAFETY: the `allocator_free` contract.
    if let Some(s) = unsafe { Slot::<Bump>::get(a, MAGIC) }
        && !p.is_null()
    {
        s.inner.live = s.inner.live.saturating_sub(1);
    }
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
    let Some(s) = (unsafe { Slot::<Bump>::get(a, MAGIC) }) else {
        return null_mut();
    };
    let b = &mut s.inner;
    let at = p as usize;
    let Some(n) = size.checked_next_multiple_of(ALIGN) else {
        b.failed += 1;
        return null_mut();
    };
    if at == b.last {
        // The last block: resize in place, if it fits.
        if n > b.end - at {
            b.failed += 1;
            return null_mut();
        }
        b.top = at + n;
        return p;
    }
    let old_top = b.top;
    let Some(q) = b.take(size) else {
        return null_mut();
    };
    b.live -= 1;
    let copy = old_top.saturating_sub(at).min(size);
    // SAFETY: `p` is a block of this peer (else undefined, as documented), so
    // `[p, old_top)` is inside the arena; `q` is fresh, above `old_top`.
    unsafe { ptr::copy_nonoverlapping(p.cast::<u8>(), q as *mut u8, copy) };
    q as *mut c_void
}

unsafe extern "C" fn stats(a: *const Allocator, out: *mut AllocatorStats) -> c_int {
    // SAFETY: the `allocator_stats` contract.
    let Some(s) = (unsafe { Slot::<Bump>::get(a, MAGIC) }) else {
        return -1;
    };
    if out.is_null() {
        return -1;
    }
    let b = &s.inner;
    let free = b.end - b.top;
    let st = AllocatorStats {
        arena_bytes: b.arena_bytes,
        // The adapter's state, alignment padding, the tail past the last
        // multiple of 16.
        metadata_bytes: b.arena_bytes - (b.end - b.base),
        bytes_requested: ALLOCATOR_STAT_UNKNOWN,
        bytes_reserved: b.top - b.base,
        bytes_free: free,
        largest_free_block: free,
        live_blocks: b.live,
        failed_allocs: b.failed,
        rejected_frees: 0,
    };
    // SAFETY: `out` is valid for writes (caller's contract).
    unsafe { out.write(st) };
    0
}

/// The bump allocator behind the plugin ABI.
pub fn api() -> PluginApi {
    PluginApi {
        realloc: Some(realloc),
        stats: Some(stats),
        ..table(create, destroy, alloc, free)
    }
}

/// The bump peer.
pub fn peer() -> Peer {
    Peer {
        name: "bump",
        api: api(),
        facts: FACTS,
    }
}

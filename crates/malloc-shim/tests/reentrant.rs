//! A core that panics, with the shim as this test program's global
//! allocator: the panic allocates its payload through the shim while the
//! panicking thread holds the arena's lock. The lock recognises its owner,
//! so those calls are served by mappings of their own instead of
//! deadlocking; the arena is retired and the request served by a mapping of
//! its own.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use malloc_shim::{ArenaAllocator, ForkHandlers, Shim};
use mckusick_karels::McKusickKarels;
use plugin_abi::{AllocatorInfo, AllocatorStats, BadPointer, InvariantViolation, ReallocError};

/// The request size on which the core panics.
const PANIC_SIZE: usize = 777_777;

/// McKusick-Karels, except that it panics on a `PANIC_SIZE` request.
struct Panicky {
    inner: NonNull<McKusickKarels>,
}

impl Panicky {
    fn inner(&mut self) -> &mut McKusickKarels {
        // SAFETY: `inner` lives in the same region as `self`, for as long.
        unsafe { self.inner.as_mut() }
    }
}

impl ArenaAllocator for Panicky {
    const INFO: AllocatorInfo = McKusickKarels::INFO;

    unsafe fn create_in(region: *mut u8, len: usize, flags: u32) -> Option<NonNull<Self>> {
        let pad = region.align_offset(64);
        let skip = pad.checked_add(64)?;
        // SAFETY: the caller's region; `Panicky` fits in the 64 bytes after
        // `pad`, the core gets the rest.
        unsafe {
            let inner = McKusickKarels::create_in(region.add(skip), len.checked_sub(skip)?, flags)?;
            let me = region.add(pad).cast::<Panicky>();
            me.write(Panicky { inner });
            NonNull::new(me)
        }
    }

    fn alloc(&mut self, size: usize) -> Option<NonNull<u8>> {
        assert_ne!(size, PANIC_SIZE, "the test core panics on request");
        self.inner().alloc(size)
    }

    fn alloc_aligned(&mut self, size: usize, align: usize) -> Option<NonNull<u8>> {
        self.inner().alloc_aligned(size, align)
    }

    fn free(&mut self, ptr: NonNull<u8>) -> Result<(), BadPointer> {
        self.inner().free(ptr)
    }

    fn realloc(&mut self, ptr: NonNull<u8>, new_size: usize) -> Result<NonNull<u8>, ReallocError> {
        self.inner().realloc(ptr, new_size)
    }

    fn usable_size(&self, ptr: NonNull<u8>) -> Option<usize> {
        // SAFETY: as in `inner`.
        unsafe { self.inner.as_ref() }.usable_size(ptr)
    }

    fn stats(&self) -> AllocatorStats {
        // SAFETY: as in `inner`.
        unsafe { self.inner.as_ref() }.stats()
    }

    fn check_invariants(&self) -> Result<(), InvariantViolation> {
        // SAFETY: as in `inner`.
        unsafe { self.inner.as_ref() }.check_invariants()
    }
}

unsafe extern "C" fn nop() {}

static SHIM: Shim<Panicky> = Shim::new(
    "panicky",
    0,
    ForkHandlers {
        prepare: nop,
        parent: nop,
        child: nop,
    },
);

struct ViaShim;

// SAFETY: the shim hands out distinct live blocks of the sizes and
// alignments asked for.
unsafe impl GlobalAlloc for ViaShim {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= 16 {
            SHIM.malloc(layout.size()).cast()
        } else {
            SHIM.memalign(layout.align(), layout.size()).cast()
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from `alloc`.
        unsafe { SHIM.free(ptr.cast()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= 16 {
            // SAFETY: `ptr` came from `alloc`.
            unsafe { SHIM.realloc(ptr.cast(), new_size).cast() }
        } else {
            // SAFETY: forwarding the GlobalAlloc contract.
            unsafe {
                let new = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
                if !new.is_null() {
                    core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                new
            }
        }
    }
}

#[global_allocator]
static GLOBAL: ViaShim = ViaShim;

#[test]
fn a_core_panic_retires_its_arena_and_nothing_deadlocks() {
    let before_data: Vec<String> = (0..1000).map(|i| format!("block {i}")).collect();
    let before = SHIM.stats();
    assert!(before.arenas >= 1, "this test runs on the shim: {before:?}");

    let p = SHIM.malloc(PANIC_SIZE);
    assert!(
        !p.is_null(),
        "the request is served by a mapping of its own"
    );
    let after = SHIM.stats();
    assert_eq!(after.core_panics, before.core_panics + 1, "{after:?}");
    assert!(
        after.reentrant > before.reentrant,
        "the panic's own allocations re-entered the shim: {after:?}"
    );
    assert!(after.large_allocs > before.large_allocs, "{after:?}");

    // The program goes on: new blocks, and old blocks of the retired arena
    // (freed into it: left alone).
    let more: Vec<Vec<u64>> = (0..2000).map(|i| vec![i; (i % 50) as usize]).collect();
    assert_eq!(more[1999].len(), 1999 % 50);
    assert_eq!(before_data[999], "block 999");
    assert!(
        SHIM.stats().arenas > before.arenas,
        "a new arena replaced the retired one"
    );
    drop(before_data);
    // SAFETY: a live block of the shim.
    unsafe { SHIM.free(p) };
}

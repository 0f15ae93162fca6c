//! The C layer's fast paths reach the core at the handle's address plus 64
//! without loading `Handle::core`: only when `create_in` put the core
//! right after the handle. A core placed elsewhere in its region is served
//! by the full paths, through the stored pointer, and gets the same answers.

use core::ptr::NonNull;

use plugin_abi::{
    ALLOCATOR_ABI_VERSION, AllocatorInfo, AllocatorStats, ArenaAllocator, BadPointer,
    InvariantViolation, ReallocError,
};

/// A bump allocator whose state lies `GAP` bytes into its region, which
/// counts the calls of its fast paths and of its full ones.
struct Bump<const GAP: usize> {
    base: *mut u8,
    used: usize,
    len: usize,
    fast_calls: usize,
    full_calls: usize,
}

impl<const GAP: usize> Bump<GAP> {
    fn take(&mut self, size: usize) -> Option<NonNull<u8>> {
        let n = size.max(1).next_multiple_of(16);
        (self.used + n <= self.len).then(|| {
            // SAFETY: inside the region.
            let p = unsafe { self.base.add(self.used) };
            self.used += n;
            NonNull::new(p).unwrap()
        })
    }
}

impl<const GAP: usize> ArenaAllocator for Bump<GAP> {
    const INFO: AllocatorInfo = AllocatorInfo {
        abi_version: ALLOCATOR_ABI_VERSION,
        supported_flags: 0,
        properties: 0,
        reserved: 0,
        name: c"bump".as_ptr(),
        description: c"bump, state GAP bytes into the region".as_ptr(),
        complexity: c"O(1)".as_ptr(),
        alignment: 16,
        min_block: 16,
        min_arena: 4096,
    };

    unsafe fn create_in(region: *mut u8, len: usize, _flags: u32) -> Option<NonNull<Self>> {
        // SAFETY: the region is ours and large (the test's arena).
        unsafe {
            let state = region.add(GAP).cast::<Self>();
            state.write(Bump {
                base: region.add(GAP + 128),
                used: 0,
                len: len - GAP - 128,
                fast_calls: 0,
                full_calls: 0,
            });
            NonNull::new(state)
        }
    }

    fn alloc(&mut self, size: usize) -> Option<NonNull<u8>> {
        self.full_calls += 1;
        self.take(size)
    }

    fn alloc_fast(&mut self, size: usize) -> Option<NonNull<u8>> {
        self.fast_calls += 1;
        self.take(size)
    }

    fn free_fast(&mut self, ptr: *mut u8) -> bool {
        self.fast_calls += 1;
        !ptr.is_null()
    }

    fn alloc_aligned(&mut self, size: usize, _align: usize) -> Option<NonNull<u8>> {
        self.alloc(size)
    }

    fn free(&mut self, _ptr: NonNull<u8>) -> Result<(), BadPointer> {
        self.full_calls += 1;
        Ok(())
    }

    fn realloc(&mut self, _ptr: NonNull<u8>, _new: usize) -> Result<NonNull<u8>, ReallocError> {
        Err(ReallocError::OutOfMemory)
    }

    fn usable_size(&self, _ptr: NonNull<u8>) -> Option<usize> {
        None
    }

    fn stats(&self) -> AllocatorStats {
        AllocatorStats::default()
    }

    fn check_invariants(&self) -> Result<(), InvariantViolation> {
        Ok(())
    }
}

/// Creates a `Bump<GAP>` in a fresh arena, allocates and frees one block,
/// and returns the core's `(fast_calls, full_calls)`.
fn calls<const GAP: usize>() -> (usize, usize) {
    let mut arena = vec![0u64; 8192];
    let mem = arena.as_mut_ptr().cast::<core::ffi::c_void>();
    // SAFETY: the arena is ours for the whole test and outlives the handle.
    unsafe {
        let a = plugin_abi::ffi::create::<Bump<GAP>>(mem, 8192 * 8, 0);
        assert!(!a.is_null());
        let p = plugin_abi::ffi::alloc::<Bump<GAP>>(a, 100);
        assert!(!p.is_null());
        plugin_abi::ffi::free::<Bump<GAP>>(a, p);
        // The core is the first thing after the 64-byte handle's padding:
        // find it through the handle's stored pointer (its third word).
        let core = *a.cast::<*const Bump<GAP>>().add(2);
        assert_eq!(
            core.addr() == a.addr() + 64,
            GAP == 0,
            "core at the region's start iff GAP is 0"
        );
        let r = ((*core).fast_calls, (*core).full_calls);
        plugin_abi::ffi::destroy::<Bump<GAP>>(a);
        r
    }
}

#[test]
fn a_core_right_after_the_handle_takes_the_fast_paths() {
    assert_eq!(calls::<0>(), (2, 0));
}

#[test]
fn a_core_apart_from_the_handle_takes_the_full_paths() {
    assert_eq!(calls::<64>(), (0, 2));
}

//! The [`ArenaAllocator`] implementation: what the generic C layer
//! (`arena_api::export_plugin!`), the `GlobalAlloc` adapter
//! (`arena_api::global_arena!`) and the test kit call.

use core::ptr::NonNull;

use arena_api::{
    ALLOCATOR_ABI_VERSION, ALLOCATOR_ALIGNMENT, ALLOCATOR_FLAG_FAITHFUL,
    ALLOCATOR_FLAG_RETURN_PAGES, ALLOCATOR_PROP_NO_BLOCK_HEADER, ALLOCATOR_PROP_NO_SYSCALLS,
    ALLOCATOR_PROP_REALLOC_IN_PLACE, ALLOCATOR_PROP_REJECTS_BAD_FREE,
    ALLOCATOR_PROP_STATE_IN_ARENA, AddRegionError, AllocatorInfo, AllocatorStats, ArenaAllocator,
    BadPointer, InvariantViolation, ReallocError,
};

use crate::allocator::{Config, McKusickKarels, PageReturn};
use crate::bucket::MINALLOCSIZE;

/// The C layer puts a 64-byte handle, 64-aligned, before the core's region:
/// at most 48 bytes of padding for 16-byte aligned memory.
const C_HANDLE_WORST: usize = 48 + arena_api::C_HANDLE_BYTES;

/// The smallest arena `allocator_create` always accepts for 16-byte aligned
/// memory: the handle, the state, one descriptor, the worst padding to a
/// 4 KiB page boundary and one page.
pub const MIN_ARENA: usize = C_HANDLE_WORST + McKusickKarels::min_region(4096);

impl ArenaAllocator for McKusickKarels {
    const INFO: AllocatorInfo = AllocatorInfo {
        abi_version: ALLOCATOR_ABI_VERSION,
        supported_flags: ALLOCATOR_FLAG_RETURN_PAGES | ALLOCATOR_FLAG_FAITHFUL,
        properties: ALLOCATOR_PROP_STATE_IN_ARENA
            | ALLOCATOR_PROP_NO_BLOCK_HEADER
            | ALLOCATOR_PROP_REJECTS_BAD_FREE
            | ALLOCATOR_PROP_REALLOC_IN_PLACE
            | ALLOCATOR_PROP_NO_SYSCALLS,
        reserved: 0,
        name: c"mckusick-karels".as_ptr(),
        description: c"McKusick-Karels (4.4BSD kernel malloc): power-of-two buckets up to two pages, size from a per-page kmemusage table, larger requests as page runs with boundary tags".as_ptr(),
        complexity: c"alloc O(1) (refill O(objects per page)); free O(1) (page return O(objects per page)); page runs O(1) typical".as_ptr(),
        alignment: ALLOCATOR_ALIGNMENT,
        min_block: MINALLOCSIZE,
        min_arena: MIN_ARENA,
    };

    unsafe fn create_in(region: *mut u8, len: usize, flags: u32) -> Option<NonNull<Self>> {
        let page_return = match flags {
            0 => PageReturn::Hysteresis,
            ALLOCATOR_FLAG_RETURN_PAGES => PageReturn::Eager,
            ALLOCATOR_FLAG_FAITHFUL => PageReturn::Never,
            _ => return None,
        };
        let config = Config {
            page_return,
            ..Config::default()
        };
        // SAFETY: the caller's contract is `create`'s.
        unsafe { McKusickKarels::create(region, len, config) }.ok()
    }

    // Always: the C layer calls it inside `catch_unwind`, where LLVM
    // otherwise keeps it out of line (one more call per allocation).
    #[inline(always)]
    fn alloc(&mut self, size: usize) -> Option<NonNull<u8>> {
        self.malloc(size)
    }

    #[inline]
    fn alloc_many(&mut self, size: usize, n: usize, out: impl FnMut(NonNull<u8>)) -> usize {
        self.malloc_many(size, n, out)
    }

    #[inline(always)]
    fn alloc_fast(&mut self, size: usize) -> Option<NonNull<u8>> {
        self.malloc_fast(size)
    }

    #[inline(always)]
    fn free_fast(&mut self, ptr: *mut u8) -> bool {
        McKusickKarels::free_fast(self, ptr)
    }

    fn alloc_aligned(&mut self, size: usize, align: usize) -> Option<NonNull<u8>> {
        self.malloc_aligned(size, align)
    }

    // Always: as for `alloc`.
    #[inline(always)]
    fn free(&mut self, ptr: NonNull<u8>) -> Result<(), BadPointer> {
        McKusickKarels::free(self, ptr)
    }

    fn realloc(&mut self, ptr: NonNull<u8>, new_size: usize) -> Result<NonNull<u8>, ReallocError> {
        McKusickKarels::realloc(self, ptr, new_size)
    }

    fn usable_size(&self, ptr: NonNull<u8>) -> Option<usize> {
        McKusickKarels::usable_size(self, ptr)
    }

    fn stats(&self) -> AllocatorStats {
        McKusickKarels::stats(self)
    }

    fn check_invariants(&self) -> Result<(), InvariantViolation> {
        McKusickKarels::check_invariants(self)
    }

    fn free_list_repairs(&self) -> usize {
        McKusickKarels::free_list_repairs(self)
    }

    fn discardable(&self, page: usize, min_len: usize, f: &mut dyn FnMut(NonNull<u8>, usize)) {
        McKusickKarels::discardable(self, page, min_len, f)
    }

    fn release_cached(&mut self) -> usize {
        McKusickKarels::release_cached(self)
    }

    unsafe fn add_region(&mut self, region: *mut u8, len: usize) -> Result<(), AddRegionError> {
        // SAFETY: the trait's contract is `add_region`'s.
        unsafe { McKusickKarels::add_region(self, region, len) }
    }
}

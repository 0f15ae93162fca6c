//! The C types of `include/allocator.h`, with the same layout.
//!
//! A test (`tests/c_layout.rs`) compiles a C program against the header and
//! checks every size and field offset here against it.

use core::ffi::{c_char, c_int, c_void};

/// Version of the ABI; `AllocatorInfo::abi_version` carries it.
pub const ALLOCATOR_ABI_VERSION: u32 = 1;

/// Every block handed out by a plugin of this project is aligned to this.
pub const ALLOCATOR_ALIGNMENT: usize = 16;

/// Creation flag: every call takes an internal spin lock (thread-safe instance).
pub const ALLOCATOR_FLAG_LOCKED: u32 = 0x1;
/// Creation flag (McKusick-Karels): give a bucket's page back to the page pool
/// as soon as all its objects are free (the default returns the empty ones
/// when a request for pages would otherwise fail).
pub const ALLOCATOR_FLAG_RETURN_PAGES: u32 = 0x2;
/// Creation flag (McKusick-Karels): the strictly faithful 4.4BSD behaviour,
/// bucket pages are never given back.
pub const ALLOCATOR_FLAG_FAITHFUL: u32 = 0x4;

/// `allocator_check`: every invariant holds, but a corrupt free-list link
/// was found earlier (a write into a freed block) and the list rebuilt.
pub const ALLOCATOR_CHECK_REPAIRED: i32 = -3;

/// `AllocatorStats::bytes_requested` of an allocator that keeps no per-block
/// record of the size asked for.
pub const ALLOCATOR_STAT_UNKNOWN: usize = usize::MAX;

/// Property: all state lives inside the arena.
pub const ALLOCATOR_PROP_STATE_IN_ARENA: u32 = 0x1;
/// Property: no per-block header, a 2^k request costs exactly 2^k bytes.
pub const ALLOCATOR_PROP_NO_BLOCK_HEADER: u32 = 0x2;
/// Property: bad and double frees are detected and rejected.
pub const ALLOCATOR_PROP_REJECTS_BAD_FREE: u32 = 0x4;
/// Property: realloc resizes in place when it can.
pub const ALLOCATOR_PROP_REALLOC_IN_PLACE: u32 = 0x8;
/// Property: no system call after create.
pub const ALLOCATOR_PROP_NO_SYSCALLS: u32 = 0x10;

/// The opaque `Allocator` of the C header: a handle that points into the arena.
#[repr(C)]
pub struct Allocator {
    _opaque: [u8; 0],
}

/// `AllocatorStats` of the C header: a snapshot of an allocator's accounting.
///
/// At any time `metadata_bytes + bytes_reserved + bytes_free == arena_bytes`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocatorStats {
    /// Size given to `allocator_create`.
    pub arena_bytes: usize,
    /// Held by the allocator itself: state, tables, bitmaps, padding, unusable tail.
    pub metadata_bytes: usize,
    /// Sum of the sizes asked for by live blocks, or [`ALLOCATOR_STAT_UNKNOWN`].
    pub bytes_requested: usize,
    /// Sum of the sizes of live blocks (what the allocator holds for them).
    pub bytes_reserved: usize,
    /// In free blocks, free objects and free pages.
    pub bytes_free: usize,
    /// The largest `allocator_alloc` that would succeed now.
    pub largest_free_block: usize,
    /// Blocks handed out and not yet freed.
    pub live_blocks: usize,
    /// Alloc/realloc calls answered NULL since create.
    pub failed_allocs: usize,
    /// Free/realloc calls given a pointer that is not a live block.
    pub rejected_frees: usize,
}

impl AllocatorStats {
    /// Adds the accounting of another region of the same allocator (one
    /// given by `add_region`): its bytes and live blocks, and its largest
    /// free block if larger. The failure counters are the allocator's, not
    /// a region's: they are left alone.
    ///
    /// # Time complexity
    ///
    /// O(1).
    pub fn add_region(&mut self, region: &AllocatorStats) {
        self.arena_bytes += region.arena_bytes;
        self.metadata_bytes += region.metadata_bytes;
        self.bytes_reserved += region.bytes_reserved;
        self.bytes_free += region.bytes_free;
        self.largest_free_block = self.largest_free_block.max(region.largest_free_block);
        self.live_blocks += region.live_blocks;
    }

    /// True when the three parts of the arena add up to the whole.
    pub fn adds_up(&self) -> bool {
        self.metadata_bytes
            .checked_add(self.bytes_reserved)
            .and_then(|s| s.checked_add(self.bytes_free))
            == Some(self.arena_bytes)
    }
}

/// `AllocatorInfo` of the C header: a static description of a plugin.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct AllocatorInfo {
    /// [`ALLOCATOR_ABI_VERSION`].
    pub abi_version: u32,
    /// `ALLOCATOR_FLAG_*` bits accepted at creation.
    pub supported_flags: u32,
    /// `ALLOCATOR_PROP_*` bits.
    pub properties: u32,
    /// Zero.
    pub reserved: u32,
    /// Short name, NUL-terminated, static.
    pub name: *const c_char,
    /// One line: the algorithm.
    pub description: *const c_char,
    /// One line: time complexity of alloc and free.
    pub complexity: *const c_char,
    /// Every block is aligned to this.
    pub alignment: usize,
    /// The smallest block: `alloc(1)` holds this much.
    pub min_block: usize,
    /// The smallest arena `allocator_create` accepts (16-byte aligned memory).
    pub min_arena: usize,
}

// SAFETY: the three pointers point to static, immutable, NUL-terminated
// strings (the only way this crate builds an `AllocatorInfo`), which any
// thread may read.
unsafe impl Sync for AllocatorInfo {}
// SAFETY: as for `Sync`: the pointees are static and immutable.
unsafe impl Send for AllocatorInfo {}

/// `allocator_create`.
pub type CreateFn = unsafe extern "C" fn(*mut c_void, usize) -> *mut Allocator;
/// `allocator_create_with_flags`.
pub type CreateWithFlagsFn = unsafe extern "C" fn(*mut c_void, usize, u32) -> *mut Allocator;
/// `allocator_destroy`.
pub type DestroyFn = unsafe extern "C" fn(*mut Allocator);
/// `allocator_alloc`.
pub type AllocFn = unsafe extern "C" fn(*mut Allocator, usize) -> *mut c_void;
/// `allocator_free`.
pub type FreeFn = unsafe extern "C" fn(*mut Allocator, *mut c_void);
/// `allocator_realloc`.
pub type ReallocFn = unsafe extern "C" fn(*mut Allocator, *mut c_void, usize) -> *mut c_void;
/// `allocator_alloc_aligned`.
pub type AllocAlignedFn = unsafe extern "C" fn(*mut Allocator, usize, usize) -> *mut c_void;
/// `allocator_usable_size`.
pub type UsableSizeFn = unsafe extern "C" fn(*const Allocator, *const c_void) -> usize;
/// `allocator_stats`.
pub type StatsFn = unsafe extern "C" fn(*const Allocator, *mut AllocatorStats) -> c_int;
/// `allocator_check`.
pub type CheckFn = unsafe extern "C" fn(*const Allocator) -> c_int;
/// `allocator_add_region`.
pub type AddRegionFn = unsafe extern "C" fn(*mut Allocator, *mut c_void, usize) -> c_int;
/// `allocator_info`.
pub type InfoFn = unsafe extern "C" fn() -> *const AllocatorInfo;

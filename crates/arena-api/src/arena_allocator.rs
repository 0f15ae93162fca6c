//! The Rust face of an allocator core: what the generic C layer, the
//! `GlobalAlloc` adapter and the test kit call.

use core::fmt;
use core::ptr::NonNull;

use crate::types::{AllocatorInfo, AllocatorStats};

/// A pointer given to `free`/`realloc`/`usable_size` that is not the start of
/// a live block of this allocator: outside the arena, interior, misaligned or
/// already freed. The allocator changed nothing (but its rejected-free count).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadPointer;

impl fmt::Display for BadPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not the start of a live block of this allocator")
    }
}

impl core::error::Error for BadPointer {}

/// Why a `realloc` answered no. In both cases the old block is untouched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReallocError {
    /// The pointer is not a live block (counted as a rejected free).
    BadPointer,
    /// No room for the new size (counted as a failed allocation).
    OutOfMemory,
}

impl fmt::Display for ReallocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReallocError::BadPointer => BadPointer.fmt(f),
            ReallocError::OutOfMemory => f.write_str("out of memory"),
        }
    }
}

impl core::error::Error for ReallocError {}

/// Why [`ArenaAllocator::add_region`] refused a region. The allocator is
/// unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddRegionError {
    /// The region is null, wraps around the address space, or cannot hold
    /// the bookkeeping of a region and one block.
    TooSmall,
    /// The region overlaps memory the allocator already manages.
    Overlaps,
    /// This allocator cannot take more memory after creation.
    Unsupported,
}

impl fmt::Display for AddRegionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddRegionError::TooSmall => "region too small for its bookkeeping and one block",
            AddRegionError::Overlaps => "region overlaps memory the allocator already manages",
            AddRegionError::Unsupported => "this allocator cannot take more memory",
        })
    }
}

impl core::error::Error for AddRegionError {}

/// A broken invariant found by [`ArenaAllocator::check_invariants`]: its
/// message, kept in a fixed buffer (no allocation, so a check can run inside
/// a global allocator or a kernel), cut at [`InvariantViolation::CAPACITY`]
/// bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct InvariantViolation {
    len: u8,
    buf: [u8; InvariantViolation::CAPACITY],
}

impl InvariantViolation {
    /// The longest message kept; a longer one is cut (at a character
    /// boundary). Small enough for `Result<(), InvariantViolation>` to stay
    /// cheap to return (clippy's `result_large_err`: 128 bytes).
    pub const CAPACITY: usize = 120;

    /// The violation with the formatted message `args` (see [`crate::ensure!`]).
    ///
    /// # Time complexity
    ///
    /// O(message length).
    pub fn new(args: fmt::Arguments<'_>) -> Self {
        let mut v = InvariantViolation {
            len: 0,
            buf: [0; Self::CAPACITY],
        };
        // Our `write_str` never fails: it cuts instead.
        let _ = fmt::write(&mut v, args);
        v
    }

    /// The message.
    pub fn message(&self) -> &str {
        // `write_str` only ever appends whole characters.
        core::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Write for InvariantViolation {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let len = usize::from(self.len);
        let mut n = s.len().min(Self::CAPACITY - len);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.buf[len..len + n].copy_from_slice(&s.as_bytes()[..n]);
        // At most CAPACITY < 256.
        self.len = (len + n) as u8;
        Ok(())
    }
}

impl From<&str> for InvariantViolation {
    fn from(message: &str) -> Self {
        InvariantViolation::new(format_args!("{message}"))
    }
}

impl fmt::Debug for InvariantViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("InvariantViolation")
            .field(&self.message())
            .finish()
    }
}

impl fmt::Display for InvariantViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl core::error::Error for InvariantViolation {}

/// Returns `Err(InvariantViolation)` with a formatted message when `cond` is false.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::InvariantViolation::new(format_args!($($fmt)+)));
        }
    };
}

/// An allocator whose whole state lives inside the region it manages.
///
/// The contract mirrors `include/allocator.h`; the generic layer
/// (`plugin_abi::ffi`) adds only what is the same for every allocator (NULL
/// arguments, the `realloc(NULL, n)` / `realloc(p, 0)` rules, locking,
/// catching panics).
///
/// Every method validates its pointer argument before it reads through it, so
/// none is `unsafe` to call once the allocator exists: a wrong pointer is
/// answered with [`BadPointer`] and changes nothing.
pub trait ArenaAllocator: Sized {
    /// The static description `allocator_info()` returns.
    const INFO: AllocatorInfo;

    /// Places a new allocator inside `[region, region + len)` and returns a
    /// pointer to its state, which lives in that region (as do all its
    /// tables). `flags` are the `ALLOCATOR_FLAG_*` bits other than
    /// `ALLOCATOR_FLAG_LOCKED`; unknown bits give `None`, as does a region too
    /// small for the state and one block.
    ///
    /// # Safety
    ///
    /// `region` must be valid for reads and writes of `len` bytes, for as
    /// long as the returned allocator (or any block from it) is used, and
    /// nothing else may access it meanwhile except through handed-out blocks.
    ///
    /// # Time complexity
    ///
    /// O(metadata size): the tables are initialised.
    unsafe fn create_in(region: *mut u8, len: usize, flags: u32) -> Option<NonNull<Self>>;

    /// A block of at least `size` bytes (`size` 0 counts as 1), aligned to
    /// 16 bytes, or `None` (counted in `failed_allocs`).
    fn alloc(&mut self, size: usize) -> Option<NonNull<u8>>;

    /// A block of at least `size` bytes aligned to `align`, a power of two;
    /// `None` if `align` is not one or there is no room.
    fn alloc_aligned(&mut self, size: usize, align: usize) -> Option<NonNull<u8>>;

    /// Up to `n` blocks of at least `size` bytes each, handed to `out` one
    /// by one: the blocks, in the order, that `n` calls of
    /// [`ArenaAllocator::alloc`] would give, stopping where one of them
    /// would fail (and counting that failure in `failed_allocs`, as it
    /// would). Returns how many `out` got. For a caller that takes blocks in
    /// batches (the malloc shims' thread-cache refills): an implementation
    /// may carve them cheaper than one `alloc` each. The default calls
    /// `alloc` `n` times.
    ///
    /// # Time complexity
    ///
    /// At most `n` times that of `alloc`.
    #[inline(always)]
    fn alloc_many(&mut self, size: usize, n: usize, mut out: impl FnMut(NonNull<u8>)) -> usize {
        let mut got = 0;
        while got < n {
            match self.alloc(size) {
                Some(p) => {
                    out(p);
                    got += 1;
                }
                None => break,
            }
        }
        got
    }

    /// Gives back the block starting at `ptr`, or rejects `ptr` (counted in
    /// `rejected_frees`) and changes nothing else.
    fn free(&mut self, ptr: NonNull<u8>) -> Result<(), BadPointer>;

    /// The common case of [`ArenaAllocator::alloc`], for the C layer's fast
    /// path: a block as `alloc` would give, or `None` when `alloc` itself
    /// must be called, in which case nothing was changed. It must not panic
    /// (the C layer calls it outside `catch_unwind`): an implementation keeps
    /// to code that cannot. The default always answers `None`.
    ///
    /// # Time complexity
    ///
    /// O(1).
    #[inline(always)]
    fn alloc_fast(&mut self, size: usize) -> Option<NonNull<u8>> {
        let _ = size;
        None
    }

    /// The common case of [`ArenaAllocator::free`], for the C layer's fast
    /// path: `true` when the block at `ptr` was live and is now freed,
    /// `false` when `free` itself must be called (a pointer to reject
    /// included), in which case nothing was changed. `ptr` may be null (the
    /// C layer tests for NULL after the fast path declines): the answer is
    /// then `false`. Must not panic, as [`ArenaAllocator::alloc_fast`]. The
    /// default always answers `false`.
    ///
    /// # Time complexity
    ///
    /// O(1).
    #[inline(always)]
    fn free_fast(&mut self, ptr: *mut u8) -> bool {
        let _ = ptr;
        false
    }

    /// Resizes the block at `ptr` to hold `new_size` bytes (`new_size` 0
    /// counts as 1), in place where possible, keeping its first
    /// `min(old, new)` bytes. On error the old block is untouched.
    fn realloc(&mut self, ptr: NonNull<u8>, new_size: usize) -> Result<NonNull<u8>, ReallocError>;

    /// The size of the live block at `ptr` (at least what was asked), or
    /// `None` if `ptr` is not the start of a live block. Counts nothing.
    fn usable_size(&self, ptr: NonNull<u8>) -> Option<usize>;

    /// The accounting of the allocator's own region (the generic layer adds
    /// its handle to `arena_bytes` and `metadata_bytes`).
    fn stats(&self) -> AllocatorStats;

    /// Walks the whole state and checks every invariant.
    fn check_invariants(&self) -> Result<(), InvariantViolation>;

    /// Gives the allocator more memory: `[region, region + len)`, of any
    /// size and alignment, anywhere but in memory it already manages. Its
    /// bookkeeping goes inside the new region too; `stats().arena_bytes`
    /// grows by `len`. The default refuses ([`AddRegionError::Unsupported`]).
    ///
    /// # Safety
    ///
    /// As for [`ArenaAllocator::create_in`]: `region` must be valid for reads
    /// and writes of `len` bytes for as long as the allocator (or any block
    /// from it) is used, and nothing else may access it meanwhile except
    /// through handed-out blocks. (Overlap with the allocator's own memory
    /// is checked; overlap with anything else is the caller's business.)
    ///
    /// # Time complexity
    ///
    /// Up to the implementation; the cores of this project: O(len / page)
    /// (the new region's tables are initialised) plus O(regions).
    unsafe fn add_region(&mut self, region: *mut u8, len: usize) -> Result<(), AddRegionError> {
        let _ = (region, len);
        Err(AddRegionError::Unsupported)
    }

    /// Corrupt free-list links found (writes into freed blocks) and
    /// repaired since creation; `allocator_check` reports them as
    /// `ALLOCATOR_CHECK_REPAIRED`. 0 for an allocator that keeps no count.
    fn free_list_repairs(&self) -> usize {
        0
    }

    /// Free memory that may be given back to the operating system: calls
    /// `f(start, len)` for ranges of whole pages (`page`, a power of two, is
    /// the caller's page size: `start` and `len` are multiples of it) that
    /// lie in free memory and hold none of the allocator's own data, so that
    /// their contents may be discarded (`madvise(MADV_DONTNEED)`: they then
    /// read as zero) while the allocator goes on working: it writes such a
    /// range before it reads it, and hands its bytes out only as new blocks.
    /// Ranges shorter than `min_len` may be left out. The ranges are valid
    /// until the allocator is next called.
    ///
    /// Used by a caller that owns the pages (the malloc shims) to return
    /// freed memory to the kernel. The default reports nothing, which is
    /// always correct.
    ///
    /// # Time complexity
    ///
    /// Up to the implementation; the cores of this project walk only their
    /// free lists of blocks of at least `min_len` bytes.
    fn discardable(&self, page: usize, min_len: usize, f: &mut dyn FnMut(NonNull<u8>, usize)) {
        let _ = (page, min_len, f);
    }

    /// Gives back to the allocator's general free memory what it keeps set
    /// aside for reuse by one size (the McKusick-Karels buckets' empty page
    /// runs in its default mode), so that other sizes can use it and
    /// [`ArenaAllocator::discardable`] reports it. Returns the bytes given
    /// back. Nothing live moves and nothing is lost; the next requests of
    /// those sizes take fresh runs again. Called by a caller that trims
    /// (the malloc shims' periodic trim and `malloc_trim`). The default
    /// keeps nothing aside and returns 0.
    ///
    /// # Time complexity
    ///
    /// Up to the implementation; McKusick-Karels: O(1) when no `free`
    /// emptied a run since its last search, otherwise O(pages).
    fn release_cached(&mut self) -> usize {
        0
    }
}

/// The whole pages of `[start, start + len)`: `start` rounded up and the end
/// rounded down to `page` (a power of two); `None` if no whole page is left.
/// A helper for [`ArenaAllocator::discardable`] implementations.
///
/// # Time complexity
///
/// O(1).
#[inline]
pub fn whole_pages(start: usize, len: usize, page: usize) -> Option<(usize, usize)> {
    let mask = page.wrapping_sub(1);
    let s = start.checked_add(mask)? & !mask;
    let e = start.checked_add(len)? & !mask;
    (e > s).then(|| (s, e - s))
}

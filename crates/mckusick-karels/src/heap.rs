//! [`Heap`]: a safe owner of an allocator over a borrowed byte slice.

use core::alloc::Layout;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

use arena_api::AddRegionError;

use crate::allocator::{Config, CreateError, McKusickKarels};

/// A McKusick-Karels allocator over a borrowed region. It dereferences to
/// [`McKusickKarels`], whose methods (`malloc`, `free`, `realloc`,
/// `usable_size`, `stats`, `check_invariants`) are all safe: a pointer the
/// allocator did not hand out is rejected, never trusted.
///
/// Writing through the returned pointers is up to the caller (`unsafe`, as
/// for any raw allocation): each block is valid for its usable size until it
/// is freed or the heap is dropped.
///
/// ```
/// use mckusick_karels::{Config, Heap};
///
/// let mut region = vec![0u8; 256 << 10];
/// let mut heap = Heap::new(&mut region, Config::default()).unwrap();
///
/// let p = heap.malloc(100).unwrap();          // served by the 128-byte bucket
/// assert_eq!(heap.usable_size(p), Some(128));
/// let q = heap.malloc(20_000).unwrap();       // > MAXALLOCSAVE: 5 whole pages
/// assert_eq!(heap.usable_size(q), Some(5 * 4096));
///
/// heap.free(p).unwrap();
/// assert!(heap.free(p).is_err());             // a double free is rejected
/// let q = heap.realloc(q, 30_000).unwrap();   // grows in place into free pages
/// heap.free(q).unwrap();
///
/// let s = heap.stats();
/// assert_eq!(s.live_blocks, 0);
/// assert_eq!(s.rejected_frees, 1);
/// assert_eq!(s.metadata_bytes + s.bytes_reserved + s.bytes_free, s.arena_bytes);
/// heap.check_invariants().unwrap();
/// ```
pub struct Heap<'a> {
    core: NonNull<McKusickKarels>,
    _region: PhantomData<&'a mut [u8]>,
}

// SAFETY: the heap owns its region exclusively (a `&'a mut` borrow) and all
// its state lives there; nothing is tied to a thread.
unsafe impl Send for Heap<'_> {}

impl<'a> Heap<'a> {
    /// An allocator over `region`, which it borrows for its lifetime (the
    /// blocks it hands out point into it).
    ///
    /// # Time complexity
    ///
    /// O(pages): the descriptor table is zeroed.
    pub fn new(region: &'a mut [u8], config: Config) -> Result<Heap<'a>, CreateError> {
        // SAFETY: the slice is valid for reads and writes and borrowed
        // exclusively for `'a`, as long as the heap lives.
        let core = unsafe { McKusickKarels::create(region.as_mut_ptr(), region.len(), config)? };
        Ok(Heap {
            core,
            _region: PhantomData,
        })
    }

    /// More pages: `region`, borrowed for as long as the heap (see
    /// [`McKusickKarels::add_region`]). On error the region is not used.
    ///
    /// ```
    /// use mckusick_karels::{Config, Heap};
    ///
    /// let mut first = vec![0u8; 16 << 10];
    /// let mut second = vec![0u8; 64 << 10];
    /// let mut heap = Heap::new(&mut first, Config::default()).unwrap();
    /// assert!(heap.malloc(32 << 10).is_none());
    /// heap.add_region(&mut second).unwrap();
    /// let p = heap.malloc(32 << 10).unwrap();
    /// heap.free(p).unwrap();
    /// assert_eq!(heap.stats().arena_bytes, 80 << 10);
    /// ```
    ///
    /// # Time complexity
    ///
    /// O(pages of `region`) plus O(regions).
    pub fn add_region(&mut self, region: &'a mut [u8]) -> Result<(), AddRegionError> {
        // SAFETY: the slice is valid for reads and writes and borrowed
        // exclusively for `'a`, as long as the heap lives.
        unsafe { McKusickKarels::add_region(self, region.as_mut_ptr(), region.len()) }
    }

    /// A block for `layout` (its size, aligned to its alignment), or `None`.
    ///
    /// # Time complexity
    ///
    /// As [`McKusickKarels::malloc_aligned`].
    pub fn alloc_layout(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        if layout.align() <= 16 {
            self.malloc(layout.size())
        } else {
            self.malloc_aligned(layout.size(), layout.align())
        }
    }

    /// A zero-filled block of at least `size` bytes, or `None`.
    ///
    /// # Time complexity
    ///
    /// As [`McKusickKarels::malloc`], plus O(size) to zero it.
    pub fn calloc(&mut self, size: usize) -> Option<NonNull<u8>> {
        let p = self.malloc(size)?;
        // SAFETY: the block is live and holds at least `size` bytes.
        unsafe { p.as_ptr().write_bytes(0, size) };
        Some(p)
    }
}

impl Deref for Heap<'_> {
    type Target = McKusickKarels;

    fn deref(&self) -> &McKusickKarels {
        // SAFETY: `core` points to the live allocator in the borrowed region.
        unsafe { self.core.as_ref() }
    }
}

impl DerefMut for Heap<'_> {
    fn deref_mut(&mut self) -> &mut McKusickKarels {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference.
        unsafe { self.core.as_mut() }
    }
}

impl core::fmt::Debug for Heap<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Heap")
            .field("config", &self.config())
            .field("stats", &self.stats())
            .finish()
    }
}

//! What the shadow model drives: an allocator seen through the C semantics of
//! `include/allocator.h`, whether called as a Rust core or through a loaded
//! plugin's function pointers.

#[cfg(feature = "plugin")]
use core::ffi::c_void;
use core::ptr::{self, NonNull};

use plugin_abi::{ALLOCATOR_ALIGNMENT, AddRegionError, AllocatorStats, ArenaAllocator};

/// An allocator under test, with the header's semantics: NULL for "cannot",
/// `realloc(NULL, n)` allocates, `realloc(p, 0)` frees, bad pointers are
/// rejected.
pub trait Target {
    /// `allocator_alloc`.
    fn alloc(&mut self, size: usize) -> *mut u8;
    /// `allocator_alloc_aligned`.
    fn alloc_aligned(&mut self, size: usize, align: usize) -> *mut u8;
    /// `allocator_free`.
    fn free(&mut self, p: *mut u8);
    /// `allocator_realloc`.
    fn realloc(&mut self, p: *mut u8, size: usize) -> *mut u8;
    /// `allocator_usable_size` (0: not a live block).
    fn usable_size(&self, p: *mut u8) -> usize;
    /// `allocator_stats`.
    fn stats(&self) -> AllocatorStats;
    /// `allocator_check` / `check_invariants`.
    fn check(&self) -> Result<(), String>;
    /// `allocator_add_region` / `add_region`: `Some(true)` if the region was
    /// taken, `Some(false)` if refused, `None` if the allocator cannot take
    /// memory after creation.
    ///
    /// # Safety
    ///
    /// `start` is valid for reads and writes of `len` bytes for as long as
    /// the allocator is used, and used by nothing else.
    unsafe fn add_region(&mut self, start: *mut u8, len: usize) -> Option<bool>;
}

/// A Rust allocator core, called directly.
pub struct CoreTarget<A>(pub NonNull<A>);

impl<A: ArenaAllocator> CoreTarget<A> {
    fn core(&self) -> &A {
        // SAFETY: the pointer came from `create_in` on an arena that outlives
        // this target (the driver's contract), and the target is the only
        // user of the allocator.
        unsafe { self.0.as_ref() }
    }

    fn core_mut(&mut self) -> &mut A {
        // SAFETY: as in `core`; `&mut self` makes this the only reference.
        unsafe { self.0.as_mut() }
    }
}

fn raw(p: Option<NonNull<u8>>) -> *mut u8 {
    p.map_or(ptr::null_mut(), NonNull::as_ptr)
}

impl<A: ArenaAllocator> Target for CoreTarget<A> {
    fn alloc(&mut self, size: usize) -> *mut u8 {
        raw(self.core_mut().alloc(size))
    }

    fn alloc_aligned(&mut self, size: usize, align: usize) -> *mut u8 {
        raw(self.core_mut().alloc_aligned(size, align))
    }

    fn free(&mut self, p: *mut u8) {
        if let Some(p) = NonNull::new(p) {
            let _ = self.core_mut().free(p);
        }
    }

    fn realloc(&mut self, p: *mut u8, size: usize) -> *mut u8 {
        match NonNull::new(p) {
            None => self.alloc(size),
            Some(p) if size == 0 => {
                let _ = self.core_mut().free(p);
                ptr::null_mut()
            }
            Some(p) => raw(self.core_mut().realloc(p, size).ok()),
        }
    }

    fn usable_size(&self, p: *mut u8) -> usize {
        NonNull::new(p)
            .and_then(|p| self.core().usable_size(p))
            .unwrap_or(0)
    }

    fn stats(&self) -> AllocatorStats {
        self.core().stats()
    }

    fn check(&self) -> Result<(), String> {
        self.core().check_invariants().map_err(|e| e.to_string())
    }

    unsafe fn add_region(&mut self, start: *mut u8, len: usize) -> Option<bool> {
        // SAFETY: the caller's contract is the core's.
        match unsafe { self.core_mut().add_region(start, len) } {
            Ok(()) => Some(true),
            Err(AddRegionError::Unsupported) => None,
            Err(AddRegionError::TooSmall | AddRegionError::Overlaps) => Some(false),
        }
    }
}

/// A plugin's C functions on one `Allocator *`.
#[cfg(feature = "plugin")]
pub struct PluginTarget<'a> {
    /// The plugin's functions.
    pub api: &'a plugin_abi::loader::PluginApi,
    /// The allocator they act on.
    pub allocator: *mut plugin_abi::Allocator,
}

#[cfg(feature = "plugin")]
impl Target for PluginTarget<'_> {
    fn alloc(&mut self, size: usize) -> *mut u8 {
        // SAFETY: `allocator` is a live handle of this plugin (driver's contract).
        unsafe { (self.api.alloc)(self.allocator, size) }.cast()
    }

    fn alloc_aligned(&mut self, size: usize, align: usize) -> *mut u8 {
        let f = self
            .api
            .alloc_aligned
            .expect("plugin lacks allocator_alloc_aligned");
        // SAFETY: as in `alloc`.
        unsafe { f(self.allocator, size, align) }.cast()
    }

    fn free(&mut self, p: *mut u8) {
        // SAFETY: as in `alloc`; bad pointers are part of the contract.
        unsafe { (self.api.free)(self.allocator, p.cast::<c_void>()) }
    }

    fn realloc(&mut self, p: *mut u8, size: usize) -> *mut u8 {
        let f = self.api.realloc.expect("plugin lacks allocator_realloc");
        // SAFETY: as in `free`.
        unsafe { f(self.allocator, p.cast(), size) }.cast()
    }

    fn usable_size(&self, p: *mut u8) -> usize {
        let f = self
            .api
            .usable_size
            .expect("plugin lacks allocator_usable_size");
        // SAFETY: as in `free`.
        unsafe { f(self.allocator, p.cast()) }
    }

    fn stats(&self) -> AllocatorStats {
        let f = self.api.stats.expect("plugin lacks allocator_stats");
        let mut s = AllocatorStats::default();
        // SAFETY: as in `alloc`; `s` is a valid out-pointer.
        let rc = unsafe { f(self.allocator, &mut s) };
        assert_eq!(rc, 0, "allocator_stats failed on a live allocator");
        s
    }

    fn check(&self) -> Result<(), String> {
        let f = self.api.check.expect("plugin lacks allocator_check");
        // SAFETY: as in `alloc`.
        match unsafe { f(self.allocator) } {
            0 => Ok(()),
            rc => Err(format!("allocator_check returned {rc}")),
        }
    }

    unsafe fn add_region(&mut self, start: *mut u8, len: usize) -> Option<bool> {
        let f = self.api.add_region?;
        // SAFETY: as in `alloc`; the region's contract is the caller's.
        match unsafe { f(self.allocator, start.cast(), len) } {
            0 => Some(true),
            -1 => Some(false),
            rc => panic!("allocator_add_region returned {rc} on a live allocator"),
        }
    }
}

/// Alignment every block must have.
pub const MIN_ALIGN: usize = ALLOCATOR_ALIGNMENT;

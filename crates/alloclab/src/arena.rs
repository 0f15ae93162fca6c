//! Arenas: pages obtained from the kernel with `mmap`, as the brief asks
//! ("before use, each allocator is initialised with free pages obtained from
//! the kernel").

use std::ffi::c_void;
use std::ptr::{NonNull, null_mut};

use anyhow::{Context, Result, bail};
use rustix::mm::{MapFlags, ProtFlags, mmap_anonymous, munmap};

/// An anonymous private mapping, pre-faulted (every page touched once before
/// any measurement, so no page fault lands in a timed region), unmapped on drop.
pub struct Arena {
    ptr: NonNull<u8>,
    len: usize,
}

impl Arena {
    /// Maps `len` bytes (rounded up to whole pages by the kernel) and touches
    /// every page.
    pub fn map(len: usize) -> Result<Arena> {
        if len == 0 {
            bail!("an arena of 0 bytes cannot be mapped");
        }
        // SAFETY: an anonymous mapping at an address of the kernel's choosing
        // aliases nothing.
        let p = unsafe {
            mmap_anonymous(
                null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE | MapFlags::POPULATE,
            )
        }
        .with_context(|| format!("mmap of a {len}-byte arena"))?;
        let ptr = NonNull::new(p.cast::<u8>()).context("mmap returned NULL")?;
        let arena = Arena { ptr, len };
        arena.prefault();
        Ok(arena)
    }

    /// Writes one byte per page: MAP_POPULATE already faulted them in, this
    /// makes sure (and dirties them, so no copy-on-write zero page remains).
    pub fn prefault(&self) {
        let page = rustix::param::page_size();
        for off in (0..self.len).step_by(page) {
            // SAFETY: `off < len`, inside the mapping.
            unsafe { self.ptr.as_ptr().add(off).write_volatile(0) };
        }
    }

    /// The first byte.
    pub fn as_ptr(&self) -> *mut c_void {
        self.ptr.as_ptr().cast()
    }

    /// Length in bytes, as asked.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `[start, end)` as addresses.
    pub fn bounds(&self) -> (usize, usize) {
        let lo = self.ptr.as_ptr() as usize;
        (lo, lo + self.len)
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: the mapping was made in `map` with this length and nothing
        // refers to it any more (allocators on it are destroyed first).
        let _ = unsafe { munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

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

/// The memory this machine can give a new arena now (`MemAvailable` of
/// `/proc/meminfo`), if known.
pub fn available_memory() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: usize = info
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// Refuses an arena that is empty or larger than the memory available: a
/// pre-faulted arena is all resident, and one beyond the machine's memory
/// would bring the out-of-memory killer rather than an error.
pub fn check_size(len: usize) -> Result<()> {
    if len == 0 {
        bail!("an arena of 0 bytes cannot be mapped");
    }
    if let Some(avail) = available_memory()
        && len > avail
    {
        bail!(
            "an arena of {len} bytes ({:.1} GiB) is more than the memory available on this machine ({:.1} GiB)",
            len as f64 / (1u64 << 30) as f64,
            avail as f64 / (1u64 << 30) as f64
        );
    }
    Ok(())
}

impl Arena {
    /// Maps `len` bytes (rounded up to whole pages by the kernel) and touches
    /// every page.
    pub fn map(len: usize) -> Result<Arena> {
        check_size(len)?;
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

    /// Maps `len` bytes starting at a multiple of `align` (a power of two, at
    /// least a page) and touches every page: `align + len` bytes are mapped
    /// and the parts before and after the aligned range unmapped. Where the
    /// kernel puts a mapping changes from run to run (ASLR, other mappings),
    /// and an allocator that carves its arena into naturally aligned blocks
    /// (the buddy system) fits more or less in it depending on the address's
    /// alignment: `alloclab compare` maps its arenas aligned to their size
    /// rounded up to a power of two, so that its figures do not depend on the
    /// run.
    pub fn map_aligned(len: usize, align: usize) -> Result<Arena> {
        let page = rustix::param::page_size();
        check_size(len)?;
        if !align.is_power_of_two() || align < page {
            bail!("cannot map {len} bytes aligned to {align}");
        }
        let len = len.div_ceil(page) * page;
        let total = len
            .checked_add(align)
            .context("arena size overflows with its alignment")?;
        // SAFETY: an anonymous mapping at an address of the kernel's choosing
        // aliases nothing.
        let p = unsafe {
            mmap_anonymous(
                null_mut(),
                total,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        }
        .with_context(|| format!("mmap of a {len}-byte arena aligned to {align}"))?;
        let start = p.addr();
        let aligned = start.next_multiple_of(align);
        let head = aligned - start;
        let tail = total - head - len;
        // SAFETY: `[start, start + head)` and `[aligned + len, start + total)`
        // are parts of the mapping just made, used by nothing.
        unsafe {
            if head > 0 {
                munmap(p, head).context("munmap of an arena's head")?;
            }
            if tail > 0 {
                munmap(p.cast::<u8>().add(head + len).cast(), tail)
                    .context("munmap of an arena's tail")?;
            }
        }
        // SAFETY: `aligned` is inside the mapping, non-null.
        let ptr = unsafe { NonNull::new_unchecked(p.cast::<u8>().add(head)) };
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

    /// Length in bytes, as asked (by [`Arena::map_aligned`]: rounded up to
    /// whole pages).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_arenas_are_aligned_and_writable() {
        for (len, align) in [(1 << 20, 1 << 20), (3 << 20, 4 << 20), (5000, 1 << 16)] {
            let a = Arena::map_aligned(len, align).unwrap();
            assert_eq!(a.as_ptr().addr() % align, 0, "{len} aligned to {align}");
            assert!(a.len() >= len);
            // SAFETY: inside the mapping.
            unsafe { a.as_ptr().cast::<u8>().add(a.len() - 1).write(7) };
        }
        assert!(Arena::map_aligned(4096, 3).is_err());
        assert!(Arena::map_aligned(0, 4096).is_err());
    }
}

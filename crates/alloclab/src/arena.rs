//! Arenas: pages obtained from the kernel with `mmap`, as the brief asks
//! ("before use, each allocator is initialised with free pages obtained from
//! the kernel").

use std::ffi::c_void;
use std::ptr::{NonNull, null_mut};

use anyhow::{Context, Result, bail};
use rustix::mm::{MapFlags, MprotectFlags, ProtFlags, mmap_anonymous, mprotect, munmap};

/// Bytes of inaccessible address space on each side of every arena: a
/// plugin that reads or writes just outside its arena faults at once, and
/// the fault's address says how far outside (`postmortem.rs`).
pub const GUARD_BYTES: usize = 64 << 10;

/// The byte the unused tail of an arena's last page holds, so that a write
/// there shows ([`Arena::changed_beyond`]).
const CANARY: u8 = 0xA5;

/// An anonymous private mapping, pre-faulted (every page touched once before
/// any measurement, so no page fault lands in a timed region), between two
/// guard regions of [`GUARD_BYTES`] that nothing may touch; unmapped on drop.
pub struct Arena {
    ptr: NonNull<u8>,
    len: usize,
    /// The readable and writable bytes: `len` rounded up to whole pages.
    body: usize,
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

/// Reserves `bytes` bytes of inaccessible address space (an arena, its
/// guards and any slack for alignment); returns its start.
fn reserve(bytes: usize) -> Result<*mut u8> {
    // SAFETY: an anonymous mapping at an address of the kernel's choosing
    // aliases nothing; PROT_NONE with MAP_NORESERVE takes no memory.
    let p = unsafe {
        mmap_anonymous(
            null_mut(),
            bytes,
            ProtFlags::empty(),
            MapFlags::PRIVATE | MapFlags::NORESERVE,
        )
    }
    .with_context(|| format!("reserving {bytes} bytes of address space for an arena"))?;
    Ok(p.cast())
}

impl Arena {
    /// Maps `len` bytes (rounded up to whole pages) between guard regions
    /// and touches every page.
    pub fn map(len: usize) -> Result<Arena> {
        check_size(len)?;
        let page = rustix::param::page_size();
        let body = len.div_ceil(page) * page;
        let base = reserve(body + 2 * GUARD_BYTES)?;
        // SAFETY: `base + GUARD_BYTES` is inside the reservation just made.
        let start = unsafe { base.add(GUARD_BYTES) };
        Arena::open(start, len, body)
    }

    /// Makes `[start, start + body)`, a part of a reservation that nothing
    /// else uses, readable and writable, and touches it.
    fn open(start: *mut u8, len: usize, body: usize) -> Result<Arena> {
        // SAFETY: the range lies inside a reservation of ours.
        unsafe {
            mprotect(
                start.cast(),
                body,
                MprotectFlags::READ | MprotectFlags::WRITE,
            )
        }
        .with_context(|| format!("making a {len}-byte arena writable"))?;
        let ptr = NonNull::new(start).context("an arena at address 0")?;
        let arena = Arena { ptr, len, body };
        arena.prefault();
        arena.mark_beyond(len);
        Ok(arena)
    }

    /// Maps `len` bytes (rounded up to whole pages) starting at a multiple
    /// of `align` (a power of two, at least a page), between guard regions,
    /// and touches every page: the address space around the aligned range
    /// is reserved and the parts outside it and its guards given back.
    /// Where the kernel puts a mapping changes from run to run (ASLR, other
    /// mappings), and an allocator that carves its arena into naturally
    /// aligned blocks (the buddy system) fits more or less in it depending
    /// on the address's alignment: `alloclab compare` maps its arenas aligned
    /// to their size rounded up to a power of two, so that its figures do
    /// not depend on the run.
    pub fn map_aligned(len: usize, align: usize) -> Result<Arena> {
        let page = rustix::param::page_size();
        check_size(len)?;
        if !align.is_power_of_two() || align < page {
            bail!("cannot map {len} bytes aligned to {align}");
        }
        let len = len.div_ceil(page) * page;
        let total = len
            .checked_add(align)
            .and_then(|t| t.checked_add(2 * GUARD_BYTES))
            .context("arena size overflows with its alignment")?;
        let base = reserve(total)?;
        let start = (base.addr() + GUARD_BYTES).next_multiple_of(align);
        let head = start - GUARD_BYTES - base.addr();
        let tail = total - head - len - 2 * GUARD_BYTES;
        // SAFETY: `[base, base + head)` and the `tail` bytes after the upper
        // guard are parts of the reservation just made, used by nothing.
        unsafe {
            if head > 0 {
                munmap(base.cast(), head).context("munmap of an arena's head")?;
            }
            if tail > 0 {
                munmap(base.add(total - tail).cast(), tail).context("munmap of an arena's tail")?;
            }
        }
        // SAFETY: `start` is inside the reservation, after its lower guard.
        Arena::open(unsafe { base.add(head + GUARD_BYTES) }, len, len)
    }

    /// Writes one byte per page: dirties them all, so no page fault and no
    /// copy-on-write zero page remains for a timed region.
    pub fn prefault(&self) {
        let page = rustix::param::page_size();
        for off in (0..self.body).step_by(page) {
            // SAFETY: `off < body`, inside the mapping.
            unsafe { self.ptr.as_ptr().add(off).write_volatile(0) };
        }
    }

    /// Fills the arena's bytes from `used` to the end of its last page with
    /// a marker: an allocator created on `[start, start + used)` must leave
    /// them alone ([`Arena::changed_beyond`]).
    pub fn mark_beyond(&self, used: usize) {
        let from = used.min(self.body);
        // SAFETY: `[from, body)` is inside the mapping.
        unsafe {
            self.ptr
                .as_ptr()
                .add(from)
                .write_bytes(CANARY, self.body - from)
        };
    }

    /// The offset (from `start + used`) of the first byte beyond `used` that
    /// lost the marker of [`Arena::mark_beyond`], if one did: an allocator
    /// created on the first `used` bytes wrote outside them.
    pub fn changed_beyond(&self, used: usize) -> Option<usize> {
        let from = used.min(self.body);
        // SAFETY: `[from, body)` is inside the mapping, initialised.
        let rest =
            unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(from), self.body - from) };
        rest.iter().position(|&b| b != CANARY)
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
        // SAFETY: the arena and its guards are one reservation of ours, of
        // this extent, and nothing refers to it any more (allocators on it
        // are destroyed first).
        let _ = unsafe {
            munmap(
                self.ptr.as_ptr().sub(GUARD_BYTES).cast(),
                self.body + 2 * GUARD_BYTES,
            )
        };
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

    #[test]
    fn the_bytes_after_an_arena_show_a_write() {
        let a = Arena::map(5000).unwrap();
        assert_eq!(a.changed_beyond(5000), None);
        // SAFETY: byte 5003 is in the arena's last page.
        unsafe { a.as_ptr().cast::<u8>().add(5003).write(1) };
        assert_eq!(a.changed_beyond(5000), Some(3));
        a.mark_beyond(100);
        assert_eq!(a.changed_beyond(100), None);
    }

    /// The guard pages: a child process touching the byte after the arena,
    /// or the one before it, dies of SIGSEGV.
    #[test]
    fn guards_surround_every_arena() {
        for (aligned, offset) in [(false, 0isize), (false, -1), (true, 0), (true, -1)] {
            let a = if aligned {
                Arena::map_aligned(1 << 16, 1 << 16)
            } else {
                Arena::map(1 << 16)
            }
            .unwrap();
            let at = if offset < 0 { -1 } else { a.len() as isize };
            // SAFETY: the arena and its guards are mapped.
            let outside = unsafe { a.as_ptr().cast::<u8>().offset(at) };
            // SAFETY: fork in a test; the child only stores a byte (which
            // faults) and exits, calling nothing that may take a lock.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                // SAFETY: deliberately outside the arena, in a guard.
                unsafe {
                    outside.write_volatile(1);
                    libc::_exit(0)
                };
            }
            let mut status = 0;
            // SAFETY: waiting for our child.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            assert!(
                libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSEGV,
                "aligned {aligned}, offset {offset}: status {status:#x}"
            );
        }
    }
}

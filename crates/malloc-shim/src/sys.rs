//! The few system services the shim uses, as thin wrappers over libc
//! functions that never allocate: anonymous `mmap`/`munmap`/`mremap`,
//! `madvise`, the futex, the monotonic clock (vDSO), `errno`, `write(2)`,
//! `getenv`, `abort`.
//!
//! Nothing here panics: arithmetic is checked and failures come back as
//! `None`/`false`.

use core::ffi::{CStr, c_void};
use core::ptr::{self, NonNull};
use core::sync::atomic::AtomicU32;

/// The page size the shim assumes (x86_64 and aarch64 Linux with 4 KiB pages;
/// [`page_size_ok`] checks it at start-up).
pub const PAGE: usize = 4096;

/// True when the kernel's page size is [`PAGE`].
pub fn page_size_ok() -> bool {
    // SAFETY: sysconf has no preconditions and does not allocate.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p) == Ok(PAGE)
}

/// `n` rounded up to a multiple of `align` (a power of two), or `None` on overflow.
#[inline]
pub const fn round_up(n: usize, align: usize) -> Option<usize> {
    match n.checked_add(align.wrapping_sub(1)) {
        Some(m) => Some(m & !align.wrapping_sub(1)),
        None => None,
    }
}

/// Maps `len` bytes of fresh zeroed read-write memory, or `None`.
///
/// `noreserve` adds `MAP_NORESERVE` (for arenas: only touched pages matter).
pub fn map(len: usize, noreserve: bool) -> Option<NonNull<u8>> {
    let flags =
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | if noreserve { libc::MAP_NORESERVE } else { 0 };
    // SAFETY: an anonymous mapping at an address the kernel chooses touches
    // no existing memory.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        None
    } else {
        NonNull::new(p.cast())
    }
}

/// Maps `len` bytes (a multiple of [`PAGE`]) aligned to `align` (a power of
/// two, at least [`PAGE`]): over-maps `len + align` and unmaps the excess at
/// both ends.
///
/// # Time complexity
///
/// Three system calls at most; no page is touched.
pub fn map_aligned(len: usize, align: usize, noreserve: bool) -> Option<NonNull<u8>> {
    let total = len.checked_add(align)?;
    let raw = map(total, noreserve)?;
    let start = raw.as_ptr() as usize;
    let aligned = round_up(start, align)?;
    let head = aligned.wrapping_sub(start);
    let tail = total.wrapping_sub(head).wrapping_sub(len);
    // SAFETY: `[start, start + head)` and `[aligned + len, aligned + len +
    // tail)` are the two ends of the mapping just made, used by nothing.
    unsafe {
        if head != 0 {
            unmap(raw.as_ptr(), head);
        }
        if tail != 0 {
            unmap(aligned.wrapping_add(len) as *mut u8, tail);
        }
    }
    NonNull::new(aligned as *mut u8)
}

/// Unmaps `[p, p + len)`.
///
/// # Safety
///
/// The range is a mapping (or part of one) this crate made, and nothing uses
/// it any more.
pub unsafe fn unmap(p: *mut u8, len: usize) {
    // SAFETY: caller's contract. munmap fails only on bad arguments, which
    // the caller's contract excludes; there is nothing to do about it then.
    unsafe { libc::munmap(p.cast::<c_void>(), len) };
}

/// Gives the pages of `[p, p + len)` back to the kernel
/// (`madvise(MADV_DONTNEED)`): the range stays mapped and reads as zero
/// afterwards; touching it again faults in fresh pages. True on success.
///
/// # Safety
///
/// The range (page-aligned) lies in a private anonymous mapping this crate
/// made, and nothing relies on its contents any more.
pub unsafe fn discard(p: *mut u8, len: usize) -> bool {
    // SAFETY: caller's contract.
    unsafe { libc::madvise(p.cast::<c_void>(), len, libc::MADV_DONTNEED) == 0 }
}

/// Asks the kernel to back `[p, p + len)` with transparent huge pages
/// (`madvise(MADV_HUGEPAGE)`; this machine's default, `madvise` mode, gives
/// them only to ranges that ask): one page fault per 2 MiB instead of 512.
/// A hint: false if the kernel said no, and nothing changes.
///
/// # Safety
///
/// `[p, p + len)` is a mapping of ours.
pub unsafe fn want_huge_pages(p: *mut u8, len: usize) -> bool {
    // SAFETY: caller's contract; the advice changes no contents.
    unsafe { libc::madvise(p.cast::<c_void>(), len, libc::MADV_HUGEPAGE) == 0 }
}

/// Milliseconds of `CLOCK_MONOTONIC_COARSE` (read from the vDSO: no system
/// call, a few nanoseconds; resolution a few milliseconds).
pub fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    u64::try_from(ts.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1000)
        .saturating_add(u64::try_from(ts.tv_nsec).unwrap_or(0) / 1_000_000)
}

/// Writes `msg` to stderr and aborts the process (`SIGABRT`), as glibc does
/// on a corrupted heap.
#[inline] // compiled beside the callers: see "The library's own memory" in lib.rs
pub fn die(msg: &[u8]) -> ! {
    write_all(2, msg);
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

/// The next definition of symbol `name` after the calling library
/// (`dlsym(RTLD_NEXT, name)`), or null. `dlsym` may itself call `malloc`
/// (glibc allocates only on errors): callers must be re-entrant.
pub fn next_symbol(name: &CStr) -> *mut c_void {
    // SAFETY: a NUL-terminated name; RTLD_NEXT is a valid pseudo-handle.
    unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) }
}

/// Grows or shrinks the mapping `[p, p + old)` to `new` bytes without moving
/// it; false if the pages after it are taken.
///
/// # Safety
///
/// `[p, p + old)` is a whole mapping this crate made.
pub unsafe fn remap_in_place(p: *mut u8, old: usize, new: usize) -> bool {
    // SAFETY: caller's contract; flags 0: the mapping may not move.
    let q = unsafe { libc::mremap(p.cast::<c_void>(), old, new, 0) };
    q != libc::MAP_FAILED
}

/// Moves the pages of the mapping `[p, p + old)` to `[dst, dst + new)`,
/// which replaces the mapping there (no copy: page tables move). True on
/// success; on failure nothing changed.
///
/// # Safety
///
/// `[p, p + old)` is a whole mapping this crate made, `[dst, dst + new)` a
/// mapping this crate made and nothing uses, and the two do not overlap.
pub unsafe fn remap_to(p: *mut u8, old: usize, new: usize, dst: *mut u8) -> bool {
    // SAFETY: caller's contract.
    let q = unsafe {
        libc::mremap(
            p.cast::<c_void>(),
            old,
            new,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            dst.cast::<c_void>(),
        )
    };
    q != libc::MAP_FAILED
}

/// Sets the calling thread's `errno`.
#[inline]
pub fn set_errno(e: i32) {
    // SAFETY: `__errno_location` returns the calling thread's errno slot,
    // valid for the thread's lifetime.
    unsafe { *libc::__errno_location() = e };
}

/// The calling thread's identity: its `pthread_t` (the address of its
/// thread control block), never 0. Does not allocate.
#[inline]
pub fn thread_id() -> usize {
    // SAFETY: pthread_self has no preconditions.
    let t = unsafe { libc::pthread_self() } as usize;
    t.max(1)
}

/// Waits while `*word == expected`, at most `timeout` (futex wait, private).
pub fn futex_wait_for(word: &AtomicU32, expected: u32, timeout: core::time::Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().try_into().unwrap_or(libc::time_t::MAX),
        tv_nsec: timeout.subsec_nanos().into(),
    };
    // SAFETY: FUTEX_WAIT_PRIVATE reads the 4-byte word, valid for the call,
    // and the relative timeout `ts`, which lives on this stack frame.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            &raw const ts,
        );
    }
}

/// Wakes one waiter of `word`.
pub fn futex_wake_one(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only uses the address as a key.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        );
    }
}

/// Writes all of `bytes` to `fd` (retrying on `EINTR` and short writes);
/// false on error.
#[inline] // compiled beside the callers: see "The library's own memory" in lib.rs
pub fn write_all(fd: i32, mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is valid for reads of its length.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        match usize::try_from(n) {
            Ok(0) => return false,
            Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
            Err(_) => {
                // SAFETY: as in `set_errno`.
                if unsafe { *libc::__errno_location() } != libc::EINTR {
                    return false;
                }
            }
        }
    }
    true
}

/// The value of environment variable `name`, if set (no copy, no allocation).
pub fn getenv(name: &CStr) -> Option<&'static CStr> {
    // SAFETY: getenv reads the environment without allocating; the string
    // it returns lives as long as the environment entry, which this process
    // does not change after start-up (the usual assumption of getenv users).
    unsafe {
        let v = libc::getenv(name.as_ptr());
        if v.is_null() {
            None
        } else {
            Some(CStr::from_ptr(v))
        }
    }
}

/// Parses a small decimal number (no sign, at most 9 digits).
pub fn parse_small(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 9 {
        return None;
    }
    let mut n = 0usize;
    for &c in s {
        let d = c.checked_sub(b'0').filter(|d| *d < 10)?;
        n = n.checked_mul(10)?.checked_add(usize::from(d))?;
    }
    Some(n)
}

/// Number of CPUs this process may run on (`sched_getaffinity`), at least 1.
pub fn cpus() -> usize {
    // SAFETY: `cpu_set_t` is plain data; all zeroes is an empty set.
    let mut set: libc::cpu_set_t = unsafe { core::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size given.
    let r =
        unsafe { libc::sched_getaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return 1;
    }
    // SAFETY: `set` was filled by the kernel.
    let n = unsafe { libc::CPU_COUNT(&set) };
    usize::try_from(n).unwrap_or(1).max(1)
}

/// A fixed-size text buffer on the stack, for messages written with
/// [`write_all`] where `format!` (which allocates) may not be used.
pub struct LineBuf {
    buf: [u8; 512],
    len: usize,
}

impl Default for LineBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl LineBuf {
    /// An empty line.
    pub const fn new() -> Self {
        LineBuf {
            buf: [0; 512],
            len: 0,
        }
    }

    /// Appends `s` (truncated when the buffer is full).
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    /// Appends raw bytes (truncated when the buffer is full).
    pub fn bytes(&mut self, s: &[u8]) -> &mut Self {
        for &b in s {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len = self.len.wrapping_add(1);
            }
        }
        self
    }

    /// Appends `n` in decimal.
    pub fn num(&mut self, mut n: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i = i.wrapping_sub(1);
            if let Some(d) = digits.get_mut(i) {
                *d = b'0'.wrapping_add((n % 10) as u8);
            }
            n /= 10;
            if n == 0 || i == 0 {
                break;
            }
        }
        self.bytes(digits.get(i..).unwrap_or_default())
    }

    /// The text so far.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_and_parsing() {
        assert_eq!(round_up(1, 4096), Some(4096));
        assert_eq!(round_up(4096, 4096), Some(4096));
        assert_eq!(round_up(0, 16), Some(0));
        assert_eq!(round_up(usize::MAX, 4096), None);
        assert_eq!(parse_small(b"8"), Some(8));
        assert_eq!(parse_small(b"12"), Some(12));
        assert_eq!(parse_small(b""), None);
        assert_eq!(parse_small(b"x1"), None);
        assert_eq!(parse_small(b"1234567890"), None);
    }

    #[test]
    fn line_buffer_formats_numbers() {
        let mut l = LineBuf::new();
        l.str("a=")
            .num(0)
            .str(" b=")
            .num(1234567)
            .str(" c=")
            .num(u64::MAX);
        assert_eq!(l.as_bytes(), b"a=0 b=1234567 c=18446744073709551615");
        let mut l = LineBuf::new();
        for _ in 0..100 {
            l.str("0123456789");
        }
        assert_eq!(l.as_bytes().len(), 512);
    }

    #[test]
    fn aligned_mappings_are_aligned() {
        assert!(page_size_ok());
        let align = 64 << 20;
        let p = map_aligned(1 << 20, align, true).unwrap();
        assert_eq!(p.as_ptr() as usize % align, 0);
        // SAFETY: the mapping is ours and 1 MiB long.
        unsafe {
            p.as_ptr().write(1);
            p.as_ptr().add((1 << 20) - 1).write(2);
            assert!(remap_in_place(p.as_ptr(), 1 << 20, 4096));
            unmap(p.as_ptr(), 4096);
        }
        assert!(cpus() >= 1);
    }
}

//! The C allocation functions' rules (glibc's answers to the edge cases),
//! over [`Shim::alloc`], [`Shim::free`] and [`Shim::realloc`].

use core::ffi::c_void;
use core::ptr;

use plugin_abi::ArenaAllocator;

use crate::class;
use crate::shim::Shim;
use crate::stats::count;
use crate::sys::{self, PAGE};

impl<A: ArenaAllocator> Shim<A> {
    /// `malloc(n)`: a 16-byte aligned block; `malloc(0)` is a unique
    /// freeable pointer; NULL and `ENOMEM` when out of memory or `n` exceeds
    /// `PTRDIFF_MAX`.
    ///
    /// # Time complexity
    ///
    /// O(1) without a lock for a thread-cache hit (most calls up to 32 KiB).
    #[inline(always)]
    pub fn malloc(&self, n: usize) -> *mut c_void {
        if n <= class::MAX_CACHED {
            return self.malloc_cached(n).cast();
        }
        self.malloc_large(n)
    }

    /// `malloc(n)` above [`class::MAX_CACHED`].
    #[inline(never)]
    fn malloc_large(&self, n: usize) -> *mut c_void {
        self.alloc_uncached(n, 1)
            .map_or(ptr::null_mut(), |(p, _)| p.as_ptr().cast())
    }

    /// `calloc(n, m)`: zeroed; NULL and `ENOMEM` if `n * m` overflows.
    pub fn calloc(&self, n: usize, m: usize) -> *mut c_void {
        let Some(total) = n.checked_mul(m) else {
            count(&self.counters.failed);
            sys::set_errno(libc::ENOMEM);
            return ptr::null_mut();
        };
        match self.alloc(total, 1) {
            Some((p, zero)) => {
                if !zero {
                    // SAFETY: the block holds at least `total` bytes.
                    unsafe { ptr::write_bytes(p.as_ptr(), 0, total) };
                }
                p.as_ptr().cast()
            }
            None => ptr::null_mut(),
        }
    }

    /// `reallocarray(p, n, m)`: `realloc(p, n * m)`, or NULL and `ENOMEM`
    /// (with `p` untouched) if the product overflows.
    ///
    /// # Safety
    ///
    /// As for [`Shim::free`].
    pub unsafe fn reallocarray(&self, p: *mut c_void, n: usize, m: usize) -> *mut c_void {
        match n.checked_mul(m) {
            // SAFETY: caller's contract.
            Some(total) => unsafe { self.realloc(p, total) },
            None => {
                sys::set_errno(libc::ENOMEM);
                ptr::null_mut()
            }
        }
    }

    /// glibc's `memalign(align, n)`: an alignment that is not a power of two
    /// is rounded up to one; above `SIZE_MAX / 2 + 1`, NULL and `EINVAL`.
    pub fn memalign(&self, align: usize, n: usize) -> *mut c_void {
        let Some(align) = align.checked_next_power_of_two() else {
            sys::set_errno(libc::EINVAL);
            return ptr::null_mut();
        };
        self.alloc(n, align)
            .map_or(ptr::null_mut(), |(p, _)| p.as_ptr().cast())
    }

    /// `aligned_alloc(align, n)` (C17 DR 460 and glibc ≥ 2.38): `align` must
    /// be a power of two, else NULL and `EINVAL`. (glibc 2.36 treated it as
    /// `memalign` and rounded the alignment up.)
    pub fn aligned_alloc(&self, align: usize, n: usize) -> *mut c_void {
        if !align.is_power_of_two() {
            sys::set_errno(libc::EINVAL);
            return ptr::null_mut();
        }
        self.memalign(align, n)
    }

    /// `posix_memalign(out, align, n)`: `EINVAL` unless `align` is a power
    /// of two multiple of `sizeof(void *)`, `ENOMEM` when out of memory; on
    /// either error `*out` is untouched.
    ///
    /// # Safety
    ///
    /// `out` is valid for a pointer write.
    pub unsafe fn posix_memalign(&self, out: *mut *mut c_void, align: usize, n: usize) -> i32 {
        if !align.is_power_of_two() || align < size_of::<*mut c_void>() {
            return libc::EINVAL;
        }
        match self.alloc(n, align) {
            Some((p, _)) => {
                // SAFETY: caller's contract.
                unsafe { out.write(p.as_ptr().cast()) };
                0
            }
            None => libc::ENOMEM,
        }
    }

    /// `valloc(n)`: page-aligned.
    pub fn valloc(&self, n: usize) -> *mut c_void {
        self.memalign(PAGE, n)
    }

    /// `pvalloc(n)`: page-aligned, `n` rounded up to whole pages; NULL and
    /// `ENOMEM` if that overflows.
    pub fn pvalloc(&self, n: usize) -> *mut c_void {
        match sys::round_up(n, PAGE) {
            Some(n) => self.memalign(PAGE, n),
            None => {
                sys::set_errno(libc::ENOMEM);
                ptr::null_mut()
            }
        }
    }

    /// `malloc_trim(pad)`: gives free memory back to the kernel (`pad` is
    /// ignored: nothing is kept at a heap's top); 1 if any was given back.
    pub fn malloc_trim(&self, _pad: usize) -> i32 {
        i32::from(self.trim() > 0)
    }
}

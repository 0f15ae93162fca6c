//! Pointers the shim did not hand out.
//!
//! A pointer outside every arena and large mapping of the shim is
//! *foreign*. It is never dereferenced by the shim. When the shim exports
//! `malloc` ([`crate::export_malloc!`] sets [`Shim::forwarding_foreign`]),
//! such a pointer most likely comes from the allocator that served the
//! process before the shim was in place, or that another library calls
//! directly; so `free`, `realloc` and `malloc_usable_size` of it go to the
//! next definition of those functions in the symbol search order
//! (`dlsym(RTLD_NEXT, ...)`, glibc's for a program preloading the shim):
//! `free` releases it there, `realloc` moves it into the shim (a new block,
//! the contents copied, the old one freed there). A shim used as a library
//! (tests) counts foreign pointers and leaves them alone.

use core::ffi::c_void;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, AtomicU8, Ordering};

use plugin_abi::ArenaAllocator;

use crate::shim::Shim;
use crate::stats::count;
use crate::sys;

type FreeFn = unsafe extern "C" fn(*mut c_void);
type ReallocFn = unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void;
type UsableFn = unsafe extern "C" fn(*mut c_void) -> usize;

const UNRESOLVED: u8 = 0;
const RESOLVING: u8 = 1;
const RESOLVED: u8 = 2;

/// The next allocator's functions, resolved on first use.
pub struct Foreign {
    forward: bool,
    state: AtomicU8,
    free: AtomicPtr<c_void>,
    realloc: AtomicPtr<c_void>,
    usable: AtomicPtr<c_void>,
}

impl Foreign {
    /// `forward`: hand foreign pointers to the next allocator.
    pub const fn new(forward: bool) -> Self {
        Foreign {
            forward,
            state: AtomicU8::new(UNRESOLVED),
            free: AtomicPtr::new(ptr::null_mut()),
            realloc: AtomicPtr::new(ptr::null_mut()),
            usable: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Resolves the next `free`, `realloc`, `malloc_usable_size` once (the
    /// library constructor calls this, so that `dlsym` does not run inside
    /// a `free` made while the dynamic loader holds its locks)
    /// (`dlsym` may allocate: those calls are served by the shim; a call
    /// that arrives while another thread resolves finds nothing yet).
    pub fn resolve(&self) -> bool {
        if !self.forward {
            return false;
        }
        match self.state.compare_exchange(
            UNRESOLVED,
            RESOLVING,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => {
                self.free
                    .store(sys::next_symbol(c"free"), Ordering::Relaxed);
                self.realloc
                    .store(sys::next_symbol(c"realloc"), Ordering::Relaxed);
                self.usable
                    .store(sys::next_symbol(c"malloc_usable_size"), Ordering::Relaxed);
                self.state.store(RESOLVED, Ordering::Release);
                true
            }
            Err(s) => s == RESOLVED,
        }
    }

    fn free_fn(&self) -> Option<FreeFn> {
        if !self.resolve() {
            return None;
        }
        let f = self.free.load(Ordering::Relaxed);
        // SAFETY: `dlsym` found a function named `free`: C's `free`.
        (!f.is_null()).then(|| unsafe { core::mem::transmute::<*mut c_void, FreeFn>(f) })
    }

    fn realloc_fn(&self) -> Option<ReallocFn> {
        if !self.resolve() {
            return None;
        }
        let f = self.realloc.load(Ordering::Relaxed);
        // SAFETY: `dlsym` found a function named `realloc`: C's `realloc`.
        (!f.is_null()).then(|| unsafe { core::mem::transmute::<*mut c_void, ReallocFn>(f) })
    }

    fn usable_fn(&self) -> Option<UsableFn> {
        if !self.resolve() {
            return None;
        }
        let f = self.usable.load(Ordering::Relaxed);
        // SAFETY: `dlsym` found `malloc_usable_size`: glibc's signature.
        (!f.is_null()).then(|| unsafe { core::mem::transmute::<*mut c_void, UsableFn>(f) })
    }
}

impl<A: ArenaAllocator> Shim<A> {
    /// `free` of a foreign pointer: to the next allocator, or counted.
    ///
    /// # Safety
    ///
    /// `p` is what the program passed to `free`.
    #[cold]
    #[inline(never)]
    pub(crate) unsafe fn foreign_free(&self, p: NonNull<u8>) {
        count(&self.counters.foreign);
        if let Some(f) = self.foreign.free_fn() {
            // SAFETY: the program's pointer, given to the allocator that
            // owns it (the program's contract with `free`).
            unsafe { f(p.as_ptr().cast()) };
        }
    }

    /// `realloc` of a foreign pointer: moved into this shim (or resized by
    /// the next allocator when its size cannot be asked); NULL and `ENOMEM`
    /// when not forwarding.
    ///
    /// # Safety
    ///
    /// `p` is what the program passed to `realloc`.
    pub(crate) unsafe fn foreign_realloc(&self, p: NonNull<u8>, n: usize) -> *mut c_void {
        count(&self.counters.foreign);
        let (Some(free), Some(usable)) = (self.foreign.free_fn(), self.foreign.usable_fn()) else {
            if let Some(r) = self.foreign.realloc_fn() {
                // SAFETY: as in `foreign_free`.
                return unsafe { r(p.as_ptr().cast(), n) };
            }
            sys::set_errno(libc::ENOMEM);
            return ptr::null_mut();
        };
        // SAFETY: the owner's own size query on its pointer.
        let old = unsafe { usable(p.as_ptr().cast()) };
        let q = self.malloc(n);
        if !q.is_null() {
            // SAFETY: `p` holds `old` bytes, `q` at least `n`; distinct.
            unsafe {
                ptr::copy_nonoverlapping(p.as_ptr(), q.cast::<u8>(), old.min(n));
                free(p.as_ptr().cast());
            }
        }
        q
    }

    /// `malloc_usable_size` of a foreign pointer: the next allocator's
    /// answer, or 0.
    ///
    /// # Safety
    ///
    /// `p` is what the program passed.
    pub(crate) unsafe fn foreign_usable_size(&self, p: NonNull<u8>) -> usize {
        count(&self.counters.foreign);
        match self.foreign.usable_fn() {
            // SAFETY: as in `foreign_free`.
            Some(f) => unsafe { f(p.as_ptr().cast()) },
            None => 0,
        }
    }
}

//! The one adapter of the system allocators (glibc, mimalloc, jemalloc):
//! they take memory from the OS themselves, so the arena holds only the
//! adapter's handle (a magic number), and each call is checked against it
//! and passed on. `destroy` cannot free the blocks still live: they stay
//! allocated, like any `malloc`ed memory never freed. Each system allocator
//! says only how to make its five calls ([`SystemMalloc`]).

use std::ffi::c_void;
use std::marker::PhantomData;
use std::ptr::null_mut;

use plugin_abi::Allocator;
use plugin_abi::loader::PluginApi;

use super::{ALIGN, Slot};
use crate::allocators::table;

/// A system allocator's calls, as the adapter makes them.
///
/// # Safety
///
/// The functions have the C library's contracts: `free`, `realloc` and
/// `usable_size` are given NULL or a live block of this allocator.
pub(crate) unsafe trait SystemMalloc: 'static {
    /// The handle's magic number.
    const MAGIC: u64;
    /// The smallest request passed on: [`ALIGN`] where the smallest size
    /// class is only 8-byte aligned, 0 where every block is 16-byte aligned.
    const MIN_SIZE: usize;
    /// `malloc(size)`: NULL when it cannot.
    unsafe fn malloc(size: usize) -> *mut c_void;
    /// `free(p)`.
    unsafe fn free(p: *mut c_void);
    /// `realloc(p, size)` with `size > 0`: NULL and `p` intact when it cannot.
    unsafe fn realloc(p: *mut c_void, size: usize) -> *mut c_void;
    /// A block of `size` bytes aligned to `align` (a power of two, at least
    /// [`ALIGN`]), freed with `free`; NULL when it cannot.
    unsafe fn aligned(size: usize, align: usize) -> *mut c_void;
    /// The usable size of the live block `p`.
    unsafe fn usable_size(p: *const c_void) -> usize;
}

/// The adapter's functions for `M`.
struct Adapter<M>(PhantomData<M>);

impl<M: SystemMalloc> Adapter<M> {
    unsafe extern "C" fn create(memory: *mut c_void, size: usize) -> *mut Allocator {
        // SAFETY: the `allocator_create` contract.
        unsafe { Slot::<()>::create(memory, size, M::MAGIC, || (), |_, _| true) }
    }

    unsafe extern "C" fn destroy(a: *mut Allocator) {
        // SAFETY: the `allocator_destroy` contract.
        unsafe { Slot::<()>::kill(a, M::MAGIC) };
    }

    /// True when `a` is a live handle of this peer.
    ///
    /// # Safety
    ///
    /// The ABI's handle contract.
    unsafe fn live(a: *const Allocator) -> bool {
        // SAFETY: forwarded contract.
        unsafe { Slot::<()>::get(a, M::MAGIC) }.is_some()
    }

    unsafe extern "C" fn alloc(a: *mut Allocator, size: usize) -> *mut c_void {
        // SAFETY: the `allocator_alloc` contract.
        if !unsafe { Self::live(a) } {
            return null_mut();
        }
        // SAFETY: malloc accepts any size (NULL when too large; 0 gives a
        // unique freeable block).
        unsafe { M::malloc(size.max(M::MIN_SIZE)) }
    }

    unsafe extern "C" fn free(a: *mut Allocator, p: *mut c_void) {
        // SAFETY: the `allocator_free` contract.
        if unsafe { Self::live(a) } {
            // SAFETY: `p` is NULL or a block from this peer (else undefined,
            // as documented).
            unsafe { M::free(p) }
        }
    }

    unsafe extern "C" fn realloc(a: *mut Allocator, p: *mut c_void, size: usize) -> *mut c_void {
        // SAFETY: the `allocator_realloc` contract.
        if !unsafe { Self::live(a) } {
            return null_mut();
        }
        if size == 0 {
            // The ABI's rule: free and return NULL (what the C libraries do
            // with `realloc(p, 0)` varies).
            // SAFETY: as in `free`.
            unsafe { M::free(p) };
            return null_mut();
        }
        // SAFETY: `p` is NULL or a live block of this peer; on failure the
        // allocator returns NULL and leaves `p` untouched.
        unsafe { M::realloc(p, size.max(M::MIN_SIZE)) }
    }

    unsafe extern "C" fn alloc_aligned(
        a: *mut Allocator,
        size: usize,
        align: usize,
    ) -> *mut c_void {
        // SAFETY: the `allocator_alloc_aligned` contract.
        if !unsafe { Self::live(a) } || !align.is_power_of_two() {
            return null_mut();
        }
        // SAFETY: `align` is a power of two, at least ALIGN (a multiple of
        // sizeof(void *)).
        unsafe { M::aligned(size.max(M::MIN_SIZE), align.max(ALIGN)) }
    }

    unsafe extern "C" fn usable_size(a: *const Allocator, p: *const c_void) -> usize {
        // SAFETY: the `allocator_usable_size` contract.
        if !unsafe { Self::live(a) } || p.is_null() {
            return 0;
        }
        // SAFETY: `p` is a live block of this peer.
        unsafe { M::usable_size(p) }
    }
}

/// The function table of the system allocator `M` behind the plugin ABI.
pub(crate) fn api<M: SystemMalloc>() -> PluginApi {
    PluginApi {
        realloc: Some(Adapter::<M>::realloc),
        alloc_aligned: Some(Adapter::<M>::alloc_aligned),
        usable_size: Some(Adapter::<M>::usable_size),
        ..table(
            Adapter::<M>::create,
            Adapter::<M>::destroy,
            Adapter::<M>::alloc,
            Adapter::<M>::free,
        )
    }
}

/// `posix_memalign` as [`SystemMalloc::aligned`] wants it: the block, or NULL.
///
/// # Safety
///
/// `align` is a power of two and a multiple of `sizeof(void *)`.
pub(crate) unsafe fn via_posix_memalign(
    f: unsafe extern "C" fn(*mut *mut c_void, usize, usize) -> libc::c_int,
    size: usize,
    align: usize,
) -> *mut c_void {
    let mut p = null_mut();
    // SAFETY: the caller's contract; `p` is a valid out-pointer.
    match unsafe { f(&mut p, align, size) } {
        0 => p,
        _ => null_mut(),
    }
}

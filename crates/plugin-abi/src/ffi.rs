//! The generic `extern "C"` layer: what every plugin's exported functions do
//! before and after they call the allocator core.
//!
//! [`crate::export_plugin!`] expands to one `#[no_mangle] extern "C"`
//! function per entry of `include/allocator.h`, each a one-line call into the
//! functions here. They:
//!
//! - place a [`Handle`] at the start of the caller's memory (64-byte aligned)
//!   and give the rest to [`ArenaAllocator::create_in`]; the `Allocator *`
//!   the caller sees is the handle;
//! - answer NULL arguments, dead handles and unsupported flags as the header
//!   says, and apply the `malloc` rules (`realloc(NULL, n)`, `realloc(p, 0)`);
//! - take the handle's spin lock when it was created `ALLOCATOR_FLAG_LOCKED`;
//! - on an unlocked handle, try the core's `alloc_fast`/`free_fast` first
//!   (one compare of the handle's magic, which says live, unlocked and
//!   core right after the handle at once, so the core's address is the
//!   handle's plus 64, not a pointer loaded from it; no lock, no
//!   `catch_unwind`: those paths cannot panic), and take
//!   the full path above only when they decline;
//! - catch any panic of the core, so none crosses the C boundary: the call
//!   returns NULL / -1 and the handle is poisoned (all later calls answer
//!   NULL), because a core that panicked may have left its state half-updated.
//!
//! ```text
//!   memory                                                    memory + size
//!   |pad|  Handle (64 B)  |  core state | tables |  blocks ...             |
//!        ^ Allocator *     ^ NonNull<A>
//! ```

use core::ffi::{c_int, c_void};
use core::mem::{align_of, size_of};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU64, Ordering};
use std::panic::{AssertUnwindSafe, catch_unwind};

use arena_api::types::{ALLOCATOR_ALIGNMENT, ALLOCATOR_FLAG_LOCKED, Allocator, AllocatorStats};
use arena_api::{ArenaAllocator, C_HANDLE_BYTES, ReallocError, SpinLock};

/// A live handle created without `ALLOCATOR_FLAG_LOCKED` whose core lies
/// right after it (`create_in` placed its state at the start of its
/// region): the value the fast paths of `alloc` and `free` compare with,
/// one load for the three checks, and the core's address is then the
/// handle's plus 64, with no load of [`Handle::core`] on the way to the
/// core's fields. Its upper half is the sign extension of its lower half,
/// so x86-64 compares it with memory in one instruction (a 32-bit
/// immediate), where a full 64-bit value takes a `movabs` and a separate
/// load.
const MAGIC_LIVE: u64 = 0xA11C_1AB5_u32 as i32 as i64 as u64;
/// A live handle created without `ALLOCATOR_FLAG_LOCKED` whose core lies
/// elsewhere in its region: the fast paths are not taken.
const MAGIC_LIVE_APART: u64 = u64::from_le_bytes(*b"alloclbA");
/// A live handle created with `ALLOCATOR_FLAG_LOCKED`.
const MAGIC_LIVE_LOCKED: u64 = u64::from_le_bytes(*b"alloclbL");
const MAGIC_DEAD: u64 = u64::from_le_bytes(*b"destroyd");
const MAGIC_POISONED: u64 = u64::from_le_bytes(*b"panicked");

/// What an `Allocator *` points to: the generic part of every plugin's state.
///
/// Invariant: `magic` is `MAGIC_LIVE`, `MAGIC_LIVE_APART` or
/// `MAGIC_LIVE_LOCKED` (as `flags` says) iff `core` points to a live
/// allocator created in this handle's arena; `MAGIC_LIVE` only when `core`
/// is the address right after the handle.
#[repr(C, align(64))]
pub struct Handle<A> {
    magic: AtomicU64,
    flags: u32,
    lock: SpinLock,
    core: NonNull<A>,
    /// Bytes from `memory` to the start of the core's region.
    prefix_bytes: usize,
}

// The cores count the handle in their `min_arena` without depending on this
// crate: `arena_api::C_HANDLE_BYTES` must be its size and alignment.
const _: () = assert!(
    size_of::<Handle<()>>() == C_HANDLE_BYTES && align_of::<Handle<()>>() == C_HANDLE_BYTES
);

impl<A: ArenaAllocator> Handle<A> {
    /// The live handle behind `a`, if `a` is non-null and live.
    ///
    /// # Safety
    ///
    /// `a` is NULL or was returned by [`create`] for this `A`, and its arena
    /// is still mapped.
    #[inline]
    unsafe fn from_raw<'a>(a: *const Allocator) -> Option<&'a Self> {
        // SAFETY: by the caller's contract a non-null `a` points to a
        // `Handle<A>` written by `create` (possibly destroyed since, which the
        // magic tells: destroy leaves the rest of the handle intact).
        let h = unsafe { a.cast::<Self>().as_ref()? };
        let m = h.magic.load(Ordering::Relaxed);
        (m == MAGIC_LIVE || m == MAGIC_LIVE_APART || m == MAGIC_LIVE_LOCKED).then_some(h)
    }

    /// The core behind `a` if `a` is a live handle created without
    /// `ALLOCATOR_FLAG_LOCKED` with its core right after it (one compare),
    /// for the fast paths.
    ///
    /// # Safety
    ///
    /// As for [`Handle::from_raw`]; calls on the handle are serialised by
    /// the caller (the header: "not thread-safe by default"), and the
    /// reference is dropped before the call returns.
    #[inline(always)]
    unsafe fn unlocked_core<'a>(a: *const Allocator) -> Option<&'a mut A> {
        // SAFETY: as in `from_raw`.
        let h = unsafe { a.cast::<Self>().as_ref()? };
        if h.magic.load(Ordering::Relaxed) != MAGIC_LIVE {
            return None;
        }
        // SAFETY: the handle is live with `MAGIC_LIVE`, so `core` points to
        // a live allocator and equals the address right after the handle
        // (`create` checked it), reached here from `a` (the arena's
        // provenance) without loading `core`; the caller serialises the
        // calls on it: this is the only reference to the core while it
        // lives.
        Some(unsafe { &mut *a.cast::<Self>().cast_mut().add(1).cast::<A>() })
    }

    /// Runs `f` on the core under the lock (if any), catching a panic.
    #[inline]
    fn with<R>(&self, on_panic: R, f: impl FnOnce(&mut A) -> R) -> R {
        let _guard = (self.flags & ALLOCATOR_FLAG_LOCKED != 0).then(|| self.lock.lock());
        // SAFETY: the handle is live, so `core` points to a live allocator;
        // calls on one handle are serialised by the caller (header: "not
        // thread-safe by default") or by the lock taken above, so this is the
        // only reference to the core for the duration of `f`.
        let core = unsafe { &mut *self.core.as_ptr() };
        match catch_unwind(AssertUnwindSafe(|| f(core))) {
            Ok(r) => r,
            Err(_) => {
                self.magic.store(MAGIC_POISONED, Ordering::Relaxed);
                on_panic
            }
        }
    }
}

/// `allocator_create_with_flags`.
///
/// # Safety
///
/// `memory` is NULL or valid for reads and writes of `size` bytes until
/// `allocator_destroy` (see [`ArenaAllocator::create_in`]).
pub unsafe fn create<A: ArenaAllocator>(
    memory: *mut c_void,
    size: usize,
    flags: u32,
) -> *mut Allocator {
    if memory.is_null() || flags & !(A::INFO.supported_flags | ALLOCATOR_FLAG_LOCKED) != 0 {
        return ptr::null_mut();
    }
    if (memory as usize).checked_add(size).is_none() {
        return ptr::null_mut();
    }
    let memory = memory.cast::<u8>();
    let pad = memory.align_offset(align_of::<Handle<A>>());
    let Some(prefix) = pad
        .checked_add(size_of::<Handle<A>>())
        .filter(|&p| p <= size)
    else {
        return ptr::null_mut();
    };
    // SAFETY: `pad < prefix <= size`, so both pointers stay in the arena.
    let (handle_ptr, core_region) =
        unsafe { (memory.add(pad).cast::<Handle<A>>(), memory.add(prefix)) };
    let created = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `[core_region, core_region + size - prefix)` is the rest of
        // the caller's arena, valid for as long as the allocator (caller's
        // contract); the handle lies before it, so the core never touches it.
        unsafe { A::create_in(core_region, size - prefix, flags & !ALLOCATOR_FLAG_LOCKED) }
    }));
    let Ok(Some(core)) = created else {
        return ptr::null_mut();
    };
    // The fast paths reach the core as the handle's address plus its size
    // when it lies there, as it does when `create_in` puts its state first.
    let adjacent = core.as_ptr().addr() == handle_ptr.addr() + size_of::<Handle<A>>();
    // SAFETY: `handle_ptr` is aligned for `Handle<A>` and the handle's bytes
    // `[pad, prefix)` lie inside the arena, before the core's region.
    unsafe {
        handle_ptr.write(Handle {
            magic: AtomicU64::new(if flags & ALLOCATOR_FLAG_LOCKED != 0 {
                MAGIC_LIVE_LOCKED
            } else if adjacent {
                MAGIC_LIVE
            } else {
                MAGIC_LIVE_APART
            }),
            flags,
            lock: SpinLock::new(),
            core,
            prefix_bytes: prefix,
        });
    }
    handle_ptr.cast()
}

/// `allocator_destroy`.
///
/// # Safety
///
/// As for every call: `a` is NULL or a handle of this plugin whose arena is mapped.
pub unsafe fn destroy<A: ArenaAllocator>(a: *mut Allocator) {
    // SAFETY: caller's contract.
    if let Some(h) = unsafe { Handle::<A>::from_raw(a) } {
        // Under the lock, so a locked handle's calls in flight finish first.
        let _guard = (h.flags & ALLOCATOR_FLAG_LOCKED != 0).then(|| h.lock.lock());
        h.magic.store(MAGIC_DEAD, Ordering::Relaxed);
    }
}

/// `allocator_alloc`: the core's [`ArenaAllocator::alloc_fast`] on an
/// unlocked handle, else [`alloc_slow`].
///
/// # Safety
///
/// As for [`destroy`].
#[inline]
pub unsafe fn alloc<A: ArenaAllocator>(a: *mut Allocator, size: usize) -> *mut c_void {
    // SAFETY: caller's contract.
    if let Some(core) = unsafe { Handle::<A>::unlocked_core(a) }
        && let Some(p) = core.alloc_fast(size)
    {
        return p.as_ptr().cast();
    }
    // SAFETY: caller's contract.
    unsafe { alloc_slow::<A>(a, size) }
}

/// `allocator_alloc` in full: the lock if any, the core's `alloc` inside
/// `catch_unwind`.
///
/// `extern "C"`, hence known not to unwind (nothing does: the panic is
/// caught inside): the call from [`alloc`] needs no landing pad, so it is a
/// tail jump and the fast path saves no stack slot for it.
///
/// # Safety
///
/// As for [`destroy`].
#[inline(never)]
pub unsafe extern "C" fn alloc_slow<A: ArenaAllocator>(
    a: *mut Allocator,
    size: usize,
) -> *mut c_void {
    // SAFETY: caller's contract.
    match unsafe { Handle::<A>::from_raw(a) } {
        Some(h) => h.with(ptr::null_mut(), |core| nullable(core.alloc(size))),
        None => ptr::null_mut(),
    }
}

/// `allocator_alloc_aligned`.
///
/// # Safety
///
/// As for [`destroy`].
pub unsafe fn alloc_aligned<A: ArenaAllocator>(
    a: *mut Allocator,
    size: usize,
    align: usize,
) -> *mut c_void {
    // SAFETY: caller's contract.
    match unsafe { Handle::<A>::from_raw(a) } {
        Some(h) => h.with(ptr::null_mut(), |core| {
            if align <= ALLOCATOR_ALIGNMENT && align.is_power_of_two() {
                nullable(core.alloc(size))
            } else {
                nullable(core.alloc_aligned(size, align))
            }
        }),
        None => ptr::null_mut(),
    }
}

/// `allocator_free`: the core's [`ArenaAllocator::free_fast`] on an
/// unlocked handle, else [`free_slow`].
///
/// # Safety
///
/// As for [`destroy`].
#[inline]
pub unsafe fn free<A: ArenaAllocator>(a: *mut Allocator, memory: *mut c_void) {
    let p = memory.cast::<u8>();
    // `free_fast` answers false for NULL: the test for it is left to
    // `free_slow`.
    // SAFETY: caller's contract.
    if let Some(core) = unsafe { Handle::<A>::unlocked_core(a) }
        && core.free_fast(p)
    {
        return;
    }
    // SAFETY: caller's contract.
    unsafe { free_slow::<A>(a, memory) }
}

/// `allocator_free` in full: NULL, the lock if any, the core's `free`
/// inside `catch_unwind`.
///
/// `extern "C"` and with `free`'s own arguments, as [`alloc_slow`]: the
/// call from [`free`] is a tail jump.
///
/// # Safety
///
/// As for [`destroy`].
#[inline(never)]
pub unsafe extern "C" fn free_slow<A: ArenaAllocator>(a: *mut Allocator, memory: *mut c_void) {
    let Some(p) = NonNull::new(memory.cast::<u8>()) else {
        return;
    };
    // SAFETY: caller's contract.
    if let Some(h) = unsafe { Handle::<A>::from_raw(a) } {
        // A rejected pointer is counted by the core; nothing else to do.
        h.with((), |core| {
            let _ = core.free(p);
        });
    }
}

/// `allocator_realloc`.
///
/// # Safety
///
/// As for [`destroy`].
pub unsafe fn realloc<A: ArenaAllocator>(
    a: *mut Allocator,
    memory: *mut c_void,
    size: usize,
) -> *mut c_void {
    // SAFETY: caller's contract.
    let Some(h) = (unsafe { Handle::<A>::from_raw(a) }) else {
        return ptr::null_mut();
    };
    h.with(ptr::null_mut(), |core| {
        match NonNull::new(memory.cast::<u8>()) {
            None => nullable(core.alloc(size)),
            Some(p) if size == 0 => {
                let _ = core.free(p);
                ptr::null_mut()
            }
            Some(p) => match core.realloc(p, size) {
                Ok(q) => q.as_ptr().cast(),
                Err(ReallocError::BadPointer | ReallocError::OutOfMemory) => ptr::null_mut(),
            },
        }
    })
}

/// `allocator_usable_size`.
///
/// # Safety
///
/// As for [`destroy`].
pub unsafe fn usable_size<A: ArenaAllocator>(a: *const Allocator, memory: *const c_void) -> usize {
    let Some(p) = NonNull::new(memory.cast_mut().cast::<u8>()) else {
        return 0;
    };
    // SAFETY: caller's contract.
    match unsafe { Handle::<A>::from_raw(a) } {
        Some(h) => h.with(0, |core| core.usable_size(p).unwrap_or(0)),
        None => 0,
    }
}

/// `allocator_stats`.
///
/// # Safety
///
/// As for [`destroy`]; `out` is NULL or valid for writing an `AllocatorStats`.
pub unsafe fn stats<A: ArenaAllocator>(a: *const Allocator, out: *mut AllocatorStats) -> c_int {
    if out.is_null() {
        return -1;
    }
    // SAFETY: caller's contract.
    let Some(h) = (unsafe { Handle::<A>::from_raw(a) }) else {
        return -1;
    };
    let Some(mut s) = h.with(None, |core| Some(core.stats())) else {
        return -1;
    };
    // The core counts its own region and the regions added since.
    s.arena_bytes += h.prefix_bytes;
    s.metadata_bytes += h.prefix_bytes;
    // SAFETY: `out` is non-null and valid for writes (caller's contract).
    unsafe { out.write(s) };
    0
}

/// `allocator_add_region`: 0 when the core took `[memory, memory + size)`,
/// -1 when it refused it (too small, overlapping, not supported), -2 for a
/// NULL or dead handle or NULL memory.
///
/// # Safety
///
/// As for [`destroy`]; `memory` is NULL or valid for reads and writes of
/// `size` bytes until `allocator_destroy` and used by nothing else (see
/// [`ArenaAllocator::add_region`]).
pub unsafe fn add_region<A: ArenaAllocator>(
    a: *mut Allocator,
    memory: *mut c_void,
    size: usize,
) -> c_int {
    if memory.is_null() {
        return -2;
    }
    // SAFETY: caller's contract.
    let Some(h) = (unsafe { Handle::<A>::from_raw(a) }) else {
        return -2;
    };
    // The handle lies outside the core's region: the core cannot see an
    // overlap with it.
    let handle = ptr::from_ref(h).addr();
    let handle_end = handle + size_of::<Handle<A>>();
    if memory.addr() < handle_end && handle < memory.addr().saturating_add(size) {
        return -1;
    }
    h.with(-1, |core| {
        // SAFETY: the caller's contract is the core's.
        match unsafe { core.add_region(memory.cast(), size) } {
            Ok(()) => 0,
            Err(_) => -1,
        }
    })
}

/// `allocator_check`: 0 when every invariant holds, -1 when one is broken,
/// -2 for a NULL or dead handle.
///
/// # Safety
///
/// As for [`destroy`].
pub unsafe fn check<A: ArenaAllocator>(a: *const Allocator) -> c_int {
    // SAFETY: caller's contract.
    let Some(h) = (unsafe { Handle::<A>::from_raw(a) }) else {
        return -2;
    };
    h.with(-1, |core| match core.check_invariants() {
        Ok(()) if core.free_list_repairs() > 0 => crate::ALLOCATOR_CHECK_REPAIRED,
        Ok(()) => 0,
        Err(_) => -1,
    })
}

#[inline]
fn nullable(p: Option<NonNull<u8>>) -> *mut c_void {
    p.map_or(ptr::null_mut(), |p| p.as_ptr().cast())
}

/// Exports the C ABI of `include/allocator.h` for an [`ArenaAllocator`].
///
/// Use it once, in the allocator's crate (a `cdylib`):
///
/// ```ignore
/// plugin_abi::export_plugin!(crate::Buddy);
/// ```
///
/// Two crates that both export the plugin ABI cannot be linked into one
/// binary (the symbols would clash); the allocator crates therefore put the
/// call behind a default `plugin` feature.
#[macro_export]
macro_rules! export_plugin {
    ($ty:ty) => {
        static __ALLOCLAB_INFO: $crate::AllocatorInfo = $crate::AllocatorInfo {
            supported_flags: <$ty as $crate::ArenaAllocator>::INFO.supported_flags
                | $crate::ALLOCATOR_FLAG_LOCKED,
            ..<$ty as $crate::ArenaAllocator>::INFO
        };

        /// `allocator_create` of `include/allocator.h`.
        ///
        /// # Safety
        ///
        /// See `include/allocator.h`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn allocator_create(
            memory: *mut ::core::ffi::c_void,
            size: usize,
        ) -> *mut $crate::Allocator {
            // SAFETY: the C contract of the header is the contract of `create`.
            unsafe { $crate::ffi::create::<$ty>(memory, size, 0) }
        }

        /// `allocator_create_with_flags` of `include/allocator.h`.
        ///
        /// # Safety
        ///
        /// See `include/allocator.h`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn allocator_create_with_flags(
            memory: *mut ::core::ffi::c_void,
            size: usize,
            flags: u32,
        ) -> *mut $crate::Allocator {
            // SAFETY: the C contract of the header is the contract of `create`.
            unsafe { $crate::ffi::create::<$ty>(memory, size, flags) }
        }

        /// `allocator_destroy` of `include/allocator.h`.
        ///
        /// # Safety
        ///
        /// See `include/allocator.h`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn allocator_destroy(allocator: *mut $crate::Allocator) {
            // SAFETY: the C contract of the header is the contract of `destroy`.
            unsafe { $crate::ffi::destroy::<$ty>(allocator) }
        }

        /// `allocator_alloc` of `include/allocator.h`.
        ///
        /// # Safety
        ///
        /// See `include/allocator.h`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn allocator_alloc(
            allocator: *mut $crate::Allocator,
            size: usize,
        ) -> *mut ::core::ffi::c_void {
            // SAFETY: the C contract of the header is the contract of `alloc`.
            unsafe { $crate::ffi::alloc::<$ty>(allocator, size) }
        }

        /// `allocator_alloc_aligned` of `include/allocator.h`.
        ///
        /// # Safety
        ///
        /// See `include/allocator.h`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn allocator_alloc_aligned(
            allocator: *mut $crate::Allocator,
            size: usize,
            align: usize,
        ) -> *mut ::core::ffi::c_void {
            // SAFETY: the C contract of the header is the contract of `alloc_aligned`.
            unsafe { $crate::ffi::alloc_aligned::<$ty>(allocator, size, align) }
        }

        /// `allocator_free` of `include/allocator.h`.
        ///
        /// # Safety
        ///
        /// See `include/allocator.h`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn allocator_free(
            allocator: *mut $crate::Allocator,
            memory: *mut ::core::ffi::c_void,
        ) {
            // SAFETY: the C contract of the header is the contract of `free`.
            unsafe { $crate::ffi::free::<$ty>(allocator, memory) }
        }

        /// `allocator_realloc` of `include/allocator.h`.
        ///
        /// # Safety
        ///
        /// See `include/allocator.h`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn allocator_realloc(
            allocator: *mut $crate::Allocator,
            memory: *mut ::core::ffi::c_void,
            size: usize,
        ) -> *mut ::core::ffi::c_void {
            // SAFETY: the C contract of the header is the contract of `realloc`.
            unsafe { $crate::ffi::realloc::<$ty>(allocator, memory, size) }
        }

        /// `allocator_usable_size` of `include/allocator.h`.
        ///
        /// # Safety
        ///
        /// See `include/allocator.h`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn allocator_usable_size(
            allocator: *const $crate::Allocator,
            memory: *const ::core::ffi::c_void,
        ) -> usize {
            // SAFETY: the C contract of the header is the contract of `usable_size`.
            unsafe { $crate::ffi::usable_size::<$ty>(allocator, memory) }
        }

        /// `allocator_stats` of `include/allocator.h`.
        ///
        /// # Safety
        ///
        /// See `include/allocator.h`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn allocator_stats(
            allocator: *const $crate::Allocator,
            out: *mut $crate::AllocatorStats,
        ) -> ::core::ffi::c_int {
            // SAFETY: the C contract of the header is the contract of `stats`.
            unsafe { $crate::ffi::stats::<$ty>(allocator, out) }
        }

        /// `allocator_check` of `include/allocator.h`.
        ///
        /// # Safety
        ///
        /// See `include/allocator.h`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn allocator_check(
            allocator: *const $crate::Allocator,
        ) -> ::core::ffi::c_int {
            // SAFETY: the C contract of the header is the contract of `check`.
            unsafe { $crate::ffi::check::<$ty>(allocator) }
        }

        /// `allocator_add_region` of `include/allocator.h`.
        ///
        /// # Safety
        ///
        /// See `include/allocator.h`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn allocator_add_region(
            allocator: *mut $crate::Allocator,
            memory: *mut ::core::ffi::c_void,
            size: usize,
        ) -> ::core::ffi::c_int {
            // SAFETY: the C contract of the header is the contract of `add_region`.
            unsafe { $crate::ffi::add_region::<$ty>(allocator, memory, size) }
        }

        /// `allocator_info` of `include/allocator.h`.
        #[unsafe(no_mangle)]
        pub extern "C" fn allocator_info() -> *const $crate::AllocatorInfo {
            &__ALLOCLAB_INFO
        }
    };
}

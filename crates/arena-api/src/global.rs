//! A `GlobalAlloc` adapter: any [`ArenaAllocator`] as a Rust program's global
//! allocator, behind a spin lock that needs no OS, over a static array, over
//! memory handed to it at run time, or over memory an [`OomHandler`] finds
//! when the allocator is full.
//!
//! ```ignore
//! // A static arena:
//! arena_api::global_arena!(#[global_allocator] static GLOBAL: buddy::Buddy = 64 << 20);
//!
//! // Nothing at first; pages from the kernel whenever the allocator is full:
//! struct Pages;
//! unsafe impl arena_api::OomHandler for Pages {
//!     fn handle_oom(&mut self, layout: core::alloc::Layout) -> Option<arena_api::Region> {
//!         /* map at least layout.size() + some bookkeeping */
//!     }
//! }
//! #[global_allocator]
//! static HEAP: arena_api::GlobalArena<buddy::Buddy, Pages> = arena_api::GlobalArena::empty(Pages);
//! ```
//!
//! The allocator is created on first use, in the static region or, for
//! [`GlobalArena::empty`], in the first region added or found by the
//! handler. When a request fails, the [`OomHandler`] (if any) is asked for
//! more memory, which is added to the allocator
//! ([`ArenaAllocator::add_region`]), and the request is tried again; when it
//! has none, allocation fails and Rust's `handle_alloc_error` ends the
//! program, as for any out-of-memory.
//!
//! With the `std` feature, a panic inside the core (a bug) would allocate
//! its payload through this same allocator while its non-reentrant lock is
//! held, and spin forever. Instead the adapter notices the re-entry (a
//! thread-local flag, set while the thread holds the lock) and a panic that
//! unwinds out of the core (`catch_unwind`), and aborts the process with a
//! message on stderr. Without `std` (no thread-locals, no unwinding: a
//! kernel's `panic = "abort"`), the panic handler is the program's own.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};

use crate::arena_allocator::{AddRegionError, ArenaAllocator};
use crate::spin::SpinLock;
use crate::types::{ALLOCATOR_ALIGNMENT, AllocatorStats};

/// A region of memory handed to an allocator: `len` bytes from `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// Its first byte.
    pub start: NonNull<u8>,
    /// Its length in bytes.
    pub len: usize,
}

/// What a [`GlobalArena`] does when its allocator cannot serve a request:
/// find more memory (as talc's `OomHandler`), from the kernel (`mmap`, a
/// page-frame allocator), from a reserve, or nowhere.
///
/// # Safety
///
/// A region returned by [`OomHandler::handle_oom`] must be valid for reads
/// and writes for the rest of the program, overlap no other region given to
/// this allocator, and be used by nothing else.
pub unsafe trait OomHandler {
    /// More memory for a request of `layout` that failed, or `None` (the
    /// request then fails). Called with the allocator's lock held: it must
    /// not allocate through the same `GlobalArena`. A region should be
    /// comfortably larger than `layout.size()`: the allocator keeps its
    /// bookkeeping inside it (about 1 % for the buddy allocator, a 16-byte
    /// descriptor per 4 KiB page plus 1.3 KiB for McKusick-Karels) and
    /// cannot hand out a block larger than the largest naturally aligned
    /// power of two (buddy) or page run (McKusick-Karels) that fits in it.
    ///
    /// The [`GlobalArena`] asks again, for the same request, while the
    /// handler keeps returning regions that the allocator takes but that do
    /// not yet serve the request (up to 8 times).
    fn handle_oom(&mut self, layout: Layout) -> Option<Region>;
}

/// The handler of an arena that never grows: it has no memory to give.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoMoreMemory;

// SAFETY: it returns no region.
unsafe impl OomHandler for NoMoreMemory {
    fn handle_oom(&mut self, _layout: Layout) -> Option<Region> {
        None
    }
}

/// Runs `f` (which takes the lock) as the only call of this thread inside
/// any `GlobalArena`; aborts with a message on re-entry or if `f` panics.
#[cfg(feature = "std")]
fn guarded<R>(f: impl FnOnce() -> R) -> R {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    std::thread_local! {
        /// True while this thread is inside a `GlobalArena` (holds a lock).
        static INSIDE: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
    }
    if INSIDE.with(|inside| inside.replace(true)) {
        abort_with("re-entered while it held its lock (a panic inside the allocator?)");
    }
    // The lock taken inside `f` is released before the flag is cleared
    // (also when `f` unwinds: its guard drops first).
    let r = catch_unwind(AssertUnwindSafe(f));
    INSIDE.with(|inside| inside.set(false));
    r.unwrap_or_else(|_| abort_with("the allocator panicked"))
}

/// Without `std`: `f` as it is.
#[cfg(not(feature = "std"))]
#[inline(always)]
fn guarded<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Writes `GlobalArena: why` to stderr (unbuffered, no allocation) and
/// aborts.
#[cfg(feature = "std")]
#[cold]
fn abort_with(why: &str) -> ! {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(b"GlobalArena: ");
    let _ = err.write_all(why.as_bytes());
    let _ = err.write_all(b": aborting\n");
    std::process::abort()
}

/// How many regions one failed request may add before it fails for good.
const MAX_OOM_ROUNDS: usize = 8;

/// An [`ArenaAllocator`] usable as `#[global_allocator]`: over a fixed
/// region ([`GlobalArena::new`]), regions added at run time
/// ([`GlobalArena::add_region`]) and memory its [`OomHandler`] finds.
pub struct GlobalArena<A, H = NoMoreMemory> {
    /// The region the allocator is created in on first use (null: none).
    region: *mut u8,
    len: usize,
    lock: SpinLock,
    /// Written under `lock` only.
    inner: UnsafeCell<Inner<A, H>>,
}

struct Inner<A, H> {
    /// `None` until the allocator is created.
    core: Option<NonNull<A>>,
    oom: H,
}

// SAFETY: every access to `inner` and to the allocator it points to happens
// under `lock`; `region` is only handed to the allocator. The handler is
// called from whichever thread allocates, so it must be `Send`.
unsafe impl<A, H: Send> Sync for GlobalArena<A, H> {}
// SAFETY: as for `Sync`.
unsafe impl<A, H: Send> Send for GlobalArena<A, H> {}

impl<A: ArenaAllocator> GlobalArena<A> {
    /// An adapter over `[region, region + len)`, which never grows;
    /// nothing happens until the first allocation.
    ///
    /// # Safety
    ///
    /// The region must be valid for reads and writes for the rest of the
    /// program and used by nothing else (a private `static mut` array, as
    /// [`crate::global_arena!`] declares).
    pub const unsafe fn new(region: *mut u8, len: usize) -> Self {
        // SAFETY: the caller's contract.
        unsafe { GlobalArena::with_oom_handler(region, len, NoMoreMemory) }
    }
}

impl<A: ArenaAllocator, H: OomHandler> GlobalArena<A, H> {
    /// An adapter over `[region, region + len)` that asks `oom` for more
    /// memory when it is full.
    ///
    /// # Safety
    ///
    /// As for [`GlobalArena::new`].
    pub const unsafe fn with_oom_handler(region: *mut u8, len: usize, oom: H) -> Self {
        GlobalArena {
            region,
            len,
            lock: SpinLock::new(),
            inner: UnsafeCell::new(Inner { core: None, oom }),
        }
    }

    /// An adapter with no memory yet: the allocator is created in the first
    /// region given to [`GlobalArena::add_region`] or found by `oom` (a
    /// kernel's heap before its page allocator is up, a program that maps
    /// its pages itself).
    pub const fn empty(oom: H) -> Self {
        // SAFETY: a null region is never used (`with` creates nothing in it).
        unsafe { GlobalArena::with_oom_handler(ptr::null_mut(), 0, oom) }
    }

    /// Runs `f` on the allocator, creating it first if needed; `None` if
    /// there is none yet and the static region cannot hold one.
    ///
    /// # Time complexity
    ///
    /// That of `f`, plus the allocator's creation on the first call.
    ///
    /// With `std`, a call made while this thread is already inside (a panic
    /// in the core allocating its payload) or a panic unwinding out of `f`
    /// aborts the process with a message: it never deadlocks on the lock.
    pub fn with<R>(&self, f: impl FnOnce(&mut A) -> R) -> Option<R> {
        guarded(|| {
            let _guard = self.lock.lock();
            // SAFETY: we hold the lock, so no other reference to `inner` exists.
            let inner = unsafe { &mut *self.inner.get() };
            let core = self.core(inner)?;
            // SAFETY: the allocator lives in its region for the rest of the
            // program and is only reached under the lock we hold.
            Some(f(unsafe { &mut *core.as_ptr() }))
        })
    }

    /// The allocator, created in the static region on first use.
    fn core(&self, inner: &mut Inner<A, H>) -> Option<NonNull<A>> {
        if inner.core.is_none() && !self.region.is_null() {
            // SAFETY: the region is valid and ours alone (contract of `new`).
            inner.core = unsafe { A::create_in(self.region, self.len, 0) };
        }
        inner.core
    }

    /// Gives the allocator `[region, region + len)` (creates the allocator
    /// in it if there is none yet).
    ///
    /// # Safety
    ///
    /// As for [`ArenaAllocator::add_region`]: the region is valid for reads
    /// and writes for the rest of the program and used by nothing else.
    ///
    /// # Time complexity
    ///
    /// That of [`ArenaAllocator::add_region`] (or of creation).
    pub unsafe fn add_region(&self, region: *mut u8, len: usize) -> Result<(), AddRegionError> {
        guarded(|| {
            let _guard = self.lock.lock();
            // SAFETY: we hold the lock, so no other reference to `inner` exists.
            let inner = unsafe { &mut *self.inner.get() };
            // SAFETY: the caller's contract.
            unsafe { self.take_region(inner, region, len) }
        })
    }

    /// # Safety
    ///
    /// As for [`GlobalArena::add_region`]; the lock is held.
    unsafe fn take_region(
        &self,
        inner: &mut Inner<A, H>,
        region: *mut u8,
        len: usize,
    ) -> Result<(), AddRegionError> {
        match self.core(inner) {
            // SAFETY: the caller's contract; the lock is held.
            Some(core) => unsafe { (*core.as_ptr()).add_region(region, len) },
            None => {
                // SAFETY: the caller's contract.
                let core = unsafe { A::create_in(region, len, 0) };
                inner.core = Some(core.ok_or(AddRegionError::TooSmall)?);
                Ok(())
            }
        }
    }

    /// Runs `f` on the out-of-memory handler, under the lock (to read what
    /// it counted, or give it more to hand out).
    ///
    /// # Time complexity
    ///
    /// That of `f`.
    pub fn oom_handler<R>(&self, f: impl FnOnce(&mut H) -> R) -> R {
        guarded(|| {
            let _guard = self.lock.lock();
            // SAFETY: we hold the lock, so no other reference to `inner` exists.
            f(&mut unsafe { &mut *self.inner.get() }.oom)
        })
    }

    /// The allocator's accounting (after creating it, if it was not yet).
    pub fn stats(&self) -> Option<AllocatorStats> {
        self.with(|a| a.stats())
    }

    /// Allocates for `layout` under the lock, asking the handler for more
    /// memory while the allocator cannot serve it.
    fn allocate(&self, layout: Layout) -> *mut u8 {
        guarded(|| self.allocate_locked(layout))
    }

    fn allocate_locked(&self, layout: Layout) -> *mut u8 {
        let _guard = self.lock.lock();
        // SAFETY: we hold the lock, so no other reference to `inner` exists.
        let inner = unsafe { &mut *self.inner.get() };
        for _ in 0..=MAX_OOM_ROUNDS {
            if let Some(core) = self.core(inner) {
                // SAFETY: as in `with`.
                let a = unsafe { &mut *core.as_ptr() };
                let p = if layout.align() <= ALLOCATOR_ALIGNMENT {
                    a.alloc(layout.size())
                } else {
                    a.alloc_aligned(layout.size(), layout.align())
                };
                if let Some(p) = p {
                    return p.as_ptr();
                }
            }
            let Some(more) = inner.oom.handle_oom(layout) else {
                break;
            };
            // SAFETY: the handler's contract is `add_region`'s.
            if unsafe { self.take_region(inner, more.start.as_ptr(), more.len) }.is_err() {
                break;
            }
        }
        ptr::null_mut()
    }
}

// SAFETY: blocks come from the allocator, which hands out each byte of its
// regions to at most one live block, aligned as asked (`alloc_aligned`), and
// the whole state is behind the lock.
unsafe impl<A: ArenaAllocator, H: OomHandler> GlobalAlloc for GlobalArena<A, H> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.allocate(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            let freed = self.with(|a| a.free(p));
            debug_assert!(
                matches!(freed, Some(Ok(()))),
                "GlobalArena: dealloc of a foreign pointer"
            );
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(p) = NonNull::new(ptr) else {
            return ptr::null_mut();
        };
        if layout.align() <= ALLOCATOR_ALIGNMENT {
            let q = self.with(|a| a.realloc(p, new_size).ok());
            if let Some(Some(q)) = q {
                return q.as_ptr();
            }
        }
        // Over-aligned (the cores' realloc only promises 16 bytes), or no
        // room: a new block (the handler may find memory for it), copy, free.
        // SAFETY: `new_size` with the old alignment is a valid layout (the
        // `GlobalAlloc::realloc` contract).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let q = self.allocate(new_layout);
        if !q.is_null() {
            // SAFETY: both blocks are live, distinct, and hold at least the
            // bytes copied.
            unsafe {
                ptr::copy_nonoverlapping(ptr, q, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        q
    }
}

/// `core::alloc::Allocator` (nightly, feature `allocator-api`): any core,
/// through its `GlobalArena`, for `Vec::new_in`, `Box::new_in` and the other
/// collections' `_in` constructors. The block handed out is as long as the
/// core's usable size (a power of two for the buddy allocator, a bucket or
/// whole pages for McKusick-Karels); `grow` and `shrink` use the core's
/// `realloc` (in place where it can) when the alignment does not change.
#[cfg(feature = "allocator-api")]
mod allocator_api {
    use core::alloc::{AllocError, Allocator, GlobalAlloc, Layout};
    use core::ptr::NonNull;

    use super::{GlobalArena, OomHandler};
    use crate::arena_allocator::ArenaAllocator;

    impl<A: ArenaAllocator, H: OomHandler> GlobalArena<A, H> {
        /// The block at `p` as a slice of its usable size (at least `size`).
        fn as_block(&self, p: *mut u8, size: usize) -> Result<NonNull<[u8]>, AllocError> {
            let p = NonNull::new(p).ok_or(AllocError)?;
            let usable = self.with(|a| a.usable_size(p)).flatten().unwrap_or(size);
            Ok(NonNull::slice_from_raw_parts(p, usable.max(size)))
        }
    }

    // SAFETY: blocks come from the core (as for `GlobalAlloc`), stay valid
    // until deallocated, and are as long as the slice says (the core's
    // usable size, which `free` accepts whatever the layout's size).
    unsafe impl<A: ArenaAllocator, H: OomHandler> Allocator for GlobalArena<A, H> {
        fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
            self.as_block(self.allocate(layout), layout.size())
        }

        unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
            // SAFETY: the caller's contract is `dealloc`'s.
            unsafe { GlobalAlloc::dealloc(self, ptr.as_ptr(), layout) }
        }

        unsafe fn grow(
            &self,
            ptr: NonNull<u8>,
            old: Layout,
            new: Layout,
        ) -> Result<NonNull<[u8]>, AllocError> {
            // SAFETY: the caller's contract is `resize`'s.
            unsafe { self.resize(ptr, old, new) }
        }

        unsafe fn shrink(
            &self,
            ptr: NonNull<u8>,
            old: Layout,
            new: Layout,
        ) -> Result<NonNull<[u8]>, AllocError> {
            // SAFETY: the caller's contract is `resize`'s.
            unsafe { self.resize(ptr, old, new) }
        }
    }

    impl<A: ArenaAllocator, H: OomHandler> GlobalArena<A, H> {
        /// `grow`/`shrink`: the core's realloc for the same alignment, else a
        /// new block, a copy and a free.
        ///
        /// # Safety
        ///
        /// `ptr` is a live block of this allocator allocated for `old`.
        unsafe fn resize(
            &self,
            ptr: NonNull<u8>,
            old: Layout,
            new: Layout,
        ) -> Result<NonNull<[u8]>, AllocError> {
            if new.align() == old.align() {
                // SAFETY: the caller's contract; the layout's alignment is kept.
                let q = unsafe { GlobalAlloc::realloc(self, ptr.as_ptr(), old, new.size()) };
                return self.as_block(q, new.size());
            }
            let q = Allocator::allocate(self, new)?;
            // SAFETY: both blocks are live and distinct; each holds at least
            // the bytes copied.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    ptr.as_ptr(),
                    q.cast::<u8>().as_ptr(),
                    old.size().min(new.size()),
                );
                self.deallocate(ptr, old);
            }
            Ok(q)
        }
    }
}

/// Declares a static arena of `$bytes` bytes and a [`GlobalArena`] over it.
///
/// Attributes go through to the static, so it can be the global allocator:
///
/// ```ignore
/// arena_api::global_arena!(#[global_allocator] pub static HEAP: buddy::Buddy = 32 << 20);
/// ```
#[macro_export]
macro_rules! global_arena {
    ($(#[$attr:meta])* $vis:vis static $name:ident : $ty:ty = $bytes:expr) => {
        $(#[$attr])*
        $vis static $name: $crate::GlobalArena<$ty> = {
            #[repr(C, align(4096))]
            struct Region([u8; $bytes]);
            static mut REGION: Region = Region([0; $bytes]);
            // SAFETY: `REGION` is private to this static, which is its only user.
            unsafe { $crate::GlobalArena::new((&raw mut REGION).cast::<u8>(), $bytes) }
        };
    };
}

//! A `GlobalAlloc` adapter: any [`ArenaAllocator`] as a Rust program's global
//! allocator, over a static arena, behind a spin lock.
//!
//! ```ignore
//! plugin_abi::global_arena!(#[global_allocator] static GLOBAL: buddy::Buddy = 64 << 20);
//! ```
//!
//! The allocator is created on first use. The arena never grows: when it is
//! full, allocation fails and Rust's `handle_alloc_error` aborts, as for any
//! out-of-memory.
//!
//! A panic inside the core (a bug) would allocate its payload through this
//! same allocator while its non-reentrant lock is held, and spin forever.
//! Instead the adapter notices the re-entry (a thread-local flag, set while
//! the thread holds the lock) and a panic that unwinds out of the core
//! (`catch_unwind`), and aborts the process with a message on stderr.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::{Cell, UnsafeCell};
use core::ptr::{self, NonNull};
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::arena_allocator::ArenaAllocator;
use crate::spin::SpinLock;
use crate::types::{ALLOCATOR_ALIGNMENT, AllocatorStats};

/// An [`ArenaAllocator`] over a fixed region, usable as `#[global_allocator]`.
pub struct GlobalArena<A> {
    region: *mut u8,
    len: usize,
    lock: SpinLock,
    /// `None` until the first call creates the allocator; written under `lock`.
    state: UnsafeCell<Option<NonNull<A>>>,
}

// SAFETY: every access to `state` and to the allocator it points to happens
// under `lock`; `region` is only handed to the allocator.
unsafe impl<A> Sync for GlobalArena<A> {}
// SAFETY: as for `Sync`.
unsafe impl<A> Send for GlobalArena<A> {}

impl<A: ArenaAllocator> GlobalArena<A> {
    /// An adapter over `[region, region + len)`; nothing happens until the
    /// first allocation.
    ///
    /// # Safety
    ///
    /// The region must be valid for reads and writes for the rest of the
    /// program and used by nothing else (a private `static mut` array, as
    /// [`crate::global_arena!`] declares).
    pub const unsafe fn new(region: *mut u8, len: usize) -> Self {
        GlobalArena {
            region,
            len,
            lock: SpinLock::new(),
            state: UnsafeCell::new(None),
        }
    }

    /// Runs `f` on the allocator, creating it first if needed; `None` if the
    /// region cannot hold one.
    ///
    /// # Time complexity
    ///
    /// That of `f`, plus the allocator's creation on the first call.
    ///
    /// A call made while this thread is already inside (a panic in the core
    /// allocating its payload) or a panic unwinding out of `f` aborts the
    /// process with a message: it never deadlocks on the lock.
    pub fn with<R>(&self, f: impl FnOnce(&mut A) -> R) -> Option<R> {
        if INSIDE.with(|inside| inside.replace(true)) {
            abort_with("re-entered while it held its lock (a panic inside the allocator?)");
        }
        let guard = self.lock.lock();
        let r = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: we hold the lock, so no other reference to `state` exists.
            let state = unsafe { &mut *self.state.get() };
            if state.is_none() {
                // SAFETY: the region is valid and ours alone (contract of `new`).
                *state = unsafe { A::create_in(self.region, self.len, 0) };
            }
            // SAFETY: the allocator lives in the region for the rest of the
            // program and is only reached under the lock we hold.
            state.map(|core| f(unsafe { &mut *core.as_ptr() }))
        }));
        drop(guard);
        INSIDE.with(|inside| inside.set(false));
        r.unwrap_or_else(|_| abort_with("the allocator panicked"))
    }

    /// The allocator's accounting (after creating it, if it was not yet).
    pub fn stats(&self) -> Option<AllocatorStats> {
        self.with(|a| a.stats())
    }
}

std::thread_local! {
    /// True while this thread is inside [`GlobalArena::with`] (holds a lock).
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

/// Writes `GlobalArena: why` to stderr (unbuffered, no allocation) and
/// aborts.
#[cold]
fn abort_with(why: &str) -> ! {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(b"GlobalArena: ");
    let _ = err.write_all(why.as_bytes());
    let _ = err.write_all(b": aborting\n");
    std::process::abort()
}

// SAFETY: blocks come from the allocator, which hands out each byte of its
// region to at most one live block, aligned as asked (`alloc_aligned`), and
// the whole state is behind the lock.
unsafe impl<A: ArenaAllocator> GlobalAlloc for GlobalArena<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = self.with(|a| {
            if layout.align() <= ALLOCATOR_ALIGNMENT {
                a.alloc(layout.size())
            } else {
                a.alloc_aligned(layout.size(), layout.align())
            }
        });
        p.flatten().map_or(ptr::null_mut(), NonNull::as_ptr)
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
            return q.flatten().map_or(ptr::null_mut(), NonNull::as_ptr);
        }
        // Over-aligned: the cores' realloc only promises 16 bytes.
        // SAFETY: `new_size` with the old alignment is a valid layout (the
        // `GlobalAlloc::realloc` contract).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: forwarding the caller's layout contract.
        let q = unsafe { self.alloc(new_layout) };
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

/// Declares a static arena of `$bytes` bytes and a [`GlobalArena`] over it.
///
/// Attributes go through to the static, so it can be the global allocator:
///
/// ```ignore
/// plugin_abi::global_arena!(#[global_allocator] pub static HEAP: buddy::Buddy = 32 << 20);
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

//! `malloc` and friends over an alloclab arena allocator core, for
//! `LD_PRELOAD`.
//!
//! This crate holds everything, generic over [`ArenaAllocator`]:
//! [`Shim`] is the allocator, [`export_malloc!`] expands to the C functions a
//! program calls. Each core gets a tiny `cdylib` crate that invokes the macro
//! once (`crates/buddy-malloc` → `libbuddy_malloc.so`,
//! `crates/mckusick-karels-malloc` → `libmckusick_karels_malloc.so`): two
//! libraries exporting `malloc` cannot be linked into one binary, and cargo
//! unifies features across a workspace, so one library choosing its core at
//! run time is not an option.
//!
//! ```sh
//! cargo build --release -p buddy-malloc
//! LD_PRELOAD=target/release/libbuddy_malloc.so ALLOCLAB_SHIM_STATS=1 python3 -c 'print(1)'
//! ```
//!
//! # Exported functions
//!
//! `malloc`, `free`, `calloc`, `realloc`, `reallocarray`, `posix_memalign`,
//! `aligned_alloc`, `memalign`, `valloc`, `pvalloc`, `malloc_usable_size`,
//! with glibc's rules for the edge cases: `malloc(0)` is a unique pointer,
//! `free(NULL)` does nothing, `realloc(NULL, n)` is `malloc(n)`,
//! `realloc(p, 0)` frees `p` and returns NULL, a failed `realloc` leaves `p`
//! alone, `calloc`/`reallocarray` overflow gives NULL and `ENOMEM`,
//! `posix_memalign` answers `EINVAL` for an alignment that is not a power of
//! two multiple of `sizeof(void *)` and leaves `*memptr` alone on error,
//! every failure sets `errno` to `ENOMEM`. Where glibc aborts (a bad or
//! double free), the shim leaves the pointer alone and counts it.
//!
//! # Memory
//!
//! - **Arenas**: 64 MiB ([`registry::ARENA`]) anonymous mappings aligned to
//!   their size, obtained from the kernel as needed (the brief's "initialised
//!   with free pages from the kernel"); the core manages each one whole
//!   (after a 64-byte-rounded [`Shim`] header). Pages are touched only as the
//!   core uses them.
//! - **Finding a pointer's arena**: `p & !(ARENA - 1)`, checked against a
//!   bitmap of registered slots ([`registry`]): O(1), and a foreign pointer is
//!   never dereferenced.
//! - **Large requests** (more than [`LARGE_THRESHOLD`] = 1 MiB, or aligned
//!   beyond [`MAX_CORE_ALIGN`] = 4 KiB) get a mapping of their own, also
//!   64 MiB-aligned and registered, with a header page; `realloc` grows it
//!   with `mremap` (in place, or by moving the pages: no copy), `free` unmaps
//!   it.
//!
//! # Threads and fork
//!
//! One lock per arena (a futex mutex that knows its owner, [`lock`]), and the
//! threads spread over up to [`MAX_STRIPES`] arena chains by a multiplicative
//! hash of `pthread_self()`: no thread-local storage (which could allocate on
//! first use). Two threads of different stripes never share a lock on the
//! allocation path; a `free` takes the lock of the block's arena whoever
//! frees it. The default is `min(8, 2 × CPUs)` stripes; `ALLOCLAB_SHIM_ARENAS=1`
//! makes it one global lock (for measuring the difference).
//!
//! `pthread_atfork` handlers (registered by the library constructor) take
//! the growth lock and every arena lock before `fork`, and release them in
//! the parent and reset them in the child, so the child never inherits an
//! arena in the middle of an update.
//!
//! # No recursion, no panic
//!
//! The malloc path uses static state, raw `mmap`/`munmap`/`mremap`/futex
//! calls through libc (none of which allocates), and `getenv`/`write` for
//! its options and statistics; no std collection, `format!`, `thread_local!`
//! or `Box`. Initialisation is lazy and re-entrant: the first allocation
//! needs nothing initialised.
//!
//! The shim's own code is written not to panic (checked arithmetic, no
//! indexing that can fail, no `unwrap`). Every call into the core runs under
//! `catch_unwind`; a core that panics has its arena retired (never called
//! again; its blocks leak) and the request is served elsewhere. A panic
//! allocates its payload through this very shim while the panicking thread
//! holds the arena lock: the lock recognises its owner and those calls are
//! served by a mapping of their own instead of deadlocking. And as a last
//! line, Rust aborts a panic that reaches an `extern "C"` function.
//!
//! # Statistics
//!
//! `ALLOCLAB_SHIM_STATS=1` makes the library print one line of counters to
//! stderr when the process exits (`alloclab-shim: allocator=buddy pid=...
//! arenas=... allocs=...`): the proof, in tests, that the shim was used.
#![deny(unsafe_op_in_unsafe_fn)]
// The malloc path must not panic: no unchecked arithmetic, indexing or unwrap.
#![cfg_attr(
    not(test),
    deny(
        clippy::arithmetic_side_effects,
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo
    )
)]

pub mod lock;
pub mod registry;
mod shim;
pub mod sys;

pub use plugin_abi::ArenaAllocator;
pub use shim::{ForkHandlers, LARGE_THRESHOLD, MAX_CORE_ALIGN, MAX_STRIPES, Shim, ShimStats};

/// Exports the C allocation functions of a [`Shim`] over core `$ty`, plus a
/// library constructor (set-up, fork handlers) and destructor (statistics).
///
/// ```ignore
/// malloc_shim::export_malloc!(buddy::Buddy, "buddy", 0);
/// ```
///
/// Use it once, in a `cdylib` crate of its own.
#[macro_export]
macro_rules! export_malloc {
    ($ty:ty, $name:literal, $flags:expr) => {
        static __ALLOCLAB_SHIM: $crate::Shim<$ty> = $crate::Shim::new(
            $name,
            $flags,
            $crate::ForkHandlers {
                prepare: __alloclab_fork_prepare,
                parent: __alloclab_fork_parent,
                child: __alloclab_fork_child,
            },
        );

        unsafe extern "C" fn __alloclab_fork_prepare() {
            __ALLOCLAB_SHIM.fork_prepare()
        }
        unsafe extern "C" fn __alloclab_fork_parent() {
            __ALLOCLAB_SHIM.fork_parent()
        }
        unsafe extern "C" fn __alloclab_fork_child() {
            __ALLOCLAB_SHIM.fork_child()
        }

        extern "C" fn __alloclab_shim_init() {
            __ALLOCLAB_SHIM.init()
        }
        extern "C" fn __alloclab_shim_fini() {
            __ALLOCLAB_SHIM.report_if_asked()
        }
        #[used]
        #[unsafe(link_section = ".init_array")]
        static __ALLOCLAB_SHIM_INIT: extern "C" fn() = __alloclab_shim_init;
        #[used]
        #[unsafe(link_section = ".fini_array")]
        static __ALLOCLAB_SHIM_FINI: extern "C" fn() = __alloclab_shim_fini;

        /// C `malloc`.
        #[unsafe(no_mangle)]
        pub extern "C" fn malloc(size: usize) -> *mut ::core::ffi::c_void {
            __ALLOCLAB_SHIM.malloc(size)
        }

        /// C `free`.
        ///
        /// # Safety
        ///
        /// `p` is NULL or came from this library's allocation functions.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn free(p: *mut ::core::ffi::c_void) {
            // SAFETY: the C contract of free.
            unsafe { __ALLOCLAB_SHIM.free(p) }
        }

        /// C `calloc`.
        #[unsafe(no_mangle)]
        pub extern "C" fn calloc(n: usize, m: usize) -> *mut ::core::ffi::c_void {
            __ALLOCLAB_SHIM.calloc(n, m)
        }

        /// C `realloc`.
        ///
        /// # Safety
        ///
        /// As for `free`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn realloc(
            p: *mut ::core::ffi::c_void,
            size: usize,
        ) -> *mut ::core::ffi::c_void {
            // SAFETY: the C contract of realloc.
            unsafe { __ALLOCLAB_SHIM.realloc(p, size) }
        }

        /// C `reallocarray`.
        ///
        /// # Safety
        ///
        /// As for `free`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn reallocarray(
            p: *mut ::core::ffi::c_void,
            n: usize,
            m: usize,
        ) -> *mut ::core::ffi::c_void {
            // SAFETY: the C contract of reallocarray.
            unsafe { __ALLOCLAB_SHIM.reallocarray(p, n, m) }
        }

        /// C `posix_memalign`.
        ///
        /// # Safety
        ///
        /// `out` is valid for a pointer write.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn posix_memalign(
            out: *mut *mut ::core::ffi::c_void,
            align: usize,
            size: usize,
        ) -> ::core::ffi::c_int {
            // SAFETY: the C contract of posix_memalign.
            unsafe { __ALLOCLAB_SHIM.posix_memalign(out, align, size) }
        }

        /// C `aligned_alloc`.
        #[unsafe(no_mangle)]
        pub extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut ::core::ffi::c_void {
            __ALLOCLAB_SHIM.aligned_alloc(align, size)
        }

        /// C `memalign`.
        #[unsafe(no_mangle)]
        pub extern "C" fn memalign(align: usize, size: usize) -> *mut ::core::ffi::c_void {
            __ALLOCLAB_SHIM.memalign(align, size)
        }

        /// C `valloc`.
        #[unsafe(no_mangle)]
        pub extern "C" fn valloc(size: usize) -> *mut ::core::ffi::c_void {
            __ALLOCLAB_SHIM.valloc(size)
        }

        /// C `pvalloc`.
        #[unsafe(no_mangle)]
        pub extern "C" fn pvalloc(size: usize) -> *mut ::core::ffi::c_void {
            __ALLOCLAB_SHIM.pvalloc(size)
        }

        /// C `malloc_usable_size`.
        ///
        /// # Safety
        ///
        /// As for `free`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn malloc_usable_size(p: *mut ::core::ffi::c_void) -> usize {
            // SAFETY: the C contract of malloc_usable_size.
            unsafe { __ALLOCLAB_SHIM.usable_size(p) }
        }
    };
}

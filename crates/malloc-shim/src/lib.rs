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
//! # The sources, by concern
//!
//! | file | what |
//! |---|---|
//! | [`shim`] | the [`Shim`]: state, start-up, where a pointer lives, which arena serves, the locked paths, `malloc_trim`, fork |
//! | [`cached`] | the lock-free fast path through the thread cache: hits, refills, flushes, thread exit |
//! | [`tcache`] | the thread caches' storage, how a thread gets one and gives it back |
//! | [`tls`] | the one thread-local word (initial-exec: no allocation, no `__tls_get_addr`) |
//! | [`class`] | size classes and the side table (one byte per 16 bytes: a block's class and whether it is cached) |
//! | [`arena`] | an arena's header, its locked core operations, giving free pages back to the kernel |
//! | [`large`] | large blocks' headers, their mappings and the cache of freed mappings |
//! | [`posix`] | the C functions' rules (glibc's edge cases) |
//! | [`foreign`] | pointers the shim did not hand out (forwarded with `dlsym(RTLD_NEXT)`) |
//! | [`stats`] | counters and the statistics line |
//! | [`options`] | the environment variables |
//! | [`lock`], [`registry`], [`sys`] | the owner-aware futex mutex, the slot bitmap, system calls |
//!
//! # Exported functions
//!
//! `malloc`, `free`, `calloc`, `realloc`, `reallocarray`, `posix_memalign`,
//! `aligned_alloc`, `memalign`, `valloc`, `pvalloc`, `malloc_usable_size`,
//! `malloc_trim`, with glibc's rules for the edge cases: `malloc(0)` is a
//! unique pointer, `free(NULL)` does nothing, `realloc(NULL, n)` is
//! `malloc(n)`, `realloc(p, 0)` frees `p` and returns NULL, a failed
//! `realloc` leaves `p` alone, `calloc`/`reallocarray` overflow gives NULL
//! and `ENOMEM`, `posix_memalign` answers `EINVAL` for an alignment that is
//! not a power of two multiple of `sizeof(void *)` and leaves `*memptr` alone
//! on error, every failure sets `errno` to `ENOMEM`. Where glibc aborts (a
//! bad or double free), the shim leaves the pointer alone and counts it —
//! or aborts with glibc's message when `ALLOCLAB_SHIM_ABORT=1`. A pointer
//! that is not the shim's goes to the allocator that would have served it
//! ([`foreign`]).
//!
//! # No recursion, no panic
//!
//! The malloc path uses static state, the thread-local word, raw
//! `mmap`/`munmap`/`mremap`/`madvise`/futex calls through libc (none of
//! which allocates), and `getenv`/`write` for its options and statistics;
//! no std collection, `format!` or `Box`. Initialisation is lazy and
//! re-entrant: the first allocation needs nothing initialised.
//!
//! The shim's own code is written not to panic (checked arithmetic, no
//! indexing that can fail, no `unwrap`). Every call into a core runs under
//! `catch_unwind`; a core that panics has its arena retired (never called
//! again; its blocks leak) and the request is served elsewhere. A panic
//! allocates its payload through this very shim while the panicking thread
//! holds the arena lock: the lock recognises its owner and those calls are
//! served without it. And as a last line, Rust aborts a panic that reaches
//! an `extern "C"` function.
//!
//! # The library's own memory
//!
//! Every process under `LD_PRELOAD` pays for the library's pages, and a
//! small program's peak RSS is mostly such fixed costs (glibc's: 1.5 MiB).
//! Two choices keep the shim's small (the README's section of the same name
//! gives the figures):
//!
//! - the few functions of this crate that are not generic over the core
//!   (thread-cache set-up, options, large-block cache, `write_all`) are
//!   `#[inline]`, so they are compiled into the `cdylib`'s own code unit,
//!   beside `malloc` and `free`, instead of after std's code: a process
//!   faults in one stretch of the library's text, not two (the kernel maps
//!   file pages in 64 KiB windows around each fault);
//! - the `cdylib` crates link libgcc's unwinder statically (`build.rs`), so
//!   `libgcc_s.so.1` is not loaded.
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

pub mod arena;
pub mod cached;
pub mod class;
pub mod foreign;
pub mod large;
pub mod lock;
pub mod options;
pub mod posix;
pub mod registry;
pub mod shim;
pub mod stats;
pub mod sys;
pub mod tcache;
pub mod tls;

pub use large::{LARGE_THRESHOLD, MAX_CORE_ALIGN};
pub use plugin_abi::ArenaAllocator;
pub use shim::{ForkHandlers, MAX_STRIPES, Shim};
pub use stats::ShimStats;

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
        )
        .forwarding_foreign();

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
            __ALLOCLAB_SHIM.init_library()
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

        /// C `malloc_trim`.
        #[unsafe(no_mangle)]
        pub extern "C" fn malloc_trim(pad: usize) -> ::core::ffi::c_int {
            __ALLOCLAB_SHIM.malloc_trim(pad)
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

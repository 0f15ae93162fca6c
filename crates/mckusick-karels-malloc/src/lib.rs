//! `libmckusick_karels_malloc.so`: the C allocation functions (`malloc`,
//! `free`, `calloc`, `realloc`, `posix_memalign`, ...) over 64 MiB arenas of
//! the McKusick-Karels core, for `LD_PRELOAD`. Everything is in
//! `malloc-shim`; this crate only picks the core.
//!
//! The core runs with `ALLOCATOR_FLAG_RETURN_PAGES`: a bucket page whose
//! objects are all free goes back to the page pool, so memory freed in one
//! size class can serve another (4.4BSD kept it in its bucket for ever; a
//! long-running program whose sizes drift would only grow).
#![deny(unsafe_op_in_unsafe_fn)]

malloc_shim::export_malloc!(
    mckusick_karels::McKusickKarels,
    "mckusick-karels",
    plugin_abi::ALLOCATOR_FLAG_RETURN_PAGES
);

//! `libbuddy_malloc.so`: the C allocation functions (`malloc`, `free`,
//! `calloc`, `realloc`, `posix_memalign`, ...) over 64 MiB arenas of the
//! binary buddy core, for `LD_PRELOAD`. Everything is in `malloc-shim`; this
//! crate only picks the core.
#![deny(unsafe_op_in_unsafe_fn)]

malloc_shim::export_malloc!(buddy::Buddy, "buddy", 0);

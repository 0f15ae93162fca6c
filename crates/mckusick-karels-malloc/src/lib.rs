//! `libmckusick_karels_malloc.so`: the C allocation functions (`malloc`,
//! `free`, `calloc`, `realloc`, `posix_memalign`, ...) over 64 MiB arenas of
//! the McKusick-Karels core, for `LD_PRELOAD`. Everything is in
//! `malloc-shim`; this crate only picks the core.
//!
//! The core runs in its default mode (singly linked bucket lists, the fast
//! paths): a bucket keeps the runs its objects emptied, so a program that
//! frees and allocates again around a page boundary never re-carves a page.
//! Those runs go back to the page pool when a request for pages would
//! otherwise fail in the arena (at most once per 1/16 of the arena freed
//! into the buckets), and at every trim of the arena (periodic, after 8 MiB
//! freed and at most every 100 ms; an emptied arena; `malloc_trim`), which
//! then gives their pages back to the kernel: memory freed in one size class
//! can serve another, and a long-running program whose sizes drift does not
//! only grow. (Until this was measured, the shim ran the core with
//! `ALLOCATOR_FLAG_RETURN_PAGES`, which returns a run the moment it empties:
//! doubly linked lists and no fast path, 1.5 times the instructions of the
//! default mode in the allocator on `lua`.)
#![deny(unsafe_op_in_unsafe_fn)]

malloc_shim::export_malloc!(mckusick_karels::McKusickKarels, "mckusick-karels", 0);

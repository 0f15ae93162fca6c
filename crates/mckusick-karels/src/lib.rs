//! The McKusick-Karels allocator: the 4.3/4.4BSD kernel `malloc`
//! (McKusick & Karels, "Design of a General Purpose Memory Allocator for the
//! 4.3BSD UNIX Kernel", USENIX 1988; 4.4BSD `kern_malloc.c`), over an arena
//! the caller provides, with all its state inside that arena.
//!
//! # The terms
//!
//! - **page**: the unit the arena is cut into (4 KiB by default; a
//!   [`Config`] parameter, always 4 KiB through the C ABI). Pages are
//!   aligned to the page size in absolute address.
//! - **bucket** (`struct kmembuckets`, fields `kb_`): the free list of one
//!   power-of-two object size. A request of `size` bytes goes to the bucket
//!   of the next power of two, index `ceil(log2(size))`, and pops the head of
//!   its list `kb_next`; the link lives in the free object itself.
//! - **MINBUCKET**: log2 of the smallest object, 4 (16 bytes).
//! - **MAXALLOCSAVE**: the largest size kept in buckets, two pages (8 KiB).
//!   Larger requests get a page run of `ceil(size / page)` pages.
//! - **kmemusage** / page descriptor (`struct kmemusage`, fields `ku_`): one
//!   16-byte entry per page, found from an address by arithmetic. It tells
//!   `free` the size of a block, so blocks carry no header:
//!   - `ku_indx`: the bucket of a page cut into objects;
//!   - `ku_un`: the page's allocated bitmap (one bit per object; for
//!     pages of more than 64 objects it lies in the page, see 3. below),
//!     or a free run's list links. 4.4BSD's `ku_freecnt` (free objects
//!     of the page) is not kept: the bitmap says it;
//!   - `ku_pagecnt`: the length of the page run that the page starts (or
//!     ends: boundary tags).
//! - **page run**: consecutive pages handed out or kept as one unit: a
//!   bucket's page(s), a large allocation, or free pages. The page
//!   allocator finds free runs through size-segregated lists and merges
//!   neighbours on free through the boundary tags.
//!
//! ```text
//!          bucket[]                          pages (4 KiB)
//!  [4]  16 B  kb_next ──────────────┐   ┌─────────┬─────────┬─────────┬─────────┬──────
//!  [5]  32 B  null                  └──▶│ 16 B    │ 512 B   │ large   │ large   │ free
//!  ...                                  │ objects │ objects │ run of 2 pages    │ run
//!  [9] 512 B  kb_next ─────────────────▶│         │         │         │         │
//!  ...                                  └─────────┴─────────┴─────────┴─────────┴──────
//!                                 kmemusage:  BUCKET    BUCKET    LARGE     LARGE_TAIL FREE
//!                                             indx 4    indx 9    pagecnt 2 pagecnt 2  pagecnt n
//!                                             bitmap    bitmap
//! ```
//!
//! `malloc(size)`: `size <= MAXALLOCSAVE`: bucket index by leading-zero
//! count, check the head `kb_next` against its descriptor and bitmap, set
//! its allocated bit, pop it. An empty list takes the next
//! object of the bucket's newest run (carved lazily, see 5. below), and once
//! that run is used up a new page (two for the `MAXALLOCSAVE` bucket) from
//! the page allocator. Larger: a page run.
//!
//! `free(p)`: descriptor of `p`'s page → bucket page? check the offset is a
//! multiple of the object size and the allocated bit is set, clear it, push
//! the object. Large run head? give the run back.
//!
//! # Where this differs from 4.4BSD, and why
//!
//! 1. **The page allocator.** 4.4BSD took pages from the kernel map
//!    (`kmem_malloc`/`kmem_free`, a VM map of entries). Here the pages must
//!    be managed inside the arena: boundary tags in the descriptor table
//!    plus free-run lists by length class and a bitmask of non-empty classes
//!    ([`page_alloc`]), so a run is found in O(1) typical and merged with its
//!    free neighbours in O(1).
//! 2. **The descriptor is 16 bytes, not 4.** 4.4BSD's `kmemusage` is
//!    `{short ku_indx; union {u_short freecnt, pagecnt}}`. Ours adds a kind
//!    byte (free / bucket / large, head / tail), widens `ku_pagecnt` to 32
//!    bits (4.4BSD panicked above 65535 pages), and adds 8 bytes: the
//!    object *allocated bitmap* of pages with at most 64 objects, or a free
//!    run's list links. It does not keep 4.4BSD's `ku_freecnt`: `malloc`
//!    and `free` would update it on every call, and the bitmap already
//!    says how many objects are free (a popcount) and whether all are
//!    (every word zero), the only question asked of it outside the
//!    invariant checker. 0.39 % of the arena with 4 KiB pages
//!    ([`kmemusage`]).
//! 3. **Bad and double frees are rejected deterministically.** 4.4BSD
//!    trusted the caller (`DIAGNOSTIC` kernels checked alignment and
//!    searched the free list for duplicates, then panicked). Here every free
//!    is checked against the descriptor and an allocated bit per object;
//!    nothing in the object is trusted. Pages with more than 64 objects
//!    (16- and 32-byte buckets at 4 KiB) keep their bitmap in their first
//!    object slots: 2 of 256 slots of 16 B, 1 of 128 of 32 B (0.78 % of those
//!    pages only), counted as metadata while the page belongs to the bucket.
//! 4. **Free-list order.** 4.4BSD (8.x) appended a freed object at the tail
//!    of the bucket list (`kb_last`, FIFO), which gave its `DIAGNOSTIC`
//!    write-after-free check the longest time to notice. The 1988 design and
//!    4.3BSD-Reno pushed at the head (LIFO), as FreeBSD later did again "for
//!    quick reuse ... in the cache". We push at the head (LIFO): one store
//!    fewer, no `kb_last`, and the most recently freed (cache-warm) object is
//!    reused first. This moves benchmark numbers (warm reuse) and not the
//!    memory usage.
//! 5. **Lazy carving.** 4.4BSD chained a fresh page from its last object
//!    down to its first at once (one write per object, every line of the
//!    page touched before the first object is handed out). Here, with
//!    singly linked lists (the default and the faithful mode), a fresh run
//!    becomes the bucket's *carve range* ([`bucket::Carve`]): `malloc` takes
//!    its objects in ascending address order, as a bump pointer, when the
//!    list is empty, and writes nothing into them; freed objects go to the
//!    list as usual. With `ALLOCATOR_FLAG_RETURN_PAGES` (doubly linked
//!    lists, whose free-page check must find every free object on the list)
//!    a fresh page is still threaded as 4.4BSD did, in descending order.
//! 6. **Memory comes back by default.** 4.4BSD never gives a bucket's
//!    page back: it counted `kb_couldfree` once `kb_totalfree > kb_highwat`
//!    and stopped there, so filling an arena with small blocks and freeing
//!    them left it unable to serve a large request. Here ([`PageReturn`]),
//!    by default a bucket keeps its empty runs (so the hot paths stay
//!    4.4BSD's, singly linked, and a loop at a page boundary never re-carves
//!    a page), and a request for pages that would fail first gives back
//!    every bucket run whose objects are all free, then retries: filling 1
//!    MiB with 16-byte blocks, freeing them and asking for 256 KiB succeeds.
//!    A `free` that empties a run notes it (when the bitmap word it clears
//!    becomes zero, it tests the run's other bitmap words, if any), so
//!    that search walks the table only when some run is empty: a full arena
//!    whose free objects are scattered is not walked on every refused
//!    request. The owner of the memory can also ask for the empty runs back
//!    at any time ([`McKusickKarels::release_cached`]; the malloc shim does
//!    at each trim, then gives their pages to the kernel).
//!    The lists of the buckets concerned are threaded anew from the bitmaps
//!    (O(pages + their free objects), only on that path). `stats()` counts
//!    those runs as free and in `largest_free_block`.
//!    `ALLOCATOR_FLAG_RETURN_PAGES` ([`Config::RETURN_PAGES`]) returns a run
//!    as soon as it is empty: its lists are **doubly linked** (the second
//!    word of a free object is the back link) so a run's objects are
//!    unlinked in O(objects per page), and the hot paths write one more
//!    link. `ALLOCATOR_FLAG_FAITHFUL` ([`Config::FAITHFUL`]) never returns a
//!    run, as 4.4BSD.
//! 7. **Sizes above MAXALLOCSAVE** take `ceil(size / page)` pages, as in
//!    4.4BSD (`roundup(size, CLBYTES)`), and no bucket index is stored for
//!    them: the descriptor kind says "large". `realloc` (which 4.4BSD's
//!    kernel lacked until later BSDs) works in place where it can.
//! 8. **Hardened free lists**:
//!    4.4BSD followed `kb_next` blindly, so a write into a freed object
//!    (use after free) made `malloc` return any address. Here nothing is
//!    read from the list head, and it is not handed out, before the
//!    descriptor table and the allocated bitmap confirm it is a free object
//!    of the bucket (inside the pages, aligned, outside the bitmap slots,
//!    bit clear); the list must end exactly when `kb_totalfree` says (a null
//!    link that cuts it short is found when the list runs dry, a link to an
//!    object counted elsewhere when the count runs out first); an object of
//!    the carve range (the allocator's own state, never read from a free
//!    object: always inside a run of the bucket, aligned, past the bitmap
//!    slots) must have its bit clear, as a link pointing there may have
//!    handed it out already; unlinking from a doubly
//!    linked list checks `prev.next == obj && next.prev == obj`, and there
//!    the new head is checked when it is installed (a back link is written
//!    into it). A link that fails is never followed: the bucket's list is
//!    rebuilt from the bitmaps (nothing is lost), counted
//!    ([`McKusickKarels::free_list_repairs`]), and `allocator_check` answers
//!    `ALLOCATOR_CHECK_REPAIRED`. The head is checked when it is popped, not
//!    when it becomes the head: the descriptor and bitmap word it reads are
//!    the ones `malloc` updates to mark the object allocated, so the check
//!    adds no cache line and a handful of instructions (see the cost table
//!    below); `free` checks nothing more.
//! 9. **No `kmemstats`/types, no sleeping**: an arena allocator answers
//!    `None` when full; thread safety is the caller's (or the C layer's
//!    `ALLOCATOR_FLAG_LOCKED` spin lock), where 4.4BSD raised the spl.
//!
//! # Choices that move the numbers
//!
//! - **Page size 4 KiB** (the C ABI's; a [`Config`] parameter for Rust): the
//!   descriptor costs 16 B a page (0.39 %), and when the arena runs out each
//!   bucket has at most one partly used page. Larger pages shrink the table
//!   but leave more of each bucket's last page unused and round large
//!   requests more coarsely; smaller pages do the opposite.
//! - **MAXALLOCSAVE = 2 pages**, 4.4BSD's `2 * CLBYTES`: requests up to 8 KiB
//!   are power-of-two objects kept in buckets, larger ones are rounded to
//!   pages only (at most one page lost instead of up to half).
//! - **LIFO bucket lists** (see 4. above): reuse is cache-warm.
//! - **Lazy carving** (see 5. above): a fresh page costs `malloc` nothing
//!   but the bitmap bit of each object; the first write into an object's
//!   line is the caller's (or `free`'s).
//! - **Free-run lists**: LIFO, best fit among the 16 exact classes, four
//!   probes of the own power-of-two class before a larger run is split
//!   ([`page_alloc`]).
//! - **Hot-path details**: the allocated-bitmap's place (in the descriptor
//!   or in the page) is selected without a branch (`select_unpredictable`);
//!   `malloc` prefetches the new list head, whose link the next `malloc` of
//!   that bucket reads; the fields both paths read come first in the state
//!   (`base`, `pages_len`, the page shift and mode, the table's address);
//!   `kb_total` lives apart from the 16-byte buckets; `malloc` and `free`
//!   are compiled once for 4 KiB pages (a constant shift, per-bucket
//!   alignment and bitmap-slot tables) and once for any page size; and the C
//!   ABI calls a fast path (`alloc_fast`/`free_fast` of `arena_api`) that
//!   covers list pops, carving and object frees on an unlocked handle, with
//!   no call and nothing that can panic, outside `catch_unwind`; when it
//!   declines, it jumps to the full path (an `extern "C"` function, known
//!   not to unwind: a tail call, so the fast path saves no register).
//!
//! # Cost per call (4 KiB pages, default or faithful mode)
//!
//! | path | loads | stores | branches | cache lines |
//! |------|-------|--------|----------|-------------|
//! | `malloc`, list not empty | the handle's magic (the state lies right after the handle: no pointer to it is loaded), 4 state fields, `kb_next` + `kb_totalfree`, the head's descriptor (kind + bucket: one 16-bit load) and bitmap word, two table entries (alignment, bitmap slots), the head's link | bitmap word, `kb_next`, `kb_totalfree` | handle, size class and fast mode (one compare), empty list, then the check: range, alignment, kind + bucket, bitmap slots, bit (all predicted) | handle, state, bucket, descriptor (+ the page's first line for the in-page bitmaps of 16/32-byte objects), object: 4–5 |
//! | `malloc`, list empty, carve range left | the handle, 3 state fields, `kb_next` + `kb_totalfree`, the carve range (`next`, `end`), the object's bitmap word (and its descriptor's kind + bucket only in debug builds: the range lies in a run of the bucket) | bitmap word, carve `next` | handle, size class and fast mode, empty list, range empty, head null, bit | handle, state, bucket, carve, descriptor or in-page bitmap; the object is only prefetched |
//! | `malloc`, nothing left | + a page-run search (O(1) typical); the run becomes the carve range (threaded, O(objects), with doubly linked lists) | tags | | the new run's descriptor (+ its first line: in-page bitmap) |
//! | `free`, object | the handle, 3 state fields, the descriptor (kind, bucket), an alignment-table entry, the bitmap word, `kb_next` | bitmap word, the object's link, `kb_next`, `kb_totalfree` | handle, range and fast mode (one compare: null fails it too), kind, alignment, bit, bitmap word now zero (then: the run's other bitmap words, all zero: run all free) | handle, state, descriptor (+ in-page bitmap), object, bucket: 4–5 |
//! | `free`, large run | descriptor, the neighbours' boundary tags | tags, free-run list links | range, kind, merges | 3–4 |
//!
//! Counted through the C ABI (callgrind on `benches/c_abi_calls.c`: 210,000
//! calls of the `small-random` and `small-aged` pattern on
//! `libmckusick_karels.so`, wrapper included):
//! about 60 instructions per `allocator_alloc` and 43 per `allocator_free`
//! (65 and 47 while the fast paths loaded the state's address from the
//! handle, selected the bitmap word itself rather than the word before
//! the bitmap (which an indexed load with a displacement now reads for
//! both kinds of bitmap), and `free` pushed `base + off` rather than the
//! caller's address (45 for `free` with the other two changes and
//! `base + off`; pushing the caller's address, which an earlier
//! measurement found slower, measured faster this time in `alloclab
//! compare`, 1.48 against 1.90 times mimalloc's free in `small-aged`,
//! medians of 5 alternating runs on a loaded machine);
//! 78 and 62 while `ku_freecnt` was kept, the handle's magic took a 64-bit
//! immediate, `free` tested for NULL before the fast path, the call of the
//! full path needed a landing pad (so the fast path saved registers and
//! aligned the stack on every call), the bitmap bit
//! was set or cleared through a mask shifted by `cl`, the in-page bitmap
//! word and `malloc`'s object were computed from `base` rather than from
//! the address in hand, and an object of the carve range was checked as a
//! list link is; 57 for `free`
//! before it noted the runs it empties, see 6. above; before the lazy
//! check, the lazy carving, the fast path and the tables: 149 and 101;
//! mimalloc through an equal wrapper: 41 and 28). Measured by
//! `alloclab compare --quick` (net ns per call, medians, mimalloc in the same
//! run), see the crate README.
//!
//! What the checks cost (an experiment for issue #12, not kept): with the
//! fast paths' checks taken out (`free` without the alignment test and the
//! allocated-bit test and clear, `malloc` popping the head without checking
//! it; the range and page-kind tests and `kb_totalfree` kept), the calls
//! take 34 and 26 instructions (65 and 47 with them in the build the
//! experiment was made on, 60 and 43 now), and 12-13.5 cycles per `free` and 13.5-14 per aged `malloc`
//! against 17.4-20.3 and 20-21.3. Timed beside mimalloc (`alloclab compare
//! --only mckusick-karels,mimalloc --workloads small-random,small-aged
//! --reps 21`, six alternating runs of each build on a loaded machine,
//! medians of the per-run ratios), unchecked: `small-aged` `malloc` 0.80x
//! and `free` 0.88x mimalloc's time, `small-random` `free` 0.82x; checked,
//! in the same runs: 1.40x, 1.57x and 1.57x (after the changes above,
//! 1.21x, 1.45x and 1.29x). So this design without its checks is 10-20%
//! faster than mimalloc, and the deterministic rejection of bad pointers
//! (about 21 instructions in `free`, 31 in `malloc`, of which choosing the
//! bitmap word is 4 and 10) costs more than that margin: no layout that
//! keeps the 16-byte descriptors (usage within 0.5% of the power-of-two
//! bound) makes the bitmap word free to find.
//!
//! With `ALLOCATOR_FLAG_RETURN_PAGES` each list operation also writes a back
//! link in the neighbouring free object (one more line, usually hot), the
//! new head is checked when it is installed, the free that empties a page
//! unlinks its objects (O(objects per page)), and the C ABI takes the full
//! path (no fast path).
//!
//! # Usage
//!
//! - Rust: [`Heap`] over a `&mut [u8]` (safe), or [`McKusickKarels::create`]
//!   over a raw region.
//! - C: the `mckusick-karels-plugin` crate builds `libmckusick_karels.so`,
//!   exporting `include/allocator.h`; this crate is `#![no_std]`, uses no
//!   `alloc`, depends on `arena-api` alone and builds for bare targets.
//! - More memory at run time: [`McKusickKarels::add_region`],
//!   [`Heap::add_region`], or an `arena_api::OomHandler` for `GlobalArena`;
//!   with the `allocator-api` feature (nightly), `GlobalArena<McKusickKarels>`
//!   is a `core::alloc::Allocator`.
//! - As a Rust global allocator: `arena_api::global_arena!(#[global_allocator]
//!   static A: mckusick_karels::McKusickKarels = 64 << 20);`.
//!
//! # Drawbacks
//!
//! - Power-of-two rounding: a request of `2^k + 1` bytes costs `2^(k+1)`.
//! - In the faithful mode, pages given to a bucket stay there: memory freed
//!   in one size class cannot serve another. In the default mode empty
//!   runs stay with their bucket until a request for pages would fail: that
//!   request then pays O(pages) once.
//! - `largest_free_block` is not monotone: a small request can fail while a
//!   larger bucket still has a free object.
//! - Alignments above the page size cost a longer page-run search and may
//!   fail while an aligned run exists.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]

mod allocator;
pub mod bucket;
mod discard;
mod free;
mod harden;
mod heap;
mod invariants;
pub mod kmemusage;
mod malloc;
pub mod page_alloc;
mod plugin;
mod realloc;
mod regions;
mod stats;

pub use allocator::{Config, CreateError, McKusickKarels, PageReturn};
pub use arena_api::{AddRegionError, AllocatorStats, BadPointer, InvariantViolation, ReallocError};
pub use heap::Heap;
pub use plugin::MIN_ARENA;

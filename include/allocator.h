/*
 * allocator.h -- the alloclab plugin ABI.
 *
 * A plugin is a shared library (libbuddy.so, libmckusick_karels.so, or any
 * third-party one) that manages an arena of memory the caller obtained, for
 * example with mmap, and hands out blocks from it.  A program loads it with
 * dlopen() and resolves the functions below with dlsym(); every function
 * marked REQUIRED must be exported, the OPTIONAL ones may be missing.
 *
 * The contract, for every plugin of this project:
 *
 *  - ALL ALLOCATOR STATE LIVES INSIDE THE GIVEN MEMORY.  allocator_create()
 *    keeps its state (the Allocator object, free lists, tables, bitmaps) in
 *    [memory, memory + size); the plugin calls no OS memory function (no
 *    mmap, munmap, brk, madvise, malloc) at any time.  The returned
 *    Allocator * points into that memory.  Two allocators on two arenas are
 *    fully independent.
 *  - EVERY BLOCK IS 16-BYTE ALIGNED (ALLOCATOR_ALIGNMENT) and lies entirely
 *    inside the arena; no two live blocks overlap.
 *  - A NULL RETURN MEANS "CANNOT": not enough free memory of the right shape,
 *    a size too large, a bad argument.  Nothing is changed by a call that
 *    returns NULL (except the failure counters of allocator_stats).
 *  - C code written for malloc() behaves the same here:
 *      allocator_alloc(a, 0)        returns a unique, freeable block (of the
 *                                   allocator's minimum block size), like
 *                                   glibc malloc(0);
 *      allocator_free(a, NULL)      does nothing;
 *      allocator_realloc(a, NULL, n) is allocator_alloc(a, n);
 *      allocator_realloc(a, p, 0)   frees p and returns NULL (glibc);
 *      allocator_realloc(a, p, n)   on failure returns NULL and leaves p
 *                                   allocated and its contents untouched; on
 *                                   success the first min(old, n) bytes are
 *                                   kept and p must no longer be used
 *                                   (unless the result equals p).
 *  - A POINTER THE ALLOCATOR DID NOT HAND OUT, or one already freed (outside
 *    the arena, inside a block but not at its start, misaligned, freed twice)
 *    is REJECTED where glibc would abort: allocator_free() changes nothing,
 *    allocator_realloc() returns NULL and changes nothing, both count it in
 *    AllocatorStats.rejected_frees.  Live blocks are never disturbed by a
 *    rejected pointer.  (A pointer into a block that was freed and handed out
 *    again is, of course, the new block's.)
 *  - Sizes near SIZE_MAX never overflow: such requests return NULL at once.
 *  - THREADS: one Allocator is NOT thread-safe by default: calls on the same
 *    Allocator must not run concurrently (as with any single-threaded data
 *    structure).  Calls on different Allocators may.  Create it with
 *    ALLOCATOR_FLAG_LOCKED (allocator_create_with_flags) to make every call
 *    on it take an internal spin lock, so any number of threads may share it.
 *  - Passing an Allocator * that did not come from allocator_create*() of
 *    the same plugin, or whose arena was unmapped, is undefined.  NULL is
 *    always accepted: functions return NULL / do nothing / return an error.
 *    After allocator_destroy() the handle is dead: later calls on it (while
 *    the arena is still mapped) return NULL / do nothing.
 *  - The plugin never lets a panic or an exception cross this interface.
 *
 * Time complexity of each call is stated by each plugin (AllocatorInfo and
 * its README); none scans the live blocks.
 */
#ifndef ALLOCLAB_ALLOCATOR_H
#define ALLOCLAB_ALLOCATOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Version of this header; AllocatorInfo.abi_version carries it. */
#define ALLOCATOR_ABI_VERSION 1u

/* Every block handed out is aligned to this many bytes. */
#define ALLOCATOR_ALIGNMENT 16u

/* An allocator instance; its bytes live inside the arena. */
typedef struct Allocator Allocator;

/* ------------------------------------------------------------------ */
/* REQUIRED                                                            */
/* ------------------------------------------------------------------ */

/*
 * Creates an allocator that manages [memory, memory + size).  memory may
 * have any alignment and size any value; the allocator uses what it can
 * (state first, then blocks).  Returns NULL when memory is NULL or the
 * arena is too small to hold the state and one block
 * (AllocatorInfo.min_arena).  The memory must stay readable and writable,
 * and untouched by the caller except through blocks, until
 * allocator_destroy().
 */
Allocator *allocator_create(void *memory, size_t size);

/*
 * Ends the allocator.  Blocks still live are dropped with it; the caller
 * then owns (and may munmap) the whole arena again.  NULL does nothing.
 */
void allocator_destroy(Allocator *allocator);

/* A block of at least size bytes, 16-byte aligned, or NULL. */
void *allocator_alloc(Allocator *allocator, size_t size);

/* Gives a block back.  NULL does nothing; a bad pointer is rejected. */
void allocator_free(Allocator *allocator, void *memory);

/* ------------------------------------------------------------------ */
/* OPTIONAL (a loader must check dlsym() for NULL)                     */
/* ------------------------------------------------------------------ */

/* Resizes a block, in place where the allocator can (see the rules above). */
void *allocator_realloc(Allocator *allocator, void *memory, size_t size);

/* Creation flags. */
#define ALLOCATOR_FLAG_LOCKED       0x1u /* every call takes a spin lock: thread-safe */
#define ALLOCATOR_FLAG_RETURN_PAGES 0x2u /* McKusick-Karels: give a bucket's page back
                                            to the page pool as soon as all its objects
                                            are free (by default: when a request for
                                            pages would otherwise fail) */
#define ALLOCATOR_FLAG_FAITHFUL     0x4u /* McKusick-Karels: never give a bucket's page
                                            back, as 4.4BSD */

/*
 * allocator_create() with flags.  Returns NULL if flags has a bit the plugin
 * does not support (AllocatorInfo.supported_flags), as well as in every case
 * allocator_create() does.  allocator_create(m, s) is
 * allocator_create_with_flags(m, s, 0).
 */
Allocator *allocator_create_with_flags(void *memory, size_t size, uint32_t flags);

/*
 * A block of at least size bytes aligned to align (a power of two), or NULL.
 * align <= 16 is allocator_alloc(); an align that is not a power of two
 * returns NULL.  Free it with allocator_free().
 */
void *allocator_alloc_aligned(Allocator *allocator, size_t size, size_t align);

/*
 * The usable size of a live block (what the allocator holds for it: >= the
 * size asked), or 0 if memory is not the start of a live block.
 */
size_t allocator_usable_size(const Allocator *allocator, const void *memory);

/* Returned in AllocatorStats.bytes_requested by allocators that keep no
 * per-block record of the size asked (ours keep none: no header). */
#define ALLOCATOR_STAT_UNKNOWN ((size_t)-1)

/*
 * A snapshot of the allocator's accounting.  At any time
 *     metadata_bytes + bytes_reserved + bytes_free == arena_bytes.
 */
typedef struct AllocatorStats {
    size_t arena_bytes;        /* size given to allocator_create */
    size_t metadata_bytes;     /* held by the allocator itself: its state, tables,
                                  bitmaps, alignment padding, unusable tail */
    size_t bytes_requested;    /* sum of the sizes asked for by live blocks, or
                                  ALLOCATOR_STAT_UNKNOWN */
    size_t bytes_reserved;     /* sum of the sizes of live blocks (what the
                                  allocator holds for them) */
    size_t bytes_free;         /* in free blocks, free objects and free pages */
    size_t largest_free_block; /* the largest allocator_alloc() that would
                                  succeed now */
    size_t live_blocks;        /* blocks handed out and not yet freed */
    size_t failed_allocs;      /* alloc/realloc calls answered NULL, since create */
    size_t rejected_frees;     /* free/realloc calls given a bad pointer */
} AllocatorStats;

/* Fills *out.  Returns 0, or -1 (and leaves *out alone) if an argument is NULL
 * or the handle is dead.  O(number of free lists), not O(blocks). */
int allocator_stats(const Allocator *allocator, AllocatorStats *out);

/*
 * Walks the allocator's whole state and checks every invariant it keeps.
 * Returns 0 if all hold, a negative number otherwise (and then the state is
 * corrupt: most likely the caller wrote outside a block or after free), or
 * ALLOCATOR_CHECK_REPAIRED if all hold but the allocator found a corrupt
 * free-list link earlier (a write into a freed block: the link was not
 * followed, the list was rebuilt from the allocator's own bitmaps).
 * O(arena / minimum block): for tests, not for production paths.
 */
int allocator_check(const Allocator *allocator);
#define ALLOCATOR_CHECK_REPAIRED (-3)

/*
 * Gives the allocator more memory after creation: [memory, memory + size),
 * of any size and alignment, anywhere that does not overlap memory the
 * allocator already manages (its arena and the regions added before).  As
 * for the arena, the allocator keeps its bookkeeping for the region inside
 * it, and the memory must stay readable and writable, and untouched by the
 * caller except through blocks, until allocator_destroy() (after which the
 * caller owns it again).  Later allocations may come from any region;
 * AllocatorStats.arena_bytes grows by size.
 * Returns 0 when the region was added; -1 when it was refused (too small
 * for the bookkeeping and one block, overlapping) and nothing changed; -2
 * for a NULL or dead allocator or NULL memory.  With ALLOCATOR_FLAG_LOCKED
 * it takes the lock like every other call.
 * Ours: O(size / page) (the region's tables are initialised) + O(regions).
 */
int allocator_add_region(Allocator *allocator, void *memory, size_t size);

/* Properties, as bits of AllocatorInfo.properties. */
#define ALLOCATOR_PROP_STATE_IN_ARENA   0x1u /* all state inside the arena */
#define ALLOCATOR_PROP_NO_BLOCK_HEADER  0x2u /* a 2^k request costs exactly 2^k bytes */
#define ALLOCATOR_PROP_REJECTS_BAD_FREE 0x4u /* bad and double frees are rejected */
#define ALLOCATOR_PROP_REALLOC_IN_PLACE 0x8u /* realloc resizes in place when it can */
#define ALLOCATOR_PROP_NO_SYSCALLS      0x10u /* no system call after create */

/* A static description of the plugin. */
typedef struct AllocatorInfo {
    uint32_t abi_version;      /* ALLOCATOR_ABI_VERSION */
    uint32_t supported_flags;  /* ALLOCATOR_FLAG_* bits accepted at creation */
    uint32_t properties;       /* ALLOCATOR_PROP_* bits */
    uint32_t reserved;         /* zero */
    const char *name;          /* short name, e.g. "buddy" */
    const char *description;   /* one line: the algorithm */
    const char *complexity;    /* one line: time of alloc and free */
    size_t alignment;          /* every block is aligned to this (16) */
    size_t min_block;          /* the smallest block: alloc(1) holds this much */
    size_t min_arena;          /* the smallest size allocator_create accepts
                                  for 16-byte aligned memory */
} AllocatorInfo;

/* The plugin's description; never NULL, static, valid while it is loaded. */
const AllocatorInfo *allocator_info(void);

#ifdef __cplusplus
}
#endif

#endif /* ALLOCLAB_ALLOCATOR_H */

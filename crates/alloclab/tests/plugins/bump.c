/* A third-party plugin for the tests (tests/third_party.rs,
 * tests/bad_plugins.rs): a bump allocator in C (free does nothing, no
 * allocator_realloc), correct as it is, or with one fault chosen by a -D
 * flag:
 *
 *   CRASH_AFTER=N     its N-th allocation writes through a NULL pointer
 *   HANG_AFTER=N      its N-th allocation never returns
 *   SEGV_IN_ALLOC     its 10th allocation writes through a NULL pointer
 *   EXIT_IN_CREATE    allocator_create calls _exit(0)
 *   LOOP_IN_ALLOC     its first allocation never returns
 *   WRITE_PAST_END    allocator_create writes the byte after its arena
 *   WRITE_BEFORE      allocator_create writes 8 bytes before its arena
 *   WRITE_AT_SIZE     allocator_create writes memory[size] (for arenas that
 *                     do not end on a page)
 *   BAD_NAME_POINTER  allocator_info's name is the address 8
 *   BAD_INFO_POINTER  allocator_info returns the address 16
 *   NAME_WITH_NEWLINE allocator_info's name holds a newline
 *   GARBAGE_STATS     allocator_stats fills every field with SIZE_MAX
 *   OUTSIDE_ARENA     allocator_alloc hands out blocks of a static buffer
 *   SAME_POINTER      allocator_alloc returns the same block every time
 *
 * Without allocator_info (except for the three flags above that fake one),
 * its name is the file's. */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include "allocator.h"

struct Allocator { char *next, *end; unsigned long calls; };

Allocator *allocator_create(void *memory, size_t size) {
#ifdef EXIT_IN_CREATE
    _exit(0);
#endif
#ifdef WRITE_PAST_END
    ((volatile char *)memory)[size] = 1;
#endif
#ifdef WRITE_AT_SIZE
    ((volatile char *)memory)[size] = 1;
#endif
#ifdef WRITE_BEFORE
    ((volatile char *)memory)[-8] = 1;
#endif
    if (memory == NULL || size < 64 + sizeof(Allocator)) return NULL;
    Allocator *a = memory;
    uintptr_t start = ((uintptr_t)memory + sizeof(Allocator) + 15) & ~(uintptr_t)15;
    a->next = (char *)start;
    a->end = (char *)memory + size;
    a->calls = 0;
    return a;
}

void allocator_destroy(Allocator *a) { (void)a; }

#ifdef OUTSIDE_ARENA
static _Alignas(16) char elsewhere[64 << 20];
#endif

void *allocator_alloc(Allocator *a, size_t size) {
    a->calls++;
#ifdef SEGV_IN_ALLOC
#define CRASH_AFTER 10
#endif
#ifdef CRASH_AFTER
    if (a->calls == CRASH_AFTER) *(volatile int *)0 = 1;
#endif
#ifdef HANG_AFTER
    if (a->calls == HANG_AFTER) for (;;) {}
#endif
#ifdef LOOP_IN_ALLOC
    for (;;) {}
#endif
#ifdef SAME_POINTER
    (void)size;
    return (char *)a + 64;
#endif
    size_t n = (size + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    if (size > (size_t)(a->end - a->next) || n > (size_t)(a->end - a->next)) return NULL;
    void *p = a->next;
    a->next += n;
#ifdef OUTSIDE_ARENA
    /* The same offset in a buffer of its own. */
    return elsewhere + ((char *)p - (char *)a) % sizeof elsewhere;
#endif
    return p;
}

void allocator_free(Allocator *a, void *p) { (void)a; (void)p; }

#ifdef GARBAGE_STATS
int allocator_stats(const Allocator *a, AllocatorStats *out) {
    (void)a;
    memset(out, 0xff, sizeof *out);
    return 0;
}
#endif

#if defined(BAD_NAME_POINTER) || defined(BAD_INFO_POINTER) || defined(NAME_WITH_NEWLINE)
const AllocatorInfo *allocator_info(void) {
    static AllocatorInfo info = {
        .abi_version = ALLOCATOR_ABI_VERSION,
        .description = "a bump allocator that lies about itself",
        .alignment = 16,
    };
#ifdef BAD_INFO_POINTER
    return (const AllocatorInfo *)16;
#endif
#ifdef BAD_NAME_POINTER
    info.name = (const char *)8;
#endif
#ifdef NAME_WITH_NEWLINE
    info.name = "evil\nbuddy       | 0.1 | 0.1 | 99.99%";
#endif
    return &info;
}
#endif

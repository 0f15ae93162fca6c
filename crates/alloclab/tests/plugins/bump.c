/* A third-party plugin for the tests: a bump allocator in C (free does
 * nothing).  Built with -DCRASH_AFTER=N it dereferences NULL on its N-th
 * allocation; with -DHANG_AFTER=N it spins forever on its N-th allocation. */
#include <stddef.h>
#include <stdint.h>
#include "allocator.h"

struct Allocator { char *next, *end; unsigned long calls; };

Allocator *allocator_create(void *memory, size_t size) {
    if (memory == NULL || size < 64 + sizeof(Allocator)) return NULL;
    Allocator *a = memory;
    uintptr_t start = ((uintptr_t)memory + sizeof(Allocator) + 15) & ~(uintptr_t)15;
    a->next = (char *)start;
    a->end = (char *)memory + size;
    a->calls = 0;
    return a;
}

void allocator_destroy(Allocator *a) { (void)a; }

void *allocator_alloc(Allocator *a, size_t size) {
    a->calls++;
#ifdef CRASH_AFTER
    if (a->calls == CRASH_AFTER) *(volatile int *)0 = 1;
#endif
#ifdef HANG_AFTER
    if (a->calls == HANG_AFTER) for (;;) {}
#endif
    size_t n = (size + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    if (size > (size_t)(a->end - a->next) || n > (size_t)(a->end - a->next)) return NULL;
    void *p = a->next;
    a->next += n;
    return p;
}

void allocator_free(Allocator *a, void *p) { (void)a; (void)p; }

/*
 * A stress of one plugin between two markers, for the no-syscall test:
 *
 *   stress PLUGIN [FLAGS]
 *
 * maps an arena, creates the allocator (with FLAGS), writes "ALLOCLAB-BEGIN"
 * to stderr, runs 200,000 random alloc/free/realloc calls (touching every
 * block), writes "ALLOCLAB-END", destroys the allocator.  Between the two
 * markers the program itself makes no system call and does not use malloc,
 * so under `strace -f` any system call there is the plugin's.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "allocator.h"

enum { ARENA = 16 << 20, SLOTS = 4096, OPS = 200000 };
static void *slot[SLOTS];
static size_t len[SLOTS];

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        fprintf(stderr, "%s\n", dlerror());
        return 1;
    }
    Allocator *(*create)(void *, size_t, uint32_t) = (Allocator * (*)(void *, size_t, uint32_t))
        dlsym(lib, "allocator_create_with_flags");
    void (*destroy)(Allocator *) = (void (*)(Allocator *))dlsym(lib, "allocator_destroy");
    void *(*alloc)(Allocator *, size_t) = (void *(*)(Allocator *, size_t))dlsym(lib, "allocator_alloc");
    void (*xfree)(Allocator *, void *) = (void (*)(Allocator *, void *))dlsym(lib, "allocator_free");
    void *(*xrealloc)(Allocator *, void *, size_t) =
        (void *(*)(Allocator *, void *, size_t))dlsym(lib, "allocator_realloc");
    if (!create || !destroy || !alloc || !xfree || !xrealloc)
        return 1;
    uint32_t flags = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 0) : 0;
    void *arena = mmap(NULL, ARENA, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (arena == MAP_FAILED)
        return 1;
    Allocator *a = create(arena, ARENA, flags);
    if (a == NULL)
        return 1;

    static const char begin[] = "ALLOCLAB-BEGIN\n", end[] = "ALLOCLAB-END\n";
    if (write(2, begin, sizeof begin - 1) < 0)
        return 1;
    uint64_t x = 88172645463325252u;
    unsigned long done = 0, refused = 0;
    for (int i = 0; i < OPS; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t s = x % SLOTS;
        size_t size = 1 + (x >> 20) % ((x >> 40) % 8 == 0 ? 65536 : 512);
        if (slot[s] == NULL) {
            slot[s] = alloc(a, size);
            if (slot[s] != NULL) {
                memset(slot[s], (int)s, size);
                len[s] = size;
                done++;
            } else {
                refused++;
            }
        } else if ((x >> 33) % 4 == 0) {
            void *q = xrealloc(a, slot[s], size);
            if (q != NULL) {
                memset(q, (int)s, size);
                slot[s] = q;
                len[s] = size;
            }
        } else {
            if (((unsigned char *)slot[s])[len[s] - 1] != (unsigned char)s)
                return 3; /* someone overwrote the block */
            xfree(a, slot[s]);
            slot[s] = NULL;
        }
    }
    for (int s = 0; s < SLOTS; s++)
        if (slot[s] != NULL)
            xfree(a, slot[s]);
    if (write(2, end, sizeof end - 1) < 0)
        return 1;
    destroy(a);
    printf("%lu allocations, %lu refused\n", done, refused);
    return done > OPS / 4 ? 0 : 4;
}

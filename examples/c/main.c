/*
 * The brief's main.c, in C, against include/allocator.h.
 *
 *   cc -O2 -std=c11 -I include examples/c/main.c -ldl -o brief
 *   ./brief target/release/libbuddy.so
 *
 * Loads the allocator plugin named by argv[1] with dlopen().  With no
 * argument, or when no library loads there (or it lacks a required
 * function), it says why on stderr and binds the API to fallback functions,
 * defined below, that wrap mmap/munmap.  Then it maps a 1 MiB arena, makes
 * 10,000 allocations of 1..4096 bytes (the same SplitMix64 sequence as
 * `alloclab`, seed 42, generated before timing) timed as one batch, frees
 * every successful block in order timed as one batch, and prints the brief's
 * figures.  The output's "allocated" line matches `alloclab`'s for the same
 * plugin: the test suite checks that.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "allocator.h"

enum { ARENA_SIZE = 1 << 20, COUNT = 10000, MAX_SIZE = 4096 };

/* The API, bound either to the plugin or to the fallback below. */
static Allocator *(*api_create)(void *memory, size_t size);
static void (*api_destroy)(Allocator *allocator);
static void *(*api_alloc)(Allocator *allocator, size_t size);
static void (*api_free)(Allocator *allocator, void *memory);

/* ---- the fallback: one mapping per allocation --------------------------- */

/* The mapping's length is kept in the 16 bytes before the block. */
#define HEADER 16

static Allocator *fallback_create(void *memory, size_t size) {
    /* The fallback needs no state: the handle only has to be non-NULL. */
    return (memory != NULL && size > 0) ? (Allocator *)memory : NULL;
}

static void fallback_destroy(Allocator *allocator) { (void)allocator; }

static void *fallback_alloc(Allocator *allocator, size_t size) {
    (void)allocator;
    if (size > SIZE_MAX - HEADER)
        return NULL;
    size_t total = size + HEADER;
    void *m = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    *(size_t *)m = total;
    return (char *)m + HEADER;
}

static void fallback_free(Allocator *allocator, void *memory) {
    (void)allocator;
    if (memory == NULL)
        return;
    char *m = (char *)memory - HEADER;
    munmap(m, *(size_t *)m);
}

/* ---- the workload ------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

static double seconds(struct timespec a, struct timespec b) {
    return (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
}

/* Resolves a required function; on the first one missing, says so once. */
static void *need_symbol(void *library, const char *name, const char *path, int *missing) {
    void *f = dlsym(library, name);
    if (f == NULL && !*missing) {
        fprintf(stderr, "brief: %s is not an allocator plugin: %s; using the mmap/munmap fallback\n", path,
                dlerror());
        *missing = 1;
    }
    return f;
}

int main(int argc, char **argv) {
    const char *name = "mmap fallback";
    void *library = NULL;
    if (argc < 2) {
        fprintf(stderr, "brief: no plugin path given; using the mmap/munmap fallback\n");
    } else {
        /* dlopen searches the library path for a name without '/': a file
         * name given on the command line means the file here. */
        char path[4096];
        snprintf(path, sizeof path, "%s%s", strchr(argv[1], '/') ? "" : "./", argv[1]);
        library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (library == NULL)
            fprintf(stderr, "brief: %s; using the mmap/munmap fallback\n", dlerror());
    }
    int missing = 0;
    if (library != NULL) {
        api_create = (Allocator * (*)(void *, size_t)) need_symbol(library, "allocator_create", argv[1], &missing);
        api_destroy = (void (*)(Allocator *))need_symbol(library, "allocator_destroy", argv[1], &missing);
        api_alloc = (void *(*)(Allocator *, size_t))need_symbol(library, "allocator_alloc", argv[1], &missing);
        api_free = (void (*)(Allocator *, void *))need_symbol(library, "allocator_free", argv[1], &missing);
        const AllocatorInfo *(*info)(void) = (const AllocatorInfo *(*)(void))dlsym(library, "allocator_info");
        if (info != NULL && info() != NULL)
            name = info()->name;
        else
            name = argv[1];
    }
    if (library == NULL || !api_create || !api_destroy || !api_alloc || !api_free) {
        api_create = fallback_create;
        api_destroy = fallback_destroy;
        api_alloc = fallback_alloc;
        api_free = fallback_free;
        name = "mmap fallback";
    }

    /* The arena: free pages from the kernel, touched before timing. */
    char *arena = mmap(NULL, ARENA_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (arena == MAP_FAILED) {
        perror("brief: mmap");
        return 1;
    }
    memset(arena, 0, ARENA_SIZE);

    static size_t sizes[COUNT];
    static void *blocks[COUNT];
    uint64_t state = 42;
    for (int i = 0; i < COUNT; i++)
        sizes[i] = 1 + (size_t)(splitmix64(&state) % MAX_SIZE);

    Allocator *a = api_create(arena, ARENA_SIZE);
    if (a == NULL) {
        fprintf(stderr, "brief: allocator_create refused the arena\n");
        return 1;
    }
    struct timespec t0, t1, t2, t3;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < COUNT; i++)
        blocks[i] = api_alloc(a, sizes[i]);
    clock_gettime(CLOCK_MONOTONIC, &t1);

    size_t ok = 0, requested = 0;
    for (int i = 0; i < COUNT; i++) {
        if (blocks[i] != NULL) {
            memset(blocks[i], i & 0xff, sizes[i]); /* the block is really ours */
            blocks[ok] = blocks[i];
            ok++;
            requested += sizes[i];
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t2);
    for (size_t i = 0; i < ok; i++)
        api_free(a, blocks[i]);
    clock_gettime(CLOCK_MONOTONIC, &t3);
    api_destroy(a);

    printf("allocator       %s\n", name);
    printf("allocated       %zu blocks, %zu bytes requested (%zu requests refused)\n", ok, requested,
           (size_t)COUNT - ok);
    printf("alloc time      %.6f s\n", seconds(t0, t1));
    printf("free time       %.6f s\n", seconds(t2, t3));
    if (library != NULL && api_create != fallback_create)
        printf("usage factor    %.6f\n", (double)requested / ARENA_SIZE);
    else
        printf("usage factor    n/a (the fallback maps every block apart)\n");

    munmap(arena, ARENA_SIZE);
    if (library != NULL)
        dlclose(library);
    return 0;
}

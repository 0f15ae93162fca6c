/*
 * The contract of include/allocator.h, checked from C against a plugin:
 *
 *   cc -std=c11 -I include crates/alloclab/tests/c/contract.c -ldl -o contract
 *   ./contract target/release/libbuddy.so
 *
 * Every bad input of the header gets its documented answer, and after each
 * one the allocator is intact: live blocks keep their contents, new blocks
 * are valid, allocator_check() passes, the rejected count went up by one.
 * Prints one line per check; exits 1 at the first failure.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "allocator.h"

static Allocator *(*create)(void *, size_t);
static Allocator *(*create_with_flags)(void *, size_t, uint32_t);
static void (*destroy)(Allocator *);
static void *(*alloc)(Allocator *, size_t);
static void *(*alloc_aligned)(Allocator *, size_t, size_t);
static void (*xfree)(Allocator *, void *);
static void *(*xrealloc)(Allocator *, void *, size_t);
static size_t (*usable_size)(const Allocator *, const void *);
static int (*stats)(const Allocator *, AllocatorStats *);
static int (*check)(const Allocator *);
static const AllocatorInfo *(*info)(void);

#include "check.h"

static void *map(size_t n) {
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED, "mmap");
    return p;
}

/* A block the test owns: its address, size and fill byte. */
typedef struct {
    unsigned char *p;
    size_t n;
    unsigned char tag;
} Block;

static void fill(Block *b) { memset(b->p, b->tag, b->n); }

static int intact(const Block *b) {
    for (size_t i = 0; i < b->n; i++)
        if (b->p[i] != b->tag)
            return 0;
    return 1;
}

static AllocatorStats get(Allocator *a) {
    AllocatorStats s;
    CHECK(stats(a, &s) == 0, "allocator_stats");
    return s;
}

/* After a bad call: live blocks intact, state consistent, a fresh block works. */
static void still_fine(Allocator *a, Block *live, int n, const char *after) {
    for (int i = 0; i < n; i++)
        CHECK(intact(&live[i]), "after %s, live block %d was damaged", after, i);
    CHECK(check(a) == 0, "after %s, allocator_check fails", after);
    unsigned char *p = alloc(a, 200);
    CHECK(p != NULL, "after %s, alloc(200) fails", after);
    for (int i = 0; i < n; i++)
        CHECK(p + 200 <= live[i].p || live[i].p + live[i].n <= p, "after %s, a new block overlaps a live one",
              after);
    memset(p, 0xEE, 200);
    for (int i = 0; i < n; i++)
        CHECK(intact(&live[i]), "after %s, a new block's writes damaged live block %d", after, i);
    xfree(a, p);
    CHECK(check(a) == 0, "after %s and a free, allocator_check fails", after);
    printf("ok   %s\n", after);
}

static void rejected_one(Allocator *a, size_t *count, const char *what) {
    size_t now = get(a).rejected_frees;
    CHECK(now == *count + 1, "%s: rejected_frees went from %zu to %zu, not +1", what, *count, now);
    *count = now;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PLUGIN\n", argv[0]);
        return 2;
    }
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        printf("FAIL: %s\n", dlerror());
        return 1;
    }
    create = (Allocator * (*)(void *, size_t)) sym(lib, "allocator_create");
    create_with_flags = (Allocator * (*)(void *, size_t, uint32_t)) sym(lib, "allocator_create_with_flags");
    destroy = (void (*)(Allocator *))sym(lib, "allocator_destroy");
    alloc = (void *(*)(Allocator *, size_t))sym(lib, "allocator_alloc");
    alloc_aligned = (void *(*)(Allocator *, size_t, size_t))sym(lib, "allocator_alloc_aligned");
    xfree = (void (*)(Allocator *, void *))sym(lib, "allocator_free");
    xrealloc = (void *(*)(Allocator *, void *, size_t))sym(lib, "allocator_realloc");
    usable_size = (size_t(*)(const Allocator *, const void *))sym(lib, "allocator_usable_size");
    stats = (int (*)(const Allocator *, AllocatorStats *))sym(lib, "allocator_stats");
    check = (int (*)(const Allocator *))sym(lib, "allocator_check");
    info = (const AllocatorInfo *(*)(void))sym(lib, "allocator_info");

    const AllocatorInfo *in = info();
    CHECK(in != NULL && in->abi_version == ALLOCATOR_ABI_VERSION, "allocator_info");
    CHECK(in->alignment >= 16, "alignment %zu", in->alignment);
    printf("plugin %s: %s\n", in->name, in->description);

    /* ---- create: bad memory -------------------------------------------- */
    enum { ARENA = 1 << 20 };
    unsigned char *mem = map(ARENA + 4096);
    CHECK(create(NULL, ARENA) == NULL, "create(NULL)");
    CHECK(create(mem, 0) == NULL, "create(m, 0)");
    CHECK(create(mem, 8) == NULL, "create(m, 8)");
    CHECK(create_with_flags(mem, ARENA, 0x80000000u) == NULL, "an unknown flag");
    CHECK(create(mem, SIZE_MAX) == NULL, "create(m, SIZE_MAX) wraps around the address space");
    /* The smallest arena it documents works, and one byte less is refused
     * or works: never crashes. */
    Allocator *tiny = create(mem, in->min_arena);
    CHECK(tiny != NULL, "create(m, min_arena = %zu)", in->min_arena);
    CHECK(alloc(tiny, 1) != NULL, "alloc(1) in the smallest arena");
    destroy(tiny);
    Allocator *smaller = create(mem, in->min_arena - 1);
    if (smaller != NULL)
        destroy(smaller);
    destroy(NULL);
    printf("ok   create with NULL, 0, tiny, unknown flags, min_arena; destroy(NULL)\n");

    /* A misaligned arena of odd size. */
    Allocator *a = create(mem + 3, ARENA - 7);
    CHECK(a != NULL, "create on a misaligned, odd-sized arena");
    CHECK((unsigned char *)a >= mem + 3 && (unsigned char *)a < mem + 3 + ARENA - 7, "handle inside the arena");
    AllocatorStats s0 = get(a);
    CHECK(s0.arena_bytes == ARENA - 7, "arena_bytes %zu", s0.arena_bytes);
    CHECK(s0.metadata_bytes + s0.bytes_reserved + s0.bytes_free == s0.arena_bytes, "stats add up");
    CHECK(s0.live_blocks == 0 && s0.rejected_frees == 0 && s0.failed_allocs == 0, "fresh stats");

    /* ---- live blocks the bad calls must not disturb --------------------- */
    Block live[4] = {{NULL, 100, 0x11}, {NULL, 4096, 0x22}, {NULL, 16, 0x33}, {NULL, 3000, 0x44}};
    for (int i = 0; i < 4; i++) {
        live[i].p = alloc(a, live[i].n);
        CHECK(live[i].p != NULL, "alloc %zu", live[i].n);
        CHECK((uintptr_t)live[i].p % 16 == 0, "16-byte aligned");
        CHECK(live[i].p >= mem + 3 && live[i].p + live[i].n <= mem + 3 + ARENA - 7, "inside the arena");
        CHECK(usable_size(a, live[i].p) >= live[i].n, "usable_size");
        fill(&live[i]);
    }
    size_t rejected = 0;

    /* ---- alloc(0), free(NULL), sizes near SIZE_MAX ---------------------- */
    void *z1 = alloc(a, 0), *z2 = alloc(a, 0);
    CHECK(z1 != NULL && z2 != NULL && z1 != z2, "alloc(0) returns unique blocks");
    xfree(a, z1);
    xfree(a, z2);
    xfree(a, NULL);
    CHECK(get(a).rejected_frees == 0, "free(NULL) is not a rejection");
    size_t failed = get(a).failed_allocs;
    CHECK(alloc(a, SIZE_MAX) == NULL, "alloc(SIZE_MAX)");
    CHECK(alloc(a, SIZE_MAX - 15) == NULL, "alloc(SIZE_MAX - 15)");
    CHECK(alloc(a, (SIZE_MAX >> 1) + 2) == NULL, "alloc(2^63 + 1)");
    CHECK(alloc(a, ARENA) == NULL, "alloc bigger than the arena");
    CHECK(alloc_aligned(a, 100, 3) == NULL, "alloc_aligned with align 3");
    CHECK(alloc_aligned(a, SIZE_MAX, 64) == NULL, "alloc_aligned(SIZE_MAX, 64)");
    CHECK(get(a).failed_allocs == failed + 6, "failed_allocs counts the NULL answers");
    still_fine(a, live, 4, "alloc(0), free(NULL), huge sizes");

    /* ---- bad frees ------------------------------------------------------ */
    xfree(a, live[1].p + 16);
    rejected_one(a, &rejected, "interior free");
    still_fine(a, live, 4, "free of an interior pointer");
    xfree(a, live[0].p + 1);
    rejected_one(a, &rejected, "misaligned free");
    still_fine(a, live, 4, "free of a misaligned pointer");
    xfree(a, mem + 3 + ARENA);
    rejected_one(a, &rejected, "free past the end");
    xfree(a, mem);
    rejected_one(a, &rejected, "free before the start");
    int local;
    xfree(a, &local);
    rejected_one(a, &rejected, "free of a stack address");
    xfree(a, (void *)a);
    rejected_one(a, &rejected, "free of the handle");
    still_fine(a, live, 4, "free of pointers outside the arena and of the handle");

    void *d = alloc(a, 500);
    CHECK(d != NULL, "alloc 500");
    xfree(a, d);
    xfree(a, d);
    rejected_one(a, &rejected, "double free");
    still_fine(a, live, 4, "double free");

    /* The caller overwrote its whole block (headers would be gone), then frees it. */
    unsigned char *w = alloc(a, 256);
    CHECK(w != NULL, "alloc 256");
    memset(w, 0xFF, usable_size(a, w));
    xfree(a, w);
    CHECK(get(a).rejected_frees == rejected, "a block overwritten by its owner frees normally");
    still_fine(a, live, 4, "free of a block its owner overwrote");

    /* ---- realloc -------------------------------------------------------- */
    void *r = xrealloc(a, NULL, 64);
    CHECK(r != NULL, "realloc(NULL, 64) allocates");
    CHECK(xrealloc(a, r, 0) == NULL, "realloc(p, 0) returns NULL");
    CHECK(get(a).live_blocks == 4, "realloc(p, 0) freed p");
    CHECK(xrealloc(a, live[0].p, SIZE_MAX) == NULL, "realloc to SIZE_MAX");
    CHECK(xrealloc(a, live[0].p, ARENA * 2) == NULL, "realloc bigger than the arena");
    still_fine(a, live, 4, "realloc to huge sizes (old block intact)");
    CHECK(xrealloc(a, &local, 100) == NULL, "realloc of a foreign pointer");
    rejected_one(a, &rejected, "realloc of a foreign pointer");
    CHECK(xrealloc(a, live[1].p + 32, 100) == NULL, "realloc of an interior pointer");
    rejected_one(a, &rejected, "realloc of an interior pointer");
    still_fine(a, live, 4, "realloc of bad pointers");
    /* A good realloc keeps the contents. */
    unsigned char *g = xrealloc(a, live[0].p, 5000);
    CHECK(g != NULL, "realloc 100 -> 5000");
    for (int i = 0; i < 100; i++)
        CHECK(g[i] == 0x11, "realloc kept byte %d", i);
    live[0].p = g;
    live[0].n = 5000;
    fill(&live[0]);
    g = xrealloc(a, live[0].p, 10);
    CHECK(g != NULL, "realloc 5000 -> 10");
    live[0].p = g;
    live[0].n = 10;
    still_fine(a, live, 4, "realloc grow and shrink");

    /* ---- aligned ---------------------------------------------------------- */
    for (size_t al = 16; al <= 4096; al *= 2) {
        void *p = alloc_aligned(a, 100, al);
        CHECK(p != NULL && (uintptr_t)p % al == 0, "alloc_aligned(100, %zu)", al);
        xfree(a, p);
    }
    still_fine(a, live, 4, "alloc_aligned up to 4096");

    /* ---- exhaustion: NULL, and everything comes back -------------------- */
    /* On an allocator of its own: after it, McKusick-Karels in its faithful
     * mode keeps every page in the 64-byte bucket (4.4BSD never gives a
     * bucket's pages back), which would starve the other tests. */
    {
        unsigned char *mem3 = map(ARENA);
        Allocator *e = create(mem3, ARENA);
        CHECK(e != NULL, "an allocator to exhaust");
        Block keep = {alloc(e, 1000), 1000, 0x55};
        CHECK(keep.p != NULL, "alloc 1000");
        fill(&keep);
        size_t n = 0;
        static void *many[1 << 16];
        while (n < sizeof many / sizeof *many && (many[n] = alloc(e, 64)) != NULL)
            n++;
        CHECK(n > 1000 && many[n] == NULL, "fills up and then says NULL (%zu blocks)", n);
        CHECK(alloc(e, 64) == NULL, "still NULL when full");
        CHECK(intact(&keep), "when full, the live block is intact");
        CHECK(check(e) == 0, "consistent when full");
        for (size_t i = 0; i < n; i++)
            xfree(e, many[i]);
        CHECK(check(e) == 0 && get(e).live_blocks == 1, "everything but one block freed");
        for (size_t i = 0; i < n; i++)
            CHECK((many[i] = alloc(e, 64)) != NULL, "the same %zu blocks fit again (%zu)", n, i);
        CHECK(intact(&keep), "the live block survived");
        destroy(e);
        munmap(mem3, ARENA);
        printf("ok   exhaustion: NULL when full, the same blocks fit again after freeing\n");
    }

    /* ---- two allocators, interleaved, and destroy ------------------------ */
    unsigned char *mem2 = map(ARENA);
    Allocator *b = create(mem2, ARENA);
    CHECK(b != NULL, "a second allocator");
    Block other[64];
    for (int i = 0; i < 64; i++) {
        Allocator *which = (i % 2) ? a : b;
        other[i].n = 16 + (size_t)i * 24;
        other[i].tag = (unsigned char)(0x80 + i);
        other[i].p = alloc(which, other[i].n);
        CHECK(other[i].p != NULL, "interleaved alloc %d", i);
        unsigned char *lo = (i % 2) ? mem + 3 : mem2;
        size_t len = (i % 2) ? ARENA - 7 : ARENA;
        CHECK(other[i].p >= lo && other[i].p + other[i].n <= lo + len, "block %d in its own arena", i);
        fill(&other[i]);
    }
    for (int i = 0; i < 64; i += 3) {
        xfree(a, other[i].p); /* half of these belong to b: rejected by a */
        if (i % 2 == 0) {
            rejected_one(a, &rejected, "free of the other allocator's block");
            CHECK(intact(&other[i]), "the other allocator's block survived");
            xfree(b, other[i].p);
        }
        other[i].n = 0;
    }
    for (int i = 0; i < 64; i++)
        CHECK(other[i].n == 0 || intact(&other[i]), "interleaved block %d intact", i);
    CHECK(check(a) == 0 && check(b) == 0, "both consistent");
    printf("ok   two allocators on two arenas, interleaved\n");

    /* ---- allocator_add_region (optional): more memory, live ------------ */
    int (*add_region)(Allocator *, void *, size_t) =
        (int (*)(Allocator *, void *, size_t))dlsym(lib, "allocator_add_region");
    if (add_region == NULL) {
        printf("skip allocator_add_region (not exported)\n");
    } else {
        enum { SMALL = 64 << 10, MORE = (1 << 20) + 3 };
        unsigned char *first = map(SMALL);
        unsigned char *more = map(MORE + 16);
        Allocator *c = create(first, SMALL);
        CHECK(c != NULL, "create on 64 KiB");
        Block keep = {alloc(c, 100), 100, 0x3C};
        CHECK(keep.p != NULL, "alloc in the first region");
        fill(&keep);
        CHECK(alloc(c, 256 << 10) == NULL, "256 KiB does not fit in 64 KiB");
        size_t before_failed = get(c).failed_allocs;
        AllocatorStats s0 = get(c);
        CHECK(add_region(NULL, more, MORE) == -2 && add_region(c, NULL, MORE) == -2, "NULL arguments");
        CHECK(add_region(c, first + 4096, 8192) == -1, "a region inside the arena is refused");
        CHECK(add_region(c, first, 16) == -1, "the allocator's own handle is refused");
        CHECK(add_region(c, more, 8) == -1, "8 bytes are too small");
        AllocatorStats s1 = get(c);
        CHECK(memcmp(&s0, &s1, sizeof s0) == 0, "a refused region changes nothing");
        still_fine(c, &keep, 1, "refused allocator_add_region calls");
        CHECK(add_region(c, more + 3, MORE) == 0, "allocator_add_region(1 MiB + 3, misaligned)");
        AllocatorStats s2 = get(c);
        CHECK(s2.arena_bytes == s1.arena_bytes + MORE, "arena_bytes grew by the region: %zu -> %zu",
              s1.arena_bytes, s2.arena_bytes);
        CHECK(s2.metadata_bytes + s2.bytes_reserved + s2.bytes_free == s2.arena_bytes, "stats add up");
        CHECK(s2.largest_free_block >= 256 << 10, "a large block is free now: %zu", s2.largest_free_block);
        CHECK(add_region(c, more + 1000, 4096) == -1, "a region inside the added one is refused");
        Block big = {alloc(c, 256 << 10), 256 << 10, 0x7D};
        CHECK(big.p != NULL, "256 KiB from the added region");
        CHECK(big.p >= more + 3 && big.p + big.n <= more + 3 + MORE, "inside the added region");
        fill(&big);
        CHECK(check(c) == 0, "allocator_check with two regions");
        Block moved = {xrealloc(c, keep.p, 100000), 100, 0x3C};
        CHECK(moved.p != NULL && intact(&moved), "realloc moves a block across regions, contents kept");
        CHECK(usable_size(c, moved.p) >= 100000, "usable size in the added region");
        xfree(c, big.p);
        xfree(c, big.p);
        CHECK(get(c).rejected_frees == 1, "a double free in the added region is rejected");
        xfree(c, moved.p);
        AllocatorStats s3 = get(c);
        CHECK(s3.live_blocks == 0 && s3.failed_allocs == before_failed, "all freed");
        CHECK(check(c) == 0, "allocator_check after freeing everything");
        destroy(c);
        CHECK(add_region(c, more, MORE) == -2, "a destroyed allocator refuses");
        munmap(first, SMALL);
        munmap(more, MORE + 16);
        printf("ok   allocator_add_region: refused cases change nothing; 1 MiB added to a live allocator\n");
    }

    destroy(b);
    CHECK(alloc(b, 16) == NULL, "a destroyed allocator answers NULL");
    xfree(b, other[1].p);
    AllocatorStats dead;
    CHECK(stats(b, &dead) == -1, "stats of a destroyed allocator");
    CHECK(stats(NULL, &dead) == -1 && stats(a, NULL) == -1, "stats with NULL");
    CHECK(alloc(NULL, 16) == NULL && usable_size(NULL, live[0].p) == 0, "NULL handle");
    xfree(NULL, live[0].p);
    still_fine(a, live, 4, "calls on a destroyed or NULL allocator");
    destroy(a);
    munmap(mem, ARENA + 4096);
    munmap(mem2, ARENA);
    printf("all %d checks passed\n", checks);
    return 0;
}

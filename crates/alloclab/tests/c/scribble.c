/*
 * Writes into freed blocks (what a use-after-free bug does), checked from C
 * against a plugin through include/allocator.h:
 *
 *   cc -std=c11 -I include crates/alloclab/tests/c/scribble.c -ldl -o scribble
 *   ./scribble target/release/libmckusick_karels.so
 *
 * For block sizes 16, 64 and 1000 and for each way of scribbling the first
 * 16 bytes of a freed block (0x41 bytes, zero bytes, the address of a live
 * block, of a spot inside one, of the freed block's neighbours, of a freed
 * block of another size, addresses outside the arena), the next allocations
 * of that size and of others must stay inside the arena, aligned, never
 * overlap a live block, and leave every live block intact; allocator_check
 * must answer 0 or ALLOCATOR_CHECK_REPAIRED. Then, for McKusick-Karels in
 * its default mode: fill a 1 MiB arena with 16-byte, 64-byte or mixed
 * blocks, free them all, and allocate 256 KiB.
 * Prints one line per plugin; exits 1 at the first failure.
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
static void (*destroy)(Allocator *);
static void *(*alloc)(Allocator *, size_t);
static void (*xfree)(Allocator *, void *);
static size_t (*usable_size)(const Allocator *, const void *);
static int (*check)(const Allocator *);
static const AllocatorInfo *(*info)(void);

#include "check.h"

enum { ARENA = 1 << 20, LIVE = 600 };

static unsigned char *mem;
static unsigned char *blk[LIVE];
static size_t len[LIVE];
static int nlive;

static unsigned char tag_of(const unsigned char *p) { return (unsigned char)(((uintptr_t)p >> 4) * 31 + 7); }

/* A new block from the allocator, checked against the arena and every live block. */
static void take(Allocator *a, size_t n) {
    unsigned char *p = alloc(a, n);
    if (p == NULL)
        return;
    size_t u = usable_size(a, p);
    CHECK(p >= mem && p + u <= mem + ARENA, "block %p+%zu outside the arena %p", (void *)p, u, (void *)mem);
    CHECK((uintptr_t)p % 16 == 0, "block %p misaligned", (void *)p);
    CHECK(u >= n, "usable %zu < %zu", u, n);
    for (int i = 0; i < nlive; i++)
        CHECK(p + u <= blk[i] || blk[i] + len[i] <= p, "block %p+%zu overlaps live %p+%zu", (void *)p, u,
              (void *)blk[i], len[i]);
    memset(p, tag_of(p), u);
    CHECK(nlive < LIVE, "too many live blocks");
    blk[nlive] = p;
    len[nlive] = u;
    nlive++;
}

static void all_intact(void) {
    for (int i = 0; i < nlive; i++)
        for (size_t j = 0; j < len[i]; j++)
            CHECK(blk[i][j] == tag_of(blk[i]), "live block %p damaged at %zu", (void *)blk[i], j);
}

/* Frees live block i and returns its address. */
static unsigned char *give(Allocator *a, int i) {
    unsigned char *p = blk[i];
    xfree(a, p);
    blk[i] = blk[nlive - 1];
    len[i] = len[nlive - 1];
    nlive--;
    return p;
}

static void scribble_case(int kind, size_t size) {
    Allocator *a = create(mem, ARENA);
    CHECK(a != NULL, "create");
    nlive = 0;
    for (int i = 0; i < 40; i++)
        take(a, size);
    for (int i = 0; i < 10; i++)
        take(a, size * 4);
    unsigned char *other = give(a, 45); /* a freed block of another size */
    unsigned char *f = give(a, 7);
    uintptr_t w[2];
    switch (kind) {
    case 0: memset(w, 0x41, sizeof w); break;
    case 1: memset(w, 0, sizeof w); break;
    case 2: w[0] = w[1] = (uintptr_t)blk[3]; break;
    case 3: w[0] = w[1] = (uintptr_t)blk[3] + 16; break;
    case 4: w[0] = w[1] = (uintptr_t)f + size; break;
    case 5: w[0] = w[1] = (uintptr_t)f - size; break;
    case 6: w[0] = w[1] = (uintptr_t)other; break;
    case 7: w[0] = w[1] = (uintptr_t)mem - 4096; break;
    case 8: w[0] = w[1] = (uintptr_t)mem + ARENA + 4096; break;
    case 9: w[0] = (uintptr_t)f; w[1] = (uintptr_t)f; break; /* a cycle onto itself */
    default: w[0] = 0xdeadbeefdeadbeefull; w[1] = 1; break;
    }
    memcpy(f, w, sizeof w);
    for (int i = 0; i < 60; i++) {
        take(a, size);
        if (i % 3 == 0)
            take(a, 16);
        if (i % 5 == 0 && nlive > 20)
            give(a, i % nlive);
    }
    all_intact();
    int rc = check(a);
    CHECK(rc == 0 || rc == ALLOCATOR_CHECK_REPAIRED, "allocator_check answered %d (kind %d, size %zu)", rc, kind,
          size);
    while (nlive > 0)
        give(a, nlive - 1);
    take(a, size);
    all_intact();
    destroy(a);
}

/* Fill with blocks of size (0: mixed 1..1024) until refused, free all, then 256 KiB. */
static void exhaust_case(size_t size) {
    static void *all[ARENA / 16];
    Allocator *a = create(mem, ARENA);
    CHECK(a != NULL, "create");
    size_t n = 0, seed = 1;
    for (;;) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        size_t s = size ? size : 1 + (seed >> 33) % 1024;
        void *p = alloc(a, s);
        if (p == NULL)
            break;
        all[n++] = p;
    }
    CHECK(n > 100, "only %zu blocks", n);
    for (size_t i = 0; i < n; i++)
        xfree(a, all[i]);
    void *big = alloc(a, 256 << 10);
    CHECK(big != NULL, "alloc(256 KiB) after filling with %zu-byte blocks and freeing them all", size);
    CHECK(check(a) == 0, "allocator_check");
    destroy(a);
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
    destroy = (void (*)(Allocator *))sym(lib, "allocator_destroy");
    alloc = (void *(*)(Allocator *, size_t))sym(lib, "allocator_alloc");
    xfree = (void (*)(Allocator *, void *))sym(lib, "allocator_free");
    usable_size = (size_t(*)(const Allocator *, const void *))sym(lib, "allocator_usable_size");
    check = (int (*)(const Allocator *))sym(lib, "allocator_check");
    info = (const AllocatorInfo *(*)(void))sym(lib, "allocator_info");
    mem = mmap(NULL, ARENA, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(mem != MAP_FAILED, "mmap");
    const size_t sizes[] = {16, 64, 1000};
    for (int kind = 0; kind <= 10; kind++)
        for (int s = 0; s < 3; s++)
            scribble_case(kind, sizes[s]);
    if (strcmp(info()->name, "mckusick-karels") == 0) {
        exhaust_case(16);
        exhaust_case(64);
        exhaust_case(0);
    }
    printf("%s: all %d scribble checks passed\n", info()->name, checks);
    return 0;
}

/*
 * common.h -- what the C programs of `alloclab programs` share: a small
 * deterministic random generator (each program prints the same output under
 * any correct malloc) and a checked malloc.
 */
#ifndef ALLOCLAB_PROGRAMS_COMMON_H
#define ALLOCLAB_PROGRAMS_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* xorshift64*: fast, and the same sequence everywhere. */
static inline uint64_t rng_next(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* A uniform number in [lo, hi]. */
static inline uint64_t rng_range(uint64_t *s, uint64_t lo, uint64_t hi) {
    return lo + rng_next(s) % (hi - lo + 1);
}

static inline void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (p == NULL) {
        fprintf(stderr, "out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static inline void *xrealloc(void *q, size_t n) {
    void *p = realloc(q, n);
    if (p == NULL) {
        fprintf(stderr, "out of memory (realloc %zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static inline long arg_or(int argc, char **argv, int i, long def) {
    return argc > i ? atol(argv[i]) : def;
}

#endif

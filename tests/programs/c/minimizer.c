/*
 * minimizer.c -- a two-level logic minimizer in the way of espresso (the
 * other classic of the allocator papers): a Boolean function of VARS inputs
 * is given as a cover of random cubes (each cube a bit-vector of 2 bits per
 * input, in a block of its own). Rounds of consensus add the cubes obtained
 * by merging two cubes that differ in one input, single-cube containment
 * drops the cubes another one covers, and the cover is rebuilt in a new
 * array every round. Small and medium blocks of many lifetimes.
 *
 *   minimizer VARS CUBES ROUNDS SEED
 *
 * (Consensus and containment look at neighbours in the cover only, so the
 * work per cube stays bounded and the allocator's share stays large.)
 */
#include <string.h>

#include "common.h"

static int words; /* 64-bit words per cube */

typedef struct {
    uint64_t *w;
} cube;

typedef struct {
    cube *c;
    size_t n, cap;
} cover;

static uint64_t *cube_new(void) { return xmalloc((size_t)words * sizeof(uint64_t)); }

static void push(cover *f, uint64_t *w) {
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 16;
        f->c = xrealloc(f->c, f->cap * sizeof(cube));
    }
    f->c[f->n++].w = w;
}

/* a covers b: every literal of a allows what b allows */
static int covers(const uint64_t *a, const uint64_t *b) {
    for (int i = 0; i < words; i++)
        if ((a[i] & b[i]) != b[i]) return 0;
    return 1;
}

/* the inputs where a and b conflict (their intersection is 00) */
static int conflicts(const uint64_t *a, const uint64_t *b, int *where) {
    int n = 0;
    for (int i = 0; i < words; i++) {
        uint64_t x = a[i] & b[i];
        uint64_t empty = ~(x | (x >> 1)) & 0x5555555555555555ULL;
        while (empty) {
            int bit = __builtin_ctzll(empty);
            if (n++ == 0) *where = i * 32 + bit / 2;
            empty &= empty - 1;
        }
    }
    return n;
}

int main(int argc, char **argv) {
    int vars = (int)arg_or(argc, argv, 1, 24);
    long cubes = arg_or(argc, argv, 2, 1200);
    long rounds = arg_or(argc, argv, 3, 6);
    uint64_t seed = (uint64_t)arg_or(argc, argv, 4, 7) * 0x9E3779B97F4A7C15ULL + 1;
    if (vars < 2 || vars > 256 || cubes < 1) return 2;
    words = (vars + 31) / 32;
    cover f = {0};
    for (long i = 0; i < cubes; i++) {
        uint64_t *w = cube_new();
        memset(w, 0xff, (size_t)words * sizeof(uint64_t));
        for (int v = 0; v < vars; v++) {
            uint64_t r = rng_range(&seed, 0, 3); /* 0: x, 1: x', 2,3: don't care */
            if (r < 2) w[v / 32] &= ~(1ULL << (2 * (v % 32) + r));
        }
        push(&f, w);
    }
    long added_total = 0;
    for (long r = 0; r < rounds; r++) {
        cover g = {0};
        /* consensus of neighbours: cubes conflicting in exactly one input */
        size_t limit = f.n < 4000 ? f.n : 4000;
        for (size_t a = 0; a < limit; a++) {
            for (size_t b = a + 1; b < limit && b < a + 64; b++) {
                int where;
                if (conflicts(f.c[a].w, f.c[b].w, &where) == 1) {
                    uint64_t *w = cube_new();
                    for (int i = 0; i < words; i++) w[i] = f.c[a].w[i] & f.c[b].w[i];
                    w[where / 32] |= 3ULL << (2 * (where % 32));
                    push(&g, w);
                    added_total++;
                }
            }
        }
        for (size_t a = 0; a < f.n; a++) push(&g, f.c[a].w);
        free(f.c);
        /* single-cube containment, among neighbours in the cover: decide
         * first, then copy the survivors into fresh blocks */
        cover h = {0};
        unsigned char *covered = xmalloc(g.n + 1);
        for (size_t a = 0; a < g.n; a++) {
            covered[a] = 0;
            size_t lo = a > 32 ? a - 32 : 0, hi = a + 32 < g.n ? a + 32 : g.n;
            for (size_t b = lo; b < hi && !covered[a]; b++)
                if (b != a && covers(g.c[b].w, g.c[a].w) &&
                    (!covers(g.c[a].w, g.c[b].w) || b < a))
                    covered[a] = 1;
        }
        for (size_t a = 0; a < g.n; a++) {
            if (!covered[a]) {
                uint64_t *w = cube_new();
                memcpy(w, g.c[a].w, (size_t)words * sizeof(uint64_t));
                push(&h, w);
            }
            free(g.c[a].w);
        }
        free(covered);
        free(g.c);
        f = h;
    }
    uint64_t hash = 0;
    for (size_t a = 0; a < f.n; a++) {
        for (int i = 0; i < words; i++) hash = hash * 1099511628211ULL ^ f.c[a].w[i];
        free(f.c[a].w);
    }
    free(f.c);
    printf("minimizer: %d inputs, %ld cubes, %ld rounds: %zu cubes left, %ld consensus cubes, digest %016llx\n",
           vars, cubes, rounds, f.n, added_total, (unsigned long long)hash);
    return 0;
}

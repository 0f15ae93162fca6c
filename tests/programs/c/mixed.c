/*
 * mixed.c -- mixed sizes, many allocations, several threads (in the way of
 * mimalloc-bench's alloc-test and mstress): each thread keeps a pool of
 * POOL live blocks whose sizes follow a skewed distribution (most under
 * 128 bytes, some up to 4 KiB, a few up to 64 KiB), replaces random ones,
 * grows some with realloc, and now and then frees a whole run of them at
 * once. Contents are checked before every free.
 *
 *   mixed THREADS OPS POOL
 */
#include <pthread.h>
#include <string.h>

#include "common.h"

struct arg {
    long ops, pool;
    uint64_t seed, errors, bytes;
};

static size_t pick(uint64_t *s) {
    uint64_t r = rng_range(s, 0, 99);
    if (r < 80) return (size_t)rng_range(s, 8, 128);
    if (r < 98) return (size_t)rng_range(s, 129, 4096);
    return (size_t)rng_range(s, 4097, 65536);
}

static void *work(void *v) {
    struct arg *a = v;
    unsigned char **p = calloc((size_t)a->pool, sizeof *p);
    size_t *len = calloc((size_t)a->pool, sizeof *len);
    if (p == NULL || len == NULL) exit(1);
    /* Thread-local copies: the args of all threads sit side by side in
     * main's array, and a store to them on every call would make the
     * threads' cache lines bounce (false sharing in the benchmark). */
    uint64_t seed = a->seed, errors = 0, bytes = 0;
    for (long i = 0; i < a->ops; i++) {
        long k = (long)rng_range(&seed, 0, (uint64_t)a->pool - 1);
        uint64_t what = rng_range(&seed, 0, 99);
        if (p[k] != NULL && (p[k][0] != (unsigned char)k || p[k][len[k] - 1] != (unsigned char)len[k]))
            errors++;
        if (what < 10 && p[k] != NULL) { /* grow */
            size_t n = len[k] + len[k] / 2 + 16;
            p[k] = xrealloc(p[k], n);
            len[k] = n;
        } else if (what < 12) { /* free a run */
            long end = k + 64 < a->pool ? k + 64 : a->pool;
            for (long j = k; j < end; j++) {
                free(p[j]);
                p[j] = NULL;
            }
            continue;
        } else {
            free(p[k]);
            len[k] = pick(&seed);
            p[k] = xmalloc(len[k]);
        }
        p[k][0] = (unsigned char)k;
        p[k][len[k] - 1] = (unsigned char)len[k];
        bytes += len[k];
    }
    a->seed = seed;
    a->errors += errors;
    a->bytes += bytes;
    for (long k = 0; k < a->pool; k++) free(p[k]);
    free(p);
    free(len);
    return NULL;
}

int main(int argc, char **argv) {
    int threads = (int)arg_or(argc, argv, 1, 2);
    long ops = arg_or(argc, argv, 2, 2000000);
    long pool = arg_or(argc, argv, 3, 20000);
    if (threads < 1 || threads > 64 || pool < 64) return 2;
    struct arg a[64];
    pthread_t th[64];
    for (int i = 0; i < threads; i++) {
        a[i] = (struct arg){.ops = ops, .pool = pool, .seed = 77 + (uint64_t)i * 1000003};
        pthread_create(&th[i], NULL, work, &a[i]);
    }
    uint64_t errors = 0, bytes = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        errors += a[i].errors;
        bytes += a[i].bytes;
    }
    printf("mixed: %d threads x %ld operations, %llu bytes, %llu errors\n", threads, ops,
           (unsigned long long)bytes, (unsigned long long)errors);
    return errors != 0;
}

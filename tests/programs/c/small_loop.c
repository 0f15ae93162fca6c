/*
 * small_loop.c -- the fast path: THREADS threads each make OPS malloc/free
 * pairs of 16..MAXSIZE bytes on a private window of WINDOW live blocks
 * (a random slot is freed and refilled), writing the first and last byte of
 * each block. No block crosses threads: this is the cost of one
 * malloc/free pair, and how it scales with threads.
 *
 *   small_loop THREADS OPS WINDOW MAXSIZE
 */
#include <pthread.h>

#include "common.h"

struct arg {
    long ops, window, maxsize;
    uint64_t seed, sum;
};

static void *work(void *v) {
    struct arg *a = v;
    unsigned char **w = calloc((size_t)a->window, sizeof *w);
    if (w == NULL) exit(1);
    /* The thread's own copy of its seed: the args of all threads sit side
     * by side in main's array, and a store to them on every call would make
     * the threads' cache lines bounce (false sharing in the benchmark, not
     * in the allocator). */
    uint64_t sum = 0, seed = a->seed;
    for (long i = 0; i < a->ops; i++) {
        long k = (long)rng_range(&seed, 0, (uint64_t)a->window - 1);
        if (w[k] != NULL) sum += w[k][0];
        free(w[k]);
        size_t n = (size_t)rng_range(&seed, 16, (uint64_t)a->maxsize);
        w[k] = xmalloc(n);
        w[k][0] = (unsigned char)n;
        w[k][n - 1] = 1;
    }
    for (long k = 0; k < a->window; k++) free(w[k]);
    free(w);
    a->sum = sum;
    a->seed = seed;
    return NULL;
}

int main(int argc, char **argv) {
    int threads = (int)arg_or(argc, argv, 1, 1);
    long ops = arg_or(argc, argv, 2, 10000000);
    long window = arg_or(argc, argv, 3, 64);
    long maxsize = arg_or(argc, argv, 4, 256);
    if (threads < 1 || threads > 64 || window < 1 || maxsize < 16) return 2;
    struct arg a[64];
    pthread_t th[64];
    for (int i = 0; i < threads; i++) {
        a[i] = (struct arg){.ops = ops, .window = window, .maxsize = maxsize,
                            .seed = 0xDEADBEEFCAFEULL + (uint64_t)i * 7919};
        pthread_create(&th[i], NULL, work, &a[i]);
    }
    uint64_t sum = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        sum += a[i].sum;
    }
    printf("small_loop: %d threads x %ld pairs, checksum %llu\n", threads, ops,
           (unsigned long long)sum);
    return 0;
}

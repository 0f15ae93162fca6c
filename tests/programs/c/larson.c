/*
 * larson.c -- a multi-threaded server simulation, after Larson and Krishnan
 * ("Memory allocation for long-running server applications", ISMM 1998):
 * THREADS workers each own a table of SLOTS blocks; a worker replaces random
 * slots (frees the old block, allocates a new one of 16..MAXSIZE bytes and
 * writes it) OPS times, then hands its table to a fresh thread and exits, as
 * a server's connection threads come and go. So most frees are of blocks
 * another (by now dead) thread allocated, and every thread's cache is
 * returned when it exits. Each block carries its slot's tag, checked before
 * it is freed.
 *
 *   larson THREADS ROUNDS OPS SLOTS MAXSIZE
 */
#include <pthread.h>
#include <string.h>

#include "common.h"

struct table {
    int id;
    long ops;
    long slots;
    long maxsize;
    uint64_t seed;
    unsigned char **blocks;
    uint64_t bytes, errors;
};

static void *work(void *arg) {
    struct table *t = arg;
    /* Thread-local copies: the tables of all threads sit side by side in
     * main's array, and a store to them on every call would make the
     * threads' cache lines bounce (false sharing in the benchmark). */
    uint64_t seed = t->seed, bytes = 0, errors = 0;
    unsigned char **blocks = t->blocks;
    for (long i = 0; i < t->ops; i++) {
        long k = (long)rng_range(&seed, 0, (uint64_t)t->slots - 1);
        unsigned char *old = blocks[k];
        if (old != NULL && old[0] != (unsigned char)k) errors++;
        free(old);
        size_t n = (size_t)rng_range(&seed, 16, (uint64_t)t->maxsize);
        unsigned char *b = xmalloc(n);
        b[0] = (unsigned char)k;
        b[n - 1] = (unsigned char)n;
        blocks[k] = b;
        bytes += n;
    }
    t->seed = seed;
    t->bytes += bytes;
    t->errors += errors;
    return NULL;
}

int main(int argc, char **argv) {
    int threads = (int)arg_or(argc, argv, 1, 2);
    long rounds = arg_or(argc, argv, 2, 10);
    long ops = arg_or(argc, argv, 3, 100000);
    long slots = arg_or(argc, argv, 4, 1000);
    long maxsize = arg_or(argc, argv, 5, 512);
    if (threads < 1 || threads > 64 || slots < 1 || maxsize < 16) return 2;
    struct table t[64];
    for (int i = 0; i < threads; i++) {
        t[i] = (struct table){.id = i, .ops = ops, .slots = slots, .maxsize = maxsize,
                              .seed = 0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1)};
        t[i].blocks = calloc((size_t)slots, sizeof(unsigned char *));
        if (t[i].blocks == NULL) return 1;
    }
    for (long r = 0; r < rounds; r++) {
        pthread_t th[64];
        for (int i = 0; i < threads; i++) pthread_create(&th[i], NULL, work, &t[i]);
        for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
    }
    uint64_t bytes = 0, errors = 0;
    for (int i = 0; i < threads; i++) {
        for (long k = 0; k < slots; k++) {
            if (t[i].blocks[k] != NULL && t[i].blocks[k][0] != (unsigned char)k) errors++;
            free(t[i].blocks[k]);
        }
        free(t[i].blocks);
        bytes += t[i].bytes;
        errors += t[i].errors;
    }
    printf("larson: %d threads x %ld rounds x %ld operations, %llu bytes allocated, %llu errors\n",
           threads, rounds, ops, (unsigned long long)bytes, (unsigned long long)errors);
    return errors != 0;
}

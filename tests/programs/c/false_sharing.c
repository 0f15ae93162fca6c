/*
 * false_sharing.c -- after Hoard's cache-scratch benchmark (Berger et al.,
 * ASPLOS 2000): the main thread allocates one small object per thread (they
 * are neighbours in memory), and each thread frees the one it was given,
 * then ROUNDS times allocates an object of the same size, writes it WRITES
 * times and frees it. An allocator that hands a thread memory sharing a
 * cache line with another thread's object makes the writes slow (passive
 * false sharing); one that keeps each thread's objects apart does not.
 *
 *   false_sharing THREADS ROUNDS WRITES SIZE
 */
#include <pthread.h>

#include "common.h"

struct arg {
    char *given;
    long rounds, writes, size;
    uint64_t sum;
};

static void *work(void *v) {
    struct arg *a = v;
    free(a->given);
    uint64_t sum = 0;
    for (long r = 0; r < a->rounds; r++) {
        volatile char *p = xmalloc((size_t)a->size);
        for (long w = 0; w < a->writes; w++) {
            p[w % a->size] = (char)w;
            sum += (unsigned char)p[(w + 1) % a->size];
        }
        free((void *)p);
    }
    a->sum = sum;
    return NULL;
}

int main(int argc, char **argv) {
    int threads = (int)arg_or(argc, argv, 1, 2);
    long rounds = arg_or(argc, argv, 2, 1000);
    long writes = arg_or(argc, argv, 3, 10000);
    long size = arg_or(argc, argv, 4, 8);
    if (threads < 1 || threads > 64 || size < 2) return 2;
    struct arg a[64];
    pthread_t th[64];
    for (int i = 0; i < threads; i++) {
        a[i] = (struct arg){.given = xmalloc((size_t)size), .rounds = rounds, .writes = writes,
                            .size = size};
        for (long k = 0; k < size; k++) a[i].given[k] = 0;
    }
    for (int i = 0; i < threads; i++) pthread_create(&th[i], NULL, work, &a[i]);
    for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
    printf("false_sharing: %d threads x %ld rounds x %ld writes of %ld-byte objects done\n",
           threads, rounds, writes, size);
    return 0;
}

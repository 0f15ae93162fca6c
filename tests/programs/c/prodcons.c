/*
 * prodcons.c -- producer/consumer: PAIRS producer threads allocate blocks of
 * 16..MAXSIZE bytes, fill their first words and pass them through a
 * single-producer single-consumer ring to a consumer thread, which checks
 * and frees them. Every free is of a block another thread allocated.
 *
 *   prodcons PAIRS ITEMS MAXSIZE
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "common.h"

#define RING 1024

struct pair {
    _Atomic unsigned long head, tail;
    uint64_t *ring[RING];
    long items;
    long maxsize;
    uint64_t seed;
    uint64_t sum, errors;
};

static void *produce(void *arg) {
    struct pair *p = arg;
    /* The seed, sum and error count are the producer's or the consumer's
     * alone, kept in registers: stored on every item, they would share a
     * line with the other thread's (false sharing in the benchmark). */
    uint64_t seed = p->seed;
    for (long i = 0; i < p->items; i++) {
        size_t n = (size_t)rng_range(&seed, 16, (uint64_t)p->maxsize);
        uint64_t *b = xmalloc(n);
        b[0] = (uint64_t)i;
        b[1] = n;
        unsigned long h = atomic_load_explicit(&p->head, memory_order_relaxed);
        while (h - atomic_load_explicit(&p->tail, memory_order_acquire) >= RING) sched_yield();
        p->ring[h % RING] = b;
        atomic_store_explicit(&p->head, h + 1, memory_order_release);
    }
    p->seed = seed;
    return NULL;
}

static void *consume(void *arg) {
    struct pair *p = arg;
    uint64_t sum = 0, errors = 0;
    for (long i = 0; i < p->items; i++) {
        unsigned long t = atomic_load_explicit(&p->tail, memory_order_relaxed);
        while (atomic_load_explicit(&p->head, memory_order_acquire) == t) sched_yield();
        uint64_t *b = p->ring[t % RING];
        atomic_store_explicit(&p->tail, t + 1, memory_order_release);
        if (b[0] != (uint64_t)i) errors++;
        sum += b[1];
        free(b);
    }
    p->sum += sum;
    p->errors += errors;
    return NULL;
}

int main(int argc, char **argv) {
    int pairs = (int)arg_or(argc, argv, 1, 1);
    long items = arg_or(argc, argv, 2, 1000000);
    long maxsize = arg_or(argc, argv, 3, 256);
    if (pairs < 1 || pairs > 16 || maxsize < 16) return 2;
    static struct pair p[16];
    pthread_t th[32];
    for (int i = 0; i < pairs; i++) {
        p[i].items = items;
        p[i].maxsize = maxsize;
        p[i].seed = 0x2545F4914F6CDD1DULL + (uint64_t)i;
        pthread_create(&th[2 * i], NULL, produce, &p[i]);
        pthread_create(&th[2 * i + 1], NULL, consume, &p[i]);
    }
    uint64_t sum = 0, errors = 0;
    for (int i = 0; i < 2 * pairs; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < pairs; i++) {
        sum += p[i].sum;
        errors += p[i].errors;
    }
    printf("prodcons: %d pairs x %ld items, %llu bytes passed, %llu errors\n", pairs, items,
           (unsigned long long)sum, (unsigned long long)errors);
    return errors != 0;
}

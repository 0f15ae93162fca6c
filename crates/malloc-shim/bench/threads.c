/*
 * threads.c -- how the shim's locking scales: T threads each make N
 * malloc/free pairs of 16..1024 bytes on a private window of 64 live blocks
 * (every 16th block is handed to the next thread's mailbox and freed there,
 * so frees also cross threads). Prints the wall time.
 *
 *   cc -O2 -pthread -o /tmp/threads crates/malloc-shim/bench/threads.c
 *   LD_PRELOAD=target/release/libbuddy_malloc.so /tmp/threads 2 2000000
 *   LD_PRELOAD=target/release/libbuddy_malloc.so ALLOCLAB_SHIM_ARENAS=1 /tmp/threads 2 2000000
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int threads;
static long iterations;
static void *_Atomic mailbox[64];

static void *work(void *arg) {
    unsigned id = (unsigned)(uintptr_t)arg, seed = id * 2654435761u + 1;
    void *window[64] = {0};
    for (long i = 0; i < iterations; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned k = (seed >> 8) % 64;
        free(window[k]);
        window[k] = malloc(16 + (seed >> 16) % 1009);
        if (window[k] == NULL) abort();
        *(char *)window[k] = 1;
        if (i % 16 == 0) {
            void *old = __atomic_exchange_n(&mailbox[(id + 1) % threads], window[k], __ATOMIC_ACQ_REL);
            window[k] = NULL;
            free(old);
        }
    }
    for (int k = 0; k < 64; k++) free(window[k]);
    return NULL;
}

int main(int argc, char **argv) {
    threads = argc > 1 ? atoi(argv[1]) : 2;
    iterations = argc > 2 ? atol(argv[2]) : 1000000;
    if (threads < 1 || threads > 64) return 2;
    pthread_t t[64];
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, work, (void *)(uintptr_t)i);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    for (int i = 0; i < threads; i++) free(mailbox[i]);
    printf("%d threads x %ld: %.3f s\n", threads, iterations,
           (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9);
    return 0;
}

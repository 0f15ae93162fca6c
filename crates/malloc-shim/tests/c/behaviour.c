/*
 * behaviour.c -- what a malloc must do beyond the API's edge cases, one case
 * per argument (run under glibc and under LD_PRELOAD of each shim by
 * tests/c_behaviour.rs):
 *
 *   signal       a 1 kHz SIGALRM handler calls malloc/free while the main
 *                loop is inside malloc/free: must finish (not hang)
 *   rss          1 GiB in 64 KiB blocks, touched, then freed: prints the
 *                resident set before, at the peak and after (KiB)
 *   trim         many small and medium blocks freed, then malloc_trim(0):
 *                prints RSS before and after the trim, and its answer
 *   double-free  frees a block twice (the shim counts it, or aborts in
 *                abort mode; glibc aborts)
 *   threads      600 short-lived threads, 8 at a time, each allocating and
 *                freeing and passing blocks to the next: their caches must
 *                come back (prints RSS at the end)
 *   foreign      blocks from glibc's own __libc_malloc given to free,
 *                realloc and malloc_usable_size
 *
 * Every case prints "<case>: ok ..." and exits 0 on success.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (f == NULL) return -1;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = -1;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* ---- signal ---- */

static volatile sig_atomic_t handled;

static void on_alarm(int sig) {
    (void)sig;
    void *p = malloc(64);
    if (p != NULL) memset(p, 0x5a, 64);
    free(p);
    handled++;
}

static int case_signal(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 1000}, {0, 1000}};
    setitimer(ITIMER_REAL, &it, NULL);
    void *window[64] = {0};
    unsigned seed = 1;
    for (long i = 0; i < 4000000 && handled < 300; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned k = (seed >> 8) % 64;
        free(window[k]);
        size_t n = 16 + (seed >> 16) % ((i & 1023) == 0 ? 200000 : 2000);
        window[k] = malloc(n);
        if (window[k] == NULL) return 1;
        memset(window[k], 1, 16);
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    for (int k = 0; k < 64; k++) free(window[k]);
    printf("signal: ok (%s)\n", handled > 0 ? "handlers ran" : "no handler ran");
    return 0;
}

/* ---- rss ---- */

static int case_rss(void) {
    enum { BLOCK = 64 << 10, COUNT = (1 << 30) / BLOCK };
    static char *b[COUNT];
    long before = rss_kib();
    for (int i = 0; i < COUNT; i++) {
        b[i] = malloc(BLOCK);
        if (b[i] == NULL) return 1;
        for (int off = 0; off < BLOCK; off += 4096) b[i][off] = (char)i;
    }
    long peak = rss_kib();
    for (int i = 0; i < COUNT; i++) {
        if (b[i][4096] != (char)i) return 2;
        free(b[i]);
    }
    long after = rss_kib();
    printf("rss: ok before=%ld peak=%ld after=%ld\n", before, peak, after);
    return 0;
}

/* ---- trim ---- */

static int case_trim(void) {
    enum { N = 200000 };
    static void *b[N];
    long before = rss_kib();
    for (int i = 0; i < N; i++) {
        size_t n = (i % 10 == 0) ? 20000 : 16 + (size_t)(i % 500);
        b[i] = malloc(n);
        if (b[i] == NULL) return 1;
        memset(b[i], 7, n);
    }
    long peak = rss_kib();
    for (int i = 0; i < N; i++) free(b[i]);
    long freed = rss_kib();
    int r = malloc_trim(0);
    long after = rss_kib();
    printf("trim: ok before=%ld peak=%ld freed=%ld trimmed=%ld answer=%d\n", before, peak, freed,
           after, r);
    return 0;
}

/* ---- double free ---- */

static int case_double_free(void) {
    char *p = malloc(100);
    char *keep = malloc(100);
    if (p == NULL || keep == NULL) return 1;
    strcpy(keep, "intact");
    free(p);
    free(p); /* glibc: "free(): double free detected in tcache 2", abort */
    char *q = malloc(100);
    char *r = malloc(100);
    /* the block must not be handed out twice */
    if (q == r) return 3;
    printf("double-free: ok (%s, distinct blocks after)\n", keep);
    free(q);
    free(r);
    free(keep);
    return 0;
}

/* ---- threads ---- */

static void *_Atomic handoff;

static void *thread_work(void *arg) {
    unsigned seed = (unsigned)(uintptr_t)arg;
    void *mine[100];
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 100; i++) {
            seed = seed * 1103515245u + 12345u;
            mine[i] = malloc(16 + (seed >> 16) % 3000);
            if (mine[i] == NULL) abort();
            memset(mine[i], 3, 16);
        }
        for (int i = 0; i < 100; i++) free(mine[i]);
    }
    /* leave one block for the next thread to free */
    void *p = malloc(200);
    free(__atomic_exchange_n(&handoff, p, __ATOMIC_ACQ_REL));
    return NULL;
}

static int case_threads(void) {
    long before = rss_kib();
    for (int wave = 0; wave < 75; wave++) {
        pthread_t t[8];
        for (int i = 0; i < 8; i++)
            if (pthread_create(&t[i], NULL, thread_work, (void *)(uintptr_t)(wave * 8 + i)) != 0)
                return 1;
        for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
    }
    free(handoff);
    printf("threads: ok 600 threads, rss before=%ld after=%ld\n", before, rss_kib());
    return 0;
}

/* ---- foreign ---- */

extern void *__libc_malloc(size_t);

static int case_foreign(void) {
    char *a = __libc_malloc(100), *b = __libc_malloc(100), *c = __libc_malloc(300);
    if (a == NULL || b == NULL || c == NULL) return 1;
    strcpy(b, "moved with its contents");
    free(a); /* released by glibc's free */
    char *b2 = realloc(b, 5000);
    if (b2 == NULL || strcmp(b2, "moved with its contents") != 0) return 2;
    size_t u = malloc_usable_size(c);
    if (u < 300) return 3;
    free(c);
    free(b2);
    printf("foreign: ok\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    if (!strcmp(argv[1], "signal")) return case_signal();
    if (!strcmp(argv[1], "rss")) return case_rss();
    if (!strcmp(argv[1], "trim")) return case_trim();
    if (!strcmp(argv[1], "double-free")) return case_double_free();
    if (!strcmp(argv[1], "threads")) return case_threads();
    if (!strcmp(argv[1], "foreign")) return case_foreign();
    return 2;
}

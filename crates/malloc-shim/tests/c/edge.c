/*
 * edge.c -- the C-level edge cases of the malloc API, as glibc answers them.
 *
 * Run as is (glibc) and under LD_PRELOAD of each shim: every check must hold
 * in all three runs, so the test proves both that the shim has glibc's
 * semantics and that the expectations are glibc's.  Exit 0 and a last line
 * "edge: all N checks passed" when everything holds; the first failed
 * check's line and exit 1 otherwise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int checks;

#define CHECK(cond)                                                            \
    do {                                                                       \
        checks++;                                                              \
        if (!(cond)) {                                                         \
            fprintf(stderr, "edge.c:%d: check failed: %s\n", __LINE__, #cond); \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

static int aligned(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(seed + i * 31);
}

static int same(const unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 31)) return 0;
    return 1;
}

static void zero_and_unique(void) {
    void *a = malloc(0), *b = malloc(0);
    CHECK(a != NULL && b != NULL && a != b);
    CHECK(aligned(a, 16) && aligned(b, 16));
    free(a);
    free(b);
    free(NULL);
    void *c = realloc(NULL, 40); /* realloc(NULL, n) is malloc(n) */
    CHECK(c != NULL && malloc_usable_size(c) >= 40);
    memset(c, 0x5a, 40);
    CHECK(realloc(c, 0) == NULL); /* frees c (glibc) */
    CHECK(malloc_usable_size(NULL) == 0);
}

static void sizes_and_usable(void) {
    static const size_t sizes[] = {1, 15, 16, 17, 100, 1000, 4095, 4096, 4097, 70000,
                                   1 << 20, (1 << 20) + 1, 3 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        unsigned char *p = malloc(sizes[i]);
        CHECK(p != NULL && aligned(p, 16));
        size_t u = malloc_usable_size(p);
        CHECK(u >= sizes[i]);
        fill(p, u, (unsigned)i); /* every usable byte may be written */
        CHECK(same(p, u, (unsigned)i));
        free(p);
    }
}

static void failures(void) {
    errno = 0;
    CHECK(malloc(SIZE_MAX) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(malloc((size_t)PTRDIFF_MAX + 1) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(calloc(SIZE_MAX / 2, 3) == NULL && errno == ENOMEM); /* overflow */
    errno = 0;
    CHECK(calloc(1, SIZE_MAX) == NULL && errno == ENOMEM);

    unsigned char *p = malloc(100);
    fill(p, 100, 7);
    errno = 0;
    CHECK(realloc(p, SIZE_MAX - 64) == NULL && errno == ENOMEM);
    CHECK(same(p, 100, 7)); /* untouched, still ours */
    errno = 0;
    CHECK(reallocarray(p, SIZE_MAX / 4, 8) == NULL && errno == ENOMEM);
    CHECK(same(p, 100, 7));
    unsigned char *q = reallocarray(p, 50, 4);
    CHECK(q != NULL && same(q, 100, 7) && malloc_usable_size(q) >= 200);
    free(q);
}

static void calloc_zeroes(void) {
    for (int round = 0; round < 4; round++) {
        size_t n = round < 2 ? 4000 : (2 << 20);
        void *dirty[32];
        for (int i = 0; i < 32; i++) {
            dirty[i] = malloc(n);
            memset(dirty[i], 0xff, n);
        }
        for (int i = 0; i < 32; i++) free(dirty[i]);
        for (int i = 0; i < 32; i++) {
            unsigned char *z = calloc(n / 8, 8);
            CHECK(z != NULL);
            size_t bad = 0;
            for (size_t k = 0; k < n; k++) bad += z[k] != 0;
            CHECK(bad == 0);
            dirty[i] = z;
        }
        for (int i = 0; i < 32; i++) free(dirty[i]);
    }
}

static void alignment(void) {
    void *sentinel = (void *)0x1234, *p = sentinel;
    static const size_t bad[] = {0, 1, 2, 3, 4, 12, 24, 48, 100, 4097, SIZE_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        p = sentinel;
        CHECK(posix_memalign(&p, bad[i], 16) == EINVAL && p == sentinel);
    }
    static const size_t good[] = {8, 16, 32, 64, 256, 4096, 8192, 65536, 1 << 21, 1 << 24};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        for (size_t size = 0; size <= (3u << 20); size = size * 7 + 1000) {
            p = sentinel;
            CHECK(posix_memalign(&p, good[i], size) == 0 && p != sentinel);
            CHECK(aligned(p, good[i]) && malloc_usable_size(p) >= size);
            memset(p, 0xab, size);
            free(p);
        }
    }
    p = sentinel;
    CHECK(posix_memalign(&p, 64, SIZE_MAX - 4096) == ENOMEM && p == sentinel);

    void *a = aligned_alloc(64, 100);
    CHECK(a != NULL && aligned(a, 64));
    free(a);
    a = aligned_alloc(4096, 4096 * 3);
    CHECK(a != NULL && aligned(a, 4096));
    free(a);
    a = memalign(48, 10); /* not a power of two: rounded up to 64 */
    CHECK(a != NULL && aligned(a, 64));
    free(a);
    a = memalign(1, 10);
    CHECK(a != NULL && aligned(a, 16));
    free(a);
    long page = sysconf(_SC_PAGESIZE);
    a = valloc(10);
    CHECK(a != NULL && aligned(a, (size_t)page));
    free(a);
    a = pvalloc(10);
    CHECK(a != NULL && aligned(a, (size_t)page) && malloc_usable_size(a) >= (size_t)page);
    memset(a, 1, (size_t)page); /* pvalloc rounds the size to whole pages */
    free(a);
    errno = 0;
    CHECK(pvalloc(SIZE_MAX - 10) == NULL && errno == ENOMEM);
}

static void realloc_keeps_contents(void) {
    /* Grow through every regime: small, near the 1 MiB threshold, own
     * mapping (mremap), then shrink back. */
    size_t n = 24;
    unsigned char *p = malloc(n);
    fill(p, n, 3);
    while (n < (24u << 20)) {
        size_t m = n + n / 2 + 13;
        unsigned char *q = realloc(p, m);
        CHECK(q != NULL && same(q, n, 3));
        fill(q, m, 3);
        p = q;
        n = m;
    }
    while (n > 8) {
        size_t m = n / 3;
        unsigned char *q = realloc(p, m);
        CHECK(q != NULL && same(q, m, 3));
        p = q;
        n = m;
    }
    free(p);
}

/* ---- threads: blocks freed by another thread than the one that made them */

#define SLOTS 4096
static void *_Atomic mailbox[SLOTS];

static unsigned next_rand(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

static void *churn(void *arg) {
    unsigned seed = (unsigned)(uintptr_t)arg;
    for (int i = 0; i < 200000; i++) {
        unsigned r = next_rand(&seed);
        size_t size = (r % 8 == 0) ? (r % 70000) : (r % 300);
        unsigned char *p = malloc(size + 1);
        if (p == NULL) abort();
        p[0] = (unsigned char)size;
        p[size] = (unsigned char)size;
        /* swap with a shared slot: the old block may come from any thread */
        unsigned char *old = __atomic_exchange_n(&mailbox[r % SLOTS], p, __ATOMIC_ACQ_REL);
        if (old) {
            size_t os = malloc_usable_size(old);
            if (os == 0) abort();
            free(old);
        }
    }
    return NULL;
}

static void threads(void) {
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        CHECK(pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(i * 7919 + 1)) == 0);
    for (int i = 0; i < 4; i++) CHECK(pthread_join(t[i], NULL) == 0);
    for (int i = 0; i < SLOTS; i++) free(mailbox[i]), mailbox[i] = NULL;
}

/* ---- fork while other threads allocate: the child must not inherit a
 * lock held mid-update (it would hang: alarm() turns that into a failure). */

static _Atomic int stop;

static void *busy(void *arg) {
    (void)arg;
    unsigned seed = 99;
    while (!stop) {
        void *p[16];
        for (int i = 0; i < 16; i++) p[i] = malloc(next_rand(&seed) % 5000);
        for (int i = 0; i < 16; i++) free(p[i]);
    }
    return NULL;
}

static void fork_with_threads(void) {
    pthread_t t[3];
    for (int i = 0; i < 3; i++) CHECK(pthread_create(&t[i], NULL, busy, NULL) == 0);
    for (int k = 0; k < 40; k++) {
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            alarm(10);
            for (int i = 0; i < 1000; i++) {
                void *p = malloc((size_t)(i * 37 % 9000));
                if (p == NULL) _exit(3);
                memset(p, i, (size_t)(i * 37 % 9000));
                free(p);
            }
            void *big = malloc(5 << 20);
            if (big == NULL) _exit(4);
            free(big);
            _exit(0);
        }
        int status = 0;
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    stop = 1;
    for (int i = 0; i < 3; i++) CHECK(pthread_join(t[i], NULL) == 0);
}

int main(void) {
    zero_and_unique();
    sizes_and_usable();
    failures();
    calloc_zeroes();
    alignment();
    realloc_keeps_contents();
    threads();
    fork_with_threads();
    printf("edge: all %d checks passed\n", checks);
    return 0;
}

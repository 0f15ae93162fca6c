/*
 * record_me.c -- a program for the recorder test (tests/record.rs).
 *
 * Random malloc / calloc / realloc / posix_memalign / free on 256 slots,
 * then frees everything; with argument "threads", a second thread does the
 * same concurrently; with "sequential", 16 threads run one after another
 * (each joined before the next starts, so they reuse one stack and one
 * pthread_self value), each allocating and freeing. Output goes through write(2) only, so that stdio's own
 * buffers do not stay allocated: the trace of this program must free every
 * block it allocates (apart from what glibc keeps for a thread).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned next(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return *s >> 4;
}

static void *work(void *arg) {
    unsigned seed = (unsigned)(size_t)arg;
    void *p[256] = {0};
    for (int i = 0; i < 20000; i++) {
        unsigned r = next(&seed);
        int k = (int)(r % 256);
        switch ((r >> 8) % 5) {
        case 0:
            free(p[k]);
            p[k] = malloc(r % 2000);
            break;
        case 1:
            free(p[k]);
            p[k] = calloc(r % 50 + 1, 8);
            break;
        case 2:
            p[k] = realloc(p[k], r % 5000 + 1); /* realloc(NULL, n) when empty */
            break;
        case 3:
            free(p[k]);
            if (posix_memalign(&p[k], 64, r % 3000 + 1) != 0) p[k] = NULL;
            break;
        default:
            free(p[k]);
            p[k] = NULL;
        }
        if (p[k]) memset(p[k], 1, 1);
    }
    for (int k = 0; k < 256; k++) free(p[k]);
    return NULL;
}

static void *briefly(void *arg) {
    char *p = malloc(100 + (size_t)arg);
    if (p) memset(p, 1, 1);
    free(p);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "sequential") == 0) {
        void *keep = malloc(10);
        for (int i = 0; i < 16; i++) {
            pthread_t t;
            if (pthread_create(&t, NULL, briefly, (void *)(size_t)i) != 0) return 2;
            if (pthread_join(t, NULL) != 0) return 3;
        }
        free(keep);
        return write(1, "done\n", 5) == 5 ? 0 : 4;
    }
    int threads = argc > 1 && strcmp(argv[1], "threads") == 0;
    pthread_t t;
    if (threads && pthread_create(&t, NULL, work, (void *)7) != 0) return 2;
    work((void *)1);
    if (threads && pthread_join(t, NULL) != 0) return 3;
    return write(1, "done\n", 5) == 5 ? 0 : 4;
}

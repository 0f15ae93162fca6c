/* What the C tests share: a counted CHECK that prints the failed condition
 * and exits 1, and sym(), which looks a plugin's function up or fails the
 * test naming it. Included once per test program. */
#ifndef ALLOCLAB_TEST_CHECK_H
#define ALLOCLAB_TEST_CHECK_H

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

static int checks;

#define CHECK(cond, ...)                                                                             \
    do {                                                                                             \
        checks++;                                                                                    \
        if (!(cond)) {                                                                               \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                   \
            printf(__VA_ARGS__);                                                                     \
            printf("\n");                                                                            \
            exit(1);                                                                                 \
        }                                                                                            \
    } while (0)

static void *sym(void *lib, const char *name) {
    void *f = dlsym(lib, name);
    if (f == NULL) {
        printf("FAIL: the plugin lacks %s\n", name);
        exit(1);
    }
    return f;
}

#endif

/*
 * glibc_malloc.c -- gives a program glibc's malloc back when it links
 * another allocator (redis-server links jemalloc): preloaded for the glibc
 * row of `alloclab programs`, it defines the C allocation functions as
 * glibc's own (__libc_malloc and friends, which glibc exports for exactly
 * this use).
 *
 *   cc -O2 -shared -fPIC -o libglibc_malloc.so glibc_malloc.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);
extern void __libc_free(void *);

void *malloc(size_t n) { return __libc_malloc(n); }
void free(void *p) { __libc_free(p); }
void *calloc(size_t n, size_t m) { return __libc_calloc(n, m); }
void *realloc(void *p, size_t n) { return __libc_realloc(p, n); }
void *memalign(size_t a, size_t n) { return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { return __libc_memalign(a, n); }
void *valloc(size_t n) { return __libc_valloc(n); }
void *pvalloc(size_t n) { return __libc_pvalloc(n); }

int posix_memalign(void **out, size_t a, size_t n) {
    if (a == 0 || (a & (a - 1)) != 0 || a % sizeof(void *) != 0) return EINVAL;
    void *p = __libc_memalign(a, n);
    if (p == NULL) return ENOMEM;
    *out = p;
    return 0;
}

/* glibc's own malloc_usable_size, looked up in libc itself (the program's
 * other allocator defines one too). */
size_t malloc_usable_size(void *p) {
    static size_t (*f)(void *);
    if (f == NULL) {
        void *libc = dlopen("libc.so.6", RTLD_NOLOAD | RTLD_LAZY);
        if (libc != NULL) f = (size_t(*)(void *))dlsym(libc, "malloc_usable_size");
        if (f == NULL) return 0;
    }
    return f(p);
}

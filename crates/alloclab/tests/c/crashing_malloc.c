/*
 * crashing_malloc.c -- an LD_PRELOAD malloc that aborts on its 20,000th call
 * (forwarding the others to glibc's): tests/programs.rs checks that
 * `alloclab programs --preload crash=libcrashing_malloc.so` reports the
 * crash in the row instead of hiding it.
 */
#include <stddef.h>
#include <stdlib.h>

extern void *__libc_malloc(size_t size);

void *malloc(size_t size) {
    static int calls;
    if (__atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED) == 20000) abort();
    return __libc_malloc(size);
}

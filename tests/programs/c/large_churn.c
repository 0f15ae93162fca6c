/*
 * large_churn.c -- large blocks: OPS times, a random one of SLOTS slots is
 * freed and refilled with a block of MIN..MAX MiB, one byte written per
 * 4 KiB page (so every page is touched, as a program filling a buffer
 * does). An allocator that returns each freed block to the kernel pays the
 * page faults again; one that keeps and reuses them does not, but holds
 * more memory.
 *
 *   large_churn OPS SLOTS MIN_MIB MAX_MIB
 */
#include "common.h"

int main(int argc, char **argv) {
    long ops = arg_or(argc, argv, 1, 400);
    long slots = arg_or(argc, argv, 2, 4);
    long lo = arg_or(argc, argv, 3, 5);
    long hi = arg_or(argc, argv, 4, 25);
    if (slots < 1 || slots > 64 || lo < 1 || hi < lo) return 2;
    unsigned char *b[64] = {0};
    size_t len[64] = {0};
    uint64_t seed = 42, sum = 0;
    for (long i = 0; i < ops; i++) {
        long k = (long)rng_range(&seed, 0, (uint64_t)slots - 1);
        if (b[k] != NULL) sum += b[k][len[k] - 1];
        free(b[k]);
        size_t n = (size_t)rng_range(&seed, (uint64_t)lo << 20, (uint64_t)hi << 20);
        b[k] = xmalloc(n);
        len[k] = n;
        for (size_t off = 0; off < n; off += 4096) b[k][off] = (unsigned char)(off >> 12);
        b[k][n - 1] = (unsigned char)i;
    }
    for (long k = 0; k < slots; k++) free(b[k]);
    printf("large_churn: %ld blocks of %ld..%ld MiB, checksum %llu\n", ops, lo, hi,
           (unsigned long long)sum);
    return 0;
}

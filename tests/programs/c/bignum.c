/*
 * bignum.c -- bignum arithmetic in the way of cfrac (the continued-fraction
 * factoring program of the allocator papers): every operation returns a new
 * number in a block of its own and the operands are dropped, so the program
 * makes many small, short-lived allocations of growing sizes. REPS times, it
 * computes N! for every N up to MAX by repeated multiplication, converts
 * each to decimal (repeated division, a new quotient per step) and prints a
 * digest of the digits.
 *
 *   bignum MAX REPS
 */
#include <string.h>

#include "common.h"

typedef struct {
    size_t n;        /* limbs in use */
    uint32_t l[];    /* little-endian base-2^32 limbs */
} big;

static big *big_new(size_t n) {
    big *b = xmalloc(sizeof(big) + n * sizeof(uint32_t));
    b->n = n;
    return b;
}

static big *big_small(uint32_t v) {
    big *b = big_new(1);
    b->l[0] = v;
    return b;
}

/* a * m, a new number */
static big *big_mul_small(const big *a, uint32_t m) {
    big *r = big_new(a->n + 1);
    uint64_t carry = 0;
    for (size_t i = 0; i < a->n; i++) {
        uint64_t t = (uint64_t)a->l[i] * m + carry;
        r->l[i] = (uint32_t)t;
        carry = t >> 32;
    }
    r->l[a->n] = (uint32_t)carry;
    if (carry == 0) r->n--;
    return r;
}

/* a + b, a new number */
static big *big_add(const big *a, const big *b) {
    if (a->n < b->n) { const big *t = a; a = b; b = t; }
    big *r = big_new(a->n + 1);
    uint64_t carry = 0;
    for (size_t i = 0; i < a->n; i++) {
        uint64_t t = (uint64_t)a->l[i] + (i < b->n ? b->l[i] : 0) + carry;
        r->l[i] = (uint32_t)t;
        carry = t >> 32;
    }
    r->l[a->n] = (uint32_t)carry;
    if (carry == 0) r->n--;
    return r;
}

/* a / d, a new number, remainder in *rem */
static big *big_div_small(const big *a, uint32_t d, uint32_t *rem) {
    big *q = big_new(a->n);
    uint64_t r = 0;
    for (size_t i = a->n; i-- > 0;) {
        uint64_t cur = (r << 32) | a->l[i];
        q->l[i] = (uint32_t)(cur / d);
        r = cur % d;
    }
    while (q->n > 1 && q->l[q->n - 1] == 0) q->n--;
    *rem = (uint32_t)r;
    return q;
}

static int big_is_zero(const big *a) { return a->n == 1 && a->l[0] == 0; }

/* the sum and a hash of the decimal digits */
static void digits(const big *a, uint64_t *sum, uint64_t *hash) {
    big *cur = big_add(a, &(big){0});
    while (!big_is_zero(cur)) {
        uint32_t rem;
        big *q = big_div_small(cur, 1000000000u, &rem);
        free(cur);
        cur = q;
        for (int k = 0; k < 9; k++) {
            *sum += rem % 10;
            *hash = *hash * 31 + rem % 10;
            rem /= 10;
        }
    }
    free(cur);
}

int main(int argc, char **argv) {
    long max = arg_or(argc, argv, 1, 200);
    long reps = arg_or(argc, argv, 2, 20);
    uint64_t sum = 0, hash = 0;
    for (long rep = 0; rep < reps; rep++)
    for (long n = 1; n <= max; n++) {
        big *f = big_small(1);
        for (long k = 2; k <= n; k++) {
            big *g = big_mul_small(f, (uint32_t)k);
            free(f);
            f = g;
        }
        /* and f + f*3, to mix in additions of equal-sized operands */
        big *t = big_mul_small(f, 3);
        big *s = big_add(f, t);
        free(t);
        digits(s, &sum, &hash);
        free(s);
        free(f);
    }
    printf("bignum: factorials up to %ld, %ld times, digit sum %llu, digest %016llx\n", max, reps,
           (unsigned long long)sum, (unsigned long long)hash);
    return 0;
}

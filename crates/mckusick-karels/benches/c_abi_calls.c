// Calls of the `small-random` pattern through a plugin's C ABI (or mimalloc
// behind an equal handle check), for counting instructions per call:
//
//   gcc -O2 crates/mckusick-karels/benches/c_abi_calls.c -ldl -o /tmp/c_abi_calls
//   valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out /tmp/c_abi_calls target/release/libmckusick_karels.so 1
//   callgrind_annotate --inclusive=yes /tmp/cg.out | grep allocator_
//
// (inclusive instructions of allocator_alloc / allocator_free, divided by
// the 210,000 calls of each: one fresh round and 20 rounds on one aged
// allocator of 10,000 allocations of 16..=128 B freed in random order).
// With -DWITH_MIMALLOC -I<mimalloc include> <libmimalloc.a> -lpthread, the
// argument `mimalloc` runs mimalloc (`mi_a`, `mi_f`). Without valgrind it
// prints the smallest TSC cycles per call over the repetitions (second
// argument, default 31).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <x86intrin.h>
#ifdef WITH_MIMALLOC
#include "mimalloc.h"
#endif

typedef void *(*create_t)(void *, size_t);
typedef void *(*alloc_t)(void *, size_t);
typedef void (*free_t)(void *, void *);
static alloc_t A; static free_t F;
#define N 10000
static uint64_t rs = 42;
static uint64_t rnd(void){ rs ^= rs<<13; rs^=rs>>7; rs^=rs<<17; return rs; }
static size_t sizes[20][N]; static int order[20][N]; static void *blk[N];
static uint64_t MAGIC = 0x1234;
#ifdef WITH_MIMALLOC
static void *mi_a(void *h, size_t s){ if(!h || *(uint64_t*)h != MAGIC) return 0; return mi_malloc(s<16?16:s); }
static void mi_f(void *h, void *p){ if(h && *(uint64_t*)h == MAGIC) mi_free(p); }
#endif
static void *emp_a(void *h, size_t s){ if(!h || *(uint64_t*)h != MAGIC) return 0; return (void*)s; }
static void emp_f(void *h, void *p){ if(h && *(uint64_t*)h == MAGIC) __asm__ volatile(""::"r"(p)); }
__attribute__((noinline)) static void round_(void *h, int r, uint64_t *ta, uint64_t *tf){
  uint64_t t0=__rdtsc();
  for(int i=0;i<N;i++) blk[i]=A(h,sizes[r][i]);
  uint64_t t1=__rdtsc();
  for(int i=0;i<N;i++) F(h,blk[order[r][i]]);
  uint64_t t2=__rdtsc();
  *ta=t1-t0; *tf=t2-t1;
}
int main(int argc,char**argv){
  int reps = argc>2? atoi(argv[2]):31;
  for(int r=0;r<20;r++){ for(int i=0;i<N;i++){ sizes[r][i]=16+rnd()%113; order[r][i]=i; }
    for(int i=N-1;i>0;i--){ int j=rnd()%(i+1); int t=order[r][i]; order[r][i]=order[r][j]; order[r][j]=t; } }
  size_t AR = 4<<20; char *mem = mmap(0,AR,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0); memset(mem,1,AR);
  create_t C=0; const char *name=argv[1];
#ifdef WITH_MIMALLOC
  if(!strcmp(name,"mimalloc")){ A=mi_a; F=mi_f; } else
#endif
  if(!strcmp(name,"empty")){ A=emp_a; F=emp_f; }
  else { void *d=dlopen(name,RTLD_NOW); if(!d){fprintf(stderr,"%s\n",dlerror());return 1;}
    C=(create_t)dlsym(d,"allocator_create"); A=(alloc_t)dlsym(d,"allocator_alloc"); F=(free_t)dlsym(d,"allocator_free"); }
  uint64_t best[4]={~0ull,~0ull,~0ull,~0ull};
  static uint64_t fake[8]; fake[0]=MAGIC;
  for(int rep=0;rep<reps;rep++){
    { volatile uint64_t sum=0; for(size_t i=0;i<AR;i+=64) sum+=mem[i]; }
    void *h = C? C(mem,AR) : fake; uint64_t ta,tf;
    // fresh
    round_(h,0,&ta,&tf); if(ta<best[0])best[0]=ta; if(tf<best[1])best[1]=tf;
    h = C? C(mem,AR) : fake;
    for(int r=0;r<19;r++) round_(h,r,&ta,&tf);
    round_(h,19,&ta,&tf); if(ta<best[2])best[2]=ta; if(tf<best[3])best[3]=tf;
  }
  printf("%-60s fresh alloc %6.1f free %6.1f | aged alloc %6.1f free %6.1f  (cycles/op, min of %d)\n", name,
    best[0]/(double)N,best[1]/(double)N,best[2]/(double)N,best[3]/(double)N,reps);
  return 0;
}

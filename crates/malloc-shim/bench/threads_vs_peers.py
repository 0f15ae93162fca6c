"""threads_vs_peers.py -- bench/threads.c under glibc, both shims, mimalloc and
jemalloc at 1, 2, 4 and 8 threads: the median of N interleaved runs of the
program's own clock, as ns per malloc/free pair per thread and as a ratio to
glibc. Run from the workspace root after `cargo build --release`:

    cc -O2 -pthread -o /tmp/threads crates/malloc-shim/bench/threads.c
    N=7 ITER=10000000 python3 crates/malloc-shim/bench/threads_vs_peers.py
"""
import subprocess, statistics, sys, os
N=int(os.environ.get("N","9")); ITER=int(os.environ.get("ITER","2000000"))
R=os.path.abspath("target/release")
L={"glibc":"","buddy":R+"/libbuddy_malloc.so","mckusick-karels":R+"/libmckusick_karels_malloc.so",
   "mimalloc":"/usr/lib/x86_64-linux-gnu/libmimalloc.so.2","jemalloc":"/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"}
print(f"bench/threads.c, {ITER} pairs per thread, median of {N} interleaved runs (its own clock); ns per pair per thread, and x glibc")
for T in (1,2,4,8):
    res={a:[] for a in L}
    for i in range(N):
        order=list(L)[i%len(L):]+list(L)[:i%len(L)]
        for a in order:
            env=dict(os.environ, LD_PRELOAD=L[a])
            out=subprocess.run(["/tmp/threads",str(T),str(ITER)],env=env,capture_output=True,text=True).stdout
            res[a].append(float(out.split()[-2]))
    g=statistics.median(res["glibc"])
    print(f"T={T}: " + "  ".join(f"{a} {statistics.median(v)*1e9/ITER:.1f} ns ({statistics.median(v)/g:.2f}x)" for a,v in res.items()))

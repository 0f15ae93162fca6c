"""threads_vs_peers.py -- bench/threads.c under glibc, both shims, mimalloc and
jemalloc at 1, 2, 4 and 8 threads: the median of N interleaved runs of the
program's own clock, as ns per malloc/free pair per thread; and the ratio to
glibc's run of the same round (median over the rounds, quartiles after it).
Run from the workspace root after `cargo build --release`:

    cc -O2 -pthread -o /tmp/threads crates/malloc-shim/bench/threads.c
    N=7 ITER=10000000 python3 crates/malloc-shim/bench/threads_vs_peers.py

It ends with the same figures as a Markdown table (the one in the crate's README).
"""
import subprocess, statistics, sys, os
N=int(os.environ.get("N","9")); ITER=int(os.environ.get("ITER","2000000"))
R=os.path.abspath("target/release")
L={"glibc":"","buddy":R+"/libbuddy_malloc.so","mckusick-karels":R+"/libmckusick_karels_malloc.so",
   "mimalloc":"/usr/lib/x86_64-linux-gnu/libmimalloc.so.2","jemalloc":"/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"}
rows=[]
print(f"bench/threads.c, {ITER} pairs per thread, median of {N} interleaved runs (its own clock); ns per pair per thread (x glibc in the same round: median, quartiles)")
for T in (1,2,4,8):
    res={a:[] for a in L}
    for i in range(N):
        order=list(L)[i%len(L):]+list(L)[:i%len(L)]
        for a in order:
            env=dict(os.environ, LD_PRELOAD=L[a])
            out=subprocess.run(["/tmp/threads",str(T),str(ITER)],env=env,capture_output=True,text=True).stdout
            res[a].append(float(out.split()[-2]))
    # Each round ran every allocator back to back: its ratio to glibc in
    # that round cancels most of the machine's drift; the median of the
    # rounds' ratios, and their quartiles as the spread.
    def ratio(a):
        r=sorted(x/y for x,y in zip(res[a],res["glibc"]))
        q=statistics.quantiles(r,n=4) if len(r)>1 else [r[0]]*3
        return f"{q[1]:.2f}x, {q[0]:.2f}-{q[2]:.2f}"
    print(f"T={T}: " + "  ".join(f"{a} {statistics.median(v)*1e9/ITER:.1f} ns ({ratio(a)})" for a,v in res.items()))
    rows.append(f"| {T} | " + " | ".join(f"{statistics.median(v)*1e9/ITER:.1f} ns ({ratio(a).replace('x,','×,')})" for a,v in res.items()) + " |")
# The same as a Markdown table (what the crate's README shows).
print()
print("| threads | " + " | ".join(L) + " |")
print("|---" * (len(L) + 1) + "|")
print("\n".join(rows))

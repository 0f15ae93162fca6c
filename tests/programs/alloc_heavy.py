"""alloc_heavy.py -- a Python program that allocates heavily, for alloclab.

Builds and tears down dicts, lists, strings, bytes and bytearrays of many
sizes (tiny objects to multi-MiB buffers grown by realloc), and prints a
deterministic summary: the same lines under any correct malloc. Run it with
PYTHONMALLOC=malloc so that every object goes through malloc (the default
pymalloc serves objects up to 512 bytes from its own mmap'd arenas).

    python3 alloc_heavy.py [--n N] [--threads T]

--n scales the work (default 60000); --threads runs T workers at once, each
on its own seed, and prints their lines in seed order.
"""

import hashlib
import json
import random
import sys
import threading


def work(seed, n):
    rng = random.Random(seed)
    out = []

    # 1. A dict of records, with churn: inserts, updates, deletes.
    d = {}
    for i in range(n):
        k = "key-%d-%d" % (rng.randrange(n * 2), i % 97)
        d[k] = [i, str(i) * (i % 7), {"x": i, "y": [i] * (i % 5)}]
        if i % 3 == 0 and d:
            d.pop(next(iter(d)))
    out.append("dict %d" % len(d))

    # 2. Strings: formatting, joining, splitting, case changes.
    lines = []
    for k in sorted(d)[: n // 2]:
        lines.append(k.upper() + "|" + json.dumps(d[k], sort_keys=True))
    text = "\n".join(lines)
    words = text.replace("\n", "|").split("|")
    counts = {}
    for w in words:
        counts[w[:6]] = counts.get(w[:6], 0) + 1
    out.append("text %d chars, %d words, %d prefixes" % (len(text), len(words), len(counts)))

    # 3. Lists grown one element at a time (realloc), sorted, sliced.
    big = []
    for i in range(n * 4):
        big.append((i * 7919) % 1000003)
    big.sort()
    chunks = [big[i : i + 1000] for i in range(0, len(big), 1000)]
    out.append("list %d sum %d chunks %d" % (len(big), sum(big), len(chunks)))

    # 4. A bytearray grown to megabytes (realloc past the mmap threshold),
    #    bytes objects of random sizes, freed out of order.
    buf = bytearray()
    blobs = []
    for i in range(n // 10):
        size = rng.choice((8, 24, 100, 700, 5000, 40000, 200000)) if i % 50 else 1 << 20
        blob = bytes([i % 251]) * size
        buf += blob[:2048]
        blobs.append(blob)
        if len(blobs) > 64:
            del blobs[rng.randrange(len(blobs))]
    out.append("bytes %d blobs %d" % (len(buf), len(blobs)))

    # 5. Many small tuples and sets, then a nested structure serialised.
    sets = [frozenset(range(i % 40)) for i in range(n // 4)]
    tree = {"level%d" % i: [tuple(range(i % 9)) for _ in range(20)] for i in range(n // 100)}
    blob = json.dumps(tree, sort_keys=True).encode()
    out.append("sets %d tree %d bytes" % (sum(len(s) for s in sets), len(blob)))

    h = hashlib.sha256()
    for line in out:
        h.update(line.encode())
    h.update(text.encode())
    h.update(bytes(buf))
    h.update(blob)
    return "seed %d: %s; sha256 %s" % (seed, "; ".join(out), h.hexdigest()[:20])


def main():
    n, threads = 60000, 0
    args = sys.argv[1:]
    while args:
        a = args.pop(0)
        if a == "--n":
            n = int(args.pop(0))
        elif a == "--threads":
            threads = int(args.pop(0))
        else:
            sys.exit("usage: alloc_heavy.py [--n N] [--threads T]")
    if threads <= 0:
        print(work(1, n))
        return
    results = {}

    def run(seed):
        results[seed] = work(seed, n)

    ts = [threading.Thread(target=run, args=(s,)) for s in range(1, threads + 1)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for s in sorted(results):
        print(results[s])


if __name__ == "__main__":
    main()

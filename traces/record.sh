#!/usr/bin/env bash
# Re-records the traces shipped in this folder (see docs/traces.md):
#
#   python.trace          python3 tests/programs/alloc_heavy.py --n 3000
#   python-threads.trace  the same script with 2 threads (--threads 2 --n 1500)
#   git-log.trace         git log -p --stat in a generated repository
#   sort.trace            sort -S 4M -k2 on 100,000 generated lines
#
# Each is `alloclab record -o traces/NAME.trace -- COMMAND`. The inputs are
# generated from fixed seeds; the traces still depend on the versions of
# python3, git and sort (and of glibc) that make the calls.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
alloclab="$PWD/target/release/alloclab"
out="$PWD/traces"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Python, as it runs by default (pymalloc serves objects up to 512 bytes
# from its own arenas; everything else comes to malloc).
"$alloclab" record -o "$out/python.trace" -- \
    env PYTHONHASHSEED=0 python3 tests/programs/alloc_heavy.py --n 3000 >/dev/null
"$alloclab" record -o "$out/python-threads.trace" -- \
    env PYTHONHASHSEED=0 python3 tests/programs/alloc_heavy.py --threads 2 --n 1500 >/dev/null

# A text file of 100,000 lines of words and numbers.
python3 - "$work/lines.txt" <<'PY'
import random, sys
r = random.Random(5)
w = "alloc buddy bucket page arena free list merge split order block header kernel mmap slab cache".split()
with open(sys.argv[1], "w") as f:
    for i in range(100000):
        f.write(" ".join(r.choice(w) + str(r.randrange(1000)) for _ in range(r.randrange(2, 8))) + "\n")
PY
"$alloclab" record -o "$out/sort.trace" -- \
    env LC_ALL=C sort -S 4M -k2 "$work/lines.txt" >/dev/null

# A repository of 400 files in 10 folders, one commit, then three commits
# appending to 60 files each; fixed names and dates, no user configuration.
export GIT_AUTHOR_NAME=alloclab GIT_AUTHOR_EMAIL=alloclab@example.invalid
export GIT_COMMITTER_NAME=alloclab GIT_COMMITTER_EMAIL=alloclab@example.invalid
export GIT_AUTHOR_DATE=2026-01-01T00:00:00Z GIT_COMMITTER_DATE=2026-01-01T00:00:00Z
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
mkdir "$work/repo"
cd "$work/repo"
python3 - <<'PY'
import os, random
r = random.Random(7)
w = "alloc buddy bucket page arena free list merge split order block header kernel mmap slab cache".split()
for d in range(10):
    os.makedirs("d%d" % d, exist_ok=True)
    for f in range(40):
        with open("d%d/f%d.txt" % (d, f), "w") as out:
            out.write("\n".join(" ".join(r.choice(w) for _ in range(r.randrange(2, 9)))
                                for _ in range(r.randrange(20, 200))))
PY
git init -q -b main
git add .
git commit -q -m initial
for i in 1 2 3; do
    python3 - "$i" <<'PY'
import random, sys
i = int(sys.argv[1])
r = random.Random(i)
for k in range(60):
    with open("d%d/f%d.txt" % (r.randrange(10), r.randrange(40)), "a") as f:
        f.write("\nchange %d %d" % (i, k))
PY
    git commit -q -a -m "change $i"
done
"$alloclab" record -o "$out/git-log.trace" -- git log -p --stat >/dev/null

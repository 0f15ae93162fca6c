#!/usr/bin/env bash
# The README's first command on a fresh clone, as a new user runs it: clones
# the repository's committed state (HEAD) into a temporary folder, runs the
# first command of the README's "The two commands" block exactly as written
# there, with `--quick --workloads seed` (the rows it checks are the seed
# table's; the other workloads would only lengthen CI), in that clone (no
# build beforehand, its own target folder), and fails unless it succeeds and prints measured rows for the
# buddy and McKusick-Karels plugins. `run-tests.sh` runs it.
#
#   tests/first-run.sh [LOG]     the command's output goes to LOG too
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
log="${1:-/dev/null}"

# The command, from the README itself: the first line of the sh block that
# follows the "## The two commands" heading, without its comment.
command="$(awk '
    /^## The two commands/ { section = 1; next }
    section && /^```sh/ { block = 1; next }
    block { sub(/[[:space:]]*#.*/, ""); print; exit }
' "$repo/README.md")"
case "$command" in
    "cargo run --release -- compare") ;;
    *) echo "first-run: the README's first command is \`$command\`; this test knows \`cargo run --release -- compare\`" >&2
       exit 1 ;;
esac

work="$(mktemp -d "${TMPDIR:-/tmp}/alloclab-first-run.XXXXXX")"
trap 'rm -rf "$work"' EXIT
trap 'exit 143' TERM INT
git clone --quiet "$repo" "$work/alloclab"
cd "$work/alloclab"
echo "first-run: $(git log --oneline -1) cloned into a temporary folder; running \`$command --quick --workloads seed\`"

# Nothing from the environment may point the clone at another build.
unset CARGO_TARGET_DIR CARGO_BUILD_TARGET_DIR
start=$(date +%s)
status=0
$command --quick --workloads seed >"$work/out" 2>&1 || status=$?
elapsed=$(( $(date +%s) - start ))
cp "$work/out" "$log" 2>/dev/null || true

# A measured row of the seed table: its first cell is the name, and no cell
# says "failed".
row() {
    awk -v name="$1" '
        /^── seed / { seed = 1; next }
        seed && /^── / { exit }
        seed {
            split($0, cells, "┆"); first = cells[1]
            gsub(/^│[[:space:]]*|[[:space:]]*$/, "", first)
            if (first == name && $0 !~ /failed/) { found = 1 }
        }
        END { exit !found }
    ' "$work/out"
}
missing=()
for name in buddy mckusick-karels; do
    row "$name" || missing+=("$name")
done
if [ "$status" -ne 0 ] || ((${#missing[@]})); then
    tail -n 40 "$work/out" >&2
    echo "first-run: FAILED after ${elapsed} s: exit status $status; rows missing: ${missing[*]:-none}" >&2
    exit 1
fi
echo "first-run: ok in ${elapsed} s (build and compare --quick --workloads seed): buddy and mckusick-karels rows measured"

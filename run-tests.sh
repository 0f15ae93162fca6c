#!/usr/bin/env bash
# The whole test suite, from a fresh clone: formatting, lints, every crate's
# tests (property tests against the shadow model, the C ABI from C and under
# valgrind, no system call under strace, threads, the runner as a user runs
# it, real programs under the malloc shims), Miri on the allocator cores, and
# a short fuzzing run of each allocator. `.ci/run` calls exactly this.
#
#   ./run-tests.sh            everything
#   FUZZ_SECONDS=600 ./run-tests.sh    a longer fuzzing run
set -euo pipefail
cd "$(dirname "$0")"

FUZZ_SECONDS="${FUZZ_SECONDS:-45}"
step() { printf '\n== %s  [%s, %ss in]\n' "$*" "$(date -u +%T)" "$SECONDS"; }

# What the suite needs beyond the stable toolchain, installed only if missing.
need_debian() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        step "installing ${missing[*]} (Debian packages)"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
    fi
}
need_debian gcc binutils strace valgrind git python3 xz-utils \
    redis-server redis-tools lua5.4 ruby sqlite3 bc

if ! cargo +nightly miri --version >/dev/null 2>&1; then
    step "installing nightly Rust with Miri"
    rustup toolchain install nightly --profile minimal --component miri,rust-src
fi
cargo +nightly miri setup >/dev/null 2>&1 || cargo +nightly miri setup
# The bare targets the no_std cores are built for (stable, the toolchain of
# rust-toolchain.toml).
BARE_TARGETS=(x86_64-unknown-none thumbv7em-none-eabihf)
for target in "${BARE_TARGETS[@]}"; do
    if ! rustup target list --installed | grep -qx "$target"; then
        step "installing the Rust target $target"
        rustup target add "$target"
    fi
done
if ! cargo fuzz --version >/dev/null 2>&1; then
    step "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# The jobs that need no other step run beside the others, each logging to
# target/ci-logs/NAME.log, printed when it is waited for: the machine has
# two cores, and Miri, libFuzzer and the linking phases use one each.
mkdir -p target/ci-logs
declare -A job_pid=()
background() {
    local name="$1"
    shift
    step "starting $name in the background (target/ci-logs/$name.log)"
    setsid -w "$@" >"target/ci-logs/$name.log" 2>&1 &
    job_pid[$name]=$!
}
stop_background() {
    for pid in "${job_pid[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
}
trap stop_background EXIT
finish() {
    local name="$1" status=0
    step "$name (waiting for it)"
    wait "${job_pid[$name]}" || status=$?
    unset "job_pid[$name]"
    cat "target/ci-logs/$name.log"
    if [ "$status" -ne 0 ]; then
        echo "$name FAILED (exit status $status)" >&2
        exit "$status"
    fi
}

# The README's first command on a fresh clone (a full release build from
# scratch in a temporary clone, then `compare --quick`): the longest job,
# started first.
background first-run tests/first-run.sh target/first-run.out

step "cargo fmt --check"
cargo fmt --all --check
(cd fuzz && cargo fmt --check)
(cd examples/no-std-linux && cargo fmt --check)

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "the cores without std or alloc, for bare targets (kernels, firmware)"
for target in "${BARE_TARGETS[@]}"; do
    cargo build -p buddy -p mckusick-karels --lib --target "$target"
done

step "a #![no_std] #![no_main] Linux program on the cores alone (examples/no-std-linux)"
(cd examples/no-std-linux && cargo clippy --release -- -D warnings && cargo run --release)

step "the library crates are ready to publish (cargo package, docs without warnings)"
# Packaging without the verifying build (the tests below build them): the
# metadata, README and license files, versions on path dependencies; the
# docs as docs.rs builds them, warnings as errors.
library_crates=(-p arena-api -p plugin-abi -p alloc-trace -p buddy -p mckusick-karels)
cargo package --offline --no-verify --allow-dirty "${library_crates[@]}" >/dev/null
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --features plugin-abi/loader "${library_crates[@]}"

step "cargo test (workspace)"
cargo test --workspace

# libFuzzer, one core per allocator: both targets built once, then run
# side by side.
fuzz_both() {
    cd fuzz
    cargo +nightly fuzz build
    local pids=() status=0
    for target in buddy mckusick_karels; do
        cargo +nightly fuzz run "$target" -- -max_total_time="$FUZZ_SECONDS" \
            -max_len=4096 -print_final_stats=1 >"../target/ci-logs/fuzz-$target.log" 2>&1 &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
    for target in buddy mckusick_karels; do
        echo "-- fuzz target $target"
        tail -n 12 "../target/ci-logs/fuzz-$target.log"
    done
    return "$status"
}
export -f fuzz_both
export FUZZ_SECONDS
background fuzz bash -c fuzz_both

step "core::alloc::Allocator for both cores (nightly, feature allocator-api)"
cargo +nightly test -p buddy -p mckusick-karels --features allocator-api --test allocator_api

step "Miri: the allocator cores' unit tests, and the shadow model on small arenas"
# (All their tests pass under Miri too, in about 20 minutes here:
#  cargo +nightly miri test -p buddy -p mckusick-karels)
export MIRIFLAGS="-Zmiri-strict-provenance"
cargo +nightly miri test -p buddy -p mckusick-karels --lib
cargo +nightly miri test -p buddy --test shadow_model small_arenas
cargo +nightly miri test -p mckusick-karels --test shadow_model faithful_mode
unset MIRIFLAGS

finish fuzz
finish first-run
trap - EXIT

printf '\nall tests passed (%s s)\n' "$SECONDS"

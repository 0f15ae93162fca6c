#!/usr/bin/env bash
# The whole test suite: formatting, lints, every crate's tests (property
# tests against the shadow model, the C ABI from C, the runner as a user runs
# it). `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test (workspace)"
cargo test --workspace

printf '\nall tests passed\n'

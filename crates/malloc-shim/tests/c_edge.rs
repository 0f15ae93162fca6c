//! `tests/c/edge.c` — the C-level edge cases of the malloc API (bad
//! `posix_memalign` alignments, `calloc`/`reallocarray` overflow,
//! `realloc(p, 0)`, `malloc_usable_size`, alignment regimes, threads with
//! cross-thread frees, `fork` while other threads allocate) — run under
//! glibc and under `LD_PRELOAD` of each shim: every check must hold in every
//! run, and the shim's statistics line proves it served the calls.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use alloc_testkit::plugins::built_plugin;
use common::{SHIMS, compile, field};

/// Runs `exe` (with `lib` preloaded) and returns its stdout.
fn run(exe: &Path, lib: Option<&Path>, stats: &Path) -> String {
    let mut cmd = Command::new(exe);
    if let Some(lib) = lib {
        cmd.env("LD_PRELOAD", lib).env("ALLOCLAB_SHIM_STATS", stats);
    }
    let out = cmd.output().expect("cannot run edge");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "edge under {lib:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn edge_cases_hold_under_glibc_and_every_shim() {
    let exe = compile("edge");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let glibc = run(&exe, None, &dir);
    assert!(glibc.contains("checks passed"), "{glibc}");
    for (package, name) in SHIMS {
        let lib = built_plugin(package);
        let stats = dir.join(format!("edge-{package}.stats"));
        let _ = std::fs::remove_file(&stats);
        let out = run(&exe, Some(&lib), &stats);
        assert_eq!(out, glibc, "{package}: a different answer than glibc's");
        let text = std::fs::read_to_string(&stats).expect("the shim wrote no statistics");
        // The forked children end with _exit (no destructor, no line).
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{package}: {text}");
        for line in &lines {
            assert!(line.contains(&format!("allocator={name} ")), "{line}");
            for zero in [
                "rejected",
                "reentrant",
                "core_panics",
                "foreign",
                "tls_reentry",
            ] {
                assert_eq!(field(line, zero), 0, "{package}: {line}");
            }
        }
        let parent = lines.iter().max_by_key(|l| field(l, "allocs")).unwrap();
        // four threads x 200,000 allocations, and more
        assert!(field(parent, "allocs") > 800_000, "{parent}");
        assert!(field(parent, "large_allocs") > 0, "{parent}");
        assert!(field(parent, "large_remaps") > 0, "{parent}");
        assert!(
            field(parent, "failed") >= 5,
            "the ENOMEM cases reached the shim: {parent}"
        );
    }
}

//! After `allocator_create`, alloc, free and realloc of the plugins never
//! enter the kernel: `tests/c/stress.c` runs 200,000 calls between two
//! markers under `strace -f`, and no system call at all (memory or other)
//! appears between them, for both plugins, plain and locked.

use std::path::PathBuf;
use std::process::Command;

use alloc_testkit::plugins::{built_plugin, workspace_root};
use plugin_abi::ALLOCATOR_FLAG_LOCKED;

fn compile_stress() -> PathBuf {
    let root = workspace_root();
    let exe = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("stress");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(cc)
        .args(["-O2", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(root.join("include"))
        .arg(root.join("crates/alloclab/tests/c/stress.c"))
        .args(["-ldl", "-o"])
        .arg(&exe)
        .status()
        .expect("a C compiler (cc) is needed");
    assert!(status.success(), "stress.c does not compile");
    exe
}

#[test]
fn the_plugins_make_no_system_call_between_create_and_destroy() {
    let found = Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "strace is needed for this test (Debian: apt-get install strace)"
    );
    let exe = compile_stress();
    let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("stress.strace");
    for package in ["buddy", "mckusick-karels"] {
        let lib = built_plugin(package);
        for flags in [0, ALLOCATOR_FLAG_LOCKED] {
            let out = Command::new("strace")
                .args(["-f", "-qq", "-o"])
                .arg(&log)
                .arg(&exe)
                .arg(&lib)
                .arg(flags.to_string())
                .output()
                .expect("cannot run strace");
            assert!(
                out.status.success(),
                "{package} (flags {flags}): stress failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let trace = std::fs::read_to_string(&log).unwrap();
            let begin = trace
                .find("ALLOCLAB-BEGIN")
                .expect("no begin marker in the trace");
            let end = trace
                .find("ALLOCLAB-END")
                .expect("no end marker in the trace");
            // The lines strictly between the marker lines.
            let between: Vec<&str> = trace[begin..end].lines().skip(1).collect();
            let between = &between[..between.len().saturating_sub(1)];
            assert!(
                between.is_empty(),
                "{package} (flags {flags}) made system calls between create and destroy:\n{}",
                between.join("\n")
            );
            // And the arena was mapped once, before.
            let before = &trace[..begin];
            assert!(
                before.contains("mmap("),
                "the stress maps its arena before create"
            );
        }
    }
}

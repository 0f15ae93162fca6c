//! `alloclab compare` with third-party plugins (`tests/plugins/bump.c`, a
//! bump allocator in C): a working one gets its row; one that crashes on its
//! 300th allocation, and one that hangs there, lose only their own row, and
//! the run finishes with every other allocator measured.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use alloc_testkit::plugins::{built_plugin, workspace_root};

fn build_c_plugin(name: &str, define: Option<&str>) -> PathBuf {
    let root = workspace_root();
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("lib{name}.so"));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(cc)
        .args([
            "-shared", "-fPIC", "-O2", "-std=c11", "-Wall", "-Werror", "-I",
        ])
        .arg(root.join("include"))
        .args(define)
        .arg(root.join("crates/alloclab/tests/plugins/bump.c"))
        .arg("-o")
        .arg(&out)
        .status()
        .expect("a C compiler (cc) is needed");
    assert!(status.success(), "bump.c does not compile");
    out
}

/// The table row of `name` in the `seed` table of `stdout`.
fn row<'a>(stdout: &'a str, name: &str) -> &'a str {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("── seed"))
        .find(|l| {
            l.split('┆')
                .next()
                .is_some_and(|c| c.trim_start_matches('│').trim() == name)
        })
        .unwrap_or_else(|| panic!("no row {name} in:\n{stdout}"))
}

#[test]
fn crashing_and_hanging_plugins_lose_only_their_row() {
    // The runner lives next to the workspace's plugins; make sure they exist.
    built_plugin("buddy");
    let good = build_c_plugin("cbump", None);
    let crash = build_c_plugin("crashing", Some("-DCRASH_AFTER=300"));
    let hang = build_c_plugin("hanging", Some("-DHANG_AFTER=300"));
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_alloclab"))
        .args([
            "compare",
            "--quick",
            "--reps",
            "2",
            "--workloads",
            "seed",
            "--deadline",
            "3",
        ])
        .args(["--only", "cbump,crashing,hanging,buddy,bump"])
        .args([&good, &crash, &hang].map(|p| p.as_os_str()))
        .current_dir(Path::new(env!("CARGO_TARGET_TMPDIR")))
        .output()
        .expect("cannot run alloclab");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "the hang was not cut short"
    );
    assert!(
        row(&stdout, "crashing").contains("failed: crashed: wrote through a null pointer"),
        "{stdout}"
    );
    assert!(row(&stdout, "hanging").contains("failed: hung"), "{stdout}");
    for name in ["cbump", "buddy", "bump"] {
        let r = row(&stdout, name);
        assert!(!r.contains("failed"), "{name}: {r}");
        assert!(r.contains('%'), "{name} has a usage figure: {r}");
    }
    // The ease-of-use probes ran in child processes too.
    assert!(stdout.contains("── ease of use"), "{stdout}");
}

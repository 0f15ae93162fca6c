//! `examples/c/main.c`, the brief's program in C, compiled with the system C
//! compiler against `include/allocator.h` and run against both plugins and
//! the fallback: it makes the very same requests as `alloclab` and must get
//! the very same answers.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use alloc_testkit::plugins::{built_plugin, workspace_root};

/// The compiled example, built once: the tests run in parallel, and one
/// writing the executable while another starts it fails with ETXTBSY.
fn build_c_example() -> PathBuf {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(compile_c_example).clone()
}

fn compile_c_example() -> PathBuf {
    let root = workspace_root();
    let exe = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("brief");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(cc)
        .args(["-O2", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(root.join("include"))
        .arg(root.join("examples/c/main.c"))
        .args(["-ldl", "-o"])
        .arg(&exe)
        .status()
        .expect("a C compiler (cc) is needed");
    assert!(status.success(), "examples/c/main.c does not compile");
    exe
}

fn line(stdout: &str, label: &str) -> String {
    stdout
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label} line in {stdout}"))
        .to_string()
}

#[test]
fn the_c_program_runs_both_plugins_like_the_runner() {
    let exe = build_c_example();
    for package in ["buddy", "mckusick-karels"] {
        let lib = built_plugin(package);
        let c = Command::new(&exe).arg(&lib).output().unwrap();
        assert!(c.status.success());
        let c_out = String::from_utf8(c.stdout).unwrap();
        assert!(
            c.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&c.stderr)
        );
        let r = Command::new(env!("CARGO_BIN_EXE_alloclab"))
            .arg(&lib)
            .args(["--repeat", "1"])
            .output()
            .unwrap();
        let r_out = String::from_utf8(r.stdout).unwrap();
        assert_eq!(
            line(&c_out, "allocated"),
            line(&r_out, "allocated"),
            "{package}"
        );
        assert_eq!(
            line(&c_out, "usage factor"),
            line(&r_out, "usage factor")[..line(&c_out, "usage factor").len()]
        );
    }
}

#[test]
fn the_c_program_falls_back_like_the_runner() {
    let exe = build_c_example();
    for arg in [None, Some("no/such/plugin.so")] {
        let out = Command::new(&exe).args(arg).output().unwrap();
        assert!(out.status.success());
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("fallback"), "{stderr}");
        assert!(
            line(&stdout, "allocated").contains("10000 blocks"),
            "{stdout}"
        );
    }
}

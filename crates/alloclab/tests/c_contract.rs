//! `tests/c/contract.c`: every bad input of `include/allocator.h` answered
//! as documented, checked from C through `dlopen` against both plugins, and
//! again under valgrind (no invalid read or write, in the C program or in the
//! plugin).

use std::path::PathBuf;
use std::process::Command;

use alloc_testkit::plugins::{built_plugin, workspace_root};

fn compile(source: &str, name: &str) -> PathBuf {
    let root = workspace_root();
    let exe = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(cc)
        .args(["-g", "-O1", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(root.join("include"))
        .arg(root.join(source))
        .args(["-ldl", "-o"])
        .arg(&exe)
        .status()
        .expect("a C compiler (cc) is needed");
    assert!(status.success(), "{source} does not compile");
    exe
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("cannot run");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{cmd:?} failed:\n{stdout}\n{stderr}");
    stdout
}

#[test]
fn both_plugins_keep_the_contract_from_c() {
    let exe = compile("crates/alloclab/tests/c/contract.c", "contract");
    for package in ["buddy", "mckusick-karels"] {
        let stdout = run(Command::new(&exe).arg(built_plugin(package)));
        assert!(
            stdout.contains("all ") && stdout.contains("checks passed"),
            "{stdout}"
        );
        assert!(!stdout.contains("FAIL"), "{stdout}");
    }
}

/// `tests/c/scribble.c`: writes into freed blocks never make either plugin
/// hand out memory outside the arena, misaligned or overlapping a live
/// block; McKusick-Karels gets a quarter of an emptied arena back.
#[test]
fn both_plugins_survive_writes_into_freed_blocks_from_c() {
    let exe = compile("crates/alloclab/tests/c/scribble.c", "scribble");
    for package in ["buddy", "mckusick-karels"] {
        let stdout = run(Command::new(&exe).arg(built_plugin(package)));
        assert!(stdout.contains("scribble checks passed"), "{stdout}");
        assert!(!stdout.contains("FAIL"), "{stdout}");
    }
}

#[test]
fn the_contract_and_the_example_are_clean_under_valgrind() {
    let vg = "valgrind";
    let found = Command::new(vg)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "valgrind is needed for this test (Debian: apt-get install valgrind)"
    );
    let contract = compile("crates/alloclab/tests/c/contract.c", "contract-vg");
    let example = compile("examples/c/main.c", "brief-vg");
    for package in ["buddy", "mckusick-karels"] {
        let lib = built_plugin(package);
        for exe in [&contract, &example] {
            run(Command::new(vg)
                .args([
                    "--quiet",
                    "--error-exitcode=99",
                    "--leak-check=full",
                    "--errors-for-leak-kinds=definite",
                ])
                .arg(exe)
                .arg(&lib));
        }
    }
}

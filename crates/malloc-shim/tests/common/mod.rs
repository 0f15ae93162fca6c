//! What the C-driven tests share: the shim libraries, compiling a C test
//! program, running it, reading the statistics line.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use alloc_testkit::plugins::workspace_root;

/// The shim libraries: (cargo package, allocator name in the stats line).
pub const SHIMS: [(&str, &str); 2] = [
    ("buddy-malloc", "buddy"),
    ("mckusick-karels-malloc", "mckusick-karels"),
];

/// Compiles `crates/malloc-shim/tests/c/<name>.c` into the test's temporary
/// folder.
pub fn compile(name: &str) -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(cc)
        .args(["-O1", "-fno-builtin", "-Wall", "-Wextra", "-Werror"])
        .args(["-Wno-alloc-size-larger-than", "-pthread", "-o"])
        .arg(&exe)
        .arg(workspace_root().join(format!("crates/malloc-shim/tests/c/{name}.c")))
        .status()
        .expect("a C compiler (cc) is needed");
    assert!(status.success(), "{name}.c does not compile");
    exe
}

/// Runs `cmd` to its end, or kills it after `limit` (then `None`).
pub fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Option<Output> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let tag = format!("{}-{:?}", std::process::id(), std::thread::current().id())
        .replace(|c: char| !c.is_ascii_alphanumeric(), "");
    let (out_path, err_path) = (
        dir.join(format!("{tag}.out")),
        dir.join(format!("{tag}.err")),
    );
    let mut child = cmd
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("cannot start the test program");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = Output {
        status: status?,
        stdout: std::fs::read(&out_path).unwrap_or_default(),
        stderr: std::fs::read(&err_path).unwrap_or_default(),
    };
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_file(&err_path);
    Some(out)
}

/// The value of `name=` in a statistics line.
pub fn field(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name}= in {line}"))
}

/// The statistics lines written to `path` (removed afterwards).
pub fn stats_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let _ = std::fs::remove_file(path);
    text.lines().map(str::to_owned).collect()
}

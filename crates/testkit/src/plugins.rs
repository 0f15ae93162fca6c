//! Finding the built plugins from a test: `cargo test` does not put `cdylib`s
//! where a test can `dlopen` them, so the first test that needs one builds it
//! with `cargo build --lib -p <package>` (a no-op when up to date) and returns
//! `target/debug/lib<name>.so`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// The target folder cargo builds into.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Builds the `cdylib` of workspace package `package` (debug profile) and
/// returns the path of its shared library. The cores `buddy` and
/// `mckusick-karels` are `no_std` rlibs: for them, their C plugin is built
/// (packages `buddy-plugin`, `mckusick-karels-plugin`: `libbuddy.so`,
/// `libmckusick_karels.so`).
pub fn built_plugin(package: &str) -> PathBuf {
    let lib = package.replace('-', "_");
    let package = match package {
        "buddy" | "mckusick-karels" => format!("{package}-plugin"),
        other => other.to_owned(),
    };
    static BUILD: Mutex<()> = Mutex::new(());
    let _one_at_a_time = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--lib", "-p", &package])
        .current_dir(workspace_root())
        .status()
        .expect("cannot run cargo");
    assert!(status.success(), "cargo build -p {package} failed");
    let path = target_dir().join("debug").join(format!("lib{lib}.so"));
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

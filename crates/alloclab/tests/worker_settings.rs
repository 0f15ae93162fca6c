//! A third-party plugin runs in a worker process; the run's settings reach
//! it: `compare --cold` makes its repetitions start cold, and the worker is
//! pinned to the run's CPU (or left unpinned with `--no-pin`). The worker
//! reports the settings it applied (the CPU read back from the kernel), and
//! the results keep that report for each isolated allocator.

use std::path::{Path, PathBuf};
use std::process::Command;

use alloc_testkit::plugins::workspace_root;

/// `tests/plugins/bump.c` built as `lib{name}.so`: a third-party plugin.
fn third_party_plugin(name: &str) -> PathBuf {
    let root = workspace_root();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("worker-settings");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("lib{name}.so"));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(cc)
        .args(["-shared", "-fPIC", "-O2", "-std=c11", "-I"])
        .arg(root.join("include"))
        .arg(root.join("crates/alloclab/tests/plugins/bump.c"))
        .arg("-o")
        .arg(&out)
        .status()
        .expect("a C compiler (cc) is needed");
    assert!(status.success(), "bump.c does not compile");
    out
}

/// `compare` on the plugin alone, one small workload; the results as JSON.
fn compare(plugin: &Path, extra: &[&str], json: &str) -> serde_json::Value {
    let json = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(json);
    let out = Command::new(env!("CARGO_BIN_EXE_alloclab"))
        .args(["compare", "--quick", "--reps", "2", "--workloads", "seed"])
        .args(["--deadline", "37", "--json"])
        .arg(&json)
        .args(extra)
        .arg("--only")
        .arg(plugin)
        .arg(plugin)
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .output()
        .expect("cannot run alloclab");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

/// The settings the only subject's worker reported.
fn worker_settings(results: &serde_json::Value) -> &serde_json::Value {
    let subjects = results["subjects"].as_array().unwrap();
    assert_eq!(subjects.len(), 1, "{subjects:?}");
    assert_eq!(subjects[0]["isolated"], true, "{subjects:?}");
    &subjects[0]["worker_settings"]
}

#[test]
fn a_third_party_plugin_in_a_worker_is_measured_cold_and_pinned_like_the_rest() {
    let plugin = third_party_plugin("coldbump");
    let r = compare(&plugin, &["--cold"], "worker-settings-cold.json");
    let method = &r["method"];
    assert_eq!(method["cold"], true);
    let w = worker_settings(&r);
    assert_eq!(w["cold"], true, "{w}");
    assert_eq!(w["deadline_secs"], 37, "{w}");
    // The worker is pinned where the run's measuring thread is.
    assert!(method["pinned_cpu"].is_u64(), "{method}");
    assert_eq!(w["cpu"], method["pinned_cpu"], "{w}");
    // And the row was measured.
    let row = &r["workloads"][0]["rows"][0];
    assert!(row["failure"].is_null(), "{row}");
    assert_eq!(row["repetitions"], 2, "{row}");
}

#[test]
fn without_cold_or_pinning_the_worker_runs_warm_and_unpinned() {
    let plugin = third_party_plugin("warmbump");
    let r = compare(&plugin, &["--no-pin"], "worker-settings-warm.json");
    assert!(r["method"]["pinned_cpu"].is_null());
    let w = worker_settings(&r);
    assert_eq!(w["cold"], false, "{w}");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus > 1 {
        assert!(
            w["cpu"].is_null(),
            "an unpinned worker runs on every CPU: {w}"
        );
    }
}

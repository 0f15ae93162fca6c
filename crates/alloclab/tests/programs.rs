//! Real programs on the malloc shims: `alloclab programs --quick --runs 1`
//! runs Python (one thread, then four), GNU sort (two threads), a git
//! session (nine processes and their children), xz (two threads), the C
//! programs of `tests/programs/c` (compiled by the runner: a server
//! simulation, producer/consumer, false sharing, small-object loops, mixed
//! sizes, large-block churn, bignums, a logic minimizer), a Redis server
//! driven by redis-benchmark, Lua, Ruby, sqlite3 and bc under glibc and
//! under `LD_PRELOAD` of `libbuddy_malloc.so` and
//! `libmckusick_karels_malloc.so` (built here, debug profile). Every run's
//! output must be glibc's byte for byte, nothing may crash, and each shim
//! must have served the program (its statistics line counts the
//! allocations).

use std::path::PathBuf;
use std::process::Command;

use alloc_testkit::plugins::built_plugin;
use serde_json::Value;

#[test]
fn real_programs_give_glibcs_output_on_both_shims() {
    built_plugin("buddy-malloc");
    built_plugin("mckusick-karels-malloc");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("programs");
    let _ = std::fs::remove_dir_all(&dir);
    let json = dir.join("programs.json");
    std::fs::create_dir_all(&dir).unwrap();
    let readme = dir.join("README.md");
    std::fs::write(
        &readme,
        "# Title\n\n<!-- programs:begin -->\nold\n<!-- programs:end -->\n\nAfter.\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_alloclab"))
        .args([
            "programs",
            "--quick",
            "--runs",
            "1",
            "--only",
            "buddy,mckusick-karels",
        ])
        .arg("--json")
        .arg(&json)
        .arg("--report")
        .arg(dir.join("report"))
        .arg("--readme")
        .arg(&readme)
        .output()
        .expect("cannot run alloclab");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "alloclab programs failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(
        r["skipped"].as_array().map(Vec::len),
        Some(0),
        "python3, sort, git and xz are needed: {}",
        r["skipped"]
    );
    let programs = r["programs"].as_array().unwrap();
    let names: Vec<&str> = programs
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "python",
            "python-threads",
            "sort",
            "git",
            "xz",
            "larson",
            "prodcons",
            "false-sharing",
            "small-loop",
            "small-loop-2t",
            "mixed",
            "large-churn",
            "bignum",
            "minimizer",
            "redis",
            "lua",
            "ruby",
            "sqlite",
            "bc",
        ]
    );
    for p in programs {
        let name = p["name"].as_str().unwrap();
        assert!(
            p["output_bytes"].as_u64().unwrap() > 0,
            "{name}: no output to compare"
        );
        let rows = p["rows"].as_array().unwrap();
        let allocators: Vec<&str> = rows
            .iter()
            .map(|r| r["allocator"].as_str().unwrap())
            .collect();
        assert_eq!(allocators, ["glibc", "buddy", "mckusick-karels"], "{name}");
        for row in rows {
            let a = row["allocator"].as_str().unwrap();
            assert_eq!(row["status"], "ok", "{name} under {a}:\n{stdout}");
            assert!(row["wall_median_s"].as_f64().unwrap() > 0.0, "{name} {a}");
            assert!(row["rss_median_kib"].as_f64().unwrap() > 0.0, "{name} {a}");
            assert!(
                row["mean_rss_median_kib"].as_f64().unwrap() > 0.0,
                "{name} {a}"
            );
            if a == "glibc" {
                assert!(row["shim_allocs"].is_null());
                continue;
            }
            let served = row["shim_allocs"].as_u64().unwrap_or(0);
            let calls = row["shim_calls"].as_u64().unwrap_or(0);
            assert!(
                calls >= served,
                "{name} under {a}: {calls} calls, {served} allocations"
            );
            // PYTHONMALLOC=malloc: every Python object goes through malloc.
            let at_least = if name.starts_with("python") {
                100_000
            } else {
                1
            };
            assert!(
                served >= at_least,
                "{name} under {a}: the shim served {served} allocations"
            );
        }
    }
    // The allocation rate is measured: the C loops are far above the line
    // (and large-block churn by its bytes per second) while sort is below.
    let bound = |n: &str| {
        let p = programs.iter().find(|p| p["name"] == n).unwrap();
        (
            p["allocation_bound"].as_bool().unwrap(),
            p["calls_per_s"].as_f64().unwrap(),
        )
    };
    assert!(
        bound("small-loop").0 && bound("larson").0,
        "{:?}",
        bound("larson")
    );
    assert!(bound("large-churn").0);
    assert!(!bound("sort").0, "{:?}", bound("sort"));
    let md = std::fs::read_to_string(dir.join("report/programs.md")).unwrap();
    assert!(
        md.contains("](programs.svg)") && md.contains("| python"),
        "{md}"
    );
    assert!(md.contains("smoke test"), "one run is flagged as such");
    let readme = std::fs::read_to_string(&readme).unwrap();
    assert!(!readme.contains("old"), "{readme}");
    for want in [
        "# Title\n\n<!-- programs:begin -->\nMeasured on ",
        "`alloclab programs --quick --runs 1 ",
        "| python",
        "| mckusick-karels",
        "[report/programs.md](report/programs.md)",
        "![wall time and peak RSS relative to glibc](report/programs.png)\n<!-- programs:end -->\n\nAfter.\n",
    ] {
        assert!(readme.contains(want), "{want:?} not in\n{readme}");
    }
    for chart in ["programs.svg", "programs.png"] {
        assert!(
            std::fs::metadata(dir.join("report").join(chart))
                .unwrap()
                .len()
                > 1000
        );
    }
}

#[test]
fn other_allocators_run_or_say_why_not() {
    // mimalloc and jemalloc run when their Debian packages are installed;
    // otherwise their rows say how to install them, and the others still run.
    let out = Command::new(env!("CARGO_BIN_EXE_alloclab"))
        .args(["programs", "--quick", "--runs", "1", "--programs", "sort"])
        .args(["--only", "buddy,mimalloc,jemalloc", "--json", "-"])
        .output()
        .expect("cannot run alloclab");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = &stdout[stdout.find("{\n").expect("JSON on stdout")..];
    let r: Value = serde_json::from_str(json).unwrap();
    for row in r["programs"][0]["rows"].as_array().unwrap() {
        let status = row["status"].as_str().unwrap();
        let lib = row["library"].as_str().unwrap();
        if status.starts_with("not installed") {
            assert!(status.contains("apt-get install"), "{status}");
        } else if status.starts_with("not built") {
            assert!(status.contains("cargo build"), "{status}");
        } else {
            assert_eq!(status, "ok", "{lib}");
        }
    }
}

#[test]
fn a_crashing_allocator_is_reported_in_its_row() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let lib = dir.join("libcrashing_malloc.so");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(cc)
        .args(["-O1", "-shared", "-fPIC", "-Wall", "-Werror", "-o"])
        .arg(&lib)
        .arg(
            alloc_testkit::plugins::workspace_root()
                .join("crates/alloclab/tests/c/crashing_malloc.c"),
        )
        .status()
        .expect("a C compiler (cc) is needed");
    assert!(status.success());
    let out = Command::new(env!("CARGO_BIN_EXE_alloclab"))
        .args(["programs", "--quick", "--runs", "1", "--programs", "python"])
        .args(["--only", "crash,gone"])
        .arg(format!("--preload=crash={}", lib.display()))
        .arg("--preload=gone=/no/such/libmalloc.so")
        .args(["--json", "-"])
        .output()
        .expect("cannot run alloclab");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "a crash is a result, not an error: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = &stdout[stdout.find("{\n").expect("JSON on stdout")..];
    let r: Value = serde_json::from_str(json).unwrap();
    let rows = r["programs"][0]["rows"].as_array().unwrap();
    let status = |name: &str| {
        rows.iter()
            .find(|row| row["allocator"] == name)
            .and_then(|row| row["status"].as_str())
            .unwrap_or_else(|| panic!("no row for {name}"))
            .to_string()
    };
    assert_eq!(status("glibc"), "ok");
    assert!(
        status("crash").contains("crashed (signal 6, SIGABRT)"),
        "{}",
        status("crash")
    );
    assert!(
        status("gone").starts_with("not found"),
        "{}",
        status("gone")
    );
    assert!(
        stdout.contains("crashed (signal 6, SIGABRT)"),
        "the table shows it too:\n{stdout}"
    );
}

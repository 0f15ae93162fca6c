//! `alloclab map` and the arena maps' classification, on this project's
//! plugins and a third-party one: every byte of the arena in exactly one
//! class, the classes' sums equal to what `allocator_stats` says, pictures
//! written, and a crashing plugin costing only its own panel.

use std::path::{Path, PathBuf};
use std::process::Command;

use alloc_testkit::plugins::{built_plugin, workspace_root};
use serde_json::Value;

fn c_plugin(name: &str, flag: Option<&str>) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("map-plugins");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("lib{name}.so"));
    let root = workspace_root();
    let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-shared", "-fPIC", "-O2", "-std=c11", "-I"])
        .arg(root.join("include"))
        .args(flag.map(|f| format!("-D{f}")))
        .arg(root.join("crates/alloclab/tests/plugins/bump.c"))
        .arg("-o")
        .arg(&out)
        .status()
        .expect("a C compiler (cc) is needed");
    assert!(status.success());
    out
}

/// One replay through `alloclab __map`, as JSON.
fn replay(plugin: &Path, flags: u32, workload: &str, at: &str, arena: usize) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_alloclab"))
        .arg("__map")
        .arg("--plugin")
        .arg(plugin)
        .args([
            "--flags",
            &flags.to_string(),
            "--workload",
            workload,
            "--at",
            at,
        ])
        .args(["--samples", "20", "--arena-size", &arena.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn n(v: &Value) -> usize {
    v.as_u64().unwrap() as usize
}

/// Every byte in one run, runs in order; returns the bytes of each class.
fn sums(map: &Value) -> std::collections::HashMap<String, usize> {
    let len = n(&map["len"]);
    let mut at = 0;
    let mut out = std::collections::HashMap::new();
    for r in map["runs"].as_array().unwrap() {
        assert_eq!(n(&r["start"]), at, "a gap or an overlap at offset {at}");
        assert!(n(&r["len"]) > 0);
        at += n(&r["len"]);
        *out.entry(r["class"].as_str().unwrap().to_string())
            .or_default() += n(&r["len"]);
    }
    assert_eq!(at, len, "the runs do not end at the arena's end");
    out
}

#[test]
fn every_byte_is_in_one_class_and_the_sums_are_the_allocators_stats() {
    let buddy = built_plugin("buddy");
    let mk = built_plugin("mckusick-karels");
    for (plugin, flags) in [
        (&buddy, 0),
        (&mk, 0),
        (&mk, plugin_abi::ALLOCATOR_FLAG_RETURN_PAGES),
    ] {
        for (workload, at) in [("fill", "refusal"), ("fill", "op:50"), ("churn", "peak")] {
            for arena in [64 << 10, 256 << 10] {
                let r = replay(plugin, flags, workload, at, arena);
                let map = &r["map"];
                assert_eq!(n(&map["len"]), arena);
                let s = sums(map);
                let get = |k: &str| s.get(k).copied().unwrap_or(0);
                let known = &map["known"];
                let what = format!("{} {flags} {workload} {at} {arena}", plugin.display());
                assert!(map["held_measured"].as_bool().unwrap(), "{what}");
                assert_eq!(
                    get("Requested") + get("Rounding"),
                    n(&known["reserved"]),
                    "{what}"
                );
                assert_eq!(get("Metadata"), n(&known["metadata"]), "{what}");
                assert_eq!(
                    get("FreeUsable") + get("FreeUnusable"),
                    n(&known["free"]),
                    "{what}"
                );
                assert!(get("Requested") > 0, "{what}");
                if at == "refusal" {
                    assert_eq!(get("FreeUsable"), 0, "{what}: the request was refused");
                }
                let timeline = r["timeline"].as_array().unwrap();
                assert!(!timeline.is_empty(), "{what}");
                for s in timeline {
                    assert!(n(&s["held"]) >= n(&s["requested"]), "{what}");
                    assert!(n(&s["held"]) + n(&s["largest_free"]) <= arena, "{what}");
                }
            }
        }
    }
}

#[test]
fn map_draws_third_party_plugins_and_survives_a_crashing_one() {
    let bump = c_plugin("cbump", None);
    let crashing = c_plugin("crashing", Some("CRASH_AFTER=5"));
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("map-out");
    let _ = std::fs::remove_dir_all(&out_dir);
    let out = Command::new(env!("CARGO_BIN_EXE_alloclab"))
        .args(["map", "--workload", "fill", "--arena-size", "256K", "--out"])
        .arg(&out_dir)
        .arg(built_plugin("buddy"))
        .arg(&bump)
        .arg(&crashing)
        .arg("rlsf")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("crashing") && stderr.contains("SIGSEGV"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for file in [
        "map-fill.png",
        "map-fill.svg",
        "timeline-fill.png",
        "timeline-fill.svg",
    ] {
        let path = out_dir.join(file);
        assert!(stdout.contains(&path.display().to_string()), "{stdout}");
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(len > 1000, "{file}: {len} bytes");
    }
    for name in ["buddy", "cbump", "rlsf"] {
        assert!(
            stdout.contains(&format!("\n{name}: the first refusal"))
                || stdout.starts_with(&format!("{name}: ")),
            "no panel for {name}: {stdout}"
        );
    }
    assert!(!stdout.contains("crashing:"), "{stdout}");
}

#[test]
fn bad_arguments_get_one_line() {
    for (args, says) in [
        (
            &["map", "--at", "later"][..],
            "expected refusal, peak or op:N",
        ),
        (&["map", "--workload", "nope"][..], "no workload `nope`"),
        (&["map", "no/such/plugin.so"][..], "neither an allocator"),
        (&["map", "glibc"][..], "takes its memory from the OS"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_alloclab"))
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() || stderr.contains(says),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

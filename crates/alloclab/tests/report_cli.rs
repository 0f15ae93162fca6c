//! `alloclab compare --csv FILE --report DIR --readme FILE` end to end, on
//! the built-in fallback alone (no plugin needed): the files exist, agree
//! with each other, and the README keeps everything outside its markers.

use std::path::PathBuf;
use std::process::Command;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("alloclab-report-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn compare_writes_csv_report_and_readme_block() {
    let dir = temp_dir("full");
    let readme = dir.join("README.md");
    std::fs::write(
        &readme,
        "# Title\n\n<!-- results:begin -->\nstale\n<!-- results:end -->\n\nTail.\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_alloclab"))
        .args([
            "compare",
            "--quick",
            "--reps",
            "1",
            "--workloads",
            "seed,small-random",
            "--only",
            "mmap fallback",
            "--csv",
            "r.csv",
            "--report",
            "out",
            "--readme",
            "README.md",
        ])
        .current_dir(&dir)
        .output()
        .expect("cannot run alloclab");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let csv = std::fs::read_to_string(dir.join("r.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("workload,arena_bytes,allocator,phase,"));
    // Two workloads, two timed phases each, one allocator.
    assert_eq!(lines.len(), 1 + 4, "{csv}");
    assert!(lines[1].starts_with("seed,1048576,mmap fallback,alloc,10000,"));

    let md = std::fs::read_to_string(dir.join("out/report.md")).unwrap();
    for want in [
        "### `seed`",
        "### `small-random`",
        "mmap fallback",
        "## Analysis",
    ] {
        assert!(md.contains(want), "{want} missing from report.md");
    }
    for stem in ["time-seed", "time-small-random", "latency-small-random"] {
        let svg = std::fs::read_to_string(dir.join(format!("out/{stem}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("mmap fallback"));
        assert!(
            std::fs::metadata(dir.join(format!("out/{stem}.png")))
                .unwrap()
                .len()
                > 1000
        );
    }

    let text = std::fs::read_to_string(&readme).unwrap();
    assert!(text.starts_with("# Title\n\n<!-- results:begin -->\n"));
    assert!(text.ends_with("<!-- results:end -->\n\nTail.\n"));
    assert!(!text.contains("stale"));
    assert!(text.contains("| mmap fallback |") && text.contains("](out/report.md)"));
    assert!(text.contains("](out/time-seed.png)"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_readme_without_markers_fails_before_measuring() {
    let dir = temp_dir("nomarkers");
    std::fs::write(dir.join("README.md"), "no markers").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_alloclab"))
        .args(["compare", "--quick", "--readme", "README.md"])
        .current_dir(&dir)
        .output()
        .expect("cannot run alloclab");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("<!-- results:begin -->"), "{err}");
    assert!(!err.contains("probing"), "it measured first: {err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("README.md")).unwrap(),
        "no markers"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The report and the JSON carry no machine's folders: the plugin's origin
/// relative to the repository, the command without absolute paths (the
/// runner's own, a `--json` file's).
#[test]
fn reports_carry_no_machine_paths() {
    let dir = temp_dir("paths");
    let json = dir.join("r.json");
    let root = alloc_testkit::plugins::workspace_root();
    alloc_testkit::plugins::built_plugin("buddy");
    let out = Command::new(env!("CARGO_BIN_EXE_alloclab"))
        .args(["compare", "--quick", "--reps", "1", "--workloads", "seed"])
        .args(["--only", "buddy", "--report", "out", "--json"])
        .arg(&json)
        .current_dir(&dir)
        .output()
        .expect("cannot run alloclab");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = std::fs::read_to_string(dir.join("out/report.md")).unwrap();
    let js = std::fs::read_to_string(&json).unwrap();
    for text in [&md, &js] {
        for machine in [root.display().to_string(), dir.display().to_string()] {
            assert!(!text.contains(&machine), "{machine} in:\n{text}");
        }
    }
    assert!(md.contains("| buddy | target/debug/libbuddy.so |"), "{md}");
    assert!(
        md.contains("| Command | `target/debug/alloclab compare --quick"),
        "{md}"
    );
    assert!(md.contains("--json r.json"), "{md}");
    let _ = std::fs::remove_dir_all(&dir);
}

//! Third-party plugins, and plugins that get something wrong
//! (`tests/plugins/bump.c`, one fault per build): the lab program (`alloclab PLUGIN`) ends each run with one line
//! on stderr naming what the plugin did and a non-zero exit, in bounded
//! time; `compare` gives each its row saying so, and the ease-of-use probes
//! say what it did; a third-party `libbump.so` is told apart from the
//! built-in bump; a plugin without `allocator_realloc` replays traces with
//! the realloc emulated.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use alloc_testkit::plugins::{built_plugin, workspace_root};

/// Builds `tests/plugins/bump.c` with `-D<flag>` (or none) as `lib<name>.so`.
fn bad_plugin(name: &str, flag: Option<&str>) -> PathBuf {
    let root = workspace_root();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bad-plugins");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("lib{name}.so"));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(cc)
        .args([
            "-shared", "-fPIC", "-O2", "-std=c11", "-Wall", "-Werror", "-I",
        ])
        .arg(root.join("include"))
        .args(flag.map(|f| format!("-D{f}")))
        .arg(root.join("crates/alloclab/tests/plugins/bump.c"))
        .arg("-o")
        .arg(&out)
        .status()
        .expect("a C compiler (cc) is needed");
    assert!(status.success(), "bump.c -D{flag:?} does not compile");
    out
}

/// Every faulty build, once (the tests run in parallel).
fn plugins() -> &'static [(&'static str, PathBuf)] {
    static ALL: OnceLock<Vec<(&'static str, PathBuf)>> = OnceLock::new();
    ALL.get_or_init(|| {
        [
            "SEGV_IN_ALLOC",
            "EXIT_IN_CREATE",
            "LOOP_IN_ALLOC",
            "WRITE_PAST_END",
            "WRITE_BEFORE",
            "WRITE_AT_SIZE",
            "BAD_NAME_POINTER",
            "BAD_INFO_POINTER",
            "NAME_WITH_NEWLINE",
            "GARBAGE_STATS",
            "OUTSIDE_ARENA",
            "SAME_POINTER",
        ]
        .into_iter()
        .map(|flag| (flag, bad_plugin(&flag.to_lowercase(), Some(flag))))
        .collect()
    })
}

fn plugin(flag: &str) -> &'static Path {
    &plugins().iter().find(|(f, _)| *f == flag).unwrap().1
}

fn alloclab(args: &[&std::ffi::OsStr], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_alloclab"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("cannot run alloclab")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn the_lab_program_says_in_one_line_what_a_bad_plugin_did() {
    let cases: [(&str, &[&str], &str); 12] = [
        (
            "SEGV_IN_ALLOC",
            &[],
            "crashed: wrote through a null pointer (address 0x0) (SIGSEGV) during the allocations (allocator_alloc)",
        ),
        (
            "EXIT_IN_CREATE",
            &[],
            "ended the process (exit status 0) in allocator_create",
        ),
        (
            "LOOP_IN_ALLOC",
            &[],
            "hung during the allocations (allocator_alloc): no answer in 2 s (killed)",
        ),
        (
            "WRITE_PAST_END",
            &[],
            "crashed: wrote outside its arena, at byte 0 after its end (SIGSEGV) in allocator_create",
        ),
        (
            "WRITE_BEFORE",
            &[],
            "crashed: wrote outside its arena, 8 bytes before its start (SIGSEGV) in allocator_create",
        ),
        (
            // An arena that does not end on a page: the rest of the page is
            // watched by a marker, not a guard.
            "WRITE_AT_SIZE",
            &["--arena-size", "1000000"],
            "wrote outside its arena: byte 0 after its end changed",
        ),
        (
            "BAD_NAME_POINTER",
            &[],
            "allocator_info's name points to memory that is not readable (0x8)",
        ),
        (
            "BAD_INFO_POINTER",
            &[],
            "allocator_info returned 0x10, which is not readable memory",
        ),
        (
            "NAME_WITH_NEWLINE",
            &[],
            "allocator_info's name contains a control character (U+000A at byte 4)",
        ),
        (
            "GARBAGE_STATS",
            &[],
            "allocator_stats is inconsistent: arena_bytes is 18446744073709551615, but the arena has 1048576 bytes",
        ),
        ("OUTSIDE_ARENA", &[], "outside its arena"),
        ("SAME_POINTER", &[], "twice while it was live"),
    ];
    let dir = plugin("SEGV_IN_ALLOC").parent().unwrap().to_path_buf();
    for (flag, extra, says) in cases {
        let started = Instant::now();
        let file = plugin(flag).file_name().unwrap();
        let mut args: Vec<&std::ffi::OsStr> = vec![file, "--repeat".as_ref(), "2".as_ref()];
        args.extend(["--deadline", "2"].map(std::ffi::OsStr::new));
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        let out = alloclab(&args, &dir);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(1), "{flag}: {stderr}");
        assert!(stdout.is_empty(), "{flag}: printed {stdout}");
        assert_eq!(stderr.lines().count(), 1, "{flag}: {stderr}");
        let expected_start = format!("alloclab: plugin {}: ", file.to_string_lossy());
        assert!(
            stderr.starts_with(&expected_start) && stderr.contains(says),
            "{flag}: {stderr}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{flag} took {:?}",
            started.elapsed()
        );
    }
}

/// One JSON results file of `compare`.
fn compare_json(args: &[&std::ffi::OsStr], name: &str) -> (serde_json::Value, String) {
    built_plugin("buddy");
    built_plugin("mckusick-karels");
    let json = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.json"));
    let mut all: Vec<&std::ffi::OsStr> = vec!["compare".as_ref(), "--quick".as_ref()];
    all.extend(["--reps", "2", "--deadline", "2", "--json"].map(std::ffi::OsStr::new));
    all.push(json.as_os_str());
    all.extend(args);
    let out = alloclab(&all, Path::new(env!("CARGO_TARGET_TMPDIR")));
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{}\n{stderr}", text(&out.stdout));
    let value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    (value, stderr)
}

/// The row of `subject` in workload `workload`.
fn row<'a>(r: &'a serde_json::Value, workload: &str, subject: &str) -> &'a serde_json::Value {
    r["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == workload)
        .unwrap_or_else(|| panic!("no workload {workload}"))["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["subject"] == subject)
        .unwrap_or_else(|| panic!("no row {subject} in {workload}"))
}

fn observed<'a>(r: &'a serde_json::Value, subject: &str, what: &str) -> &'a str {
    r["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == subject)
        .unwrap_or_else(|| panic!("no subject {subject}"))["observed"][what]
        .as_str()
        .unwrap_or("")
}

#[test]
fn compare_gives_each_bad_plugin_a_row_saying_what_it_did() {
    let flags = [
        "SEGV_IN_ALLOC",
        "EXIT_IN_CREATE",
        "WRITE_PAST_END",
        "BAD_NAME_POINTER",
        "GARBAGE_STATS",
        "OUTSIDE_ARENA",
        "SAME_POINTER",
    ];
    let mut args: Vec<&std::ffi::OsStr> = vec!["--workloads".as_ref(), "seed".as_ref()];
    args.extend(["--only", "buddy,segv_in_alloc,exit_in_create,write_past_end,bad_name_pointer,garbage_stats,outside_arena,same_pointer"].map(std::ffi::OsStr::new));
    args.extend(flags.iter().map(|f| plugin(f).as_os_str()));
    let started = Instant::now();
    let (r, _) = compare_json(&args, "bad-plugins");
    assert!(started.elapsed() < Duration::from_secs(120));
    let failure = |subject: &str| {
        row(&r, "seed", subject)["failure"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    for (subject, says) in [
        (
            "segv_in_alloc",
            "crashed: wrote through a null pointer (address 0x0) (SIGSEGV)",
        ),
        (
            "exit_in_create",
            "ended the process (exit status 0) in allocator_create",
        ),
        (
            "write_past_end",
            "wrote outside its arena, at byte 0 after its end (SIGSEGV) in allocator_create",
        ),
        (
            "bad_name_pointer",
            "allocator_info's name points to memory that is not readable",
        ),
        ("garbage_stats", "allocator_stats is inconsistent"),
        ("outside_arena", "is outside the arena"),
        ("same_pointer", "overlaps live block"),
    ] {
        assert!(
            failure(subject).contains(says),
            "{subject}: {}",
            failure(subject)
        );
    }
    assert_eq!(row(&r, "seed", "buddy")["failure"], serde_json::Value::Null);
    // The probes say what the plugin did, not a figure it did not earn.
    let full = |s| observed(&r, s, "exhaustion");
    assert!(
        full("outside_arena").contains("returns a block outside its arena"),
        "{}",
        full("outside_arena")
    );
    assert!(
        full("same_pointer").contains("returns the same block twice"),
        "{}",
        full("same_pointer")
    );
    assert!(
        full("exit_in_create").contains("ended the process (exit status 0) in allocator_create"),
        "{}",
        full("exit_in_create")
    );
}

#[test]
fn a_third_party_bump_is_told_apart_and_replays_traces_without_realloc() {
    let bump = bad_plugin("bump", None);
    let ours = "bump (libbump.so)";
    let args: Vec<&std::ffi::OsStr> = vec![
        "--workloads".as_ref(),
        "seed,realloc,trace:git-log".as_ref(),
        "--only".as_ref(),
        "bump,bump (libbump.so)".as_ref(),
        bump.as_os_str(),
    ];
    let (r, stderr) = compare_json(&args, "bump-twice");
    assert!(
        stderr.contains("its rows are `bump (libbump.so)`"),
        "{stderr}"
    );
    for w in ["seed", "realloc", "trace:git-log"] {
        let mine = row(&r, w, ours);
        assert_eq!(mine["failure"], serde_json::Value::Null, "{w}: {mine}");
        assert_eq!(
            row(&r, w, "bump")["failure"],
            serde_json::Value::Null,
            "{w}"
        );
        assert_eq!(
            mine["realloc_emulated"],
            serde_json::Value::Bool(w != "seed"),
            "{w}: {mine}"
        );
    }
    // `--only` picks the plugin by the path given, too.
    let args: Vec<&std::ffi::OsStr> = vec![
        "--workloads".as_ref(),
        "seed".as_ref(),
        "--only".as_ref(),
        bump.as_os_str(),
        bump.as_os_str(),
    ];
    let (r, _) = compare_json(&args, "bump-by-path");
    let names: Vec<&str> = r["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [ours]);
}

/// A runner away from its build (an installed copy): `compare` stops at
/// once naming the plugin it could not find; the lab program still runs.
#[test]
fn a_runner_without_its_plugins_says_what_it_could_not_find() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("installed");
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("alloclab");
    std::fs::copy(env!("CARGO_BIN_EXE_alloclab"), &exe).unwrap();
    let out = Command::new(&exe)
        .args(["compare", "--quick"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("the buddy plugin (libbuddy.so) is not next to the runner")
            && stderr.contains(&dir.join("libbuddy.so").display().to_string()),
        "{stderr}"
    );
    let out = Command::new(&exe)
        .args(["--repeat", "1"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("allocator       mmap fallback"));
}

/// The table row of `name` in the `seed` table of `stdout`.
fn table_row<'a>(stdout: &'a str, name: &str) -> &'a str {
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

/// In the terminal's tables: a plugin that crashes on its 300th allocation,
/// and one that hangs there, lose only their own row, and the run finishes
/// with every other allocator measured.
#[test]
fn crashing_and_hanging_plugins_lose_only_their_row() {
    // The runner lives next to the workspace's plugins; make sure they exist.
    built_plugin("buddy");
    let good = bad_plugin("cbump", None);
    let crash = bad_plugin("crashing", Some("CRASH_AFTER=300"));
    let hang = bad_plugin("hanging", Some("HANG_AFTER=300"));
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
        table_row(&stdout, "crashing").contains("failed: crashed: wrote through a null pointer"),
        "{stdout}"
    );
    assert!(
        table_row(&stdout, "hanging").contains("failed: hung"),
        "{stdout}"
    );
    for name in ["cbump", "buddy", "bump"] {
        let r = table_row(&stdout, name);
        assert!(!r.contains("failed"), "{name}: {r}");
        assert!(r.contains('%'), "{name} has a usage figure: {r}");
    }
    // The ease-of-use probes ran in child processes too.
    assert!(stdout.contains("── ease of use"), "{stdout}");
}

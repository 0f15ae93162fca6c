//! The runner as a user runs it: `alloclab`, `alloclab PATH` (absolute,
//! relative, bare file name), `alloclab no/such/file.so`, `alloclab Cargo.toml`.

use std::path::Path;
use std::process::{Command, Output};

use alloc_testkit::plugins::{built_plugin, workspace_root};

fn alloclab(args: &[&str], dir: &Path) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_alloclab"))
        .args(args)
        .args(["--repeat", "2"])
        .current_dir(dir)
        .output()
        .expect("cannot run alloclab");
    assert!(
        out.status.success(),
        "alloclab {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The value after `label` on the line that starts with it.
fn field<'a>(stdout: &'a str, label: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no `{label}` line in:\n{stdout}"))
        .trim()
}

#[test]
fn no_argument_uses_the_fallback_and_says_why() {
    let out = alloclab(&[], &workspace_root());
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("no plugin path given") && stderr.contains("fallback"),
        "{stderr}"
    );
    assert!(
        field(&stdout, "allocator").starts_with("mmap fallback"),
        "{stdout}"
    );
    // The fallback maps each block apart: every request succeeds.
    assert!(
        field(&stdout, "allocated").starts_with("10000 blocks"),
        "{stdout}"
    );
    assert!(
        field(&stdout, "usage factor").starts_with("n/a"),
        "{stdout}"
    );
}

#[test]
fn a_missing_file_falls_back_with_the_loaders_message() {
    let out = alloclab(&["no/such/file.so"], &workspace_root());
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no/such/file.so"), "{stderr}");
    assert!(stderr.contains("No such file or directory"), "{stderr}");
    assert!(field(&text(&out.stdout), "allocator").starts_with("mmap fallback"));
}

#[test]
fn a_file_that_is_not_a_library_falls_back_with_the_loaders_message() {
    let out = alloclab(&["Cargo.toml"], &workspace_root());
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("Cargo.toml") && stderr.contains("invalid ELF header"),
        "{stderr}"
    );
    assert!(field(&text(&out.stdout), "allocator").starts_with("mmap fallback"));
}

#[test]
fn a_library_without_the_symbols_falls_back_naming_the_missing_one() {
    let out = alloclab(&["libc.so.6"], &workspace_root());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("not an allocator plugin") && stderr.contains("allocator_create"),
        "{stderr}"
    );
}

#[test]
fn plugins_load_by_absolute_relative_and_bare_paths() {
    for (package, name) in [("buddy", "buddy"), ("mckusick-karels", "mckusick-karels")] {
        let lib = built_plugin(package);
        let root = workspace_root();
        let relative = lib.strip_prefix(&root).unwrap();
        let dir = lib.parent().unwrap();
        let bare = lib.file_name().unwrap();
        let mut allocated = Vec::new();
        for (arg, cwd) in [
            (lib.as_os_str(), &root),
            (relative.as_os_str(), &root),
            (bare, &dir.to_path_buf()),
        ] {
            let out = alloclab(&[arg.to_str().unwrap()], cwd);
            let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
            assert!(stderr.is_empty(), "{arg:?}: {stderr}");
            assert!(field(&stdout, "allocator").starts_with(name), "{stdout}");
            let usage: f64 = field(&stdout, "usage factor")
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert!(usage > 0.5 && usage < 1.0, "usage factor {usage}");
            allocated.push(field(&stdout, "allocated").to_string());
        }
        assert!(allocated.windows(2).all(|w| w[0] == w[1]), "{allocated:?}");
        // The brief's workload fills a 1 MiB arena: far fewer than 10,000 fit.
        let blocks: usize = allocated[0].split(' ').next().unwrap().parse().unwrap();
        assert!((300..1000).contains(&blocks), "{}", allocated[0]);
    }
}

#[test]
fn bad_options_get_a_clear_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_alloclab"))
        .args(["--arena-size", "lots"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("is not a byte count"),
        "{}",
        text(&out.stderr)
    );
}

/// A reader that goes away ends the runner quietly, as `ls | true` ends
/// `ls`: killed by SIGPIPE, nothing on stderr.
#[test]
fn a_closed_pipe_ends_the_run_quietly() {
    use std::os::unix::process::ExitStatusExt;
    for args in [
        &["--repeat", "2"][..],
        &[
            "compare",
            "--quick",
            "--reps",
            "1",
            "--only",
            "bump",
            "--workloads",
            "seed",
        ],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_alloclab"))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader is gone before anything is printed
        let out = child.wait_with_output().unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.signal(),
            Some(13),
            "{args:?}: {:?} {stderr}",
            out.status
        );
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{args:?}: {stderr}"
        );
    }
}

/// Counts the runner cannot honour are refused before anything runs, with
/// the option and its limit named; nothing aborts or panics.
#[test]
fn out_of_range_options_are_refused_up_front() {
    for (args, says) in [
        (
            &["--count", "4000000000"][..],
            "'--count <COUNT>': 4000000000 is not in 1..=100000000",
        ),
        (
            &["--count", "18446744073709551615"],
            "'--count <COUNT>': 18446744073709551615 is not in 1..=100000000",
        ),
        (
            &["--count", "0"],
            "'--count <COUNT>': 0 is not in 1..=100000000",
        ),
        (
            &["--repeat", "4000000000"],
            "'--repeat <REPEAT>': 4000000000 is not in 1..=10000",
        ),
        (
            &["--repeat", "0"],
            "'--repeat <REPEAT>': 0 is not in 1..=10000",
        ),
        (
            &["--max-size", "0"],
            "'--max-size <MAX_SIZE>': the largest request must be at least 1 byte",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_alloclab"))
            .args(args)
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.lines().next().unwrap_or("").contains(says),
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty());
    }
    // An arena larger than the machine's memory is refused, not mapped.
    let out = Command::new(env!("CARGO_BIN_EXE_alloclab"))
        .args(["--arena-size", "1000000G"])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is more than the memory available on this machine"),
        "{stderr}"
    );
}

/// `compare --help` and the README give `--quick` the same time.
#[test]
fn help_and_readme_agree_on_quick() {
    let out = Command::new(env!("CARGO_BIN_EXE_alloclab"))
        .args(["compare", "--help"])
        .output()
        .unwrap();
    let help = text(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let readme = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    let seconds_after = |text: &str, marker: &str| -> String {
        let rest =
            &text[text.find(marker).unwrap_or_else(|| panic!("no {marker:?}")) + marker.len()..];
        rest.split(' ').next().unwrap().to_string()
    };
    let in_help = seconds_after(&help, "A short run (about");
    let in_readme = seconds_after(
        &readme,
        "`cargo run --release -- compare --quick` takes about",
    );
    assert_eq!(
        in_help, in_readme,
        "help: {in_help} s, README: {in_readme} s"
    );
}

/// The README cites only files of the repository: every relative link
/// resolves inside it, and no machine's folder is named.
#[test]
fn the_readme_cites_only_files_in_the_repository() {
    let root = workspace_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut links = 0;
    for part in readme.split("](").skip(1) {
        let target = part.split(')').next().unwrap();
        if target.starts_with("http") || target.starts_with('#') {
            continue;
        }
        let file = target.split('#').next().unwrap();
        assert!(
            root.join(file).exists(),
            "README links {target}, not in the repository"
        );
        links += 1;
    }
    assert!(links > 5, "only {links} links found");
    for outside in ["/work/", "/home/", "/root/", "shared/MISSION", "/tmp/"] {
        assert!(!readme.contains(outside), "README cites {outside}");
    }
}

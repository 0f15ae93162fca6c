//! The real programs of `alloclab programs`, and their inputs: generated
//! from a fixed seed, so that every run of every allocator does the same
//! work and must print the same output.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

/// The Python script (also `tests/programs/alloc_heavy.py`).
pub const ALLOC_HEAVY_PY: &str = include_str!("../../../../tests/programs/alloc_heavy.py");

/// How much work each program does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum InputSize {
    /// About 0.2–2 s per program under glibc (the benchmark).
    Full,
    /// A few tenths of a second at most (tests, a quick look).
    Quick,
}

/// One process to run.
#[derive(Clone, Debug)]
pub struct Step {
    /// The program and its arguments.
    pub argv: Vec<OsString>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// A server started first and measured instead of this step's process
    /// (which then runs under glibc as its client).
    pub server: Option<Server>,
    /// The step's output is part of the program's output that every
    /// allocator must reproduce (false for a client that prints timings).
    pub compare: bool,
}

/// A server a step drives (see `spawn.rs`).
#[derive(Clone, Debug)]
pub struct Server {
    /// The server and its arguments.
    pub argv: Vec<OsString>,
    /// The loopback TCP port it listens on.
    pub port: u16,
}

/// What a run must find in its folder before its steps run (not timed).
#[derive(Clone, Debug)]
pub enum Setup {
    /// Nothing: the inputs are shared by all runs.
    Nothing,
    /// A fresh source tree for git: `files` files under `dirs` folders.
    SourceTree {
        /// Files.
        files: usize,
        /// Folders.
        dirs: usize,
    },
}

/// A program of the benchmark.
#[derive(Clone, Debug)]
pub struct Program {
    /// Short name (`python`, `sort`, ...).
    pub name: &'static str,
    /// One line for the report.
    pub description: String,
    /// Does it run several threads?
    pub threaded: bool,
    /// Prepared before each run, untimed.
    pub setup: Setup,
    /// The processes, run one after the other; their outputs are
    /// concatenated, their times added, their peak RSS maximised.
    pub steps: Vec<Step>,
    /// A library that gives the program glibc's malloc when it links
    /// another one (redis-server links jemalloc): preloaded for the glibc
    /// row.
    pub glibc_preload: Option<PathBuf>,
}

impl Program {
    /// The steps as shell commands, for the report, with the inputs'
    /// folder `workdir` written `$WORKDIR`.
    pub fn commands(&self, workdir: &Path) -> Vec<String> {
        let dir = workdir.to_string_lossy();
        self.steps
            .iter()
            .map(|s| {
                let mut words: Vec<String> =
                    s.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
                words.extend(s.argv.iter().map(|a| {
                    let a = a.to_string_lossy();
                    match a.strip_prefix(dir.as_ref()) {
                        Some(rest) if !dir.is_empty() => {
                            format!("$WORKDIR{}", crate::toolkit::machine::shell_quote(rest))
                        }
                        _ => crate::toolkit::machine::shell_quote(&a),
                    }
                }));
                words.join(" ")
            })
            .collect()
    }
}

/// The first of `candidates` that exists (absolute paths), or the first
/// name found in `PATH`.
pub fn find_program(candidates: &[&str]) -> Option<PathBuf> {
    for c in candidates {
        let p = Path::new(c);
        if p.is_absolute() {
            if p.is_file() {
                return Some(p.to_path_buf());
            }
        } else if let Some(path) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&path) {
                let full = dir.join(c);
                if full.is_file() {
                    return Some(full);
                }
            }
        }
    }
    None
}

/// A step running `argv` with `env`, its output compared.
pub fn step(argv: &[&std::ffi::OsStr], env: &[(&str, &str)]) -> Step {
    Step {
        argv: argv.iter().map(|a| a.to_os_string()).collect(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        server: None,
        compare: true,
    }
}

/// The environment of every git step: fixed identities and dates (so commit
/// hashes are the same in every run), no user or system configuration.
const GIT_ENV: [(&str, &str); 9] = [
    ("GIT_AUTHOR_NAME", "alloclab"),
    ("GIT_AUTHOR_EMAIL", "alloclab@example.invalid"),
    ("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z"),
    ("GIT_COMMITTER_NAME", "alloclab"),
    ("GIT_COMMITTER_EMAIL", "alloclab@example.invalid"),
    ("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z"),
    ("GIT_CONFIG_NOSYSTEM", "1"),
    ("GIT_CONFIG_GLOBAL", "/dev/null"),
    ("LC_ALL", "C"),
];

/// Programs not run, each with the reason.
pub type Skipped = Vec<(String, String)>;

/// The general programs (Python, sort, git, xz) whose executables exist,
/// with their inputs written into `dir`, and the names of those that were
/// skipped (and why); `alloc_bound::programs` adds the allocation-bound ones.
pub fn programs(scale: InputSize, dir: &Path) -> Result<(Vec<Program>, Skipped)> {
    let quick = scale == InputSize::Quick;
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    let mut missing = |name: &str, what: &str| {
        skipped.push((name.to_string(), format!("{what} not found")));
    };

    match find_program(&["/usr/bin/python3", "python3"]) {
        Some(python) => {
            let script = dir.join("alloc_heavy.py");
            std::fs::write(&script, ALLOC_HEAVY_PY)
                .with_context(|| format!("writing {}", script.display()))?;
            let env = [("PYTHONMALLOC", "malloc"), ("PYTHONHASHSEED", "0")];
            let n = if quick { "6000" } else { "60000" };
            out.push(Program {
                name: "python",
                description: format!(
                    "python3 alloc_heavy.py --n {n}: dicts, lists, strings, bytes, \
                     json (PYTHONMALLOC=malloc: every object through malloc)"
                ),
                threaded: false,
                setup: Setup::Nothing,
                steps: vec![step(
                    &[
                        python.as_os_str(),
                        script.as_os_str(),
                        "--n".as_ref(),
                        n.as_ref(),
                    ],
                    &env,
                )],
                glibc_preload: None,
            });
            let n = if quick { "1500" } else { "15000" };
            out.push(Program {
                name: "python-threads",
                description: format!(
                    "the same script, 4 threads at once (--threads 4 --n {n}): \
                     allocations from 4 threads, serialised by the GIL"
                ),
                threaded: true,
                setup: Setup::Nothing,
                steps: vec![step(
                    &[
                        python.as_os_str(),
                        script.as_os_str(),
                        "--threads".as_ref(),
                        "4".as_ref(),
                        "--n".as_ref(),
                        n.as_ref(),
                    ],
                    &env,
                )],
                glibc_preload: None,
            });
        }
        None => missing("python", "python3"),
    }

    match find_program(&["sort"]) {
        Some(sort) => {
            let lines = if quick { 40_000 } else { 400_000 };
            let input = dir.join("sort-input.txt");
            std::fs::write(&input, text_lines(lines, 11))?;
            let mib = std::fs::metadata(&input)?.len() as f64 / f64::from(1 << 20);
            out.push(Program {
                name: "sort",
                description: format!(
                    "sort -k2 on {lines} generated lines ({mib:.1} MiB; GNU sort \
                     sorts with 2 threads here)"
                ),
                threaded: true,
                setup: Setup::Nothing,
                steps: vec![step(
                    &[
                        sort.as_os_str(),
                        "-k2".as_ref(),
                        "--parallel=2".as_ref(),
                        input.as_os_str(),
                    ],
                    &[("LC_ALL", "C")],
                )],
                glibc_preload: None,
            });
        }
        None => missing("sort", "sort"),
    }

    match find_program(&["git"]) {
        Some(git) => {
            let (files, dirs) = if quick { (150, 6) } else { (1000, 25) };
            let g = |args: &[&str]| {
                let mut argv: Vec<&std::ffi::OsStr> = vec![git.as_os_str()];
                argv.extend(
                    [
                        "-c",
                        "pack.threads=1",
                        "-c",
                        "gc.auto=0",
                        "-c",
                        "maintenance.auto=false",
                    ]
                    .map(std::ffi::OsStr::new),
                );
                argv.extend(args.iter().map(std::ffi::OsStr::new));
                step(&argv, &GIT_ENV)
            };
            out.push(Program {
                name: "git",
                description: format!(
                    "git on a generated tree of {files} files: init, add, commit, mv, \
                     commit, log --stat, gc, fsck, count-objects ({} processes and \
                     their children)",
                    9
                ),
                threaded: false,
                setup: Setup::SourceTree { files, dirs },
                steps: vec![
                    g(&["init", "-q", "-b", "main"]),
                    g(&["add", "."]),
                    g(&["commit", "-q", "-m", "initial"]),
                    g(&["mv", "d0", "moved"]),
                    g(&["commit", "-q", "-m", "move d0"]),
                    g(&["log", "--stat", "--format=%H %s"]),
                    g(&["gc", "-q"]),
                    g(&["fsck", "--no-progress", "--strict"]),
                    g(&["count-objects", "-v"]),
                ],
                glibc_preload: None,
            });
        }
        None => missing("git", "git"),
    }

    match find_program(&["xz"]) {
        Some(xz) => {
            let bytes = if quick { 1 << 20 } else { 3 << 20 };
            let input = dir.join("xz-input.txt");
            let mut text = String::new();
            let mut seed = 21;
            while text.len() < bytes {
                text.push_str(&text_lines(20_000, seed));
                seed += 1;
            }
            text.truncate(bytes);
            std::fs::write(&input, &text)?;
            out.push(Program {
                name: "xz",
                description: format!(
                    "xz -T2 -3 --block-size=1MiB on {} MiB of generated text \
                     (2 compressing threads; a few large buffers)",
                    bytes >> 20
                ),
                threaded: true,
                setup: Setup::Nothing,
                steps: vec![step(
                    &[
                        xz.as_os_str(),
                        "-T2".as_ref(),
                        "-3".as_ref(),
                        "--block-size=1MiB".as_ref(),
                        "-c".as_ref(),
                        input.as_os_str(),
                    ],
                    &[],
                )],
                glibc_preload: None,
            });
        }
        None => missing("xz", "xz"),
    }
    Ok((out, skipped))
}

const WORDS: [&str; 48] = [
    "alloc",
    "buddy",
    "bucket",
    "page",
    "arena",
    "free",
    "list",
    "merge",
    "split",
    "order",
    "block",
    "header",
    "kernel",
    "mmap",
    "slab",
    "cache",
    "thread",
    "lock",
    "fork",
    "heap",
    "size",
    "class",
    "bitmap",
    "tag",
    "run",
    "pool",
    "chunk",
    "frame",
    "zone",
    "map",
    "word",
    "byte",
    "grow",
    "shrink",
    "align",
    "round",
    "power",
    "two",
    "first",
    "fit",
    "best",
    "next",
    "segregated",
    "boundary",
    "coalesce",
    "defer",
    "magazine",
    "depot",
];

/// `n` lines of random words and numbers, from `seed`.
pub fn text_lines(n: usize, seed: u64) -> String {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut s = String::with_capacity(n * 40);
    for i in 0..n {
        let words = rng.random_range(2..9);
        for w in 0..words {
            if w > 0 {
                s.push(' ');
            }
            s.push_str(WORDS[rng.random_range(0..WORDS.len())]);
            if rng.random_range(0..4) == 0 {
                let _ = write!(s, "{}", rng.random_range(0..100_000u32));
            }
        }
        let _ = writeln!(s, " {}", i * 7 % 1000);
    }
    s
}

/// Writes the untimed set-up of a run into `run_dir` (which is created
/// empty first).
pub fn prepare_run(setup: &Setup, run_dir: &Path) -> Result<()> {
    if run_dir.exists() {
        std::fs::remove_dir_all(run_dir)
            .with_context(|| format!("removing {}", run_dir.display()))?;
    }
    std::fs::create_dir_all(run_dir)?;
    if let Setup::SourceTree { files, dirs } = *setup {
        for d in 0..dirs {
            std::fs::create_dir_all(run_dir.join(format!("d{d}")))?;
        }
        for f in 0..files {
            let path = run_dir.join(format!("d{}/file{f}.txt", f % dirs.max(1)));
            std::fs::write(path, text_lines(20 + f % 60, 1000 + f as u64))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_deterministic() {
        assert_eq!(text_lines(100, 5), text_lines(100, 5));
        assert_ne!(text_lines(100, 5), text_lines(100, 6));
        assert_eq!(text_lines(3, 1).lines().count(), 3);
    }

    #[test]
    fn commands_read_as_shell() {
        let p = Program {
            name: "x",
            description: String::new(),
            threaded: false,
            setup: Setup::Nothing,
            steps: vec![step(&["echo".as_ref(), "a b".as_ref()], &[("K", "v")])],
            glibc_preload: None,
        };
        assert_eq!(p.commands(Path::new("/w")), ["K=v echo 'a b'"]);
        let q = Program {
            steps: vec![step(&["cat".as_ref(), "/w/in.txt".as_ref()], &[])],
            ..p
        };
        assert_eq!(q.commands(Path::new("/w")), ["cat $WORKDIR/in.txt"]);
        assert!(find_program(&["sh"]).is_some());
        assert!(find_program(&["/no/such/program", "no-such-program-xyz"]).is_none());
    }
}

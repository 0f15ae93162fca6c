//! `alloclab programs`: real programs (Python, sort, git, xz, and the
//! allocation-bound ones of `alloc_bound.rs`: C programs of this repository,
//! Redis, Lua, Ruby, sqlite3, bc) run under
//! glibc's malloc, under this project's two malloc shims (`LD_PRELOAD` of
//! `libbuddy_malloc.so` and `libmckusick_karels_malloc.so`) and under
//! mimalloc and jemalloc when installed, as mimalloc-bench does: wall time
//! and peak RSS (`ru_maxrss` from `wait4`) relative to glibc, each run's
//! output checked against glibc's.
//!
//! Method: one untimed warm-up round (which also takes glibc's reference
//! output), then `--runs` rounds; in each round every program runs once
//! under every allocator, the allocator order rotating from round to round
//! (interleaved, so that a drift of the machine spreads over all of them).
//! A program's time is that of its processes from `fork` to `wait4`, its
//! peak RSS the largest `ru_maxrss` of its processes (a process's figure
//! includes its waited-for children); each process is started by a small
//! trampoline (`alloclab __spawn`, see `spawn.rs`) so that the runner's own
//! memory does not count. The median and the range of the runs
//! are reported; the ratios are medians over glibc's median. Beside the
//! peak RSS, the mean of the RSS sampled during the run (the steady
//! state). A program counts as *allocation-bound* when the shims count at
//! least [`ALLOC_BOUND_RATE`] allocation calls per second of glibc's time;
//! the geometric means are given over those programs and over all.

pub mod alloc_bound;
mod report;
pub mod set;
pub mod spawn;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;

use crate::artifacts::{self, Artifact};
use crate::output::outln;
use crate::toolkit::machine::Machine;
use set::{Program, Scale};

/// Allocation calls (`malloc`, `free`, `realloc` and friends, counted by
/// the shims' statistics) per second of the fastest allocator's median
/// wall time from which a program counts as allocation-bound. Measured
/// with `perf` on this machine (cpu-clock samples in glibc's malloc
/// functions, under glibc): Python with `PYTHONMALLOC=malloc` (13 M
/// calls/s) spends 16 % of its time in malloc and free, Lua (7.6 M) 13 %;
/// Ruby (1.5 M) 4 %, sqlite3 (3.5 M) 3 %, bc (4.2 M) 2 %. The line is drawn
/// between them.
pub const ALLOC_BOUND_RATE: f64 = 5.0e6;

/// Bytes of large blocks (a mapping each, every page faulted in by a
/// program that fills them) per second of glibc's wall time from which a
/// program counts as allocation-bound however few its calls: 1 GiB/s, over
/// at least [`ALLOC_BOUND_LARGE`] large blocks (one big buffer allocated
/// once, as sort's, does not make a program allocation-bound).
pub const ALLOC_BOUND_BYTES: f64 = (1u64 << 30) as f64;

/// See [`ALLOC_BOUND_BYTES`].
pub const ALLOC_BOUND_LARGE: u64 = 20;

/// Options of `alloclab programs`.
#[derive(Args, Debug, Clone)]
pub struct ProgramsArgs {
    /// Timed runs per program and allocator (the median is reported; at
    /// least 5 for figures worth quoting).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,

    /// Small inputs (tests, a quick look): each program takes a few tenths
    /// of a second at most.
    #[arg(long)]
    pub quick: bool,

    /// Programs to run (comma-separated; default: all).
    #[arg(long, value_delimiter = ',')]
    pub programs: Vec<String>,

    /// Allocators to run, by name (comma-separated; default: all). glibc,
    /// the reference, always runs.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,

    /// Another malloc library to run the programs on, as NAME=PATH (for
    /// example tcmalloc=/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4);
    /// repeatable.
    #[arg(long, value_name = "NAME=PATH")]
    pub preload: Vec<String>,

    /// Kill a program that runs longer than this (seconds), and report it.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,

    /// Write the results as JSON to this file (`-`: stdout).
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// Write `programs.md` and its chart (SVG and PNG) into this directory.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,

    /// Replace the text between `<!-- programs:begin -->` and
    /// `<!-- programs:end -->` in this file (a README) with the results table
    /// (and, with `--report`, a link to the report and its chart).
    #[arg(long, value_name = "FILE")]
    pub readme: Option<PathBuf>,

    /// Keep the inputs and outputs in this folder (default: a temporary
    /// folder, removed at the end).
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
}

/// An allocator the programs run on.
#[derive(Clone, Debug)]
struct Allocator {
    name: String,
    /// `LD_PRELOAD` value; None for glibc.
    preload: Option<PathBuf>,
    /// One of this project's shims (prints its statistics line).
    ours: bool,
    /// Why it cannot run.
    missing: Option<String>,
}

fn system_lib(file: &str) -> Option<PathBuf> {
    let arch = std::env::consts::ARCH;
    [
        format!("/usr/lib/{arch}-linux-gnu/{file}"),
        format!("/usr/lib64/{file}"),
        format!("/usr/lib/{file}"),
        format!("/usr/local/lib/{file}"),
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

fn allocators(extra: &[String]) -> Result<Vec<Allocator>> {
    let ours = |name: &str, shim: Artifact| Allocator {
        name: name.into(),
        preload: Some(artifacts::path(shim)),
        ours: true,
        missing: artifacts::find(shim)
            .err()
            .map(|e| format!("not built: {e}")),
    };
    let system = |name: &str, file: &str, package: &str| {
        let path = system_lib(file);
        Allocator {
            name: name.into(),
            missing: path
                .is_none()
                .then(|| format!("not installed (apt-get install {package})")),
            preload: path,
            ours: false,
        }
    };
    let mut all = vec![
        Allocator {
            name: "glibc".into(),
            preload: None,
            ours: false,
            missing: None,
        },
        ours("buddy", artifacts::BUDDY_SHIM),
        ours("mckusick-karels", artifacts::MCKUSICK_KARELS_SHIM),
        system("mimalloc", "libmimalloc.so.2", "libmimalloc2.0"),
        system("jemalloc", "libjemalloc.so.2", "libjemalloc2"),
    ];
    for e in extra {
        let Some((name, path)) = e
            .split_once('=')
            .filter(|(n, p)| !n.is_empty() && !p.is_empty())
        else {
            bail!("--preload {e}: expected NAME=PATH");
        };
        if all.iter().any(|a| a.name == name) {
            bail!("--preload {e}: there is already an allocator called {name}");
        }
        let path = std::path::absolute(path)?;
        all.push(Allocator {
            name: name.into(),
            missing: (!path.is_file()).then(|| format!("not found ({})", path.display())),
            preload: Some(path),
            ours: false,
        });
    }
    Ok(all)
}

/// The result of one run of one program under one allocator.
#[derive(Clone, Debug, Default)]
struct RunOutcome {
    wall_s: f64,
    max_rss_kib: u64,
    stdout: Vec<u8>,
    /// Mean sampled RSS, KiB (weighted by the steps' times).
    mean_rss_kib: u64,
    /// What went wrong, if anything (the failing step and how).
    failure: Option<String>,
    /// Allocations counted by our shim's statistics lines.
    shim_allocs: Option<u64>,
    /// All allocation calls (allocations, frees, reallocations) counted.
    shim_calls: Option<u64>,
    /// Bytes of large blocks counted.
    shim_large_bytes: Option<u64>,
    /// Large blocks counted.
    shim_large_allocs: Option<u64>,
}

/// Figures of one allocator on one program.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Allocator name.
    pub allocator: String,
    /// The preloaded library (`none` for glibc).
    pub library: String,
    /// `ok`, or what went wrong (not installed, different output, crash, ...).
    pub status: String,
    /// Wall time of each timed run, seconds.
    pub wall_s: Vec<f64>,
    /// Peak RSS of each timed run, KiB.
    pub max_rss_kib: Vec<u64>,
    /// Median wall time, seconds.
    pub wall_median_s: Option<f64>,
    /// Median peak RSS, KiB.
    pub rss_median_kib: Option<f64>,
    /// Mean RSS during each timed run (sampled), KiB.
    pub mean_rss_kib: Vec<u64>,
    /// Median of the mean RSS, KiB.
    pub mean_rss_median_kib: Option<f64>,
    /// Median mean RSS / glibc's.
    pub mean_rss_vs_glibc: Option<f64>,
    /// Median wall time / glibc's.
    pub time_vs_glibc: Option<f64>,
    /// Range of the runs' wall times / glibc's median.
    pub time_range_vs_glibc: Option<(f64, f64)>,
    /// Median peak RSS / glibc's.
    pub rss_vs_glibc: Option<f64>,
    /// Range of the runs' peak RSS / glibc's median.
    pub rss_range_vs_glibc: Option<(f64, f64)>,
    /// Allocations our shim counted in the last run (the proof it was used).
    pub shim_allocs: Option<u64>,
    /// Allocation calls (allocations, frees, reallocations) our shim counted
    /// in the last run.
    pub shim_calls: Option<u64>,
    /// Bytes of large blocks our shim counted in the last run.
    pub shim_large_bytes: Option<u64>,
}

impl Row {
    /// True when every run finished with glibc's output.
    pub fn ok(&self) -> bool {
        self.status == "ok"
    }
}

/// One program's rows.
#[derive(Clone, Debug, Serialize)]
pub struct ProgramResult {
    /// Short name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Runs several threads.
    pub threaded: bool,
    /// Its commands, as shell lines.
    pub commands: Vec<String>,
    /// Bytes of output each run must reproduce.
    pub output_bytes: usize,
    /// Allocation calls per second of the fastest allocator's median wall
    /// time (the most a shim counted), if measured.
    pub calls_per_s: Option<f64>,
    /// Bytes of large blocks per second of glibc's median wall time.
    pub large_bytes_per_s: Option<f64>,
    /// At least [`ALLOC_BOUND_RATE`] calls or [`ALLOC_BOUND_BYTES`] bytes of
    /// large blocks per second.
    pub allocation_bound: bool,
    /// One row per allocator.
    pub rows: Vec<Row>,
}

/// Everything `alloclab programs` measured.
#[derive(Clone, Debug, Serialize)]
pub struct ProgramsResults {
    /// Where and when.
    pub machine: Machine,
    /// Timed runs per program and allocator.
    pub runs: usize,
    /// Input sizes.
    pub scale: Scale,
    /// Programs not run (executable missing), and why.
    pub skipped: Vec<(String, String)>,
    /// Allocators not run, and why.
    pub unavailable: Vec<(String, String)>,
    /// Per program.
    pub programs: Vec<ProgramResult>,
    /// The 1-minute load average before and after the runs (other work on
    /// the machine widens the ranges).
    pub load_average: (Option<f64>, Option<f64>),
}

/// The 1-minute load average (`/proc/loadavg`).
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

fn range(v: &[f64]) -> Option<(f64, f64)> {
    let lo = v.iter().copied().reduce(f64::min)?;
    let hi = v.iter().copied().reduce(f64::max)?;
    Some((lo, hi))
}

/// Signal names for the report.
fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGKILL => "SIGKILL",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGTERM => "SIGTERM",
        _ => "",
    };
    if name.is_empty() {
        format!("signal {sig}")
    } else {
        format!("signal {sig}, {name}")
    }
}

/// Runs one step through `alloclab __spawn` (see `spawn.rs`): its wall
/// time from `fork` to `wait4`, its `ru_maxrss`, how it ended.
fn run_process(
    step: &set::Step,
    preload: Option<&Path>,
    dir: &Path,
    io: &Path,
    env: &[(&str, &OsStr)],
    timeout: Duration,
) -> Result<spawn::Measured> {
    let result = io.join("result");
    let _ = std::fs::remove_file(&result);
    let mut cmd = Command::new(std::env::current_exe().context("the runner's own path")?);
    cmd.arg("__spawn")
        .arg("--result")
        .arg(&result)
        .arg("--timeout")
        .arg(timeout.as_secs().to_string());
    if let Some(p) = preload {
        cmd.arg("--preload").arg(p);
    }
    if let Some(server) = &step.server {
        for a in &server.argv {
            cmd.arg("--server-arg").arg(a);
        }
        cmd.arg("--server-port").arg(server.port.to_string());
    }
    cmd.arg("--")
        .args(&step.argv)
        .current_dir(dir)
        .env("HOME", dir)
        .env_remove("LD_PRELOAD")
        .env_remove("ALLOCLAB_SHIM_STATS")
        .env_remove("MALLOC_CONF")
        .envs(step.env.iter().map(|(k, v)| (k, v)))
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(io.join("stdout"))?)
        .stderr(std::fs::File::create(io.join("stderr"))?);
    let status = cmd.status().context("cannot start alloclab __spawn")?;
    if !status.success() {
        bail!(
            "alloclab __spawn failed ({status}): {}",
            std::fs::read_to_string(io.join("stderr")).unwrap_or_default()
        );
    }
    spawn::read_result(&result)
}

/// The sum of the given `name=` fields over the statistics lines in `path`
/// (one per process that exited normally), or None if there is none.
fn shim_counts(path: &Path, names: &[&str]) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut total = None;
    for line in text.lines().filter(|l| l.starts_with("alloclab-shim:")) {
        let n: u64 = line
            .split_whitespace()
            .filter_map(|f| {
                let (k, v) = f.split_once('=')?;
                names.contains(&k).then(|| v.parse::<u64>().ok())?
            })
            .sum();
        total = Some(total.unwrap_or(0) + n);
    }
    total
}

/// Allocations (`allocs=` and `large_allocs=`) counted in `path`.
fn shim_allocs(path: &Path) -> Option<u64> {
    shim_counts(path, &["allocs", "large_allocs"])
}

/// All allocation calls counted in `path`.
fn shim_calls(path: &Path) -> Option<u64> {
    shim_counts(
        path,
        &["allocs", "large_allocs", "frees", "large_frees", "reallocs"],
    )
}

/// Runs every step of `p` under `a` in `run_dir`; the outputs and the
/// statistics go to `io_dir` (outside the program's folder: git adds
/// everything it finds there).
fn run_program(
    p: &Program,
    a: &Allocator,
    run_dir: &Path,
    io_dir: &Path,
    timeout: Duration,
) -> Result<RunOutcome> {
    set::prepare_run(&p.setup, run_dir)?;
    std::fs::create_dir_all(io_dir)?;
    let stats = io_dir.join("shim-stats");
    let _ = std::fs::remove_file(&stats);
    let mut env: Vec<(&str, &OsStr)> = Vec::new();
    if a.ours {
        env.push(("ALLOCLAB_SHIM_STATS", stats.as_os_str()));
    }
    let mut out = RunOutcome::default();
    // A program that links another malloc gets glibc's back for the glibc row.
    let preload = match (&a.preload, &p.glibc_preload) {
        (None, Some(g)) => Some(g.as_path()),
        (p, _) => p.as_deref(),
    };
    let mut rss_time = 0.0;
    for s in &p.steps {
        let m = run_process(s, preload, run_dir, io_dir, &env, timeout)
            .with_context(|| format!("running {}", s.argv[0].to_string_lossy()))?;
        out.wall_s += m.wall_s;
        out.max_rss_kib = out.max_rss_kib.max(m.max_rss_kib);
        rss_time += m.mean_rss_kib as f64 * m.wall_s;
        if s.compare {
            out.stdout.extend(std::fs::read(io_dir.join("stdout"))?);
        }
        let err = std::fs::read_to_string(io_dir.join("stderr")).unwrap_or_default();
        let step_name = || {
            let prog = Path::new(&s.argv[0])
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let arg = s.argv.iter().skip(1).find(|a| {
                let a = a.to_string_lossy();
                !a.starts_with('-') && !a.contains('=') && !a.contains('/')
            });
            match arg {
                Some(arg) if p.steps.len() > 1 => format!("{prog} {}", arg.to_string_lossy()),
                _ => prog,
            }
        };
        if err.contains("cannot be preloaded") {
            out.failure = Some(format!("{}: the library was not preloaded", step_name()));
        }
        if let Err(e) = m.ended {
            let last = err.lines().last().unwrap_or("").trim().to_string();
            let detail = if last.is_empty() {
                String::new()
            } else {
                format!(": {last}")
            };
            out.failure = Some(format!("{}: {e}{detail}", step_name()));
            break;
        }
    }
    if out.wall_s > 0.0 {
        out.mean_rss_kib = (rss_time / out.wall_s) as u64;
    }
    if a.ours {
        out.shim_allocs = shim_allocs(&stats);
        out.shim_calls = shim_calls(&stats);
        out.shim_large_bytes = shim_counts(&stats, &["large_bytes"]);
        out.shim_large_allocs = shim_counts(&stats, &["large_allocs"]);
        if out.failure.is_none() && out.shim_allocs.unwrap_or(0) == 0 {
            out.failure = Some("the shim served no allocation (not loaded?)".into());
        }
    }
    Ok(out)
}

/// Runs `alloclab programs`.
pub fn main(args: &ProgramsArgs) -> Result<()> {
    artifacts::ensure_built()?;
    let runs = args.runs.max(1);
    if let Some(path) = &args.readme {
        report::check_readme(path)?;
    }
    if let Some(path) = &args.json {
        crate::toolkit::machine::output_dir(path)?;
    }
    let scale = if args.quick {
        Scale::Quick
    } else {
        Scale::Full
    };
    let (workdir, temporary) = match &args.workdir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("alloclab-programs-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&workdir).with_context(|| format!("creating {}", workdir.display()))?;
    let workdir = workdir.canonicalize()?;
    let result = measure(args, runs, scale, &workdir);
    if temporary {
        let _ = std::fs::remove_dir_all(&workdir);
    }
    let results = result?;
    outln!("{}", report::terminal_table(&results));
    for (name, why) in &results.skipped {
        outln!("{name}: skipped ({why})");
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&results)?;
        if path.as_os_str() == "-" {
            outln!("{text}");
        } else {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    if let Some(dir) = &args.report {
        report::write(&results, dir)?;
        eprintln!("alloclab: wrote {}", dir.join("programs.md").display());
    }
    if let Some(path) = &args.readme {
        report::update_readme(path, &results, args.report.as_deref())?;
        eprintln!("alloclab: updated the programs block of {}", path.display());
    }
    Ok(())
}

fn measure(
    args: &ProgramsArgs,
    runs: usize,
    scale: Scale,
    workdir: &Path,
) -> Result<ProgramsResults> {
    let machine = crate::toolkit::machine::machine();
    let load_before = load_average();
    let (mut programs, mut skipped) = set::programs(scale, workdir)?;
    if !args.programs.is_empty() {
        for want in &args.programs {
            if !programs.iter().any(|p| p.name == want) && !skipped.iter().any(|s| &s.0 == want) {
                let known: Vec<&str> = programs
                    .iter()
                    .map(|p| p.name)
                    .chain(skipped.iter().map(|s| s.0.as_str()))
                    .collect();
                bail!("no program `{want}` (known: {})", known.join(", "));
            }
        }
        skipped.retain(|s| args.programs.contains(&s.0));
        programs.retain(|p| args.programs.iter().any(|n| n == p.name));
    }
    let mut allocs = allocators(&args.preload)?;
    if !args.only.is_empty() {
        for want in &args.only {
            if !allocs.iter().any(|a| &a.name == want) {
                let known: Vec<&str> = allocs.iter().map(|a| a.name.as_str()).collect();
                bail!("no allocator `{want}` (known: {})", known.join(", "));
            }
        }
        allocs.retain(|a| a.name == "glibc" || args.only.contains(&a.name));
    }
    let unavailable: Vec<(String, String)> = allocs
        .iter()
        .filter_map(|a| a.missing.clone().map(|m| (a.name.clone(), m)))
        .collect();
    let live: Vec<&Allocator> = allocs.iter().filter(|a| a.missing.is_none()).collect();
    let timeout = Duration::from_secs(args.timeout.max(1));

    // outcomes[program][allocator] = the timed runs
    let mut outcomes: Vec<Vec<Vec<RunOutcome>>> =
        vec![vec![Vec::new(); live.len()]; programs.len()];
    let mut reference: Vec<Option<Vec<u8>>> = vec![None; programs.len()];
    let mut first_failure: Vec<Vec<Option<String>>> = vec![vec![None; live.len()]; programs.len()];
    let total = (runs + 1) * programs.len() * live.len();
    let mut done = 0;
    for round in 0..=runs {
        for (pi, p) in programs.iter().enumerate() {
            for k in 0..live.len() {
                let ai = (k + round) % live.len();
                let a = live[ai];
                done += 1;
                eprint!(
                    "\ralloclab: {} {done}/{total}: {} under {}        ",
                    if round == 0 { "warm-up" } else { "run" },
                    p.name,
                    a.name
                );
                let run_dir = workdir.join(format!("run-{}-{}", p.name, a.name));
                let io_dir = workdir.join(format!("io-{}-{}", p.name, a.name));
                let o = run_program(p, a, &run_dir, &io_dir, timeout)?;
                if a.name == "glibc" && reference[pi].is_none() && o.failure.is_none() {
                    reference[pi] = Some(o.stdout.clone());
                }
                let mut problem = o.failure.clone();
                if problem.is_none()
                    && let Some(r) = &reference[pi]
                    && &o.stdout != r
                {
                    problem = Some(format!(
                        "different output from glibc's ({} bytes, glibc {} bytes){}",
                        o.stdout.len(),
                        r.len(),
                        if round == 0 {
                            String::new()
                        } else {
                            format!(" in run {round}")
                        }
                    ));
                    let keep = workdir.join(format!("{}-{}.stdout", p.name, a.name));
                    let _ = std::fs::write(keep, &o.stdout);
                }
                if problem.is_some() && first_failure[pi][ai].is_none() {
                    first_failure[pi][ai] = problem;
                }
                if round > 0 {
                    outcomes[pi][ai].push(RunOutcome {
                        stdout: Vec::new(),
                        ..o
                    });
                }
            }
        }
    }
    eprintln!();

    let mut results = Vec::new();
    for (pi, p) in programs.iter().enumerate() {
        let glibc = live.iter().position(|a| a.name == "glibc");
        let figures = |ai: usize| {
            let ok: Vec<&RunOutcome> = outcomes[pi][ai]
                .iter()
                .filter(|o| o.failure.is_none())
                .collect();
            let wall: Vec<f64> = ok.iter().map(|o| o.wall_s).collect();
            let rss: Vec<f64> = ok.iter().map(|o| o.max_rss_kib as f64).collect();
            let mean: Vec<f64> = ok.iter().map(|o| o.mean_rss_kib as f64).collect();
            (wall, rss, mean)
        };
        let base = glibc.map(figures);
        let base_wall = base.as_ref().and_then(|b| median(&b.0));
        let base_rss = base.as_ref().and_then(|b| median(&b.1));
        let base_mean = base.as_ref().and_then(|b| median(&b.2));
        let mut rows = Vec::new();
        for a in &allocs {
            let Some(ai) = live.iter().position(|l| l.name == a.name) else {
                rows.push(Row {
                    allocator: a.name.clone(),
                    library: a
                        .preload
                        .as_ref()
                        .map_or_else(|| "none".into(), |p| artifacts::report_path(p)),
                    status: a.missing.clone().unwrap_or_default(),
                    wall_s: Vec::new(),
                    max_rss_kib: Vec::new(),
                    wall_median_s: None,
                    rss_median_kib: None,
                    time_vs_glibc: None,
                    time_range_vs_glibc: None,
                    rss_vs_glibc: None,
                    rss_range_vs_glibc: None,
                    mean_rss_kib: Vec::new(),
                    mean_rss_median_kib: None,
                    mean_rss_vs_glibc: None,
                    shim_allocs: None,
                    shim_calls: None,
                    shim_large_bytes: None,
                });
                continue;
            };
            let (wall, rss, mean) = figures(ai);
            let ratio = |m: Option<f64>, b: Option<f64>| match (m, b) {
                (Some(m), Some(b)) if b > 0.0 => Some(m / b),
                _ => None,
            };
            let range_ratio = |v: &[f64], b: Option<f64>| match (range(v), b) {
                (Some((lo, hi)), Some(b)) if b > 0.0 => Some((lo / b, hi / b)),
                _ => None,
            };
            rows.push(Row {
                allocator: a.name.clone(),
                library: a
                    .preload
                    .as_ref()
                    .map_or_else(|| "none".into(), |p| artifacts::report_path(p)),
                status: first_failure[pi][ai].clone().unwrap_or_else(|| "ok".into()),
                wall_s: outcomes[pi][ai].iter().map(|o| o.wall_s).collect(),
                max_rss_kib: outcomes[pi][ai].iter().map(|o| o.max_rss_kib).collect(),
                wall_median_s: median(&wall),
                rss_median_kib: median(&rss),
                time_vs_glibc: ratio(median(&wall), base_wall),
                time_range_vs_glibc: range_ratio(&wall, base_wall),
                rss_vs_glibc: ratio(median(&rss), base_rss),
                rss_range_vs_glibc: range_ratio(&rss, base_rss),
                mean_rss_kib: outcomes[pi][ai].iter().map(|o| o.mean_rss_kib).collect(),
                mean_rss_median_kib: median(&mean),
                mean_rss_vs_glibc: ratio(median(&mean), base_mean),
                shim_allocs: outcomes[pi][ai].last().and_then(|o| o.shim_allocs),
                shim_calls: outcomes[pi][ai].last().and_then(|o| o.shim_calls),
                shim_large_bytes: outcomes[pi][ai].last().and_then(|o| o.shim_large_bytes),
            });
        }
        // At the pace of the fastest allocator: a program where glibc is
        // slow (contention) is no less allocation-bound for it.
        let fastest = rows
            .iter()
            .filter(|r| r.ok())
            .filter_map(|r| r.wall_median_s)
            .reduce(f64::min);
        let calls_per_s = rows
            .iter()
            .filter_map(|r| r.shim_calls)
            .max()
            .zip(fastest)
            .filter(|(_, w)| *w > 0.0)
            .map(|(c, w)| c as f64 / w);
        let many_large = live.iter().enumerate().any(|(ai, _)| {
            outcomes[pi][ai]
                .last()
                .and_then(|o| o.shim_large_allocs)
                .is_some_and(|n| n >= ALLOC_BOUND_LARGE)
        });
        let large_bytes_per_s = rows
            .iter()
            .filter_map(|r| r.shim_large_bytes)
            .filter(|_| many_large)
            .max()
            .zip(base_wall)
            .filter(|(_, w)| *w > 0.0)
            .map(|(b, w)| b as f64 / w);
        results.push(ProgramResult {
            name: p.name.into(),
            description: p.description.clone(),
            threaded: p.threaded,
            commands: p.commands(workdir),
            output_bytes: reference[pi].as_ref().map_or(0, Vec::len),
            calls_per_s,
            large_bytes_per_s,
            allocation_bound: calls_per_s.is_some_and(|c| c >= ALLOC_BOUND_RATE)
                || large_bytes_per_s.is_some_and(|b| b >= ALLOC_BOUND_BYTES),
            rows,
        });
    }
    Ok(ProgramsResults {
        machine,
        runs,
        scale,
        skipped,
        unavailable,
        programs: results,
        load_average: (load_before, load_average()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ranges() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(range(&[3.0, 1.0, 2.0]), Some((1.0, 3.0)));
    }

    #[test]
    fn statistics_lines_are_summed() {
        let dir = std::env::temp_dir().join(format!("alloclab-stats-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("s");
        std::fs::write(
            &f,
            "alloclab-shim: allocator=buddy pid=1 arenas=1 allocs=10 frees=3 large_allocs=2\n\
             alloclab-shim: allocator=buddy pid=2 arenas=1 allocs=5 frees=3 large_allocs=0\n",
        )
        .unwrap();
        assert_eq!(shim_allocs(&f), Some(17));
        assert_eq!(shim_calls(&f), Some(23));
        assert_eq!(shim_allocs(&dir.join("none")), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

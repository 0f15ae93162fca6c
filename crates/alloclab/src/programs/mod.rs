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
mod allocators;
mod process;
mod report;
mod results;
pub mod set;
pub mod spawn;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::artifacts;
use crate::output::outln;
use allocators::Allocator;
use process::{RunOutcome, load_average, run_program};
#[cfg(test)]
use process::{shim_allocs, shim_calls};
pub use results::{ProgramResult, ProgramRow, ProgramsResults};
use results::{median, range};
use set::InputSize;

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
        InputSize::Quick
    } else {
        InputSize::Full
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

/// Every selected program under every selected allocator: the warm-up
/// round, then the timed rounds, then the figures.
fn measure(
    args: &ProgramsArgs,
    runs: usize,
    scale: InputSize,
    workdir: &Path,
) -> Result<ProgramsResults> {
    let machine = crate::toolkit::machine::machine();
    let load_before = load_average();
    let (programs, skipped) = select_programs(args, scale, workdir)?;
    let allocs = select_allocators(args)?;
    let unavailable: Vec<(String, String)> = allocs
        .iter()
        .filter_map(|a| a.missing.clone().map(|m| (a.name.clone(), m)))
        .collect();
    let live: Vec<&Allocator> = allocs.iter().filter(|a| a.missing.is_none()).collect();
    let timeout = Duration::from_secs(args.timeout.max(1));
    let rounds = run_rounds(&programs, &live, runs, workdir, timeout)?;
    let results = programs
        .iter()
        .enumerate()
        .map(|(pi, p)| program_result(p, pi, &allocs, &live, &rounds, workdir))
        .collect();
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

/// The programs `--programs` names (all by default), and those skipped.
fn select_programs(
    args: &ProgramsArgs,
    scale: InputSize,
    workdir: &Path,
) -> Result<(Vec<set::Program>, set::Skipped)> {
    let (mut programs, mut skipped) = set::programs(scale, workdir)?;
    alloc_bound::programs(scale, workdir, &mut programs, &mut skipped)?;
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
    Ok((programs, skipped))
}

/// The allocators `--only` names (all by default), glibc always.
fn select_allocators(args: &ProgramsArgs) -> Result<Vec<Allocator>> {
    let mut allocs = allocators::all(&args.preload)?;
    if !args.only.is_empty() {
        for want in &args.only {
            if !allocs.iter().any(|a| &a.name == want) {
                let known: Vec<&str> = allocs.iter().map(|a| a.name.as_str()).collect();
                bail!("no allocator `{want}` (known: {})", known.join(", "));
            }
        }
        allocs.retain(|a| a.name == "glibc" || args.only.contains(&a.name));
    }
    Ok(allocs)
}

/// What the rounds found, per program and (live) allocator.
struct Rounds {
    /// The timed runs.
    outcomes: Vec<Vec<Vec<RunOutcome>>>,
    /// glibc's output, the reference every other run must reproduce.
    reference: Vec<Option<Vec<u8>>>,
    /// The first thing that went wrong.
    first_failure: Vec<Vec<Option<String>>>,
}

/// The warm-up round (which takes glibc's reference output) and `runs`
/// timed rounds, the allocator order rotating from round to round.
fn run_rounds(
    programs: &[set::Program],
    live: &[&Allocator],
    runs: usize,
    workdir: &Path,
    timeout: Duration,
) -> Result<Rounds> {
    let mut r = Rounds {
        outcomes: vec![vec![Vec::new(); live.len()]; programs.len()],
        reference: vec![None; programs.len()],
        first_failure: vec![vec![None; live.len()]; programs.len()],
    };
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
                r.keep((pi, ai), p.name, a, o, round, workdir);
            }
        }
    }
    eprintln!();
    Ok(r)
}

impl Rounds {
    /// Checks a run's output against glibc's and keeps it (a timed one).
    fn keep(
        &mut self,
        (pi, ai): (usize, usize),
        program: &str,
        a: &Allocator,
        o: RunOutcome,
        round: usize,
        workdir: &Path,
    ) {
        if a.name == "glibc" && self.reference[pi].is_none() && o.failure.is_none() {
            self.reference[pi] = Some(o.stdout.clone());
        }
        let mut problem = o.failure.clone();
        if problem.is_none()
            && let Some(r) = &self.reference[pi]
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
            let keep = workdir.join(format!("{program}-{}.stdout", a.name));
            let _ = std::fs::write(keep, &o.stdout);
        }
        if problem.is_some() && self.first_failure[pi][ai].is_none() {
            self.first_failure[pi][ai] = problem;
        }
        if round > 0 {
            self.outcomes[pi][ai].push(RunOutcome {
                stdout: Vec::new(),
                ..o
            });
        }
    }

    /// The successful timed runs' (wall seconds, peak RSS, mean RSS).
    fn figures(&self, pi: usize, ai: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let ok: Vec<&RunOutcome> = self.outcomes[pi][ai]
            .iter()
            .filter(|o| o.failure.is_none())
            .collect();
        let wall: Vec<f64> = ok.iter().map(|o| o.wall_s).collect();
        let rss: Vec<f64> = ok.iter().map(|o| o.max_rss_kib as f64).collect();
        let mean: Vec<f64> = ok.iter().map(|o| o.mean_rss_kib as f64).collect();
        (wall, rss, mean)
    }
}

/// `m / b`, when both are there and `b > 0`.
fn ratio(m: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (m, b) {
        (Some(m), Some(b)) if b > 0.0 => Some(m / b),
        _ => None,
    }
}

/// The range of `v` over `b`, when `b > 0`.
fn range_ratio(v: &[f64], b: Option<f64>) -> Option<(f64, f64)> {
    match (range(v), b) {
        (Some((lo, hi)), Some(b)) if b > 0.0 => Some((lo / b, hi / b)),
        _ => None,
    }
}

/// One program's figures: a row per allocator, whether it is
/// allocation-bound.
fn program_result(
    p: &set::Program,
    pi: usize,
    allocs: &[Allocator],
    live: &[&Allocator],
    rounds: &Rounds,
    workdir: &Path,
) -> ProgramResult {
    let glibc = live.iter().position(|a| a.name == "glibc");
    let base = glibc.map(|ai| rounds.figures(pi, ai));
    let base = |k: usize| base.as_ref().and_then(|b| median([&b.0, &b.1, &b.2][k]));
    let (base_wall, base_rss, base_mean) = (base(0), base(1), base(2));
    let library = |a: &Allocator| {
        a.preload
            .as_ref()
            .map_or_else(|| "none".into(), |p| artifacts::report_path(p))
    };
    let mut rows = Vec::new();
    for a in allocs {
        let Some(ai) = live.iter().position(|l| l.name == a.name) else {
            rows.push(ProgramRow {
                allocator: a.name.clone(),
                library: library(a),
                status: a.missing.clone().unwrap_or_default(),
                ..ProgramRow::default()
            });
            continue;
        };
        let (wall, rss, mean) = rounds.figures(pi, ai);
        let runs = &rounds.outcomes[pi][ai];
        rows.push(ProgramRow {
            allocator: a.name.clone(),
            library: library(a),
            status: rounds.first_failure[pi][ai]
                .clone()
                .unwrap_or_else(|| "ok".into()),
            wall_s: runs.iter().map(|o| o.wall_s).collect(),
            max_rss_kib: runs.iter().map(|o| o.max_rss_kib).collect(),
            wall_median_s: median(&wall),
            rss_median_kib: median(&rss),
            time_vs_glibc: ratio(median(&wall), base_wall),
            time_range_vs_glibc: range_ratio(&wall, base_wall),
            rss_vs_glibc: ratio(median(&rss), base_rss),
            rss_range_vs_glibc: range_ratio(&rss, base_rss),
            mean_rss_kib: runs.iter().map(|o| o.mean_rss_kib).collect(),
            mean_rss_median_kib: median(&mean),
            mean_rss_vs_glibc: ratio(median(&mean), base_mean),
            shim_allocs: runs.last().and_then(|o| o.shim_allocs),
            shim_calls: runs.last().and_then(|o| o.shim_calls),
            shim_large_bytes: runs.last().and_then(|o| o.shim_large_bytes),
        });
    }
    let many_large = (0..live.len()).any(|ai| {
        rounds.outcomes[pi][ai]
            .last()
            .and_then(|o| o.shim_large_allocs)
            .is_some_and(|n| n >= ALLOC_BOUND_LARGE)
    });
    let (calls_per_s, large_bytes_per_s) = allocation_rates(&rows, base_wall, many_large);
    ProgramResult {
        name: p.name.into(),
        description: p.description.clone(),
        threaded: p.threaded,
        commands: p.commands(workdir),
        output_bytes: rounds.reference[pi].as_ref().map_or(0, Vec::len),
        calls_per_s,
        large_bytes_per_s,
        allocation_bound: calls_per_s.is_some_and(|c| c >= ALLOC_BOUND_RATE)
            || large_bytes_per_s.is_some_and(|b| b >= ALLOC_BOUND_BYTES),
        rows,
    }
}

/// Allocation calls per second at the pace of the fastest allocator (a
/// program where glibc is slow, from contention, is no less
/// allocation-bound for it), and large-block bytes per second of glibc's
/// time when the program makes many large blocks.
fn allocation_rates(
    rows: &[ProgramRow],
    base_wall: Option<f64>,
    many_large: bool,
) -> (Option<f64>, Option<f64>) {
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
    let large_bytes_per_s = rows
        .iter()
        .filter_map(|r| r.shim_large_bytes)
        .filter(|_| many_large)
        .max()
        .zip(base_wall)
        .filter(|(_, w)| *w > 0.0)
        .map(|(b, w)| b as f64 / w);
    (calls_per_s, large_bytes_per_s)
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

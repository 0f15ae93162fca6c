//! The views of `alloclab programs`: the terminal table, and with
//! `--report DIR`, `programs.md` with a chart (`programs.svg`/`.png`, drawn
//! by the report toolkit's chart engine).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};

use super::{ProgramRow, ProgramsResults};
use crate::toolkit::chart::{RatioBar, RatioGroup, render_ratio_chart};
use crate::toolkit::markdown::table_markdown;
use crate::toolkit::readme::{absolute, relative, replace_between};

fn ratio(x: Option<f64>) -> String {
    x.map_or_else(|| "–".into(), |x| format!("{x:.2}×"))
}

/// `0.84 s (0.80–0.91)`.
fn time_cell(r: &ProgramRow) -> String {
    let ok: Vec<f64> = r.wall_s.clone();
    match (r.wall_median_s, super::results::range(&ok)) {
        (Some(m), Some((lo, hi))) => format!("{m:.3} s ({lo:.3}–{hi:.3})"),
        (Some(m), None) => format!("{m:.3} s"),
        _ => "–".into(),
    }
}

fn mib(k: Option<f64>) -> String {
    k.map_or_else(|| "–".into(), |k| format!("{:.1} MiB", k / 1024.0))
}

/// `3.1 M/s`: allocation calls per second.
fn rate(c: Option<f64>) -> String {
    c.map_or_else(String::new, |c| format!("{:.1} M calls/s", c / 1e6))
}

/// The geometric mean of the ratios of the programs where `allocator` ran
/// correctly (only the allocation-bound ones if `bound`), and how many
/// programs that is.
pub fn geomean(
    r: &ProgramsResults,
    allocator: &str,
    bound: bool,
    pick: fn(&ProgramRow) -> Option<f64>,
) -> Option<(f64, usize)> {
    let v: Vec<f64> = r
        .programs
        .iter()
        .filter(|p| !bound || p.allocation_bound)
        .flat_map(|p| &p.rows)
        .filter(|row| row.allocator == allocator && row.ok())
        .filter_map(pick)
        .filter(|x| *x > 0.0)
        .collect();
    if v.is_empty() {
        return None;
    }
    let n = v.len();
    Some(((v.iter().map(|x| x.ln()).sum::<f64>() / n as f64).exp(), n))
}

fn allocator_names(r: &ProgramsResults) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for row in r.programs.iter().flat_map(|p| &p.rows) {
        if !names.contains(&row.allocator) {
            names.push(row.allocator.clone());
        }
    }
    names
}

/// One table for all programs: a row per program and allocator.
pub fn terminal_table(r: &ProgramsResults) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(vec![
            "program",
            "allocator",
            "wall time: median (range)",
            "time ×glibc",
            "peak RSS",
            "peak ×glibc",
            "mean RSS",
            "mean ×glibc",
            "check",
        ]);
    for p in &r.programs {
        for (i, row) in p.rows.iter().enumerate() {
            let check = if row.ok() {
                match row.shim_allocs {
                    Some(n) => format!("same output; shim served {n} allocations"),
                    None => "same output".into(),
                }
            } else {
                row.status.clone()
            };
            let name = match i {
                0 => p.name.clone(),
                1 => match p.large_bytes_per_s {
                    Some(b) if b >= super::ALLOC_BOUND_BYTES => {
                        format!("{:.1} GiB/s large", b / f64::from(1u32 << 30))
                    }
                    _ => rate(p.calls_per_s),
                },
                2 if p.calls_per_s.is_some() => if p.allocation_bound {
                    "allocation-bound"
                } else {
                    "not allocation-bound"
                }
                .into(),
                _ => String::new(),
            };
            t.add_row(vec![
                Cell::new(name),
                Cell::new(&row.allocator),
                Cell::new(time_cell(row)).set_alignment(CellAlignment::Right),
                Cell::new(ratio(row.time_vs_glibc)).set_alignment(CellAlignment::Right),
                Cell::new(mib(row.rss_median_kib)).set_alignment(CellAlignment::Right),
                Cell::new(ratio(row.rss_vs_glibc)).set_alignment(CellAlignment::Right),
                Cell::new(mib(row.mean_rss_median_kib)).set_alignment(CellAlignment::Right),
                Cell::new(ratio(row.mean_rss_vs_glibc)).set_alignment(CellAlignment::Right),
                Cell::new(check),
            ]);
        }
    }
    for (bound, label) in [
        (true, "geometric mean, allocation-bound"),
        (false, "geometric mean, all programs"),
    ] {
        for name in allocator_names(r) {
            let time = geomean(r, &name, bound, |row| row.time_vs_glibc);
            let rss = geomean(r, &name, bound, |row| row.rss_vs_glibc);
            let mean = geomean(r, &name, bound, |row| row.mean_rss_vs_glibc);
            if let (Some((tm, n)), Some((rm, _))) = (time, rss) {
                t.add_row(vec![
                    Cell::new(label),
                    Cell::new(&name),
                    Cell::new(format!("{n} program(s)")).set_alignment(CellAlignment::Right),
                    Cell::new(format!("{tm:.2}×")).set_alignment(CellAlignment::Right),
                    Cell::new(""),
                    Cell::new(format!("{rm:.2}×")).set_alignment(CellAlignment::Right),
                    Cell::new(""),
                    Cell::new(mean.map_or_else(String::new, |(m, _)| format!("{m:.2}×")))
                        .set_alignment(CellAlignment::Right),
                    Cell::new(""),
                ]);
            }
        }
    }
    t
}

/// Writes `dir/programs.md` and `dir/programs.svg`/`.png`.
pub fn write(r: &ProgramsResults, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let chart = !r.programs.is_empty();
    if chart {
        chart_file(r, dir)?;
    }
    let mut md = markdown(r, chart);
    if dir.join("report.md").exists() {
        md.push_str(
            "\nThe synthetic workloads and the recorded traces replayed in arenas: \
             [report.md](report.md) (`alloclab compare --report`).\n",
        );
    }
    std::fs::write(dir.join("programs.md"), md)
        .with_context(|| format!("writing {}", dir.join("programs.md").display()))
}

/// The marker line before the README's programs block.
pub const BEGIN: &str = "<!-- programs:begin -->";
/// The marker line after it.
pub const END: &str = "<!-- programs:end -->";

/// Checks, before anything runs, that `path` can be updated: it is readable
/// and has exactly one programs block.
pub fn check_readme(path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {} (for --readme)", path.display()))?;
    replace_between(&text, BEGIN, END, "")
        .map(drop)
        .with_context(|| format!("--readme {}", path.display()))
}

/// The README's programs block: the machine, date, load and command, the
/// table, and with a report directory a link to it and its chart (paths
/// relative to `base`, the README's directory).
pub fn readme_block(r: &ProgramsResults, report: Option<(&Path, &Path)>) -> String {
    let m = &r.machine;
    let command = m
        .command
        .split_once(' ')
        .map_or(m.command.as_str(), |(_, rest)| rest);
    let mut s = format!(
        "Measured on {}: `alloclab {command}` ({} timed run{} per program and allocator; \
         ratios to glibc, median and range).\n\n",
        machine_line(r),
        r.runs,
        if r.runs == 1 { "" } else { "s" },
    );
    s.push_str(&table_markdown(&terminal_table(r)));
    if let Some((base, dir)) = report {
        let rel = relative(&absolute(base), &absolute(dir));
        let _ = writeln!(
            s,
            "\nThe programs, their commands and the method: [{rel}/programs.md]({rel}/programs.md).\n"
        );
        if !r.programs.is_empty() {
            let _ = writeln!(
                s,
                "![wall time and peak RSS relative to glibc]({rel}/programs.png)"
            );
        }
    }
    s
}

/// "CPU (N CPUs, kernel), date, 1-minute load average X before the runs and
/// Y after".
fn machine_line(r: &ProgramsResults) -> String {
    let m = &r.machine;
    let load = |l: Option<f64>| l.map_or_else(|| "?".into(), |l| format!("{l:.2}"));
    format!(
        "{} ({} CPUs, {}), {}, 1-minute load average {} before the runs and {} after",
        m.cpu,
        m.cpus,
        m.kernel,
        m.date,
        load(r.load_average.0),
        load(r.load_average.1),
    )
}

/// Replaces the programs block of the README at `path` with [`readme_block`].
pub fn update_readme(path: &Path, r: &ProgramsResults, report: Option<&Path>) -> Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {} (for --readme)", path.display()))?;
    let base = absolute(path)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let block = readme_block(r, report.map(|d| (base.as_path(), d)));
    let new = replace_between(&text, BEGIN, END, &block)
        .with_context(|| format!("updating the programs block of {}", path.display()))?;
    std::fs::write(path, new).with_context(|| format!("writing {}", path.display()))
}

/// A row's ratio and the range of its runs.
type RatioOf = fn(&ProgramRow) -> (Option<f64>, Option<(f64, f64)>);

fn chart_file(r: &ProgramsResults, dir: &Path) -> Result<()> {
    let panel = |pick: RatioOf| {
        r.programs
            .iter()
            .map(|p| RatioGroup {
                label: p.name.clone(),
                bars: p
                    .rows
                    .iter()
                    .map(|row| {
                        let (v, range) = pick(row);
                        let value = if row.ok() {
                            v.unwrap_or(f64::NAN)
                        } else {
                            f64::NAN
                        };
                        let text = if row.ok() {
                            format!("{} {}", row.allocator, ratio(v))
                        } else if row.wall_s.is_empty() && row.status.starts_with("not ") {
                            format!("{}: {}", row.allocator, row.status)
                        } else {
                            format!("{}: failed", row.allocator)
                        };
                        RatioBar {
                            allocator: row.allocator.clone(),
                            value,
                            range: if row.ok() { range } else { None },
                            text,
                        }
                    })
                    .collect(),
            })
            .collect::<Vec<_>>()
    };
    render_ratio_chart(
        dir,
        "programs",
        "Real programs: wall time and peak RSS relative to glibc (lower is better)",
        vec![
            (
                "wall time".into(),
                "median wall time / glibc's median (whisker: range of the runs)".into(),
                panel(|row| (row.time_vs_glibc, row.time_range_vs_glibc)),
            ),
            (
                "peak RSS".into(),
                "median peak RSS / glibc's median (whisker: range of the runs)".into(),
                panel(|row| (row.rss_vs_glibc, row.rss_range_vs_glibc)),
            ),
        ],
    )
}

fn markdown(r: &ProgramsResults, chart: bool) -> String {
    let mut s = String::new();
    let m = &r.machine;
    let _ = writeln!(s, "# Real programs on each allocator\n");
    let _ = writeln!(s, "{}.\n\nCommand: `{}`\n", machine_line(r), m.command);
    method_section(&mut s, r);
    if r.runs < 5 {
        let _ = writeln!(
            s,
            "**Only {} timed run(s): the figures are a smoke test, not a measurement \
             (use the default `--runs 5` or more).**\n",
            r.runs
        );
    }
    let _ = writeln!(s, "## Results\n");
    if chart {
        let _ = writeln!(
            s,
            "![wall time and peak RSS relative to glibc](programs.svg)\n\n(PNG: \
             [programs.png](programs.png))\n"
        );
    }
    let _ = writeln!(s, "{}", table_markdown(&terminal_table(r)));
    programs_section(&mut s, r);
    if !r.skipped.is_empty() || !r.unavailable.is_empty() {
        let _ = writeln!(s, "## Not run\n");
        for (name, why) in r.skipped.iter().chain(&r.unavailable) {
            let _ = writeln!(s, "- {name}: {why}");
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(
        s,
        "Inputs are generated from fixed seeds (`crates/alloclab/src/programs/set.rs`); \
         `$WORKDIR` is the folder they are written to (`--workdir`, by default a \
         temporary one); the Python script is `tests/programs/alloc_heavy.py`, run with \
         `PYTHONMALLOC=malloc` so that every object goes through malloc (by default \
         CPython serves objects up to 512 bytes from its own arenas). `alloclab programs \
         --json FILE` writes every run's figures."
    );
    s
}

/// The "Method" section: how each program is run and measured.
fn method_section(s: &mut String, r: &ProgramsResults) {
    let _ = writeln!(s, "## Method\n");
    let _ = writeln!(
        s,
        "Each program runs under glibc's malloc (no preload), under this project's two \
         malloc shims (`LD_PRELOAD` of `libbuddy_malloc.so` and \
         `libmckusick_karels_malloc.so`: per-thread caches over 64 MiB arenas of the \
         core, requests above 1 MiB in mappings of their own) and under mimalloc and jemalloc \
         (`LD_PRELOAD` of the Debian packages' libraries), as mimalloc-bench does. One \
         untimed warm-up round, then {} timed round(s); in every round each program runs \
         once under each allocator, the order rotating from round to round (interleaved, \
         so that a drift of the machine spreads over all of them). Wall time runs from \
         `fork` to `wait4` of each process of the program (summed over its processes); \
         peak RSS is the largest `ru_maxrss` that `wait4` reports for them (a process's \
         figure includes its waited-for children); mean RSS is the resident set of the \
         program's main process sampled every 5 ms from `/proc/PID/statm`, averaged over \
         the run (the steady state; for several processes, weighted by their times). A \
         server program (Redis) is started under the allocator and driven by its client \
         under glibc: the time is the client's, the memory figures the server's; a \
         program that links another malloc (redis-server links jemalloc) gets glibc's \
         back in the glibc row from a preloaded forwarder (`tests/programs/c/glibc_malloc.c`). \
         Each program's allocation calls per second (the shims' statistics: allocations, \
         frees and reallocations, over the fastest allocator's median time) decide whether it is \
         *allocation-bound* (at least {:.0} million per second, or at least 1 GiB of large \
         blocks per second over at least 20 of them, each a mapping whose pages are faulted \
         in); the geometric means are \
         given over those and over all programs. Ratios are medians over glibc's \
         median; whiskers and ranges are the smallest and largest run. Every run's \
         standard output must equal glibc's, byte for byte: a different output, a crash \
         or a non-zero exit is reported in the row, and a shim run must have printed \
         its statistics line (`ALLOCLAB_SHIM_STATS`) with a non-zero count of \
         allocations, which proves the shim served the program.\n",
        r.runs,
        super::ALLOC_BOUND_RATE / 1e6
    );
}

/// "The programs": what each one is and the commands it runs.
fn programs_section(s: &mut String, r: &ProgramsResults) {
    let _ = writeln!(s, "\n## The programs\n");
    for p in &r.programs {
        let _ = writeln!(
            s,
            "- **{}**{}: {}. Output checked: {} bytes.\n\n  ```sh",
            p.name,
            if p.threaded { " (multi-threaded)" } else { "" },
            p.description,
            p.output_bytes
        );
        for c in &p.commands {
            let _ = writeln!(s, "  {c}");
        }
        let _ = writeln!(s, "  ```\n");
    }
}

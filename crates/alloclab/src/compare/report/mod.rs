//! `alloclab compare --report DIR` and `--readme FILE`: the results as a
//! Markdown report with charts, and the README's results block.
//!
//! - [`write`] puts `report.md`, `*.svg` and `*.png` in a directory;
//! - [`readme_block`] renders the compact headline table for the README;
//! - [`update_readme`] replaces the text between [`BEGIN`] and [`END`] in a
//!   file with that block (and a chart of the report), so README figures are
//!   always produced by a run, never typed.

pub mod analysis;
pub mod charts;
pub mod markdown;
#[cfg(test)]
pub(crate) mod sample;

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::engine::results::{CompareResults, Row, WorkloadResult};
pub use crate::toolkit::chart::Chart;
use crate::toolkit::format::pct;
use crate::toolkit::readme::{absolute, relative, replace_between};

/// The operation whose latency describes a timed phase: `free` phases free,
/// realloc phases (`grow`, `shrink`, or a name with "realloc") realloc,
/// everything else (`alloc`, `mixed`, `replay`) allocates.
pub fn main_op(phase: &str) -> &'static str {
    if phase.contains("free") {
        "free"
    } else if phase == "grow" || phase == "shrink" || phase.contains("realloc") {
        "realloc"
    } else {
        "alloc"
    }
}

/// Writes `DIR/report.md` and its charts (`DIR/*.svg`, `DIR/*.png`),
/// creating `DIR` if needed. Returns the charts.
pub fn write(results: &CompareResults, dir: &Path) -> Result<Vec<Chart>> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the report directory {}", dir.display()))?;
    let charts = charts::render_all(results, dir)
        .with_context(|| format!("drawing the charts into {}", dir.display()))?;
    let mut md = markdown::render(results, &charts);
    if dir.join("programs.md").exists() {
        md.push_str(PROGRAMS_SECTION);
    }
    let path = dir.join("report.md");
    std::fs::write(&path, md).with_context(|| format!("writing {}", path.display()))?;
    Ok(charts)
}

/// The section `report.md` ends with when `alloclab programs --report` has
/// written its part of the report into the same directory.
const PROGRAMS_SECTION: &str = "\n## Real programs\n\n\
    Python, sort, git and xz under glibc, both malloc shims, mimalloc and jemalloc: wall \
    time and peak RSS relative to glibc, in [programs.md](programs.md) (written by \
    `alloclab programs --report` into this directory; it has its own date and machine \
    line).\n\n![wall time and peak RSS relative to glibc](programs.png)\n";

/// `12.3`, `4567`: ns without a unit, for the README table.
fn plain_ns(x: f64) -> String {
    if !x.is_finite() {
        "–".into()
    } else if x.abs() < 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

/// The command with the program's directory left out
/// (`/long/path/target/release/alloclab compare` → `alloclab compare`).
fn short_command(command: &str) -> String {
    match command.split_once(' ') {
        Some((program, rest)) => format!(
            "{} {rest}",
            Path::new(program)
                .file_name()
                .map_or_else(|| program.into(), |f| f.to_string_lossy())
        ),
        None => Path::new(command)
            .file_name()
            .map_or_else(|| command.to_string(), |f| f.to_string_lossy().into_owned()),
    }
}

/// Checks, before anything is measured, that `path` can be updated: it is
/// readable and has exactly one results block.
pub fn check_readme(path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {} (for --readme)", path.display()))?;
    replace_block(&text, "")
        .map(drop)
        .with_context(|| format!("--readme {}", path.display()))
}

/// The marker line before the README's results block.
pub const BEGIN: &str = "<!-- results:begin -->";
/// The marker line after it.
pub const END: &str = "<!-- results:end -->";

/// The workloads of the README's table, when they were run: the lab's
/// workload, small blocks in random order, a steady churn, and the fill
/// efficiency. Every other workload and trace is in the full report.
pub const README_WORKLOADS: [&str; 4] = ["seed", "small-random", "churn", "fill"];

/// The workloads the README's table shows: [`README_WORKLOADS`] if any of
/// them ran, else every workload.
fn readme_workloads(r: &CompareResults) -> Vec<&WorkloadResult> {
    let headline: Vec<&WorkloadResult> = README_WORKLOADS
        .iter()
        .filter_map(|n| r.workloads.iter().find(|w| w.name == *n))
        .collect();
    if headline.is_empty() {
        r.workloads.iter().collect()
    } else {
        headline
    }
}

/// The compact results block: the machine, date and command, then a table
/// with the allocators as rows and, for each headline workload
/// ([`README_WORKLOADS`]), the net ns/op of its timed phases and its usage
/// figure; then `extra` (links, a chart).
pub fn readme_block(r: &CompareResults, extra: &str) -> String {
    let m = &r.machine;
    let mut s = format!(
        "Measured on {} ({} CPU{}, {}), {}: `{}` ({} repetition{}).\n\n",
        m.cpu,
        m.cpus,
        if m.cpus == 1 { "" } else { "s" },
        m.kernel,
        m.date,
        short_command(&m.command),
        r.method.repetitions,
        if r.method.repetitions == 1 { "" } else { "s" }
    );
    let workloads = readme_workloads(r);
    let mut header = vec!["allocator".to_string()];
    for w in &workloads {
        let phases: Vec<&str> = w.empty_call_ns.iter().map(|(n, _)| n.as_str()).collect();
        if !phases.is_empty() {
            header.push(format!("`{}` {} ns", w.name, phases.join(" / ")));
        }
        if w.usage_kind != super::workload::UsageKind::None {
            header.push(format!("`{}` usage", w.name));
        }
    }
    let _ = writeln!(s, "| {} |", header.join(" | "));
    let _ = writeln!(s, "|---|{}", "---:|".repeat(header.len() - 1));
    let mut names: Vec<&str> = r.subjects.iter().map(|x| x.name.as_str()).collect();
    for row in r.workloads.iter().flat_map(|w| &w.rows) {
        if !names.contains(&row.subject.as_str()) {
            names.push(&row.subject);
        }
    }
    for name in names {
        let mut cells = vec![name.to_string()];
        for w in &workloads {
            cells.extend(readme_cells(w, name));
        }
        let _ = writeln!(s, "| {} |", cells.join(" | "));
    }
    s.push_str(
        "\nns: median time per call over the repetitions, net of an empty call. Usage: the usage factor (`fill`: fill efficiency; traces: peak live bytes \
         / smallest arena that replays the trace); n/a: the allocator does not manage the arena.\n",
    );
    if workloads.len() < r.workloads.len() {
        let _ = writeln!(
            s,
            "\n{} of the {} workloads; every workload and trace, with the spread and latency percentiles, is in the full report.",
            workloads.len(),
            r.workloads.len()
        );
    }
    let a = analysis::analyse(r);
    let _ = writeln!(s, "\nLeads on {}.", a.leaders_line());
    if !extra.is_empty() {
        s.push('\n');
        s.push_str(extra.trim_end());
        s.push('\n');
    }
    s
}

/// The README table's cells of allocator `name` on workload `w`: its net
/// What a row without figures shows: `failed`, or `too slow` when a pass
/// passed its time limit.
fn failed_or_slow(row: &Row) -> &'static str {
    if row.too_slow { "too slow" } else { "failed" }
}

/// ns per call in each timed phase, and its usage figure.
fn readme_cells(w: &WorkloadResult, name: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let row = w.rows.iter().find(|row| row.subject == name);
    let phases: Vec<&str> = w.empty_call_ns.iter().map(|(n, _)| n.as_str()).collect();
    if !phases.is_empty() {
        cells.push(match row {
            None => "–".into(),
            Some(row) if row.failure.is_some() => failed_or_slow(row).into(),
            Some(row) => phases
                .iter()
                .map(|p| {
                    row.phases
                        .iter()
                        .find(|x| x.name == *p)
                        .map_or("–".into(), |x| plain_ns(x.net_ns_per_op.median))
                })
                .collect::<Vec<_>>()
                .join(" / "),
        });
    }
    if w.usage_kind != super::workload::UsageKind::None {
        cells.push(match row {
            Some(row) if row.failure.is_some() => failed_or_slow(row).into(),
            Some(row) => row.usage.map_or("n/a".into(), |u| pct(u.factor)),
            None => "–".into(),
        });
    }
    cells
}

/// `text` with everything between the [`BEGIN`] and [`END`] markers replaced
/// by `block` (the markers and everything outside them are kept).
pub fn replace_block(text: &str, block: &str) -> Result<String> {
    replace_between(text, BEGIN, END, block)
}

/// The chart shown in the README: the brief's workload's times if drawn,
/// else the usage chart, else the first.
fn readme_chart(charts: &[Chart]) -> Option<&Chart> {
    charts
        .iter()
        .find(|c| c.stem == "time-seed")
        .or_else(|| charts.iter().find(|c| c.stem == "usage"))
        .or_else(|| charts.first())
}

/// Replaces the results block of the file at `path` (see [`replace_block`])
/// with [`readme_block`]; with a report directory and its charts, the block
/// links the report and shows one chart, by paths relative to the file.
pub fn update_readme(
    path: &Path,
    results: &CompareResults,
    report: Option<(&Path, &[Chart])>,
) -> Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {} (for --readme)", path.display()))?;
    let mut extra = String::new();
    if let Some((dir, charts)) = report {
        let base = absolute(path)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let rel = relative(&base, &absolute(dir));
        let _ = writeln!(
            extra,
            "Full report (method, every table, charts, analysis): [{rel}/report.md]({rel}/report.md)."
        );
        if let Some(c) = readme_chart(charts) {
            let _ = writeln!(extra, "\n![{}]({rel}/{}.png)", c.title, c.stem);
        }
    }
    let new = replace_block(&text, &readme_block(results, &extra))
        .with_context(|| format!("updating the results block of {}", path.display()))?;
    std::fs::write(path, new).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("alloclab-report-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn main_ops() {
        assert_eq!(main_op("alloc"), "alloc");
        assert_eq!(main_op("free"), "free");
        assert_eq!(main_op("grow"), "realloc");
        assert_eq!(main_op("shrink"), "realloc");
        assert_eq!(main_op("mixed"), "alloc");
        assert_eq!(main_op("replay"), "alloc");
    }

    #[test]
    fn report_links_the_programs_part_only_when_it_is_there() {
        let r = sample::results(&sample::specs());
        let dir = temp_dir("programs-link");
        write(&r, &dir).unwrap();
        let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
        assert!(!md.contains("programs.md"));
        std::fs::write(dir.join("programs.md"), "# Real programs\n").unwrap();
        write(&r, &dir).unwrap();
        let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
        assert!(md.contains("## Real programs") && md.contains("[programs.md](programs.md)"));
    }

    #[test]
    fn report_mentions_everything_and_charts_are_valid() {
        let r = sample::results(&sample::specs());
        let dir = temp_dir("full");
        let charts = write(&r, &dir).unwrap();
        let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
        for w in &r.workloads {
            assert!(md.contains(&format!("### `{}`", w.name)), "{}", w.name);
            assert!(md.contains(&w.description), "{}", w.description);
        }
        for s in &r.subjects {
            assert!(md.contains(&s.name), "{}", s.name);
        }
        for want in [
            "## Method",
            "## Ease of use",
            "## Analysis",
            "### Usage factor",
            "### Allocation speed",
            "### Free speed",
            "Test CPU",
            "alloclab compare --quick",
        ] {
            assert!(md.contains(want), "{want}");
        }
        let stems: Vec<&str> = charts.iter().map(|c| c.stem.as_str()).collect();
        for want in [
            "usage",
            "time-seed",
            "time-churn",
            "time-trace-demo",
            "latency-small-random",
            "latency-churn",
        ] {
            assert!(stems.contains(&want), "{want} not in {stems:?}");
        }
        for c in &charts {
            assert!(md.contains(&format!("({}.svg)", c.stem)), "{}", c.stem);
            let svg = std::fs::read_to_string(dir.join(format!("{}.svg", c.stem))).unwrap();
            assert!(svg.trim_start().starts_with("<svg"), "{}", c.stem);
            assert!(svg.trim_end().ends_with("</svg>"), "{}", c.stem);
            let png = std::fs::read(dir.join(format!("{}.png", c.stem))).unwrap();
            assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000);
        }
        // Allocator names are in the charts that show allocators.
        for stem in ["usage", "time-seed"] {
            let svg = std::fs::read_to_string(dir.join(format!("{stem}.svg"))).unwrap();
            for name in ["kappa", "beta"] {
                assert!(svg.contains(name), "{name} not in {stem}.svg");
            }
        }
        let svg = std::fs::read_to_string(dir.join("time-seed.svg")).unwrap();
        assert!(svg.contains("os-fallback"));
        let latency = std::fs::read_to_string(dir.join("latency-churn.svg")).unwrap();
        assert!(latency.contains("os-fallback") && latency.contains("p99.9"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn report_of_odd_results_does_not_fail() {
        let mut r = sample::results(&sample::specs());
        for w in &mut r.workloads {
            for row in &mut w.rows {
                for p in &mut row.phases {
                    p.net_ns_per_op.median = f64::NAN;
                    p.net_ns_per_op.q1 = f64::NEG_INFINITY;
                }
                if let Some(u) = &mut row.usage {
                    u.factor = f64::NAN;
                }
                for l in &mut row.latency {
                    l.p50 = 0.0;
                    l.p999 = f64::NAN;
                }
            }
        }
        r.workloads[0].rows.clear();
        let dir = temp_dir("odd");
        write(&r, &dir).unwrap();
        r.workloads.clear();
        r.subjects.clear();
        let charts = write(&r, &dir).unwrap();
        assert!(charts.is_empty());
        assert!(
            std::fs::read_to_string(dir.join("report.md"))
                .unwrap()
                .contains("## Analysis")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn readme_block_is_replaced_between_the_markers() {
        let r = sample::results(&sample::specs());
        let text = format!("# Title\n\nBefore.\n\n{BEGIN}\nold figures\n{END}\n\nAfter.\n");
        let new = replace_block(&text, &readme_block(&r, "")).unwrap();
        assert!(new.starts_with("# Title\n\nBefore.\n\n<!-- results:begin -->\n"));
        assert!(new.ends_with("<!-- results:end -->\n\nAfter.\n"));
        assert!(!new.contains("old figures"));
        assert!(new.contains("| kappa | 10.0 / 5.0 | 74.0% |"), "{new}");
        assert!(new.contains("| beta |"), "{new}");
        // Only the headline workloads; beta's failure on `realloc` is in the
        // full report.
        assert!(!new.contains("`realloc`"), "{new}");
        assert!(new.contains("every workload and trace"), "{new}");
        assert!(new.contains("`alloclab compare --quick`"));
        // Idempotent: replacing again gives the same text.
        assert_eq!(replace_block(&new, &readme_block(&r, "")).unwrap(), new);
    }

    #[test]
    fn missing_markers_are_a_clear_error() {
        let e = replace_block("no markers here", "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("<!-- results:begin -->"), "{e}");
        let e = replace_block(&format!("{BEGIN} but no end"), "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("<!-- results:end -->"), "{e}");
        let e = replace_block(&format!("{END} before {BEGIN}"), "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no `<!-- results:end -->` after it"), "{e}");
        let twice = format!("{BEGIN}\n{END}\n{BEGIN}\n{END}\n");
        assert!(replace_block(&twice, "x").is_err());
    }

    #[test]
    fn update_readme_links_the_report_relatively() {
        let r = sample::results(&sample::specs());
        let root = temp_dir("readme");
        let readme = root.join("README.md");
        std::fs::write(&readme, format!("Intro\n{BEGIN}\n{END}\nOutro\n")).unwrap();
        let dir = root.join("docs/results");
        let charts = write(&r, &dir).unwrap();
        update_readme(&readme, &r, Some((&dir, &charts))).unwrap();
        let text = std::fs::read_to_string(&readme).unwrap();
        assert!(text.contains("](docs/results/report.md)"), "{text}");
        assert!(text.contains("](docs/results/time-seed.png)"), "{text}");
        assert!(text.starts_with("Intro\n") && text.ends_with(&format!("{END}\nOutro\n")));
        // Without markers the file is left alone.
        let other = root.join("OTHER.md");
        std::fs::write(&other, "nothing").unwrap();
        let e = update_readme(&other, &r, None).unwrap_err();
        assert!(format!("{e:#}").contains("no `<!-- results:begin -->` marker"));
        assert_eq!(std::fs::read_to_string(&other).unwrap(), "nothing");
        let _ = std::fs::remove_dir_all(&root);
    }

    /// Writes the sample's report for a look at the charts:
    /// `ALLOCLAB_SAMPLE_REPORT=/tmp/sample cargo test -p alloclab sample_report -- --ignored`.
    #[test]
    #[ignore = "writes files for a person to look at"]
    fn sample_report() {
        let dir = std::env::var_os("ALLOCLAB_SAMPLE_REPORT").map_or_else(
            || std::env::temp_dir().join("alloclab-sample-report"),
            PathBuf::from,
        );
        write(&sample::results(&sample::specs()), &dir).unwrap();
        // Ten allocators with long names: is the layout still readable?
        let names = [
            "mckusick-karels",
            "mckusick-karels+return",
            "buddy",
            "glibc malloc",
            "jemalloc",
            "mimalloc",
            "talc",
            "rlsf (TLSF)",
            "linked_list_allocator",
            "mmap fallback",
        ];
        let many: Vec<sample::SampleAllocator> = names
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let k = i as f64 + 1.0;
                sample::SampleAllocator::arena(n, 8.0 * k * k, 3.0 * k, 0.5 + 0.045 * k)
            })
            .collect();
        write(&sample::results(&many), &dir.join("many")).unwrap();
        eprintln!("{}", dir.display());
    }

    #[test]
    fn commands_and_numbers_are_shortened() {
        assert_eq!(
            short_command("/a/b/target/release/alloclab compare --quick"),
            "alloclab compare --quick"
        );
        assert_eq!(short_command("./alloclab"), "alloclab");
        assert_eq!(plain_ns(12.34), "12.3");
        assert_eq!(plain_ns(12_345.6), "12346");
        assert_eq!(plain_ns(f64::NAN), "–");
        let root = temp_dir("check");
        let ok = root.join("ok.md");
        std::fs::write(&ok, format!("{BEGIN}\n{END}\n")).unwrap();
        assert!(check_readme(&ok).is_ok());
        assert!(check_readme(&root.join("missing.md")).is_err());
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn relative_paths() {
        assert_eq!(relative(Path::new("/a/b"), Path::new("/a/b/c/d")), "c/d");
        assert_eq!(relative(Path::new("/a/b"), Path::new("/a/x")), "../x");
        assert_eq!(relative(Path::new("/a"), Path::new("/a")), ".");
    }
}

//! `alloclab compare --csv FILE`: the results as one CSV line per workload,
//! allocator and timed phase, for spreadsheets and plotting scripts.
//!
//! Columns (empty cell: no figure):
//!
//! | column | meaning |
//! |---|---|
//! | `workload`, `arena_bytes`, `allocator`, `phase` | what was measured |
//! | `calls`, `successes`, `refusals` | of the checked pass (every timed repetition reproduces them) |
//! | `ns_per_op_median`, `_q1`, `_q3`, `_min`, `_max` | ns per call over the repetitions |
//! | `net_ns_per_op_median` | the same minus the empty call's |
//! | `usage_factor`, `vs_ideal_pow2`, `utilization` | the row's usage figures (a property of the workload and allocator: repeated on each of its phases) |
//! | `latency_op` | the operation whose latency follows: the phase's main one (`alloc` phases: alloc, `free`: free, `grow`/`shrink`: realloc, mixed and replay: alloc) |
//! | `latency_p50_ns`, `_p99_ns`, `_p999_ns`, `_max_ns` | its percentiles (cycle counter, net of the reading's cost) |
//! | `minor_faults_per_rep` | minor page faults per timed repetition (all timed phases) |
//! | `reproduced` | every timed repetition made the checked pass's choices |
//! | `failure` | why the allocator has no figures (then one line with an empty phase) |

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::report::main_op;
use crate::engine::results::Latency;
use crate::engine::results::{CompareResults, PhaseResult, Row, WorkloadResult};

/// The header: the fields of [`Line`], in order (written by hand so that a
/// run with no lines still has it).
const HEADER: [&str; 24] = [
    "workload",
    "arena_bytes",
    "allocator",
    "phase",
    "calls",
    "successes",
    "refusals",
    "ns_per_op_median",
    "ns_per_op_q1",
    "ns_per_op_q3",
    "ns_per_op_min",
    "ns_per_op_max",
    "net_ns_per_op_median",
    "usage_factor",
    "vs_ideal_pow2",
    "utilization",
    "latency_op",
    "latency_p50_ns",
    "latency_p99_ns",
    "latency_p999_ns",
    "latency_max_ns",
    "minor_faults_per_rep",
    "reproduced",
    "failure",
];

/// One CSV line (its fields are [`HEADER`]).
#[derive(Serialize)]
struct Line<'a> {
    workload: &'a str,
    arena_bytes: usize,
    allocator: &'a str,
    phase: &'a str,
    calls: Option<usize>,
    successes: Option<usize>,
    refusals: Option<usize>,
    ns_per_op_median: Option<f64>,
    ns_per_op_q1: Option<f64>,
    ns_per_op_q3: Option<f64>,
    ns_per_op_min: Option<f64>,
    ns_per_op_max: Option<f64>,
    net_ns_per_op_median: Option<f64>,
    usage_factor: Option<f64>,
    vs_ideal_pow2: Option<f64>,
    utilization: Option<f64>,
    latency_op: Option<&'a str>,
    latency_p50_ns: Option<f64>,
    latency_p99_ns: Option<f64>,
    latency_p999_ns: Option<f64>,
    latency_max_ns: Option<f64>,
    minor_faults_per_rep: Option<f64>,
    reproduced: Option<bool>,
    failure: Option<&'a str>,
}

/// A finite number, or nothing (NaN and infinities become empty cells).
fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

impl<'a> Line<'a> {
    /// The line of `row`'s `phase` (None: the row has no phases, e.g. it failed).
    fn new(w: &'a WorkloadResult, row: &'a Row, phase: Option<&'a PhaseResult>) -> Line<'a> {
        let usage = row.usage.as_ref();
        let op = phase.map(|p| main_op(&p.name));
        // The phase's own samples of its main operation (a mixed phase: its allocs).
        let latency = phase.zip(op).and_then(|(p, op)| {
            let mine = |l: &&Latency| l.op == op && l.phase == p.name;
            row.latency
                .iter()
                .find(mine)
                .or_else(|| row.latency.iter().find(|l| l.op == op))
        });
        let figures = phase.is_some();
        Line {
            workload: &w.name,
            arena_bytes: w.arena_bytes,
            allocator: &row.subject,
            phase: phase.map_or("", |p| p.name.as_str()),
            calls: phase.map(|p| p.calls),
            successes: phase.map(|p| p.successes),
            refusals: phase.map(|p| p.refusals),
            ns_per_op_median: phase.and_then(|p| finite(p.ns_per_op.median)),
            ns_per_op_q1: phase.and_then(|p| finite(p.ns_per_op.q1)),
            ns_per_op_q3: phase.and_then(|p| finite(p.ns_per_op.q3)),
            ns_per_op_min: phase.and_then(|p| finite(p.ns_per_op.min)),
            ns_per_op_max: phase.and_then(|p| finite(p.ns_per_op.max)),
            net_ns_per_op_median: phase.and_then(|p| finite(p.net_ns_per_op.median)),
            usage_factor: usage.and_then(|u| finite(u.factor)),
            vs_ideal_pow2: usage.and_then(|u| u.vs_ideal_pow2).and_then(finite),
            utilization: usage.and_then(|u| u.utilization).and_then(finite),
            latency_op: latency.map(|l| l.op.as_str()),
            latency_p50_ns: latency.and_then(|l| finite(l.p50)),
            latency_p99_ns: latency.and_then(|l| finite(l.p99)),
            latency_p999_ns: latency.and_then(|l| finite(l.p999)),
            latency_max_ns: latency.and_then(|l| finite(l.max)),
            minor_faults_per_rep: figures.then_some(row.kernel.minor_faults).and_then(finite),
            reproduced: figures.then_some(row.reproduced),
            failure: row.failure.as_deref(),
        }
    }
}

/// Writes the CSV of `results` to `out` (header, then one line per workload,
/// allocator and timed phase; one line with an empty phase for an allocator
/// with no phases, such as a failed one).
pub fn write(results: &CompareResults, out: impl Write) -> Result<()> {
    let mut csv = ::csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(out);
    csv.write_record(HEADER)?;
    for w in &results.workloads {
        for row in &w.rows {
            if row.phases.is_empty() {
                csv.serialize(Line::new(w, row, None))?;
            }
            for phase in &row.phases {
                csv.serialize(Line::new(w, row, Some(phase)))?;
            }
        }
    }
    csv.flush()?;
    Ok(())
}

/// Writes the CSV of `results` to the file at `path`.
pub fn write_file(results: &CompareResults, path: &Path) -> Result<()> {
    let file = std::fs::File::create(path)
        .with_context(|| format!("creating the CSV file {}", path.display()))?;
    write(results, std::io::BufWriter::new(file))
        .with_context(|| format!("writing the CSV file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::report::sample;

    fn csv_of(r: &CompareResults) -> String {
        let mut out = Vec::new();
        write(r, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn header_and_one_line_per_phase() {
        let r = sample::results(&sample::specs());
        let text = csv_of(&r);
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            "workload,arena_bytes,allocator,phase,calls,successes,refusals,\
             ns_per_op_median,ns_per_op_q1,ns_per_op_q3,ns_per_op_min,ns_per_op_max,\
             net_ns_per_op_median,usage_factor,vs_ideal_pow2,utilization,latency_op,\
             latency_p50_ns,latency_p99_ns,latency_p999_ns,latency_max_ns,\
             minor_faults_per_rep,reproduced,failure"
        );
        let expected: usize = r
            .workloads
            .iter()
            .flat_map(|w| &w.rows)
            .map(|row| row.phases.len().max(1))
            .sum();
        assert_eq!(lines.clone().count(), expected);

        let mut reader = ::csv::Reader::from_reader(text.as_bytes());
        let records: Vec<::csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        let find = |w: &str, a: &str, p: &str| {
            records
                .iter()
                .find(|r| &r[0] == w && &r[2] == a && &r[3] == p)
                .unwrap_or_else(|| panic!("no line {w} {a} {p}"))
                .clone()
        };
        // seed, kappa, free: 5 ns net + 1.5 ns empty call; usage repeated.
        let line = find("seed", "kappa", "free");
        assert_eq!(&line[1], "1048576");
        assert_eq!(&line[4], "1000");
        assert_eq!(line[7].parse::<f64>().unwrap(), 6.5);
        assert_eq!(line[12].parse::<f64>().unwrap(), 5.0);
        assert_eq!(line[13].parse::<f64>().unwrap(), 0.74);
        assert_eq!(&line[16], "free", "the free phase reports free latency");
        assert_eq!(line[17].parse::<f64>().unwrap(), 4.5);
        assert_eq!(&line[22], "true");
        assert_eq!(&line[23], "");
        // Realloc phases report realloc latency; mixed reports alloc.
        assert_eq!(&find("realloc", "kappa", "grow")[16], "realloc");
        assert_eq!(&find("churn", "kappa", "mixed")[16], "alloc");
        // Not an arena allocator: no usage cells.
        assert_eq!(&find("seed", "os-fallback", "alloc")[13], "");
        // A failed row: one line, empty phase and figures, the reason.
        let failed = find("realloc", "beta", "");
        assert_eq!(&failed[23], "no allocator_realloc");
        assert_eq!(&failed[7], "");
        assert_eq!(&failed[22], "");
    }

    #[test]
    fn odd_numbers_become_empty_cells() {
        let mut r = sample::results(&sample::specs());
        let row = &mut r.workloads[0].rows[0];
        row.phases[0].ns_per_op.median = f64::NAN;
        row.phases[0].net_ns_per_op.median = f64::INFINITY;
        row.usage.as_mut().unwrap().factor = f64::NAN;
        row.latency.clear();
        let text = csv_of(&r);
        let line = text.lines().nth(1).unwrap();
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!((cells[7], cells[12], cells[13]), ("", "", ""));
        assert_eq!((cells[16], cells[17]), ("", ""));
        assert!(!text.contains("NaN") && !text.contains("inf"));
    }

    #[test]
    fn header_matches_the_fields() {
        // serde's own header of a line is the hand-written one.
        let r = sample::results(&sample::specs());
        let (w, row) = (&r.workloads[0], &r.workloads[0].rows[0]);
        let mut csv = ::csv::Writer::from_writer(Vec::new());
        csv.serialize(Line::new(w, row, row.phases.first()))
            .unwrap();
        let text = String::from_utf8(csv.into_inner().unwrap()).unwrap();
        assert_eq!(text.lines().next().unwrap(), HEADER.join(","));
    }

    #[test]
    fn empty_results_give_the_header_only() {
        let mut r = sample::results(&sample::specs());
        r.workloads.clear();
        assert_eq!(csv_of(&r), format!("{}\n", HEADER.join(",")));
    }
}

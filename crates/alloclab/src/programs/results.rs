//! What `alloclab programs` reports: per program and allocator the runs'
//! times and peak RSS, their medians and ranges, and the ratios to glibc.

use serde::Serialize;

use super::set::InputSize;
use crate::toolkit::machine::Machine;

/// Figures of one allocator on one program.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProgramRow {
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

impl ProgramRow {
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
    pub rows: Vec<ProgramRow>,
}

/// Everything `alloclab programs` measured.
#[derive(Clone, Debug, Serialize)]
pub struct ProgramsResults {
    /// Where and when.
    pub machine: Machine,
    /// Timed runs per program and allocator.
    pub runs: usize,
    /// Input sizes.
    pub scale: InputSize,
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

pub(super) fn median(v: &[f64]) -> Option<f64> {
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

pub(super) fn range(v: &[f64]) -> Option<(f64, f64)> {
    let lo = v.iter().copied().reduce(f64::min)?;
    let hi = v.iter().copied().reduce(f64::max)?;
    Some((lo, hi))
}

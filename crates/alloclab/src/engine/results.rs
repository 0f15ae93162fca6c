//! What `alloclab compare` measured, as one serialisable value: the terminal
//! tables, `--json`, `--csv` and `--report` are all views of it.

use serde::{Deserialize, Serialize};

use super::workload::{IdealBounds, UsageKind};
use crate::allocators::facts::TypedFacts;
use crate::allocators::subject::Capabilities;
use crate::engine::settings::Settings;
use crate::toolkit::machine::Machine;

/// Everything one `compare` run produced.
#[derive(Clone, Debug, Serialize)]
pub struct CompareResults {
    /// Where and when.
    pub machine: Machine,
    /// How (repetitions, seed, pinning, timer costs).
    pub method: Method,
    /// Who was measured.
    pub subjects: Vec<SubjectInfo>,
    /// One entry per workload.
    pub workloads: Vec<WorkloadResult>,
}

/// How the numbers were taken.
#[derive(Clone, Debug, Serialize)]
pub struct Method {
    /// Timed repetitions per allocator and workload.
    pub repetitions: usize,
    /// `--quick`.
    pub quick: bool,
    /// Seed of every workload.
    pub seed: u64,
    /// The CPU the measuring thread was pinned to, if pinning worked.
    pub pinned_cpu: Option<usize>,
    /// Repetitions start cold (`--cold`: the arena flushed from the caches)
    /// rather than warm (a warm-up run from another seed first).
    pub cold: bool,
    /// Cost of one `Instant::now()` (ns, smallest of many back-to-back reads).
    pub instant_ns: f64,
    /// Cycle counter frequency (Hz), if there is one.
    pub tsc_hz: Option<f64>,
    /// Cost of the cycle-counter reading pair around one operation (cycles,
    /// median of empty pairs); subtracted from each latency sample.
    pub tsc_overhead_cycles: Option<f64>,
}

/// An allocator in the comparison.
#[derive(Clone, Debug, Serialize)]
pub struct SubjectInfo {
    /// Its name in the tables.
    pub name: String,
    /// Plugin path or "built into alloclab".
    pub origin: String,
    /// Ran in a child process (third-party plugins).
    pub isolated: bool,
    /// For one that ran in a child process: the settings that process
    /// measured with, as it reported them (cold or warm, the CPU it was
    /// pinned to).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_settings: Option<Settings>,
    /// Documented facts (built-in subjects), or what the plugin's
    /// `allocator_info` says.
    pub facts: Option<TypedFacts>,
    /// The plugin's own description, if it has `allocator_info`.
    pub description: Option<String>,
    /// Facts observed by the runner.
    pub observed: Observed,
}

/// Ease-of-use facts the runner observes rather than types.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Observed {
    /// The largest power of two every returned block was aligned to (over
    /// all checked passes).
    pub alignment: Option<usize>,
    /// What `free` of a pointer into the middle of a live block did.
    pub interior_free: Option<String>,
    /// What a second `free` of the same block did.
    pub double_free: Option<String>,
    /// What `free` of a pointer it never handed out did.
    pub foreign_free: Option<String>,
    /// What it does when the arena is full.
    pub exhaustion: Option<String>,
    /// The smallest arena on which `create` and one `alloc(1)` succeed.
    pub smallest_arena: Option<usize>,
    /// What it exports and supports.
    #[serde(flatten)]
    pub caps: Capabilities,
}

/// A summary of repeated measurements.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Summary {
    /// Median.
    pub median: f64,
    /// First quartile.
    pub q1: f64,
    /// Third quartile.
    pub q3: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Summary {
    /// The summary of `values` (any order); zeros for none.
    pub fn of(values: &[f64]) -> Summary {
        if values.is_empty() {
            return Summary::default();
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let pos = q * (v.len() - 1) as f64;
            let (i, frac) = (pos.floor() as usize, pos.fract());
            v[i] + (v[(i + 1).min(v.len() - 1)] - v[i]) * frac
        };
        Summary {
            median: at(0.5),
            q1: at(0.25),
            q3: at(0.75),
            min: v[0],
            max: v[v.len() - 1],
        }
    }

    /// Interquartile range relative to the median.
    pub fn relative_spread(&self) -> f64 {
        if self.median > 0.0 {
            (self.q3 - self.q1) / self.median
        } else {
            0.0
        }
    }
}

/// One workload over every allocator.
#[derive(Clone, Debug, Serialize)]
pub struct WorkloadResult {
    /// Short name.
    pub name: String,
    /// One line.
    pub description: String,
    /// Arena bytes.
    pub arena_bytes: usize,
    /// How usage is defined here.
    pub usage_kind: UsageKind,
    /// What ideal allocators would reach on the same requests.
    pub bounds: Option<IdealBounds>,
    /// The empty call (a function that does nothing, through the same
    /// pointer, in the same loop), per timed phase: ns per op.
    pub empty_call_ns: Vec<(String, f64)>,
    /// One row per allocator.
    pub rows: Vec<Row>,
}

/// One allocator on one workload.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The allocator.
    pub subject: String,
    /// Timed repetitions kept (fewer than asked when the allocator is too
    /// slow for the time budget).
    pub repetitions: usize,
    /// Why it has no figures, if it failed (crash, hang, wrong answer) or
    /// was too slow.
    pub failure: Option<String>,
    /// The failure is the time limit of a pass (`--pass-limit`): too slow
    /// for this workload, not wrong.
    pub too_slow: bool,
    /// Timed phases.
    pub phases: Vec<PhaseResult>,
    /// Per-operation latency from the cycle counter.
    pub latency: Vec<Latency>,
    /// Usage figures (usage workloads, arena allocators).
    pub usage: Option<Usage>,
    /// Kernel interaction during the timed phases, per repetition.
    pub kernel: Kernel,
    /// Every timed repetition made exactly the checked pass's choices.
    pub reproduced: bool,
    /// The allocator has no `allocator_realloc`: the runner served each
    /// realloc as alloc + copy + free (timed as one op).
    pub realloc_emulated: bool,
    /// After freeing everything, the largest block of a fresh arena could be
    /// allocated again (None: not probed).
    pub largest_restored: Option<bool>,
    /// The largest power of two (up to 4096) every block of the checked pass
    /// was aligned to.
    pub alignment: Option<usize>,
}

/// One timed phase of one allocator.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseResult {
    /// Phase name.
    pub name: String,
    /// Calls made (a free of a refused block is not a call).
    pub calls: usize,
    /// Allocations that succeeded.
    pub successes: usize,
    /// Allocations refused (NULL).
    pub refusals: usize,
    /// ns per call, over the repetitions.
    pub ns_per_op: Summary,
    /// ns per call minus the empty call's, over the repetitions.
    pub net_ns_per_op: Summary,
    /// The whole phase, seconds.
    pub total_s: Summary,
}

/// Latency percentiles of one kind of operation (ns).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Latency {
    /// The timed phase.
    pub phase: String,
    /// "alloc", "alloc refused", "free", "realloc", "realloc refused".
    pub op: String,
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

/// Usage figures.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Usage {
    /// The workload's usage factor (brief's or fill efficiency).
    pub factor: f64,
    /// `factor` / the ideal power-of-two bound.
    pub vs_ideal_pow2: Option<f64>,
    /// McKusick-Karels' utilization: requested / required, where required is
    /// what the allocator holds for the live blocks (`allocator_stats`).
    pub utilization: Option<f64>,
    /// Requested / (held for blocks + allocator metadata).
    pub utilization_with_metadata: Option<f64>,
}

/// Kernel interaction per timed repetition (means).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Kernel {
    /// Minor page faults.
    pub minor_faults: f64,
    /// Major page faults.
    pub major_faults: f64,
    /// Voluntary + involuntary context switches.
    pub context_switches: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_quartiles() {
        let s = Summary::of(&[5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!(
            (s.min, s.q1, s.median, s.q3, s.max),
            (1.0, 2.0, 3.0, 4.0, 5.0)
        );
        assert!((s.relative_spread() - 2.0 / 3.0).abs() < 1e-12);
        let s = Summary::of(&[1.0, 2.0]);
        assert_eq!(s.median, 1.5);
    }
}

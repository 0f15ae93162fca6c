//! The method: for each workload, a checked pass per allocator (never
//! timed), one warm-up, then `reps` timed repetitions with the allocators
//! interleaved (rotated each round), each on a fresh allocator over the same
//! pre-faulted arena, after evicting the arena, the slot table and the
//! script from every cache level and scrambling the branch predictor; every
//! timed repetition must make exactly the choices of the checked pass. Then
//! one latency pass per allocator with the cycle counter around each call.
//!
//! This file is the schedule across allocators; what one allocator does in
//! each pass is `passes.rs`, where it runs is `entry.rs`.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use super::entry::{Entry, RunsIn};
use super::exec;
use super::measure::Rusage;
use super::passes::{CheckedOut, RepOut, one_rep};
use super::results::*;
use super::scripts::WorkloadSpec;
use super::settings::Settings;
use super::workload::{self, Script};
use crate::arena::Arena;

/// What to run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Timed repetitions.
    pub reps: usize,
    /// The `--quick` scale.
    pub quick: bool,
    /// Seed of every workload.
    pub seed: u64,
    /// Seconds of timed repetitions one allocator may take on one workload:
    /// an allocator slower than `budget_s / reps` per repetition gets fewer
    /// (at least `min_reps`), and its row says how many.
    pub budget_s: f64,
    /// The fewest repetitions an allocator gets.
    pub min_reps: usize,
    /// Seconds above which one repetition (with its warm-up) marks an
    /// allocator as slow: it skips the warm-ups and may get as few as 3
    /// repetitions.
    pub slow_s: f64,
    /// Cold or warm, the worker's deadline, the CPU: for every allocator,
    /// wherever it runs.
    pub settings: Settings,
}

/// Per-subject accumulation for one workload.
struct Acc {
    checked: CheckedOut,
    /// Per timed phase: per-repetition (seconds, calls).
    times: Vec<Vec<(f64, usize)>>,
    kernel: Vec<Rusage>,
    reproduced: bool,
    latency: Vec<Latency>,
    /// Timed repetitions it may have (fewer when it is slow).
    allowed: usize,
    /// One repetition with its warm-up took over `Plan::slow_s`: no more
    /// warm-ups.
    slow: bool,
}

impl Acc {
    /// Failed or too slow: no timed repetitions.
    fn failed(&self) -> bool {
        self.checked.failure.is_some()
    }

    /// Keeps a timed repetition's figures.
    fn keep(&mut self, rep: RepOut) {
        if self.checked.signature.as_ref() != Some(&rep.signature) {
            self.reproduced = false;
        }
        for (k, t) in rep.times.into_iter().enumerate() {
            self.times[k].push(t);
        }
        self.kernel.push(rep.kernel);
    }

    /// After the warm-up round (which took `each` seconds): how many
    /// repetitions fit the time budget, and whether it is slow.
    fn budget(&mut self, plan: &Plan, mut each: f64) {
        each = each.max(1e-9);
        if each > plan.slow_s {
            self.slow = true;
            each /= 2.0; // no more warm-up
        }
        let fits = (plan.budget_s / each) as usize;
        let least = if self.slow { 3 } else { plan.min_reps };
        self.allowed = fits.clamp(least.min(plan.reps), plan.reps);
    }
}

/// What every workload of one `compare` run shares.
pub struct Bench<'a> {
    /// The pre-faulted arena (as large as the largest workload's).
    pub arena: &'a Arena,
    /// Repetitions and the like.
    pub plan: &'a Plan,
    /// Clock costs.
    pub method: &'a Method,
    /// Progress.
    pub bar: &'a ProgressBar,
}

/// One workload as the schedule runs it.
struct Work<'a> {
    script: &'a Script,
    warmup: &'a Script,
    bench: &'a Bench<'a>,
}

impl Work<'_> {
    /// The warm-up to run before a repetition of an allocator (none once
    /// it is slow).
    fn warmup_for(&self, acc: &Acc) -> Option<&Script> {
        (!acc.slow).then_some(self.warmup)
    }
}

/// Runs one workload on every entry: a checked pass each, then the timed
/// rounds (the empty call among them), then a latency pass each.
pub fn run_workload(
    script: &Script,
    warmup: &Script,
    spec: &WorkloadSpec,
    entries: &mut [Entry],
    bench: &Bench,
) -> WorkloadResult {
    assert!(
        exec::validate(script),
        "workload {} names a slot out of range",
        script.name
    );
    let work = Work {
        script,
        warmup,
        bench,
    };
    let bounds = workload::ideal_bounds(script);
    let timed_phases: Vec<&str> = script
        .phases
        .iter()
        .filter(|p| p.timed)
        .map(|p| p.name)
        .collect();
    let mut accs = checked_passes(&work, spec, entries, bounds, timed_phases.len());
    let empty_times = timed_rounds(&work, entries, &mut accs, timed_phases.len());
    latency_passes(&work, entries, &mut accs);
    let empty_call_ns: Vec<(String, f64)> = timed_phases
        .iter()
        .zip(&empty_times)
        .map(|(name, v)| (name.to_string(), Summary::of(&per_op(v)).median))
        .collect();
    let rows = entries
        .iter()
        .zip(accs)
        .map(|(entry, acc)| row(script, &timed_phases, &empty_call_ns, entry, acc))
        .collect();
    WorkloadResult {
        name: script.name.clone(),
        description: script.description.clone(),
        arena_bytes: script.arena,
        usage_kind: script.usage,
        bounds,
        empty_call_ns,
        rows,
    }
}

/// Every entry's checked pass (a worker first makes the workload's scripts).
fn checked_passes(
    work: &Work,
    spec: &WorkloadSpec,
    entries: &mut [Entry],
    bounds: Option<workload::IdealBounds>,
    timed_phases: usize,
) -> Vec<Acc> {
    let bar = work.bench.bar;
    bar.set_message(format!("{}: checked pass", work.script.name));
    let mut accs = Vec::new();
    for entry in entries.iter_mut() {
        let ready = match &mut entry.exec {
            RunsIn::Worker(w) => w.workload(spec),
            RunsIn::Local(_) | RunsIn::Failed(_) => Ok(()),
        };
        let checked = match ready {
            Ok(()) => entry.checked(work.script, work.bench.arena, bounds),
            Err(e) => CheckedOut {
                failure: Some(e),
                ..CheckedOut::default()
            },
        };
        accs.push(Acc {
            checked,
            times: vec![Vec::new(); timed_phases],
            kernel: Vec::new(),
            reproduced: true,
            latency: Vec::new(),
            allowed: work.bench.plan.reps,
            slow: false,
        });
        bar.inc(1);
    }
    accs
}

/// The timed rounds: round 0 is the warm-up (run like the others, not
/// kept; its duration sets how many repetitions a slow allocator gets
/// within the time budget), then `reps` rounds with the allocators and the
/// empty call rotated each round. Returns the empty call's times per timed
/// phase.
fn timed_rounds(
    work: &Work,
    entries: &mut [Entry],
    accs: &mut [Acc],
    timed_phases: usize,
) -> Vec<Vec<(f64, usize)>> {
    let Bench {
        arena, plan, bar, ..
    } = *work.bench;
    bar.set_message(format!("{}: timed repetitions", work.script.name));
    let empty = crate::allocators::empty_call();
    let mut empty_times: Vec<Vec<(f64, usize)>> = vec![Vec::new(); timed_phases];
    let mut order: Vec<Option<usize>> = (0..entries.len())
        .filter(|&i| !accs[i].failed())
        .map(Some)
        .collect();
    order.push(None);
    for round in 0..=plan.reps {
        order.rotate_left(1);
        for &who in &order {
            let Some(i) = who else {
                let rep = one_rep(
                    &empty,
                    work.script,
                    Some(work.warmup),
                    &plan.settings,
                    arena,
                    round as u64,
                )
                .unwrap_or_else(|e| panic!("the empty call failed: {e}"));
                if round > 0 {
                    for (k, t) in rep.times.into_iter().enumerate() {
                        empty_times[k].push(t);
                    }
                }
                continue;
            };
            let acc = &mut accs[i];
            if acc.failed() || round > acc.allowed {
                continue;
            }
            let started = Instant::now();
            let rep = entries[i].rep(work.script, work.warmup_for(acc), arena, round as u64);
            if round == 0 {
                acc.budget(plan, started.elapsed().as_secs_f64());
                bar.inc((plan.reps - acc.allowed) as u64);
            }
            match rep {
                Err(e) => acc.checked.failure = Some(e),
                Ok(_) if round == 0 => {}
                Ok(rep) => {
                    acc.keep(rep);
                    bar.inc(1);
                }
            }
        }
    }
    empty_times
}

/// Every entry's latency pass (with the cycle counter, where there is one).
fn latency_passes(work: &Work, entries: &mut [Entry], accs: &mut [Acc]) {
    let Bench {
        arena, method, bar, ..
    } = *work.bench;
    bar.set_message(format!("{}: latency pass", work.script.name));
    let (Some(hz), Some(overhead)) = (method.tsc_hz, method.tsc_overhead_cycles) else {
        return;
    };
    for (entry, acc) in entries.iter_mut().zip(accs) {
        if !acc.failed() {
            match entry.latency(work.script, work.warmup_for(acc), arena, (hz, overhead)) {
                Ok(l) => acc.latency = l,
                Err(e) => acc.checked.failure = Some(e),
            }
        }
        bar.inc(1);
    }
}

/// Nanoseconds per call of each (seconds, calls).
/// ns per call of each repetition; NaN (no figure) for a repetition that
/// made no call (a phase left empty because every allocation was refused: its
/// time is the loop's, not any call's).
fn per_op(v: &[(f64, usize)]) -> Vec<f64> {
    v.iter()
        .map(|&(s, n)| if n == 0 { f64::NAN } else { s * 1e9 / n as f64 })
        .collect()
}

/// One entry's row of the workload's results.
fn row(
    script: &Script,
    timed_phases: &[&str],
    empty_call_ns: &[(String, f64)],
    entry: &Entry,
    acc: Acc,
) -> Row {
    let checked = acc.checked;
    let timed_outcomes: Vec<exec::PhaseOutcome> = checked
        .signature
        .as_ref()
        .map(|s| {
            s.0.iter()
                .zip(&script.phases)
                .filter(|(_, p)| p.timed)
                .map(|(o, _)| o.0)
                .collect()
        })
        .unwrap_or_default();
    let phases = if checked.failure.is_some() {
        Vec::new()
    } else {
        timed_phases
            .iter()
            .enumerate()
            .map(|(k, name)| {
                let ns = per_op(&acc.times[k]);
                let net: Vec<f64> = ns.iter().map(|x| x - empty_call_ns[k].1).collect();
                let outcome = timed_outcomes.get(k).copied().unwrap_or_default();
                PhaseResult {
                    name: name.to_string(),
                    calls: outcome.calls,
                    successes: outcome.successes,
                    refusals: outcome.refusals,
                    ns_per_op: Summary::of(&ns),
                    net_ns_per_op: Summary::of(&net),
                    total_s: Summary::of(&acc.times[k].iter().map(|t| t.0).collect::<Vec<_>>()),
                }
            })
            .collect()
    };
    let n = acc.kernel.len().max(1) as f64;
    let mean = |f: fn(&Rusage) -> i64| acc.kernel.iter().map(|k| f(k) as f64).sum::<f64>() / n;
    Row {
        subject: entry.name.clone(),
        repetitions: acc.times.first().map_or(0, Vec::len),
        failure: checked.failure,
        too_slow: checked.too_slow,
        phases,
        latency: acc.latency,
        usage: checked.usage,
        kernel: Kernel {
            minor_faults: mean(|k| k.minflt),
            major_faults: mean(|k| k.majflt),
            context_switches: mean(|k| k.csw),
        },
        reproduced: acc.reproduced,
        realloc_emulated: script.has_realloc() && !entry.caps.has_realloc,
        largest_restored: checked.largest_restored,
        alignment: (checked.address_bits != 0)
            .then(|| 1usize << checked.address_bits.trailing_zeros().min(12)),
    }
}

/// A progress bar over `steps` steps on stderr (hidden when stderr is not a terminal).
pub fn progress(steps: u64) -> ProgressBar {
    let bar = ProgressBar::new(steps);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

/// Steps of one workload for the progress bar.
pub fn steps(subjects: usize, plan: &Plan) -> u64 {
    (subjects * (plan.reps + 2)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repetition_without_calls_has_no_time_per_call() {
        let ns = per_op(&[(2e-6, 1000), (9e-6, 0)]);
        assert!((ns[0] - 2.0).abs() < 1e-9, "{ns:?}");
        assert!(
            ns[1].is_nan(),
            "the loop's time over no call is no figure: {ns:?}"
        );
        assert!(Summary::of(&ns[1..]).median.is_nan());
    }
}

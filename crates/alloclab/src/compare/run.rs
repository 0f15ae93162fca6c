//! The method: for each workload, a checked pass per allocator (never
//! timed), one warm-up, then `reps` timed repetitions with the allocators
//! interleaved (rotated each round), each on a fresh allocator over the same
//! pre-faulted arena, after evicting the arena, the slot table and the
//! script from every cache level and scrambling the branch predictor; every
//! timed repetition must make exactly the choices of the checked pass. Then
//! one latency pass per allocator with the cycle counter around each call.

use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use plugin_abi::Allocator;
use plugin_abi::loader::PluginApi;

use serde::{Deserialize, Serialize};

use super::exec::{self, Calls, Class, Signature, Slots};
use super::measure::{self, Rusage};
use super::results::*;
use super::worker::{StartError, Worker, WorkloadSpec};
use super::workload::{self, Script, UsageKind};
use crate::arena::Arena;
use crate::facts::TypedFacts;
use crate::subject::{Spec, Subject};

/// What to run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Timed repetitions.
    pub reps: usize,
    /// The `--quick` scale.
    pub quick: bool,
    /// Seed of every workload.
    pub seed: u64,
    /// Pin the measuring thread to one CPU.
    pub pin: bool,
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
}

/// What a subject's checked pass found.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CheckedOut {
    /// Why the subject cannot be measured on this workload.
    pub failure: Option<String>,
    /// The choices every timed repetition must reproduce.
    pub signature: Option<Signature>,
    /// Usage figures.
    pub usage: Option<Usage>,
    /// After freeing everything the largest fresh block came back.
    pub largest_restored: Option<bool>,
    /// OR of every block address.
    pub address_bits: usize,
}

/// One timed repetition's figures.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RepOut {
    /// Per timed phase: (seconds, calls).
    pub times: Vec<(f64, usize)>,
    /// Kernel counters over the timed phases.
    pub kernel: Rusage,
    /// The choices made.
    pub signature: Signature,
}

/// Per-subject accumulation for one workload.
struct Acc {
    checked: CheckedOut,
    /// Per timed phase: per-repetition (seconds, calls).
    times: Vec<Vec<(f64, usize)>>,
    kernel: Vec<Rusage>,
    reproduced: bool,
    latency: Vec<Latency>,
}

/// Where a subject runs: in this process, or in a worker child process.
pub enum Exec {
    /// A trusted allocator, called in this process.
    Local(Box<Subject>),
    /// A third-party plugin, called in a child process.
    Worker(Worker),
    /// A third-party plugin that failed as it was loaded: why (its rows
    /// say so).
    Failed(String),
}

/// An allocator of the comparison and where it runs.
pub struct Entry {
    /// Its name in the tables.
    pub name: String,
    /// How to make it again (for the probes' child processes).
    pub spec: Spec,
    /// Creation flags.
    pub flags: u32,
    /// Its blocks lie in the arena.
    pub blocks_in_arena: bool,
    /// Documented facts (built-in allocators).
    pub facts: Option<TypedFacts>,
    /// The plugin's `allocator_info` description.
    pub description: Option<String>,
    /// It exports `allocator_realloc`.
    pub has_realloc: bool,
    /// It exports `allocator_stats`.
    pub has_stats: bool,
    /// It exports `allocator_check`.
    pub has_check: bool,
    /// It supports `ALLOCATOR_FLAG_LOCKED`.
    pub lockable: bool,
    /// Where it runs.
    pub exec: Exec,
}

impl Entry {
    /// An allocator called in this process.
    pub fn local(subject: Subject) -> Entry {
        Entry {
            name: subject.name.clone(),
            spec: subject.spec.clone(),
            flags: subject.flags,
            blocks_in_arena: subject.blocks_in_arena,
            facts: subject.facts,
            description: subject.description(),
            has_realloc: subject.api.realloc.is_some(),
            has_stats: subject.api.stats.is_some(),
            has_check: subject.api.check.is_some(),
            lockable: subject.lockable(),
            exec: Exec::Local(Box::new(subject)),
        }
    }

    /// A third-party plugin, called in a child process; one that fails as
    /// it is loaded (crashes, hangs, says wrong things about itself) is an
    /// entry whose rows say why. An error when nothing loadable is there.
    pub fn isolated(path: &std::path::Path) -> Result<Entry, String> {
        let (worker, hello) = match Worker::start(path, 0) {
            Ok(started) => started,
            Err(StartError::NotLoadable(why)) => return Err(why),
            Err(StartError::Failed(why)) => {
                return Ok(Entry {
                    name: crate::subject::file_stem_name(path),
                    spec: Spec::Plugin(path.to_path_buf()),
                    flags: 0,
                    blocks_in_arena: true,
                    facts: None,
                    description: None,
                    has_realloc: false,
                    has_stats: false,
                    has_check: false,
                    lockable: false,
                    exec: Exec::Failed(why),
                });
            }
        };
        Ok(Entry {
            name: hello.name,
            spec: Spec::Plugin(path.to_path_buf()),
            flags: 0,
            blocks_in_arena: true,
            facts: None,
            description: hello.description,
            has_realloc: hello.has_realloc,
            has_stats: hello.has_stats,
            has_check: hello.has_check,
            lockable: hello.lockable,
            exec: Exec::Worker(worker),
        })
    }
}

/// The empty call: functions with the allocator ABI that do nothing, called
/// in the same loop as every allocator; what they cost is the loop's and the
/// indirect call's share of every figure.
mod empty {
    use std::ffi::c_void;

    use plugin_abi::Allocator;
    use plugin_abi::loader::PluginApi;

    unsafe extern "C" fn create(memory: *mut c_void, _size: usize) -> *mut Allocator {
        memory.cast()
    }
    unsafe extern "C" fn destroy(_a: *mut Allocator) {}
    unsafe extern "C" fn alloc(a: *mut Allocator, _size: usize) -> *mut c_void {
        a.cast::<u8>().wrapping_add(64).cast()
    }
    unsafe extern "C" fn free(_a: *mut Allocator, _p: *mut c_void) {}
    unsafe extern "C" fn realloc(a: *mut Allocator, p: *mut c_void, _size: usize) -> *mut c_void {
        if p.is_null() {
            a.cast::<u8>().wrapping_add(64).cast()
        } else {
            p
        }
    }

    /// The empty function table.
    pub fn api() -> PluginApi {
        PluginApi {
            create,
            destroy,
            alloc,
            free,
            realloc: Some(realloc),
            create_with_flags: None,
            alloc_aligned: None,
            usable_size: None,
            stats: None,
            check: None,
            info: None,
            add_region: None,
        }
    }
}

/// Creates an allocator of `subject` on the first `len` bytes of `arena`.
fn create(subject: &Subject, arena: &Arena, len: usize) -> Result<*mut Allocator, String> {
    // SAFETY: the arena is mapped, pre-faulted, at least `len` bytes, and
    // used by this allocator alone until it is destroyed.
    let a = unsafe { subject.create(arena.as_ptr(), len) };
    if a.is_null() {
        Err(format!("allocator_create refused a {len}-byte arena"))
    } else {
        Ok(a)
    }
}

/// The largest single allocation a fresh allocator serves (binary search,
/// each probe on a fresh allocator).
fn largest_fresh_block(subject: &Subject, arena: &Arena, len: usize) -> Option<usize> {
    let fits = |size: usize| {
        let Ok(a) = create(subject, arena, len) else {
            return false;
        };
        // SAFETY: `a` is live; the block is freed before destroy.
        unsafe {
            let p = (subject.api.alloc)(a, size);
            if !p.is_null() {
                (subject.api.free)(a, p);
            }
            subject.destroy(a);
            !p.is_null()
        }
    };
    if !fits(1) {
        return None;
    }
    let (mut lo, mut hi) = (1usize, len); // fits(lo), and nothing above len fits
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid) { lo = mid } else { hi = mid - 1 }
    }
    Some(lo)
}

/// The smallest arena (within 0.5%) on which `subject` runs the whole script
/// without refusing anything, or None if even the script's own arena is too small.
fn smallest_arena(subject: &Subject, script: &Script, arena: &Arena) -> Option<usize> {
    let calls = Calls::of(&subject.api);
    let mut slots = Slots::new(script, &calls);
    let mut runs = |len: usize| {
        let Ok(a) = create(subject, arena, len) else {
            return false;
        };
        slots.clear();
        let mut refused = 0;
        for phase in &script.phases {
            // SAFETY: as in `timed_rep`.
            refused += unsafe { exec::run_phase(calls, a, phase, &mut slots) }.refusals;
        }
        // SAFETY: `a` is live and not used afterwards.
        unsafe { subject.destroy(a) };
        refused == 0
    };
    if !runs(script.arena) {
        return None;
    }
    let (mut lo, mut hi) = (script.peak_live.max(1), script.arena); // !runs(lo - 1) unknown, runs(hi)
    while hi - lo > hi / 200 {
        let mid = lo + (hi - lo) / 2;
        if runs(mid) { hi = mid } else { lo = mid + 1 }
    }
    Some(hi)
}

fn signature_of(outcomes: Vec<(exec::PhaseOutcome, u64)>) -> Signature {
    Signature(outcomes)
}

/// Evicts what the previous repetition touched and scrambles the predictor.
/// Whether repetitions start cold (`--cold`): see [`prepare`].
pub static COLD: AtomicBool = AtomicBool::new(false);

/// Puts the machine in the same state before every repetition, whatever the
/// previous one (of this allocator or another) left.
///
/// *Warm* (the default): the allocator first runs the same workload
/// generated from another seed (`warmup`), untimed, on an allocator that is
/// then destroyed; its code, its metadata and the memory it hands out are in
/// the caches, as in a program that has been allocating for a while, and
/// this is equally true of the system allocators, whose heaps the runner
/// cannot see. Then the branch predictor is scrambled, so nothing it learnt
/// is the timed sequence's own.
///
/// An allocator so slow that one repetition takes seconds (`warmup` None)
/// skips the warm-up: caches cannot matter at that speed.
///
/// *Cold* (`--cold`): the arena, the slot table and the script are flushed
/// from every cache level and the predictor scrambled: every first touch of
/// the arena goes to memory, as on a fresh heap (a system allocator's own
/// heap cannot be flushed, so cold figures favour them).
fn prepare(
    subject: &Subject,
    warmup: Option<&Script>,
    arena: &Arena,
    script: &Script,
    slots: &mut Slots,
    round: u64,
) {
    if COLD.load(Ordering::Relaxed) {
        measure::flush_range(arena.as_ptr().cast(), script.arena);
        measure::flush_range(
            slots.ptrs.as_ptr().cast(),
            std::mem::size_of_val(slots.ptrs.as_slice()),
        );
        for phase in &script.phases {
            measure::flush_range(
                phase.ops.as_ptr().cast(),
                std::mem::size_of_val(phase.ops.as_slice()),
            );
        }
    } else if let Some(Ok((warmup, a))) =
        warmup.map(|w| create(subject, arena, w.arena).map(|a| (w, a)))
    {
        let calls = Calls::of(&subject.api);
        let mut warm_slots = Slots::new(warmup, &calls);
        for phase in &warmup.phases {
            // SAFETY: as in `timed_rep`; the warm-up script was validated too.
            unsafe { exec::run_phase(calls, a, phase, &mut warm_slots) };
        }
        // SAFETY: `a` is live and not used afterwards.
        unsafe { subject.destroy(a) };
        slots.clear();
    }
    measure::scramble_branch_predictor(round);
}

/// One subject's checked pass: correctness, usage, the choices every timed
/// repetition must reproduce, and whether the largest block comes back.
pub fn checked_pass(
    subject: &Subject,
    script: &Script,
    arena: &Arena,
    bounds: Option<workload::IdealBounds>,
) -> CheckedOut {
    let mut out = CheckedOut::default();
    let len = script.arena;
    let largest = subject
        .blocks_in_arena
        .then(|| largest_fresh_block(subject, arena, len))
        .flatten();
    // The bytes of the shared arena beyond this workload's must stay as
    // they are: a write there is a write outside the allocator's arena.
    arena.mark_beyond(len);
    let a = match create(subject, arena, len) {
        Ok(a) => a,
        Err(e) => {
            out.failure = Some(e);
            return out;
        }
    };
    let mut slots = vec![null_mut(); script.slots];
    let in_arena = subject
        .blocks_in_arena
        .then(|| arena.bounds())
        .map(|(lo, _)| (lo, lo + len));
    let check_fn = subject.api.check;
    let check = || {
        // SAFETY: `a` is live while the checked loop runs.
        check_fn.is_none_or(|f| unsafe { f(a) } == 0)
    };
    let mut stats_after_first = Ok(None);
    // SAFETY: `a` is a fresh allocator on `arena`; slots are NULL and sized
    // for the script.
    let result = unsafe {
        exec::run_checked(
            Calls::of(&subject.api),
            a,
            script,
            &mut slots,
            in_arena,
            &check,
            || {
                stats_after_first = subject.stats(a, len);
            },
        )
    };
    if let (Ok(_), Some(l)) = (&result, largest) {
        // SAFETY: `a` is live and everything was freed by the script.
        out.largest_restored = Some(unsafe {
            let p = (subject.api.alloc)(a, l);
            if !p.is_null() {
                (subject.api.free)(a, p);
            }
            !p.is_null()
        });
    }
    // SAFETY: `a` is live and not used afterwards (the arena search below
    // creates allocators of its own over the same memory).
    unsafe { subject.destroy(a) };
    let outside = subject
        .blocks_in_arena
        .then(|| arena.changed_beyond(len))
        .flatten();
    let result = result
        .and_then(|checked| match outside {
            Some(at) => Err(format!(
                "wrote outside its arena (byte {at} after its end changed)"
            )),
            None => Ok(checked),
        })
        .and_then(|checked| stats_after_first.map(|s| (checked, s)));
    match result {
        Err(e) => out.failure = Some(format!("wrong answer: {e}")),
        Ok((checked, stats_after_first)) => {
            out.address_bits |= checked.address_bits;
            if subject.blocks_in_arena && script.usage == UsageKind::Trace {
                out.usage = smallest_arena(subject, script, arena).map(|len| Usage {
                    factor: script.peak_live as f64 / len as f64,
                    vs_ideal_pow2: None,
                    utilization: None,
                    utilization_with_metadata: None,
                });
            } else if subject.blocks_in_arena && script.usage != UsageKind::None {
                let factor = checked.requested_after_first as f64 / len as f64;
                let req = checked.requested_after_first as f64;
                out.usage = Some(Usage {
                    factor,
                    vs_ideal_pow2: bounds.map(|b| factor / b.pow2),
                    utilization: stats_after_first.map(|s| req / s.bytes_reserved.max(1) as f64),
                    utilization_with_metadata: stats_after_first
                        .map(|s| req / (s.bytes_reserved + s.metadata_bytes).max(1) as f64),
                });
            }
            out.signature = Some(signature_of(checked.signature));
        }
    }
    out
}

/// One timed repetition on a fresh allocator, after a scrub.
pub fn one_rep(
    subject: &Subject,
    script: &Script,
    warmup: Option<&Script>,
    arena: &Arena,
    round: u64,
) -> Result<RepOut, String> {
    let mut slots = Slots::new(script, &Calls::of(&subject.api));
    prepare(subject, warmup, arena, script, &mut slots, round);
    let a = create(subject, arena, script.arena)?;
    let (times, kernel, signature) = timed_rep(&subject.api, a, script, &mut slots);
    // SAFETY: `a` is live and not used afterwards.
    unsafe { subject.destroy(a) };
    Ok(RepOut {
        times,
        kernel,
        signature,
    })
}

/// One plain run of the whole script; returns per timed phase (seconds,
/// calls), the kernel counters of the timed phases, and the signature.
fn timed_rep(
    api: &PluginApi,
    a: *mut Allocator,
    script: &Script,
    slots: &mut Slots,
) -> (Vec<(f64, usize)>, Rusage, Signature) {
    let calls = Calls::of(api);
    let mut times = Vec::new();
    let mut kernel = Rusage::default();
    let mut sig = Vec::new();
    for phase in &script.phases {
        let r0 = Rusage::now();
        let t0 = Instant::now();
        // SAFETY: `a` is live; slots hold NULL or its blocks; the script was
        // validated.
        let out = unsafe { exec::run_phase(calls, a, phase, slots) };
        let t1 = Instant::now();
        let r1 = Rusage::now();
        if phase.timed {
            times.push(((t1 - t0).as_secs_f64(), out.calls));
            let d = r1.since(r0);
            kernel.minflt += d.minflt;
            kernel.majflt += d.majflt;
            kernel.csw += d.csw;
        }
        sig.push((out, exec::occupancy_hash(&slots.ptrs)));
    }
    (times, kernel, Signature(sig))
}

/// The latency pass: cycle counts per call of the timed phases.
#[cfg(target_arch = "x86_64")]
pub fn latency_pass(
    subject: &Subject,
    script: &Script,
    warmup: Option<&Script>,
    arena: &Arena,
    tsc_hz: f64,
    overhead: f64,
) -> Vec<Latency> {
    let mut slots = Slots::new(script, &Calls::of(&subject.api));
    let slots = &mut slots;
    let mut samples = Vec::with_capacity(script.phases.iter().map(|p| p.ops.len()).sum());
    prepare(subject, warmup, arena, script, slots, 7);
    let Ok(a) = create(subject, arena, script.arena) else {
        return Vec::new();
    };
    let calls = Calls::of(&subject.api);
    let ns = |cycles: u64| cycles as f64 * 1e9 / tsc_hz;
    let mut out = Vec::new();
    for phase in &script.phases {
        if !phase.timed {
            // SAFETY: as in `timed_rep`.
            unsafe { exec::run_phase(calls, a, phase, slots) };
            continue;
        }
        samples.clear();
        // SAFETY: as in `timed_rep`.
        unsafe { exec::run_phase_latency(calls, a, phase, slots, &mut samples) };
        out.extend(Class::ALL.iter().filter_map(|&class| {
            let mut h = Histogram::<u64>::new_with_bounds(1, 1 << 40, 3).ok()?;
            for s in samples.iter().filter(|&&s| s & 7 == class as u64) {
                let cycles = ((s >> 3) as f64 - overhead).max(0.0) as u64;
                h.saturating_record(cycles);
            }
            (!h.is_empty()).then(|| Latency {
                phase: phase.name.into(),
                op: class.name().into(),
                count: h.len(),
                p50: ns(h.value_at_quantile(0.5)),
                p99: ns(h.value_at_quantile(0.99)),
                p999: ns(h.value_at_quantile(0.999)),
                max: ns(h.max()),
            })
        }));
    }
    // SAFETY: `a` is live and not used afterwards.
    unsafe { subject.destroy(a) };
    out
}

#[cfg(not(target_arch = "x86_64"))]
pub fn latency_pass(
    _: &Subject,
    _: &Script,
    _: &Script,
    _: &Arena,
    _: f64,
    _: f64,
) -> Vec<Latency> {
    Vec::new()
}

impl Entry {
    fn checked(
        &mut self,
        script: &Script,
        arena: &Arena,
        bounds: Option<workload::IdealBounds>,
    ) -> CheckedOut {
        match &mut self.exec {
            Exec::Local(subject) => checked_pass(subject, script, arena, bounds),
            Exec::Worker(w) => w.checked(bounds).unwrap_or_else(|e| CheckedOut {
                failure: Some(e),
                ..CheckedOut::default()
            }),
            Exec::Failed(why) => CheckedOut {
                failure: Some(why.clone()),
                ..CheckedOut::default()
            },
        }
    }

    fn rep(
        &mut self,
        script: &Script,
        warmup: Option<&Script>,
        arena: &Arena,
        round: u64,
    ) -> Result<RepOut, String> {
        match &mut self.exec {
            Exec::Local(subject) => one_rep(subject, script, warmup, arena, round),
            Exec::Worker(w) => w.rep(round, warmup.is_some()),
            Exec::Failed(why) => Err(why.clone()),
        }
    }

    fn latency(
        &mut self,
        script: &Script,
        warmup: Option<&Script>,
        arena: &Arena,
        hz: f64,
        overhead: f64,
    ) -> Result<Vec<Latency>, String> {
        match &mut self.exec {
            Exec::Local(subject) => Ok(latency_pass(subject, script, warmup, arena, hz, overhead)),
            Exec::Worker(w) => w.latency(hz, overhead, warmup.is_some()),
            Exec::Failed(why) => Err(why.clone()),
        }
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

/// Runs one workload on every entry.
pub fn run_workload(
    script: &Script,
    warmup: &Script,
    spec: &WorkloadSpec,
    entries: &mut [Entry],
    bench: &Bench,
) -> WorkloadResult {
    let Bench {
        arena,
        plan,
        method,
        bar,
    } = *bench;
    assert!(
        exec::validate(script),
        "workload {} names a slot out of range",
        script.name
    );
    let needs_realloc = script.has_realloc();
    let bounds = workload::ideal_bounds(script);
    let timed_phases: Vec<&str> = script
        .phases
        .iter()
        .filter(|p| p.timed)
        .map(|p| p.name)
        .collect();
    let mut accs: Vec<Acc> = entries
        .iter()
        .map(|_| Acc {
            checked: CheckedOut::default(),
            times: vec![Vec::new(); timed_phases.len()],
            kernel: Vec::new(),
            reproduced: true,
            latency: Vec::new(),
        })
        .collect();

    bar.set_message(format!("{}: checked pass", script.name));
    for (entry, acc) in entries.iter_mut().zip(&mut accs) {
        let ready = match &mut entry.exec {
            Exec::Worker(w) => w.workload(spec),
            Exec::Local(_) | Exec::Failed(_) => Ok(()),
        };
        acc.checked = match ready {
            Ok(()) => entry.checked(script, arena, bounds),
            Err(e) => CheckedOut {
                failure: Some(e),
                ..CheckedOut::default()
            },
        };
        bar.inc(1);
    }

    // The empty call takes part in the rotation like any allocator.
    let empty = Subject::builtin("empty call", empty::api(), crate::fallback::FACTS);
    let mut empty_times: Vec<Vec<(f64, usize)>> = vec![Vec::new(); timed_phases.len()];
    let mut order: Vec<Option<usize>> = (0..entries.len())
        .filter(|&i| accs[i].checked.failure.is_none())
        .map(Some)
        .collect();
    order.push(None);

    bar.set_message(format!("{}: timed repetitions", script.name));
    // Round 0 is the warm-up: run like the others, not kept. Its duration
    // sets how many repetitions a slow allocator gets within the time budget.
    let mut allowed = vec![plan.reps; entries.len()];
    // Allocators for which one repetition (with its warm-up) takes more than
    // `plan.slow_s` skip the warm-ups from then on.
    let mut slow = vec![false; entries.len()];
    for round in 0..=plan.reps {
        order.rotate_left(1);
        for &who in &order {
            let started = Instant::now();
            let rep = match who {
                Some(i) if accs[i].checked.failure.is_some() => continue,
                Some(i) if round > allowed[i] => continue,
                Some(i) => {
                    entries[i].rep(script, (!slow[i]).then_some(warmup), arena, round as u64)
                }
                None => one_rep(&empty, script, Some(warmup), arena, round as u64),
            };
            if let (Some(i), 0) = (who, round) {
                let mut each = started.elapsed().as_secs_f64().max(1e-9);
                if each > plan.slow_s {
                    slow[i] = true;
                    each /= 2.0; // no more warm-up
                }
                let fits = (plan.budget_s / each) as usize;
                let least = if slow[i] { 3 } else { plan.min_reps };
                allowed[i] = fits.clamp(least.min(plan.reps), plan.reps);
                bar.inc((plan.reps - allowed[i]) as u64);
            }
            match (who, rep) {
                (Some(i), Err(e)) => accs[i].checked.failure = Some(e),
                (None, Err(e)) => panic!("the empty call failed: {e}"),
                (_, Ok(_)) if round == 0 => {}
                (Some(i), Ok(rep)) => {
                    let acc = &mut accs[i];
                    if acc.checked.signature.as_ref() != Some(&rep.signature) {
                        acc.reproduced = false;
                    }
                    for (k, t) in rep.times.into_iter().enumerate() {
                        acc.times[k].push(t);
                    }
                    acc.kernel.push(rep.kernel);
                    bar.inc(1);
                }
                (None, Ok(rep)) => {
                    for (k, t) in rep.times.into_iter().enumerate() {
                        empty_times[k].push(t);
                    }
                }
            }
        }
    }

    bar.set_message(format!("{}: latency pass", script.name));
    if let (Some(hz), Some(overhead)) = (method.tsc_hz, method.tsc_overhead_cycles) {
        for (i, (entry, acc)) in entries.iter_mut().zip(&mut accs).enumerate() {
            if acc.checked.failure.is_none() {
                let warm = (!slow[i]).then_some(warmup);
                match entry.latency(script, warm, arena, hz, overhead) {
                    Ok(l) => acc.latency = l,
                    Err(e) => acc.checked.failure = Some(e),
                }
            }
            bar.inc(1);
        }
    }

    let per_op = |v: &[(f64, usize)]| -> Vec<f64> {
        v.iter().map(|&(s, n)| s * 1e9 / n.max(1) as f64).collect()
    };
    let empty_call_ns: Vec<(String, f64)> = timed_phases
        .iter()
        .zip(&empty_times)
        .map(|(name, v)| (name.to_string(), Summary::of(&per_op(v)).median))
        .collect();

    let rows = entries
        .iter()
        .zip(accs)
        .map(|(entry, acc)| {
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
                            total_s: Summary::of(
                                &acc.times[k].iter().map(|t| t.0).collect::<Vec<_>>(),
                            ),
                        }
                    })
                    .collect()
            };
            let n = acc.kernel.len().max(1) as f64;
            Row {
                subject: entry.name.clone(),
                repetitions: acc.times.first().map_or(0, Vec::len),
                failure: checked.failure,
                phases,
                latency: acc.latency,
                usage: checked.usage,
                kernel: Kernel {
                    minor_faults: acc.kernel.iter().map(|k| k.minflt as f64).sum::<f64>() / n,
                    major_faults: acc.kernel.iter().map(|k| k.majflt as f64).sum::<f64>() / n,
                    context_switches: acc.kernel.iter().map(|k| k.csw as f64).sum::<f64>() / n,
                },
                reproduced: acc.reproduced,
                realloc_emulated: needs_realloc && !entry.has_realloc,
                largest_restored: checked.largest_restored,
                alignment: (checked.address_bits != 0)
                    .then(|| 1usize << checked.address_bits.trailing_zeros().min(12)),
            }
        })
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
    use alloc_trace::Event;

    /// A trace's checked pass asks whether the largest block came back
    /// before the smallest-arena search reuses the arena's memory (asked
    /// after it, the answer read an allocator whose memory had been
    /// overwritten, and was "no" for every allocator).
    #[test]
    fn a_trace_restores_the_largest_block_and_finds_its_smallest_arena() {
        let events: Vec<Event> = (0..64)
            .map(|id| Event::Alloc {
                id,
                size: 100 + 37 * id,
            })
            .chain((0..64).step_by(2).map(|id| Event::Free { id }))
            .chain([Event::Realloc { id: 1, size: 5000 }])
            .collect();
        let script = super::super::trace::from_events("t", &events).unwrap();
        let arena = Arena::map_aligned(script.arena, script.arena.next_power_of_two()).unwrap();
        let rlsf = crate::peers::all()
            .into_iter()
            .find(|p| p.name == "rlsf")
            .unwrap()
            .subject();
        let out = checked_pass(&rlsf, &script, &arena, None);
        assert_eq!(out.failure, None);
        assert_eq!(out.largest_restored, Some(true));
        let usage = out.usage.expect("a usage figure").factor;
        assert!(usage > 0.3 && usage <= 1.0, "{usage}");
    }
}

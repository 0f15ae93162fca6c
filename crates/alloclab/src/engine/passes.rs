//! The passes one allocator runs on one workload, wherever it runs (in the
//! runner, or in a worker process for a third-party plugin): the checked
//! pass (correctness, usage, the choices to reproduce; never timed), one
//! timed repetition on a fresh allocator after [`prepare`], and the latency
//! pass (the cycle counter around each call). The schedule that interleaves
//! them across allocators is `run.rs`.

use std::ptr::null_mut;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use plugin_abi::Allocator;
use plugin_abi::loader::PluginApi;
use serde::{Deserialize, Serialize};

use super::checked::{self, Checked};
use super::exec::{self, Calls, Class, Signature, Slots};
use super::measure::{self, Rusage};
use super::results::*;
use super::settings::Settings;
use super::workload::{self, Script, UsageKind};
use crate::allocators::subject::Subject;
use crate::arena::Arena;

/// What a subject's checked pass found.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CheckedOut {
    /// Why the subject cannot be measured on this workload.
    pub failure: Option<String>,
    /// The failure is that the checked pass passed its time limit (the
    /// subject is too slow for the workload), not a wrong answer.
    pub too_slow: bool,
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
fn smallest_arena_for_script(subject: &Subject, script: &Script, arena: &Arena) -> Option<usize> {
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
    settings: &Settings,
    arena: &Arena,
    script: &Script,
    slots: &mut Slots,
    round: u64,
) {
    if settings.cold {
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
    settings: &Settings,
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
        checked::run_checked(
            Calls::of(&subject.api),
            a,
            script,
            &mut slots,
            checked::Rules {
                in_arena,
                check: &check,
                time_limit: Some(Duration::from_secs(settings.pass_limit_secs)),
            },
            || {
                stats_after_first = subject.stats(a, len);
            },
        )
    };
    if let Ok(Checked {
        cut_short: Some(why),
        ..
    }) = &result
    {
        // SAFETY: `a` is live (the loop freed its blocks) and not used afterwards.
        unsafe { subject.destroy(a) };
        out.failure = Some(why.clone());
        out.too_slow = true;
        return out;
    }
    if let (Ok(_), Some(l)) = (&result, largest) {
        // SAFETY: `a` is live and everything was freed by the script.
        out.largest_restored = Some(unsafe { serves(subject, a, l) });
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
            if subject.blocks_in_arena {
                let requested = checked.requested_after_first;
                out.usage = usage(subject, script, arena, bounds, requested, stats_after_first);
            }
            out.signature = Some(signature_of(checked.signature));
        }
    }
    out
}

/// Whether the live allocator `a` serves (and takes back) one block of
/// `size` bytes.
///
/// # Safety
///
/// `a` is a live allocator of `subject`.
unsafe fn serves(subject: &Subject, a: *mut Allocator, size: usize) -> bool {
    // SAFETY: forwarded contract; the block is freed at once.
    unsafe {
        let p = (subject.api.alloc)(a, size);
        if !p.is_null() {
            (subject.api.free)(a, p);
        }
        !p.is_null()
    }
}

/// The usage figures of a subject whose blocks lie in the arena, from its
/// checked pass (`requested` bytes live after the first phase, its stats
/// then): for a trace, the smallest arena it replays in.
fn usage(
    subject: &Subject,
    script: &Script,
    arena: &Arena,
    bounds: Option<workload::IdealBounds>,
    requested: usize,
    stats: Option<plugin_abi::AllocatorStats>,
) -> Option<Usage> {
    match script.usage {
        UsageKind::None => None,
        UsageKind::Trace => smallest_arena_for_script(subject, script, arena).map(|len| Usage {
            factor: script.peak_live as f64 / len as f64,
            vs_ideal_pow2: None,
            utilization: None,
            utilization_with_metadata: None,
        }),
        _ => {
            let factor = requested as f64 / script.arena as f64;
            let req = requested as f64;
            Some(Usage {
                factor,
                vs_ideal_pow2: bounds.map(|b| factor / b.pow2),
                utilization: stats.map(|s| req / s.bytes_reserved.max(1) as f64),
                utilization_with_metadata: stats
                    .map(|s| req / (s.bytes_reserved + s.metadata_bytes).max(1) as f64),
            })
        }
    }
}

/// One timed repetition on a fresh allocator, after a scrub.
pub fn one_rep(
    subject: &Subject,
    script: &Script,
    warmup: Option<&Script>,
    settings: &Settings,
    arena: &Arena,
    round: u64,
) -> Result<RepOut, String> {
    let mut slots = Slots::new(script, &Calls::of(&subject.api));
    prepare(subject, warmup, settings, arena, script, &mut slots, round);
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
    settings: &Settings,
    arena: &Arena,
    tsc_hz: f64,
    overhead: f64,
) -> Vec<Latency> {
    let mut slots = Slots::new(script, &Calls::of(&subject.api));
    let slots = &mut slots;
    let mut samples = Vec::with_capacity(script.phases.iter().map(|p| p.ops.len()).sum());
    prepare(subject, warmup, settings, arena, script, slots, 7);
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
    _: Option<&Script>,
    _: &Settings,
    _: &Arena,
    _: f64,
    _: f64,
) -> Vec<Latency> {
    Vec::new()
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
        let rlsf = crate::allocators::builtin("rlsf").unwrap();
        let out = checked_pass(&rlsf, &script, &Settings::default(), &arena, None);
        assert_eq!(out.failure, None);
        assert_eq!(out.largest_restored, Some(true));
        let usage = out.usage.expect("a usage figure").factor;
        assert!(usage > 0.3 && usage <= 1.0, "{usage}");
    }

    /// Past its time limit the checked pass stops, frees what is live and
    /// reports the allocator as too slow (no signature: it is not timed);
    /// within the limit the same pass completes.
    #[test]
    fn a_pass_over_its_time_limit_is_too_slow_not_wrong() {
        let scale = workload::Scale {
            divisor: 16,
            seed: 1,
        };
        let script = workload::generate("churn", scale).unwrap();
        let arena = Arena::map(script.arena).unwrap();
        let rlsf = crate::allocators::builtin("rlsf").unwrap();
        let no_time = Settings {
            pass_limit_secs: 0,
            ..Settings::default()
        };
        let out = checked_pass(&rlsf, &script, &no_time, &arena, None);
        assert!(out.too_slow);
        let why = out.failure.expect("a reason");
        assert!(why.starts_with("too slow: checked 0 of "), "{why}");
        assert!(why.contains("--pass-limit"), "{why}");
        assert!(out.signature.is_none() && out.usage.is_none());
        let out = checked_pass(&rlsf, &script, &Settings::default(), &arena, None);
        assert!(!out.too_slow);
        assert_eq!(out.failure, None);
        assert!(out.signature.is_some());
    }
}

//! The checked loop (never timed): runs a whole script while a shadow of the
//! live blocks checks each one is inside the arena, 16-byte aligned, not
//! overlapping another, and its contents intact until freed and across
//! reallocs.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::ptr::null_mut;
use std::time::Duration;

use plugin_abi::Allocator;

use super::exec::{Calls, PhaseOutcome, emulated_realloc, occupancy_hash};
use super::measure::thread_cpu_time;
use super::workload::{OpKind, Script};

/// What the checked loop found.
#[derive(Debug, Default)]
pub struct Checked {
    /// Outcome of each phase and the occupancy after it.
    pub signature: Vec<(PhaseOutcome, u64)>,
    /// Requested bytes live after the first phase (successes only).
    pub requested_after_first: usize,
    /// OR of every block address (its trailing zeros: the alignment seen).
    pub address_bits: usize,
    /// The pass stopped at its time limit (why, with how far it got): the
    /// allocator is too slow for this workload, and the other fields
    /// describe only the part that ran.
    pub cut_short: Option<String>,
}

/// Calls between two looks at the clock in the checked loop.
const CLOCK_EVERY: usize = 1024;

/// Live blocks of the checked loop, by address: `(end, slot, size)`.
struct Shadow {
    blocks: BTreeMap<usize, (usize, usize)>,
    in_arena: Option<(usize, usize)>,
}

impl Shadow {
    fn add(&mut self, p: *mut c_void, size: usize, slot: usize) -> Result<(), String> {
        let addr = p as usize;
        let end = addr.checked_add(size.max(1)).ok_or("block wraps around")?;
        if !addr.is_multiple_of(16) {
            return Err(format!("block {addr:#x} is not 16-byte aligned"));
        }
        if let Some((lo, hi)) = self.in_arena
            && (addr < lo || end > hi)
        {
            return Err(format!(
                "block [{addr:#x}, {end:#x}) is outside the arena [{lo:#x}, {hi:#x})"
            ));
        }
        if let Some((&a, &(e, _))) = self.blocks.range(..end).next_back()
            && e > addr
        {
            return Err(format!(
                "block [{addr:#x}, {end:#x}) overlaps live block [{a:#x}, {e:#x})"
            ));
        }
        self.blocks.insert(addr, (end, slot));
        // SAFETY: the block is live, ours, and at least `size` bytes.
        unsafe { fill(p.cast(), size, slot) };
        Ok(())
    }

    fn remove(&mut self, p: *mut c_void, keep: usize) -> Result<(), String> {
        let (_, slot) = self
            .blocks
            .remove(&(p as usize))
            .ok_or("freeing a block the shadow does not hold")?;
        // SAFETY: the block was live until now and holds at least `keep` bytes.
        match unsafe { damage(p.cast(), keep, slot) } {
            None => Ok(()),
            Some(off) => Err(format!(
                "block {:#x} (slot {slot}) damaged at byte {off} while live",
                p as usize
            )),
        }
    }
}

#[inline]
fn pattern(slot: usize, i: usize) -> u8 {
    (slot.wrapping_mul(0x9E37_79B9) ^ i.wrapping_mul(31) ^ (i >> 8)) as u8
}

/// # Safety
///
/// `p` valid for writes of `len` bytes.
unsafe fn fill(p: *mut u8, len: usize, slot: usize) {
    for i in 0..len {
        // SAFETY: `i < len`.
        unsafe { p.add(i).write(pattern(slot, i)) };
    }
}

/// # Safety
///
/// `p` valid for reads of `len` bytes.
unsafe fn damage(p: *const u8, len: usize, slot: usize) -> Option<usize> {
    // SAFETY: `i < len`.
    (0..len).find(|&i| unsafe { p.add(i).read() } != pattern(slot, i))
}

/// What the checked loop holds an allocator to, beyond the shadow's rules.
pub struct Rules<'c> {
    /// Every block inside `[lo, hi)` (None: the allocator's blocks are not
    /// in the arena).
    pub in_arena: Option<(usize, usize)>,
    /// The plugin's `allocator_check`, true when it passes.
    pub check: &'c dyn Fn() -> bool,
    /// How much CPU time the whole loop may take.
    pub time_limit: Option<Duration>,
}

/// The checked loop over the whole script (never timed): every block inside
/// the arena (`rules.in_arena`), 16-byte aligned, not overlapping another,
/// its contents intact until freed and across reallocs; `rules.check` (the
/// plugin's `allocator_check`) passes after every phase. Past
/// `rules.time_limit` of the thread's CPU time (looked at every 1,024 calls) the loop frees what is
/// live and returns with [`Checked::cut_short`] set.
///
/// # Safety
///
/// `a` is a live allocator of `calls`, on a fresh arena `rules.in_arena` if
/// given; `slots` are all NULL and long enough for the script.
pub unsafe fn run_checked(
    calls: Calls,
    a: *mut Allocator,
    script: &Script,
    slots: &mut [*mut c_void],
    rules: Rules,
    mut after_first_phase: impl FnMut(),
) -> Result<Checked, String> {
    let Rules {
        in_arena,
        check,
        time_limit: limit,
    } = rules;
    let started = thread_cpu_time();
    let used = || thread_cpu_time().saturating_sub(started);
    let total_calls: usize = script.phases.iter().map(|p| p.ops.len()).sum();
    let mut calls_before = 0;
    let len = slots.len();
    let mut run = CheckedRun {
        calls,
        a,
        slots,
        sizes: vec![0usize; len],
        shadow: Shadow {
            blocks: BTreeMap::new(),
            in_arena,
        },
        checked: Checked::default(),
    };
    for (n, phase) in script.phases.iter().enumerate() {
        let mut out = PhaseOutcome::default();
        for (i, op) in phase.ops.iter().enumerate() {
            if i % CLOCK_EVERY == 0
                && let Some(limit) = limit
                && used() > limit
            {
                let done = calls_before + i;
                let secs = used().as_secs_f64();
                run.checked.cut_short = Some(format!(
                    "too slow: checked {done} of {total_calls} ops in {secs:.0} s of CPU time \
                     (limit {} s, --pass-limit); not timed",
                    limit.as_secs()
                ));
                // SAFETY: `a` is live and the slots hold NULL or its blocks.
                unsafe { run.free_all() }.map_err(|e| format!("phase {}: {e}", phase.name))?;
                return Ok(run.checked);
            }
            let fail = |e: String| format!("phase {}, op {i}: {e}", phase.name);
            let s = op.slot as usize;
            // SAFETY (all three): `a` is live and the slots hold NULL or its
            // live blocks (caller, and each op keeps it so).
            let done = match op.kind {
                // SAFETY: see above.
                OpKind::Alloc => unsafe { run.alloc(s, op.size, &mut out) },
                // SAFETY: see above.
                OpKind::Free => unsafe { run.free(s, &mut out) }.map(|_| false),
                // SAFETY: see above.
                OpKind::Realloc => unsafe { run.realloc(s, op.size, &mut out) }.map(|_| false),
            };
            let refused = done.map_err(fail)?;
            if refused && phase.stop_at_first_refusal {
                out.stopped_at = Some(i);
                break;
            }
        }
        if !check() {
            return Err(format!("allocator_check failed after phase {}", phase.name));
        }
        if n == 0 {
            run.checked.requested_after_first = run.requested_live();
            after_first_phase();
        }
        run.checked.signature.push((out, occupancy_hash(run.slots)));
        calls_before += phase.ops.len();
    }
    Ok(run.checked)
}

/// The state of one checked run: the allocator, its slots and their sizes,
/// the shadow of the live blocks and what was found so far.
struct CheckedRun<'s> {
    calls: Calls,
    a: *mut Allocator,
    slots: &'s mut [*mut c_void],
    sizes: Vec<usize>,
    shadow: Shadow,
    checked: Checked,
}

impl CheckedRun<'_> {
    /// Allocates `size` bytes into slot `s`; `Ok(true)` when refused.
    ///
    /// # Safety
    ///
    /// `self.a` is live.
    unsafe fn alloc(
        &mut self,
        s: usize,
        size: usize,
        out: &mut PhaseOutcome,
    ) -> Result<bool, String> {
        // SAFETY: `a` is live.
        let p = unsafe { (self.calls.alloc)(self.a, size) };
        out.calls += 1;
        self.slots[s] = p;
        if p.is_null() {
            out.refusals += 1;
            return Ok(true);
        }
        out.successes += 1;
        self.checked.address_bits |= p as usize;
        self.sizes[s] = size;
        self.shadow.add(p, size, s)?;
        Ok(false)
    }

    /// Frees slot `s` if it holds a block, checking its contents first.
    ///
    /// # Safety
    ///
    /// `self.a` is live and slot `s` is NULL or one of its live blocks.
    unsafe fn free(&mut self, s: usize, out: &mut PhaseOutcome) -> Result<(), String> {
        let p = self.slots[s];
        if !p.is_null() {
            self.shadow.remove(p, self.sizes[s])?;
            // SAFETY: a live block of `a`.
            unsafe { (self.calls.free)(self.a, p) };
            self.slots[s] = null_mut();
            out.calls += 1;
        }
        Ok(())
    }

    /// Reallocs slot `s` to `size` bytes (natively or emulated), checking
    /// the contents before, after a refusal, and what the new block kept.
    ///
    /// # Safety
    ///
    /// `self.a` is live and slot `s` is NULL or one of its live blocks.
    unsafe fn realloc(
        &mut self,
        s: usize,
        size: usize,
        out: &mut PhaseOutcome,
    ) -> Result<(), String> {
        let (calls, a) = (self.calls, self.a);
        let p = self.slots[s];
        let old = self.sizes[s];
        if !p.is_null() {
            // SAFETY: a live block of at least `old` bytes.
            if let Some(off) = unsafe { damage(p.cast(), old, s) } {
                return Err(format!("block damaged at byte {off} while live"));
            }
        }
        // SAFETY: `p` is NULL or a live block of `a` of `old` bytes.
        let q = unsafe {
            match calls.realloc {
                Some(realloc) => realloc(a, p, size),
                None => emulated_realloc(calls, a, p, old, size),
            }
        };
        out.calls += 1;
        if q.is_null() {
            out.refusals += 1;
            // SAFETY: a failed realloc leaves the old block live.
            if !p.is_null() && unsafe { damage(p.cast(), old, s) }.is_some() {
                return Err("a failed realloc damaged the old block".into());
            }
            return Ok(());
        }
        out.successes += 1;
        self.checked.address_bits |= q as usize;
        if !p.is_null() {
            self.shadow.blocks.remove(&(p as usize));
            // SAFETY: the new block holds at least `min(old, new)` bytes.
            if let Some(off) = unsafe { damage(q.cast(), old.min(size), s) } {
                return Err(format!("realloc {old} -> {size} lost byte {off}"));
            }
        }
        self.sizes[s] = size;
        self.slots[s] = q;
        self.shadow.add(q, size, s)
    }

    /// Frees every live block (checking each), when the loop stops early.
    ///
    /// # Safety
    ///
    /// `self.a` is live and the slots hold NULL or its live blocks.
    unsafe fn free_all(&mut self) -> Result<(), String> {
        let mut out = PhaseOutcome::default();
        for s in 0..self.slots.len() {
            // SAFETY: caller's contract.
            unsafe { self.free(s, &mut out) }?;
        }
        Ok(())
    }

    /// Requested bytes of the live slots.
    fn requested_live(&self) -> usize {
        (0..self.slots.len())
            .filter(|&s| !self.slots[s].is_null())
            .map(|s| self.sizes[s])
            .sum()
    }
}

//! Running a script's phases on an allocator: the timed loop (as little as
//! possible besides the calls), the per-operation latency loop (cycle counter
//! around each call) and the checked loop (never timed: bounds, alignment,
//! overlap, contents).
//!
//! `allocator_realloc` is optional in the header. For an allocator without
//! it, a realloc op is served as a C caller would have to serve it: alloc
//! the new size, copy what fits, free the old block — for which the loops
//! keep each slot's size ([`Slots`]); the time of all three calls is the
//! op's time, and the row says the realloc was emulated.

use std::ffi::c_void;
use std::ptr::null_mut;

use plugin_abi::loader::PluginApi;
use plugin_abi::{AllocFn, Allocator, FreeFn, ReallocFn};

use super::workload::{OpKind, Phase, Script};

/// The three functions a run calls, copied out of the table.
#[derive(Clone, Copy)]
pub struct Calls {
    pub(super) alloc: AllocFn,
    pub(super) free: FreeFn,
    pub(super) realloc: Option<ReallocFn>,
}

impl Calls {
    /// The calls of `api`.
    pub fn of(api: &PluginApi) -> Calls {
        Calls {
            alloc: api.alloc,
            free: api.free,
            realloc: api.realloc,
        }
    }
}

/// The block table a script runs on: one slot per block the script names,
/// NULL or a live block; and, for an allocator whose realloc is emulated,
/// each block's size.
pub struct Slots {
    /// The blocks.
    pub ptrs: Vec<*mut c_void>,
    /// Each slot's size, kept only while a realloc is emulated.
    sizes: Vec<usize>,
}

impl Slots {
    /// Empty slots for `script` run through `calls`.
    pub fn new(script: &Script, calls: &Calls) -> Slots {
        Slots {
            ptrs: vec![null_mut(); script.slots],
            sizes: if emulates_realloc(script, calls) {
                vec![0; script.slots]
            } else {
                Vec::new()
            },
        }
    }

    /// Every slot empty again.
    pub fn clear(&mut self) {
        self.ptrs.fill(null_mut());
    }
}

/// The script reallocates, and the allocator has no `allocator_realloc`:
/// its realloc ops are emulated (alloc, copy, free).
pub fn emulates_realloc(script: &Script, calls: &Calls) -> bool {
    calls.realloc.is_none() && script.has_realloc()
}

/// What a realloc op calls.
trait Resize {
    /// A block of `size` bytes now lies in `slot`.
    fn allocated(&mut self, slot: usize, size: usize);

    /// `realloc(p, size)` of the block in `slot`.
    ///
    /// # Safety
    ///
    /// `a` is a live allocator of `calls`; `p` is NULL or its live block in
    /// `slot`.
    unsafe fn realloc(
        &mut self,
        calls: Calls,
        a: *mut Allocator,
        slot: usize,
        p: *mut c_void,
        size: usize,
    ) -> *mut c_void;
}

/// The allocator's own `allocator_realloc`.
struct Native(ReallocFn);

impl Resize for Native {
    #[inline(always)]
    fn allocated(&mut self, _: usize, _: usize) {}

    #[inline(always)]
    unsafe fn realloc(
        &mut self,
        _: Calls,
        a: *mut Allocator,
        _: usize,
        p: *mut c_void,
        size: usize,
    ) -> *mut c_void {
        // SAFETY: the caller's contract.
        unsafe { (self.0)(a, p, size) }
    }
}

/// alloc + copy + free, with the slots' sizes.
struct Emulated<'s>(&'s mut [usize]);

impl Resize for Emulated<'_> {
    #[inline(always)]
    fn allocated(&mut self, slot: usize, size: usize) {
        if let Some(s) = self.0.get_mut(slot) {
            *s = size;
        }
    }

    #[inline(always)]
    unsafe fn realloc(
        &mut self,
        calls: Calls,
        a: *mut Allocator,
        slot: usize,
        p: *mut c_void,
        size: usize,
    ) -> *mut c_void {
        // SAFETY: `a` is live (caller's contract).
        let q =
            unsafe { emulated_realloc(calls, a, p, self.0.get(slot).copied().unwrap_or(0), size) };
        if !q.is_null() {
            self.allocated(slot, size);
        }
        q
    }
}

/// `realloc(p, size)` for an allocator without one: a new block, the first
/// `min(old, size)` bytes copied, the old block freed; NULL (and the old
/// block intact) when the new one cannot be had.
///
/// # Safety
///
/// `a` is a live allocator of `calls`; `p` is NULL or its live block of at
/// least `old` bytes.
pub(super) unsafe fn emulated_realloc(
    calls: Calls,
    a: *mut Allocator,
    p: *mut c_void,
    old: usize,
    size: usize,
) -> *mut c_void {
    // SAFETY: `a` is live.
    let q = unsafe { (calls.alloc)(a, size) };
    if !q.is_null() && !p.is_null() {
        // SAFETY: `p` holds `old` bytes, `q` at least `size`; both live and
        // distinct blocks of `a`.
        unsafe {
            std::ptr::copy_nonoverlapping(p.cast::<u8>(), q.cast::<u8>(), old.min(size));
            (calls.free)(a, p);
        }
    }
    q
}

/// What a phase did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PhaseOutcome {
    /// Calls made (a free of an empty slot is skipped, not a call).
    pub calls: usize,
    /// Allocations and reallocations that succeeded.
    pub successes: usize,
    /// Allocations and reallocations refused.
    pub refusals: usize,
    /// Index of the op at which a `stop_at_first_refusal` phase stopped.
    pub stopped_at: Option<usize>,
}

/// The choices a run made, to check that every timed run reproduces the
/// checked run: per phase, its outcome and a hash of which slots hold a block.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Signature(pub Vec<(PhaseOutcome, u64)>);

/// Hash of which slots are empty.
pub fn occupancy_hash(slots: &[*mut c_void]) -> u64 {
    slots.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, p| {
        (h ^ u64::from(p.is_null())).wrapping_mul(0x100_0000_01b3)
    })
}

/// Checks that every slot index of `script` is below `script.slots`, which
/// the unchecked indexing of the loops relies on.
pub fn validate(script: &Script) -> bool {
    script
        .phases
        .iter()
        .flat_map(|p| &p.ops)
        .all(|op| (op.slot as usize) < script.slots)
}

/// The timed loop.
///
/// # Safety
///
/// `a` is a live allocator of the functions in `calls`; `slots` holds NULL or
/// live blocks of `a` (and their sizes, see [`Slots`]), and is at least as
/// long as every slot index of the phase ([`validate`]).
pub unsafe fn run_phase(
    calls: Calls,
    a: *mut Allocator,
    phase: &Phase,
    slots: &mut Slots,
) -> PhaseOutcome {
    match calls.realloc {
        // SAFETY: the caller's contract.
        Some(f) => unsafe { phase_loop(calls, a, phase, &mut slots.ptrs, Native(f)) },
        // SAFETY: the caller's contract; the sizes are the slots' (or empty,
        // for a script that never reallocates).
        None => unsafe { phase_loop(calls, a, phase, &mut slots.ptrs, Emulated(&mut slots.sizes)) },
    }
}

/// The timed loop, for one way of serving realloc ops.
///
/// # Safety
///
/// As for [`run_phase`].
#[inline(never)]
unsafe fn phase_loop<R: Resize>(
    calls: Calls,
    a: *mut Allocator,
    phase: &Phase,
    slots: &mut [*mut c_void],
    mut resize: R,
) -> PhaseOutcome {
    let mut out = PhaseOutcome::default();
    let base = slots.as_mut_ptr();
    for (i, op) in phase.ops.iter().enumerate() {
        let s = op.slot as usize;
        // SAFETY: slot indices are in range (caller's contract).
        let slot = unsafe { &mut *base.add(s) };
        match op.kind {
            OpKind::Alloc => {
                // SAFETY: `a` is live.
                let p = unsafe { (calls.alloc)(a, op.size) };
                *slot = p;
                resize.allocated(s, op.size);
                out.calls += 1;
                out.successes += usize::from(!p.is_null());
                if p.is_null() {
                    out.refusals += 1;
                    if phase.stop_at_first_refusal {
                        out.stopped_at = Some(i);
                        break;
                    }
                }
            }
            OpKind::Free => {
                let p = *slot;
                if !p.is_null() {
                    // SAFETY: `p` is a live block of `a`.
                    unsafe { (calls.free)(a, p) };
                    *slot = null_mut();
                    out.calls += 1;
                }
            }
            OpKind::Realloc => {
                // SAFETY: `*slot` is NULL or a live block of `a`.
                let q = unsafe { resize.realloc(calls, a, s, *slot, op.size) };
                out.calls += 1;
                if q.is_null() {
                    out.refusals += 1;
                } else {
                    out.successes += 1;
                    *slot = q;
                }
            }
        }
    }
    out
}

/// Latency sample classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Class {
    /// A successful alloc.
    Alloc = 0,
    /// A refused alloc.
    AllocRefused = 1,
    /// A free.
    Free = 2,
    /// A successful realloc.
    Realloc = 3,
    /// A refused realloc.
    ReallocRefused = 4,
}

impl Class {
    /// All classes, in report order.
    pub const ALL: [Class; 5] = [
        Class::Alloc,
        Class::AllocRefused,
        Class::Free,
        Class::Realloc,
        Class::ReallocRefused,
    ];

    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Class::Alloc => "alloc",
            Class::AllocRefused => "alloc refused",
            Class::Free => "free",
            Class::Realloc => "realloc",
            Class::ReallocRefused => "realloc refused",
        }
    }
}

/// The latency loop: like [`run_phase`], with the cycle counter read around
/// every call; samples are `cycles << 3 | class`.
///
/// # Safety
///
/// As for [`run_phase`].
#[cfg(target_arch = "x86_64")]
pub unsafe fn run_phase_latency(
    calls: Calls,
    a: *mut Allocator,
    phase: &Phase,
    slots: &mut Slots,
    samples: &mut Vec<u64>,
) {
    match calls.realloc {
        // SAFETY: the caller's contract.
        Some(f) => unsafe { latency_loop(calls, a, phase, &mut slots.ptrs, samples, Native(f)) },
        // SAFETY: as in `run_phase`.
        None => unsafe {
            latency_loop(
                calls,
                a,
                phase,
                &mut slots.ptrs,
                samples,
                Emulated(&mut slots.sizes),
            )
        },
    }
}

/// The latency loop, for one way of serving realloc ops.
///
/// # Safety
///
/// As for [`run_phase`].
#[cfg(target_arch = "x86_64")]
#[inline(never)]
unsafe fn latency_loop<R: Resize>(
    calls: Calls,
    a: *mut Allocator,
    phase: &Phase,
    slots: &mut [*mut c_void],
    samples: &mut Vec<u64>,
    mut resize: R,
) {
    use super::measure::tsc;
    let base = slots.as_mut_ptr();
    for op in &phase.ops {
        let s = op.slot as usize;
        // SAFETY: slot indices are in range (caller's contract).
        let slot = unsafe { &mut *base.add(s) };
        let (class, cycles) = match op.kind {
            OpKind::Alloc => {
                let t0 = tsc::start();
                // SAFETY: `a` is live.
                let p = unsafe { (calls.alloc)(a, op.size) };
                let t1 = tsc::stop();
                *slot = p;
                resize.allocated(s, op.size);
                if p.is_null() {
                    if phase.stop_at_first_refusal {
                        samples.push((t1 - t0) << 3 | Class::AllocRefused as u64);
                        break;
                    }
                    (Class::AllocRefused, t1 - t0)
                } else {
                    (Class::Alloc, t1 - t0)
                }
            }
            OpKind::Free => {
                let p = *slot;
                if p.is_null() {
                    continue;
                }
                let t0 = tsc::start();
                // SAFETY: `p` is a live block of `a`.
                unsafe { (calls.free)(a, p) };
                let t1 = tsc::stop();
                *slot = null_mut();
                (Class::Free, t1 - t0)
            }
            OpKind::Realloc => {
                let t0 = tsc::start();
                // SAFETY: as in `phase_loop`.
                let q = unsafe { resize.realloc(calls, a, s, *slot, op.size) };
                let t1 = tsc::stop();
                if q.is_null() {
                    (Class::ReallocRefused, t1 - t0)
                } else {
                    *slot = q;
                    (Class::Realloc, t1 - t0)
                }
            }
        };
        samples.push(cycles << 3 | class as u64);
    }
}

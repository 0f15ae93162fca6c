//! Workloads: every request sequence is generated before anything is timed,
//! from a fixed seed, as a script of phases of operations on numbered slots.
//!
//! | workload     | arena  | what                                                        |
//! |--------------|--------|-------------------------------------------------------------|
//! | `seed`       | 1 MiB  | the brief's: 10,000 allocs of 1..=4096 B, then free in order |
//! | `fill`       | 16 MiB | allocs of 1..=4096 B until the first refusal, free all        |
//! | `churn`      | 64 MiB | fill to half, then 100,000 random allocs (16..=4096 B) / frees |
//! | `churn-aged` | 64 MiB | the same for 1,000,000 ops: free lists in a long run's order   |
//! | `small-*`    | 4 MiB  | 10,000 allocs of 16..=128 B, freed random / LIFO / FIFO       |
//! | `small-aged` | 4 MiB  | `small-random` on an allocator that ran 19 rounds of it before |
//! | `pow2`       | 64 MiB | exact powers of two 16 B..64 KiB until the first refusal, free |
//! | `realloc`    | 64 MiB | 1,000 blocks grown 16 B → 16 KiB by 1.25x steps, shrunk back  |
//! | `trace:NAME` | fits   | a recorded trace replayed (see `trace.rs`)                    |
//!
//! `--quick` divides the op counts and the larger arenas by 4.
//!
//! Each repetition runs on a fresh allocator, so the plain workloads time
//! free lists in the order a fresh arena gives (a page carved in address
//! order, a buddy split from the top). The `-aged` ones time an allocator
//! that has lived: `small-aged` times the 20th round of `small-random`
//! (the 19 before run untimed on the same allocator, each freeing in random
//! order), `churn-aged` times 1,000,000 churn operations, as the issue-12
//! harness does.

use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

use crate::brief;

/// What an operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum OpKind {
    /// `slot = alloc(size)`.
    Alloc,
    /// `free(slot)` if the slot holds a block.
    Free,
    /// `slot = realloc(slot, size)` (keeps the old block if it fails).
    Realloc,
}

/// One operation on a numbered slot.
#[derive(Clone, Copy, Debug)]
pub struct Op {
    /// What to do.
    pub kind: OpKind,
    /// Which slot (index into the block table).
    pub slot: u32,
    /// Bytes (alloc, realloc).
    pub size: usize,
}

impl Op {
    pub(super) fn alloc(slot: usize, size: usize) -> Op {
        Op {
            kind: OpKind::Alloc,
            slot: slot as u32,
            size,
        }
    }

    pub(super) fn free(slot: usize) -> Op {
        Op {
            kind: OpKind::Free,
            slot: slot as u32,
            size: 0,
        }
    }

    pub(super) fn realloc(slot: usize, size: usize) -> Op {
        Op {
            kind: OpKind::Realloc,
            slot: slot as u32,
            size,
        }
    }
}

/// A run of operations timed as one batch (or not timed: set-up, clean-up).
#[derive(Clone, Debug)]
pub struct Phase {
    /// Its name in the report ("alloc", "free", "mixed", ...).
    pub name: &'static str,
    /// The operations.
    pub ops: Vec<Op>,
    /// Timed (reported) or set-up/clean-up.
    pub timed: bool,
    /// Stop at the first refused allocation (the `fill` workload).
    pub stop_at_first_refusal: bool,
}

/// How a workload's usage factor is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum UsageKind {
    /// The brief's: requested bytes of the successful allocations of the
    /// first phase / arena size.
    Brief,
    /// Fill efficiency: requested bytes live at the first refusal / arena size.
    Fill,
    /// Trace efficiency: the trace's peak live requested bytes / the smallest
    /// arena on which the allocator replays it without a refusal.
    Trace,
    /// Not a usage workload.
    None,
}

/// A whole workload, ready to run.
#[derive(Clone, Debug)]
pub struct Script {
    /// Short name (`seed`, `churn`, ...).
    pub name: String,
    /// One line for the report.
    pub description: String,
    /// Arena bytes.
    pub arena: usize,
    /// Number of slots the ops use.
    pub slots: usize,
    /// The phases, in order.
    pub phases: Vec<Phase>,
    /// How usage is measured (on the first phase).
    pub usage: UsageKind,
    /// Largest sum of requested bytes live at once (0 if not computed).
    pub peak_live: usize,
}

impl Script {
    /// Some operation of the script is a realloc.
    pub fn has_realloc(&self) -> bool {
        self.phases
            .iter()
            .flat_map(|p| &p.ops)
            .any(|o| o.kind == OpKind::Realloc)
    }
}

/// Sizes of the scaled workloads.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    /// Divides op counts and the larger arenas (1, or 4 for `--quick`).
    pub divisor: usize,
    /// Seed of every random choice.
    pub seed: u64,
}

/// The names of the built-in workloads, in report order.
pub const BUILT_IN: [&str; 10] = [
    "seed",
    "fill",
    "churn",
    "churn-aged",
    "small-random",
    "small-lifo",
    "small-fifo",
    "small-aged",
    "pow2",
    "realloc",
];

/// Generates the built-in workload `name`.
pub fn generate(name: &str, scale: Scale) -> Option<Script> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(scale.seed ^ fxhash(name));
    let d = scale.divisor.max(1);
    Some(match name {
        "seed" => seed(scale.seed),
        "fill" => fill(&mut rng, (16 << 20) / d),
        "churn" => churn(&mut rng, (64 << 20) / d, 100_000 / d, "churn"),
        "churn-aged" => churn(&mut rng, (64 << 20) / d, 1_000_000 / d, "churn-aged"),
        "small-random" => small(&mut rng, FreeOrder::Random),
        "small-lifo" => small(&mut rng, FreeOrder::Lifo),
        "small-fifo" => small(&mut rng, FreeOrder::Fifo),
        "small-aged" => small_aged(&mut rng, 20),
        "pow2" => pow2(&mut rng, (64 << 20) / d),
        "realloc" => realloc(1000 / d, (64 << 20) / d),
        _ => return None,
    })
}

fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// The brief's workload exactly: the sizes of `alloclab PLUGIN`.
fn seed(seed: u64) -> Script {
    let sizes = brief::sizes(10_000, 4096, seed);
    Script {
        name: "seed".into(),
        description:
            "the brief's: 10,000 allocations of 1..=4096 B (uniform) in a 1 MiB arena, then every \
                      successful block freed in order"
                .into(),
        arena: 1 << 20,
        slots: sizes.len(),
        phases: vec![
            timed(
                "alloc",
                sizes
                    .iter()
                    .enumerate()
                    .map(|(i, &s)| Op::alloc(i, s))
                    .collect(),
            ),
            timed("free", (0..sizes.len()).map(Op::free).collect()),
        ],
        usage: UsageKind::Brief,
        peak_live: 0,
    }
}

pub(super) fn timed(name: &'static str, ops: Vec<Op>) -> Phase {
    Phase {
        name,
        ops,
        timed: true,
        stop_at_first_refusal: false,
    }
}

pub(super) fn untimed(name: &'static str, ops: Vec<Op>) -> Phase {
    Phase {
        name,
        ops,
        timed: false,
        stop_at_first_refusal: false,
    }
}

fn fill(rng: &mut Xoshiro256PlusPlus, arena: usize) -> Script {
    // Twice what fits, so every arena allocator meets its first refusal.
    let n = 2 * arena / 2048;
    let allocs: Vec<Op> = (0..n)
        .map(|i| Op::alloc(i, rng.random_range(1..=4096)))
        .collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    Script {
        name: "fill".into(),
        description: format!(
            "allocations of 1..=4096 B (uniform) until the first refusal in a {} MiB arena, then all freed in \
             random order",
            arena >> 20
        ),
        arena,
        slots: n,
        phases: vec![
            Phase {
                name: "alloc",
                ops: allocs,
                timed: true,
                stop_at_first_refusal: true,
            },
            timed("free", order.into_iter().map(Op::free).collect()),
        ],
        usage: UsageKind::Fill,
        peak_live: 0,
    }
}

fn churn(rng: &mut Xoshiro256PlusPlus, arena: usize, ops: usize, name: &str) -> Script {
    let target = arena / 2;
    let mut live: Vec<(usize, usize)> = Vec::new(); // (slot, size)
    let mut free_slots: Vec<usize> = Vec::new();
    let mut next_slot = 0;
    let mut live_bytes = 0;
    let mut take_slot = |free_slots: &mut Vec<usize>| {
        free_slots.pop().unwrap_or_else(|| {
            next_slot += 1;
            next_slot - 1
        })
    };
    let mut prefill = Vec::new();
    while live_bytes < target {
        let size = rng.random_range(16..=4096);
        let slot = take_slot(&mut free_slots);
        prefill.push(Op::alloc(slot, size));
        live.push((slot, size));
        live_bytes += size;
    }
    let mut mixed = Vec::with_capacity(ops);
    for _ in 0..ops {
        // Alloc when below the target live set, free when above, with a coin
        // flip in between so the sequence does not alternate.
        let alloc = if live_bytes < target * 95 / 100 {
            true
        } else if live_bytes > target * 105 / 100 || live.is_empty() {
            false
        } else {
            rng.random_bool(0.5)
        };
        if alloc {
            let size = rng.random_range(16..=4096);
            let slot = take_slot(&mut free_slots);
            mixed.push(Op::alloc(slot, size));
            live.push((slot, size));
            live_bytes += size;
        } else {
            let i = rng.random_range(0..live.len());
            let (slot, size) = live.swap_remove(i);
            mixed.push(Op::free(slot));
            free_slots.push(slot);
            live_bytes -= size;
        }
    }
    let cleanup = live.iter().map(|&(slot, _)| Op::free(slot)).collect();
    Script {
        name: name.into(),
        description: format!(
            "{ops} random allocs (16..=4096 B) and frees around a live set of half a {} MiB arena",
            arena >> 20
        ),
        arena,
        slots: next_slot,
        phases: vec![
            untimed("prefill", prefill),
            timed("mixed", mixed),
            untimed("cleanup", cleanup),
        ],
        usage: UsageKind::None,
        peak_live: 0,
    }
}

#[derive(Clone, Copy)]
enum FreeOrder {
    Random,
    Lifo,
    Fifo,
}

fn small(rng: &mut Xoshiro256PlusPlus, order: FreeOrder) -> Script {
    let n = 10_000;
    let allocs = (0..n)
        .map(|i| Op::alloc(i, rng.random_range(16..=128)))
        .collect();
    let mut slots: Vec<usize> = (0..n).collect();
    let name = match order {
        FreeOrder::Random => {
            slots.shuffle(rng);
            "random"
        }
        FreeOrder::Lifo => {
            slots.reverse();
            "LIFO"
        }
        FreeOrder::Fifo => "FIFO",
    };
    Script {
        name: format!("small-{}", name.to_lowercase()),
        description: format!(
            "10,000 allocations of 16..=128 B (uniform) in a 4 MiB arena, freed in {name} order"
        ),
        arena: 4 << 20,
        slots: n,
        phases: vec![
            timed("alloc", allocs),
            timed("free", slots.into_iter().map(Op::free).collect()),
        ],
        usage: UsageKind::None,
        peak_live: 0,
    }
}

/// `rounds` rounds of `small-random` on one allocator; only the last timed.
fn small_aged(rng: &mut Xoshiro256PlusPlus, rounds: usize) -> Script {
    let n = 10_000;
    let mut phases = Vec::with_capacity(2 * rounds);
    for round in 0..rounds {
        let allocs = (0..n)
            .map(|i| Op::alloc(i, rng.random_range(16..=128)))
            .collect();
        let mut slots: Vec<usize> = (0..n).collect();
        slots.shuffle(rng);
        let frees = slots.into_iter().map(Op::free).collect();
        if round + 1 < rounds {
            phases.push(untimed("age-alloc", allocs));
            phases.push(untimed("age-free", frees));
        } else {
            phases.push(timed("alloc", allocs));
            phases.push(timed("free", frees));
        }
    }
    Script {
        name: "small-aged".into(),
        description: format!(
            "round {rounds} of small-random on one 4 MiB arena: 10,000 allocations of 16..=128 B \
             freed in random order, after {} such rounds (untimed)",
            rounds - 1
        ),
        arena: 4 << 20,
        slots: n,
        phases,
        usage: UsageKind::None,
        peak_live: 0,
    }
}

fn pow2(rng: &mut Xoshiro256PlusPlus, arena: usize) -> Script {
    // Twice what fits, so every arena allocator meets its first refusal.
    let mut allocs = Vec::new();
    let mut total = 0;
    while total < 2 * arena {
        let size = 1usize << rng.random_range(4..=16);
        allocs.push(Op::alloc(allocs.len(), size));
        total += size;
    }
    let n = allocs.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    Script {
        name: "pow2".into(),
        description: format!(
            "allocations of exact powers of two 16 B..64 KiB (exponent uniform) until the first refusal \
             in a {} MiB arena, then all freed in random order",
            arena >> 20
        ),
        arena,
        slots: n,
        phases: vec![
            Phase {
                name: "alloc",
                ops: allocs,
                timed: true,
                stop_at_first_refusal: true,
            },
            timed("free", order.into_iter().map(Op::free).collect()),
        ],
        usage: UsageKind::Fill,
        peak_live: 0,
    }
}

fn realloc(blocks: usize, arena: usize) -> Script {
    let mut sizes = vec![16usize; blocks];
    let allocs = (0..blocks).map(|i| Op::alloc(i, 16)).collect();
    let mut grow = Vec::new();
    while sizes[0] < 16 << 10 {
        for (i, s) in sizes.iter_mut().enumerate() {
            *s = (*s * 5 / 4).min(16 << 10);
            grow.push(Op::realloc(i, *s));
        }
    }
    let mut shrink = Vec::new();
    while sizes[0] > 16 {
        for (i, s) in sizes.iter_mut().enumerate() {
            *s = (*s * 4 / 5).max(16);
            shrink.push(Op::realloc(i, *s));
        }
    }
    let reallocs = grow.len() + shrink.len();
    Script {
        name: "realloc".into(),
        description: format!(
            "{blocks} blocks grown from 16 B to 16 KiB by 1.25x steps in turn, then shrunk back ({reallocs} reallocs)"
        ),
        arena,
        slots: blocks,
        phases: vec![
            untimed("alloc", allocs),
            timed("grow", grow),
            timed("shrink", shrink),
            untimed("free", (0..blocks).map(Op::free).collect()),
        ],
        usage: UsageKind::None,
        peak_live: 0,
    }
}

/// The ideal bounds of a usage workload's first phase: what an allocator with
/// zero metadata would reach, rounding every request up to a power of two
/// (at least 16 B), and with no rounding at all.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct IdealBounds {
    /// Usage of the ideal power-of-two allocator.
    pub pow2: f64,
    /// Usage of the ideal exact-size allocator.
    pub exact: f64,
}

/// Computes [`IdealBounds`] for a script whose usage kind is not `None`.
pub fn ideal_bounds(script: &Script) -> Option<IdealBounds> {
    let phase = script.phases.first()?;
    let ideal = |cost: &dyn Fn(usize) -> usize| {
        let (mut used, mut requested) = (0usize, 0usize);
        for op in &phase.ops {
            let c = cost(op.size);
            if used + c <= script.arena {
                used += c;
                requested += op.size;
            } else if script.usage == UsageKind::Fill {
                break;
            }
        }
        requested as f64 / script.arena as f64
    };
    match script.usage {
        UsageKind::None | UsageKind::Trace => None,
        _ => Some(IdealBounds {
            pow2: ideal(&|s| s.max(16).next_power_of_two()),
            exact: ideal(&|s| s),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scale() -> Scale {
        Scale {
            divisor: 4,
            seed: 42,
        }
    }

    #[test]
    fn every_workload_is_deterministic_and_consistent() {
        for name in BUILT_IN {
            let a = generate(name, scale()).unwrap();
            let b = generate(name, scale()).unwrap();
            assert_eq!(
                format!("{:?}", a.phases),
                format!("{:?}", b.phases),
                "{name}"
            );
            // Every free names a slot that was allocated before and not yet freed.
            let mut live = vec![false; a.slots];
            for op in a.phases.iter().flat_map(|p| &p.ops) {
                let s = op.slot as usize;
                assert!(s < a.slots, "{name}: slot {s} out of range");
                match op.kind {
                    OpKind::Alloc => {
                        assert!(!live[s], "{name}: slot {s} allocated twice");
                        live[s] = true;
                    }
                    OpKind::Free => {
                        assert!(live[s], "{name}: slot {s} freed while empty");
                        live[s] = false;
                    }
                    OpKind::Realloc => assert!(live[s], "{name}: realloc of empty slot {s}"),
                }
            }
            assert!(live.iter().all(|&l| !l), "{name} leaves blocks live");
        }
    }

    #[test]
    fn seed_is_the_briefs_sequence() {
        let s = generate("seed", scale()).unwrap();
        let sizes: Vec<usize> = s.phases[0].ops.iter().map(|o| o.size).collect();
        assert_eq!(sizes, brief::sizes(10_000, 4096, 42));
        assert_eq!(s.arena, 1 << 20);
    }

    #[test]
    fn churn_keeps_about_half_the_arena_live() {
        let s = generate("churn", scale()).unwrap();
        let mut sizes = vec![0; s.slots];
        let mut live = 0usize;
        let (mut lo, mut hi) = (usize::MAX, 0);
        for (i, phase) in s.phases.iter().enumerate() {
            for op in &phase.ops {
                match op.kind {
                    OpKind::Alloc => {
                        sizes[op.slot as usize] = op.size;
                        live += op.size;
                    }
                    OpKind::Free => live -= sizes[op.slot as usize],
                    OpKind::Realloc => unreachable!(),
                }
                if i == 1 {
                    lo = lo.min(live);
                    hi = hi.max(live);
                }
            }
        }
        assert!(
            lo > s.arena / 2 * 90 / 100 && hi < s.arena / 2 * 110 / 100,
            "{lo}..{hi}"
        );
    }

    #[test]
    fn ideal_bounds_are_below_one_and_ordered() {
        for name in ["seed", "fill", "pow2"] {
            let s = generate(name, scale()).unwrap();
            let b = ideal_bounds(&s).unwrap();
            assert!(
                b.pow2 <= b.exact && b.exact <= 1.0 && b.pow2 > 0.3,
                "{name}: {b:?}"
            );
        }
        // Exact powers of two: both bounds agree.
        let b = ideal_bounds(&generate("pow2", scale()).unwrap()).unwrap();
        assert_eq!(b.pow2, b.exact);
    }
}

//! A hand-built [`CompareResults`] for the tests of the CSV, the report and
//! the analysis: every kind of workload (usage with bounds, fill, pure speed,
//! mixed, realloc, trace), an allocator that is not an arena allocator, and a
//! failed row.

use crate::allocators::facts::{ReallocKind, TypedFacts};
use crate::engine::results::*;
use crate::engine::workload::{IdealBounds, UsageKind};
use crate::toolkit::machine::Machine;

/// One allocator of the sample, by its headline numbers.
#[derive(Clone, Debug)]
pub struct SampleAllocator {
    /// Its name.
    pub name: &'static str,
    /// Net ns per allocation (every alloc phase; other phases scale from it).
    pub alloc_ns: f64,
    /// Net ns per free.
    pub free_ns: f64,
    /// Usage factor on `seed` (`fill` and the trace scale from it); None: it
    /// does not manage the arena (like the mmap fallback).
    pub usage: Option<f64>,
    /// Usage factor on `pow2`.
    pub pow2_usage: Option<f64>,
    /// Rejects bad pointers (else corrupts the heap on a double free).
    pub safe: bool,
    /// Smallest arena it works in.
    pub smallest_arena: Option<usize>,
    /// Has realloc (else its `realloc` row fails).
    pub realloc: bool,
}

impl SampleAllocator {
    /// An arena allocator with these speeds and usage.
    pub fn arena(name: &'static str, alloc_ns: f64, free_ns: f64, usage: f64) -> SampleAllocator {
        SampleAllocator {
            name,
            alloc_ns,
            free_ns,
            usage: Some(usage),
            pow2_usage: Some(0.6),
            safe: true,
            smallest_arena: Some(256),
            realloc: true,
        }
    }
}

/// The two arena allocators of most tests, and an mmap-like fallback.
pub fn specs() -> Vec<SampleAllocator> {
    vec![
        SampleAllocator::arena("kappa", 10.0, 5.0, 0.74),
        SampleAllocator {
            safe: false,
            smallest_arena: Some(4096),
            realloc: false,
            pow2_usage: Some(0.5),
            ..SampleAllocator::arena("beta", 40.0, 30.0, 0.99)
        },
        SampleAllocator {
            usage: None,
            pow2_usage: None,
            smallest_arena: None,
            safe: false,
            ..SampleAllocator::arena("os-fallback", 9000.0, 8000.0, 0.0)
        },
    ]
}

/// The sample results for `specs` (see [`specs`] for the default).
pub fn results(specs: &[SampleAllocator]) -> CompareResults {
    let workloads = vec![
        workload(
            "seed",
            UsageKind::Brief,
            Some((0.754, 0.996)),
            &["alloc", "free"],
            specs,
        ),
        workload(
            "fill",
            UsageKind::Fill,
            Some((0.74, 0.99)),
            &["alloc", "free"],
            specs,
        ),
        workload("churn", UsageKind::None, None, &["mixed"], specs),
        workload(
            "small-random",
            UsageKind::None,
            None,
            &["alloc", "free"],
            specs,
        ),
        workload(
            "pow2",
            UsageKind::Brief,
            Some((0.6, 0.6)),
            &["alloc", "free"],
            specs,
        ),
        workload("realloc", UsageKind::None, None, &["grow", "shrink"], specs),
        workload("trace:demo", UsageKind::Trace, None, &["replay"], specs),
    ];
    CompareResults {
        machine: Machine {
            cpu: "Test CPU @ 3.0GHz".into(),
            cpus: 2,
            kernel: "Linux 6.1".into(),
            date: "2026-11-26 12:00 UTC".into(),
            command: "alloclab compare --quick".into(),
        },
        method: Method {
            repetitions: 5,
            quick: true,
            seed: 42,
            pinned_cpu: Some(1),
            cold: false,
            instant_ns: 18.5,
            tsc_hz: Some(3.0e9),
            tsc_overhead_cycles: Some(24.0),
        },
        subjects: specs.iter().map(subject).collect(),
        workloads,
    }
}

fn subject(s: &SampleAllocator) -> SubjectInfo {
    let bad = |what: &str| {
        Some(if s.safe {
            "rejected and counted, nothing changed".to_string()
        } else {
            format!("corrupts the heap ({what})")
        })
    };
    SubjectInfo {
        name: s.name.into(),
        origin: "built into the test".into(),
        worker_settings: None,
        isolated: false,
        facts: Some(TypedFacts {
            calls: "allocator_create, allocator_alloc, allocator_free, allocator_destroy",
            free_needs_size: false,
            realloc: ReallocKind::Native,
            threads: "one instance per thread",
            introspection: "allocator_stats",
            adapter_header: 0,
            uses_arena: s.usage.is_some(),
        }),
        description: Some(format!("{} (sample)", s.name)),
        observed: Observed {
            alignment: Some(16),
            interior_free: bad("interior"),
            double_free: bad("double"),
            foreign_free: Some("no visible effect (not reported)".into()),
            exhaustion: Some(if s.usage.is_some() {
                "returns NULL; 16384 blocks of 64 B fit in 1 MiB (64.0 B each)".into()
            } else {
                "never refuses (served 64 MiB from a 1 MiB arena: memory from the OS)".into()
            }),
            smallest_arena: s.smallest_arena,
            caps: crate::allocators::subject::Capabilities {
                has_stats: s.safe,
                has_check: s.safe,
                has_realloc: s.realloc,
                lockable: s.safe,
            },
        },
    }
}

fn summary(m: f64) -> Summary {
    Summary {
        median: m,
        q1: 0.95 * m,
        q3: 1.05 * m,
        min: 0.9 * m,
        max: 1.2 * m,
    }
}

fn workload(
    name: &str,
    usage_kind: UsageKind,
    bounds: Option<(f64, f64)>,
    phases: &[&str],
    specs: &[SampleAllocator],
) -> WorkloadResult {
    const EMPTY: f64 = 1.5;
    let rows = specs
        .iter()
        .map(|s| {
            if name == "realloc" && !s.realloc {
                return Row {
                    subject: s.name.into(),
                    repetitions: 0,
                    failure: Some("no allocator_realloc".into()),
                    too_slow: false,
                    phases: Vec::new(),
                    latency: Vec::new(),
                    usage: None,
                    kernel: Kernel::default(),
                    reproduced: true,
                    realloc_emulated: false,
                    largest_restored: None,
                    alignment: None,
                };
            }
            let ns_of = |phase: &str| match phase {
                "free" => s.free_ns,
                "mixed" | "replay" => (s.alloc_ns + s.free_ns) / 2.0,
                "grow" | "shrink" => 3.0 * s.alloc_ns,
                _ => s.alloc_ns,
            };
            let phases: Vec<PhaseResult> = phases
                .iter()
                .map(|&p| PhaseResult {
                    name: p.into(),
                    calls: 1000,
                    successes: if p == "free" { 0 } else { 990 },
                    refusals: if p == "free" { 0 } else { 10 },
                    ns_per_op: summary(ns_of(p) + EMPTY),
                    net_ns_per_op: summary(ns_of(p)),
                    total_s: summary((ns_of(p) + EMPTY) * 1e-6),
                })
                .collect();
            let lat = |op: &str, ns: f64| Latency {
                phase: match op {
                    "free" => "free",
                    "realloc" => "grow",
                    _ => "alloc",
                }
                .into(),
                op: op.into(),
                count: 1000,
                p50: 0.9 * ns,
                p99: 3.0 * ns,
                p999: 10.0 * ns,
                max: 50.0 * ns,
            };
            let faults = phases.iter().map(|p| p.successes as f64).sum();
            let latency = match name {
                "realloc" => vec![lat("realloc", 3.0 * s.alloc_ns)],
                _ => vec![lat("alloc", s.alloc_ns), lat("free", s.free_ns)],
            };
            let factor = match (usage_kind, name) {
                (UsageKind::None, _) => None,
                (_, "pow2") => s.pow2_usage,
                (_, "fill") => s.usage.map(|u| u * 0.98),
                (UsageKind::Trace, _) => s.usage.map(|u| u * 0.9),
                _ => s.usage,
            };
            Row {
                subject: s.name.into(),
                repetitions: 5,
                failure: None,
                too_slow: false,
                phases,
                latency,
                usage: factor.map(|f| Usage {
                    factor: f,
                    vs_ideal_pow2: bounds.map(|(p, _)| f / p),
                    utilization: Some(0.9),
                    utilization_with_metadata: Some(0.85),
                }),
                kernel: Kernel {
                    // Like the mmap fallback: a page fault per allocation.
                    minor_faults: if s.usage.is_some() { 0.0 } else { faults },
                    major_faults: 0.0,
                    context_switches: 0.0,
                },
                reproduced: true,
                realloc_emulated: false,
                largest_restored: s.usage.map(|_| true),
                alignment: Some(16),
            }
        })
        .collect();
    WorkloadResult {
        name: name.into(),
        description: format!("the {name} workload of the sample"),
        arena_bytes: 1 << 20,
        usage_kind,
        bounds: bounds.map(|(pow2, exact)| IdealBounds { pow2, exact }),
        empty_call_ns: phases.iter().map(|p| (p.to_string(), EMPTY)).collect(),
        rows,
    }
}

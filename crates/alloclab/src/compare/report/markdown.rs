//! `report.md`: the machine and command, the method, a section per workload
//! (description, the terminal table as Markdown, its charts), the
//! ease-of-use table and the written analysis.

use std::fmt::Write as _;

use super::analysis;
use crate::compare::table;
use crate::engine::results::{CompareResults, Method, WorkloadResult};
use crate::engine::workload::UsageKind;
use crate::toolkit::chart::Chart;
use crate::toolkit::format::{bytes, ns, pct};
use crate::toolkit::markdown::{cell, table_markdown};

/// The method, as a paragraph generated from [`Method`] and the workloads'
/// empty-call costs.
pub fn method_paragraph(m: &Method, workloads: &[WorkloadResult]) -> String {
    let mut s = format!(
        "Every allocator runs every workload in the same process on the same pre-faulted arena \
         (a third-party plugin given on the command line runs in a worker process, in step). \
         For each workload, each allocator first makes one untimed checked pass (every block is \
         checked to lie in the arena, not to overlap a live block and to keep its contents; \
         `allocator_check` runs when the allocator has it), which also records every choice the \
         allocator makes; then one warm-up and {} timed repetition{}{}, the allocators \
         interleaved and rotated each round, each repetition on a fresh allocator. Every timed \
         repetition must make exactly the checked pass's choices, or its row is marked NOT \
         REPRODUCED. {}",
        m.repetitions,
        if m.repetitions == 1 { "" } else { "s" },
        if m.quick {
            " (`--quick`: smaller workloads, fewer repetitions)"
        } else {
            ""
        },
        if m.cold {
            "Before each repetition (`--cold`) the arena, the slot table and the script are \
             evicted from every cache level and the branch predictor is scrambled: every first \
             touch of the arena goes to memory (a system allocator's own heap cannot be flushed). "
        } else {
            "Before each repetition the allocator runs the same workload generated from another \
             seed, untimed, on an allocator then destroyed (its code, metadata and blocks are in \
             the caches, as in a program that has been allocating for a while, the system \
             allocators' heaps included), and then the branch predictor is scrambled, so nothing \
             it learnt is the timed sequence's own. "
        },
    );
    match m.pinned_cpu {
        Some(cpu) => {
            let _ = write!(s, "The measuring thread was pinned to CPU {cpu}. ");
        }
        None => s.push_str("The measuring thread was not pinned to a CPU. "),
    }
    let _ = write!(
        s,
        "A phase is timed as one batch with `Instant::now()` (one reading costs {}); \
         figures are ns per call, the median over the repetitions with the interquartile range. \
         Net figures subtract the cost of the empty call (a function with the allocator's \
         signature that does nothing, called through the same pointer in the same loop and \
         measured in the same rotation)",
        ns(m.instant_ns)
    );
    let empties: Vec<f64> = workloads
        .iter()
        .flat_map(|w| w.empty_call_ns.iter().map(|e| e.1))
        .filter(|v| v.is_finite())
        .collect();
    if let (Some(lo), Some(hi)) = (
        empties.iter().copied().reduce(f64::min),
        empties.iter().copied().reduce(f64::max),
    ) {
        if (hi - lo).abs() < 0.05 {
            let _ = write!(s, ", {} here", ns(lo));
        } else {
            let _ = write!(s, ", {} to {} here", ns(lo), ns(hi));
        }
    }
    s.push_str(". ");
    match (m.tsc_hz, m.tsc_overhead_cycles) {
        (Some(hz), Some(cycles)) if hz > 0.0 => {
            let _ = write!(
                s,
                "Latency percentiles come from a separate pass that reads the cycle counter \
                 ({:.2} GHz) around every call; the cost of an empty reading pair ({cycles:.0} \
                 cycles, {}) is subtracted from each sample. ",
                hz / 1e9,
                ns(cycles * 1e9 / hz)
            );
        }
        _ => s.push_str("No cycle counter was available: there are no latency percentiles. "),
    }
    let _ = write!(s, "Every workload's requests come from seed {}.", m.seed);
    s
}

/// The usage column's meaning for a workload.
fn usage_words(w: &WorkloadResult) -> Option<&'static str> {
    match w.usage_kind {
        UsageKind::Brief => Some(
            "usage factor: requested bytes of the successful allocations of the first phase / arena size",
        ),
        UsageKind::Fill => {
            Some("fill efficiency: requested bytes live at the first refusal / arena size")
        }
        UsageKind::Trace => Some(
            "peak live requested bytes of the trace / the smallest arena on which the allocator \
             replays it without a refusal",
        ),
        UsageKind::None => None,
    }
}

fn image(c: &Chart) -> String {
    format!(
        "![{}]({}.svg)\n\n[PNG]({}.png)\n",
        c.title.replace(['[', ']'], ""),
        c.stem,
        c.stem
    )
}

fn workload_section(w: &WorkloadResult, charts: &[Chart], usage_chart: bool) -> String {
    let mut s = format!(
        "### `{}`\n\n{}.\n\n",
        w.name,
        w.description.trim_end_matches('.')
    );
    let _ = write!(s, "Arena: {}.", bytes(w.arena_bytes));
    if let Some(u) = usage_words(w) {
        let _ = write!(s, " Usage column: {u}.");
    }
    if let Some(b) = &w.bounds {
        let _ = write!(
            s,
            " Ideal bounds on the same requests: {} for a power-of-two allocator, {} for an \
             exact-size one (no metadata).",
            pct(b.pow2),
            pct(b.exact)
        );
    }
    if !w.empty_call_ns.is_empty() {
        let e: Vec<String> = w
            .empty_call_ns
            .iter()
            .map(|(n, v)| format!("{n} {}", ns(*v)))
            .collect();
        let _ = write!(s, " Empty call: {}.", e.join(", "));
    }
    s.push_str(
        "\n\nns/op: median ± interquartile range of the repetitions, net of the empty call.\n\n",
    );
    s.push_str(&table_markdown(&table::workload_table(w)));
    s.push('\n');
    for c in charts
        .iter()
        .filter(|c| c.workload.as_deref() == Some(&w.name))
    {
        s.push_str(&image(c));
        s.push('\n');
    }
    if usage_chart && w.usage_kind != UsageKind::None {
        s.push_str("Usage: see the [usage chart](#usage-factor).\n\n");
    }
    s
}

/// The whole `report.md`.
pub fn render(r: &CompareResults, charts: &[Chart]) -> String {
    let mut s = String::from("# alloclab compare: report\n\n");
    run_summary(&mut s, r);

    let _ = writeln!(
        s,
        "## Method\n\n{}\n",
        method_paragraph(&r.method, &r.workloads)
    );

    subjects_section(&mut s, r);

    let usage_chart = charts.iter().find(|c| c.stem == "usage");
    if let Some(c) = usage_chart {
        s.push_str("## Usage factor\n\n");
        s.push_str(
            "Each bar is one allocator on one usage workload; the dashed lines are what ideal \
             allocators with no metadata reach on the same requests, rounding every request up to \
             a power of two (black) or not at all (grey).\n\n",
        );
        s.push_str(&image(c));
        s.push('\n');
    }

    s.push_str("## Workloads\n\n");
    for w in &r.workloads {
        s.push_str(&workload_section(w, charts, usage_chart.is_some()));
    }

    let _ = writeln!(
        s,
        "## Ease of use\n\nDocumented facts beside observed ones (the bad-pointer, exhaustion and \
         smallest-arena probes run in child processes).\n\n{}",
        table_markdown(&table::ease_table(r))
    );

    let _ = writeln!(
        s,
        "## Analysis\n\nGenerated from the figures above: every ratio is computed from this run's \
         results.\n\n{}",
        analysis::analyse(r).markdown()
    );
    s
}

/// The table at the top: machine, date, command, allocators, workloads.
fn run_summary(s: &mut String, r: &CompareResults) {
    let m = &r.machine;
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(
        s,
        "| Machine | {}, {} CPU{}, {} |",
        cell(&m.cpu),
        m.cpus,
        if m.cpus == 1 { "" } else { "s" },
        cell(&m.kernel)
    );
    let _ = writeln!(s, "| Date | {} |", cell(&m.date));
    let _ = writeln!(s, "| Command | `{}` |", cell(&m.command));
    let _ = writeln!(
        s,
        "| Allocators | {} |",
        cell(
            &r.subjects
                .iter()
                .map(|x| x.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    );
    let _ = writeln!(
        s,
        "| Workloads | {} |\n",
        cell(
            &r.workloads
                .iter()
                .map(|w| w.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    );
}

/// The "Allocators" section: each subject's origin and description.
fn subjects_section(s: &mut String, r: &CompareResults) {
    if r.subjects.is_empty() {
        return;
    }
    s.push_str("## Allocators\n\n| allocator | origin | description |\n|---|---|---|\n");
    for x in &r.subjects {
        let _ = writeln!(
            s,
            "| {} | {}{} | {} |",
            cell(&x.name),
            cell(&x.origin),
            if x.isolated {
                " (in a child process)"
            } else {
                ""
            },
            cell(x.description.as_deref().unwrap_or("-"))
        );
    }
    s.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::report::sample;
    use comfy_table::Table;

    #[test]
    fn tables_become_markdown() {
        let mut t = Table::new();
        t.set_header(["a", "b|c"]);
        t.add_row(["1\n2", "x"]);
        t.add_row(["only one"]);
        assert_eq!(
            table_markdown(&t),
            "| a | b\\|c |\n|---|---|\n| 1<br>2 | x |\n| only one |  |\n"
        );
        assert_eq!(table_markdown(&Table::new()), "");
    }

    #[test]
    fn method_says_how() {
        let r = sample::results(&sample::specs());
        let p = method_paragraph(&r.method, &r.workloads);
        for want in [
            "5 timed repetitions",
            "pinned to CPU 1",
            "18.5 ns",
            "empty call",
            "1.5 ns here",
            "3.00 GHz",
            "24 cycles, 8.0 ns",
            "another seed",
            "branch predictor",
            "checked pass",
            "NOT REPRODUCED",
        ] {
            assert!(p.contains(want), "{want:?} missing from {p}");
        }
        let mut m = r.method.clone();
        m.cold = true;
        assert!(method_paragraph(&m, &[]).contains("evicted from every cache level"));
        m.pinned_cpu = None;
        m.tsc_hz = None;
        let p = method_paragraph(&m, &[]);
        assert!(p.contains("not pinned") && p.contains("no latency percentiles"));
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(bytes(1 << 20), "1 MiB");
        assert_eq!(bytes(64 << 10), "64 KiB");
        assert_eq!(bytes(1000), "1000 B");
    }
}

//! The terminal view of the results: one table per workload.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};

use crate::engine::results::*;
use crate::engine::workload::UsageKind;

/// `12.3 ±4%`: median and interquartile range relative to it (`no calls`
/// for a phase that made none, e.g. every allocation before it refused).
pub fn ns_cell(s: &Summary) -> String {
    if !s.median.is_finite() {
        "no calls".into()
    } else if s.median >= 100.0 {
        format!("{:.0} ±{:.0}%", s.median, 100.0 * s.relative_spread())
    } else {
        format!("{:.1} ±{:.0}%", s.median, 100.0 * s.relative_spread())
    }
}

fn percent(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

/// One workload's table.
pub fn workload_table(w: &WorkloadResult) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    let phases: Vec<&str> = w.empty_call_ns.iter().map(|(n, _)| n.as_str()).collect();
    let mut header = vec!["allocator".to_string()];
    header.extend(phases.iter().map(|p| format!("{p} ns/op")));
    header.push("refused".into());
    if w.usage_kind != UsageKind::None {
        header.push(match w.usage_kind {
            UsageKind::Fill => "fill efficiency".into(),
            UsageKind::Trace => "peak live / smallest arena".into(),
            _ => "usage factor".into(),
        });
        header.push("vs ideal 2^k".into());
        header.push("requested/held".into());
    }
    header.push("p50 / p99 / max ns".into());
    header.push("faults/rep".into());
    table.set_header(header);
    let most_reps = w.rows.iter().map(|r| r.repetitions).max().unwrap_or(0);
    for row in &w.rows {
        let mut name = row.subject.clone();
        if row.failure.is_none() && row.repetitions < most_reps {
            name.push_str(&format!("\n({} reps: slow)", row.repetitions));
        }
        if row.realloc_emulated {
            name.push_str("\n(realloc emulated:\nalloc + copy + free)");
        }
        let mut cells = vec![Cell::new(name)];
        if let Some(f) = &row.failure {
            cells.push(Cell::new(if row.too_slow {
                f.clone()
            } else {
                format!("failed: {f}")
            }));
            table.add_row(cells);
            continue;
        }
        for p in &row.phases {
            cells.push(Cell::new(ns_cell(&p.net_ns_per_op)).set_alignment(CellAlignment::Right));
        }
        let refused: usize = row.phases.iter().map(|p| p.refusals).sum();
        let calls: usize = row.phases.iter().map(|p| p.calls).sum();
        cells.push(Cell::new(if refused == 0 {
            "0".into()
        } else {
            format!("{refused}/{calls}")
        }));
        if w.usage_kind != UsageKind::None {
            match &row.usage {
                Some(u) => {
                    cells.push(Cell::new(percent(u.factor)).set_alignment(CellAlignment::Right));
                    cells.push(Cell::new(u.vs_ideal_pow2.map(percent).unwrap_or_default()));
                    cells.push(Cell::new(
                        u.utilization.map(percent).unwrap_or_else(|| "-".into()),
                    ));
                }
                None => cells.extend(["n/a", "", ""].map(Cell::new)),
            }
        }
        // The latency of the first kind of call that has samples.
        let lat = row
            .latency
            .iter()
            .map(|l| format!("{}: {:.0} / {:.0} / {:.0}", l.op, l.p50, l.p99, l.max))
            .collect::<Vec<_>>()
            .join("\n");
        cells.push(Cell::new(lat));
        let mut faults = format!("{:.0}", row.kernel.minor_faults + row.kernel.major_faults);
        if !row.reproduced {
            faults.push_str("\nNOT REPRODUCED");
        }
        if row.largest_restored == Some(false) {
            faults.push_str("\nlargest block not restored");
        }
        cells.push(Cell::new(faults));
        table.add_row(cells);
    }
    table
}

/// The lines printed above a workload's table.
pub fn workload_legend(w: &WorkloadResult) -> String {
    let mut s = format!("── {} ── {}\n", w.name, w.description);
    let empty: Vec<String> = w
        .empty_call_ns
        .iter()
        .map(|(n, v)| format!("{n} {v:.1} ns"))
        .collect();
    s.push_str(&format!(
        "   ns/op: median ± interquartile range of the repetitions, net of the empty call ({})\n",
        empty.join(", ")
    ));
    if let Some(b) = &w.bounds {
        s.push_str(&format!(
            "   ideal bounds on the same requests: power-of-two allocator {}, exact-size allocator {}\n",
            percent(b.pow2),
            percent(b.exact)
        ));
    }
    s
}

/// The ease-of-use table: documented facts beside observed ones.
pub fn ease_table(r: &CompareResults) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    table.set_header([
        "allocator",
        "calls a user makes",
        "free needs size",
        "realloc",
        "alignment seen",
        "smallest arena",
        "bad pointer: interior / double / foreign",
        "when full",
        "threads",
        "introspection",
    ]);
    for s in &r.subjects {
        let o = &s.observed;
        let (calls, needs_size, realloc, threads, intro) = match &s.facts {
            Some(f) => (
                f.calls.to_string(),
                if f.free_needs_size { "yes" } else { "no" }.to_string(),
                format!("{:?}", f.realloc).to_lowercase(),
                f.threads.to_string(),
                f.introspection.to_string(),
            ),
            None => (
                "allocator_create, allocator_alloc, allocator_free, allocator_destroy".into(),
                "no".into(),
                if o.caps.has_realloc {
                    "native"
                } else {
                    "none (alloclab emulates it: alloc + copy + free)"
                }
                .into(),
                if o.caps.lockable {
                    "one instance per thread, or created ALLOCATOR_FLAG_LOCKED"
                } else {
                    "not documented (assume one instance per thread)"
                }
                .into(),
                [
                    o.caps.has_stats.then_some("allocator_stats"),
                    o.caps.has_check.then_some("allocator_check"),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", "),
            ),
        };
        let na = || "-".to_string();
        table.add_row([
            s.name.clone(),
            calls,
            needs_size,
            realloc,
            o.alignment.map_or_else(na, |a| format!("{a} B")),
            o.smallest_arena.map_or_else(na, |a| format!("{a} B")),
            format!(
                "{}\n{}\n{}",
                o.interior_free.as_deref().unwrap_or("-"),
                o.double_free.as_deref().unwrap_or("-"),
                o.foreign_free.as_deref().unwrap_or("-")
            ),
            o.exhaustion.clone().unwrap_or_else(na),
            threads,
            intro,
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_without_calls_says_so() {
        let none = Summary::of(&[f64::NAN, f64::NAN]);
        assert_eq!(ns_cell(&none), "no calls");
        assert_eq!(ns_cell(&Summary::of(&[12.0, 12.0])), "12.0 ±0%");
    }
}

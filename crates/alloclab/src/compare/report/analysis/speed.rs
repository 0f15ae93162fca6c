//! The allocation- and free-speed sections of the analysis: who is fastest,
//! by how much, the tails, the free order, and the allocators that take
//! their memory from the OS.

#[allow(unused_imports)]
use super::*;

/// Net figures below this are within the timer's and the empty call's noise:
/// a workload with one compares gross figures instead.
pub(super) const NET_FLOOR_NS: f64 = 1.0;

pub(super) fn speed_fields(r: &CompareResults, phase: &str) -> Vec<Field> {
    r.workloads
        .iter()
        .filter_map(|w| {
            let rows: Vec<(&Row, &crate::engine::results::PhaseResult)> = ok_rows(w)
                .filter_map(|row| Some((row, row.phases.iter().find(|p| p.name == phase)?)))
                .filter(|(_, p)| p.calls > 0)
                .collect();
            if rows.is_empty() {
                return None;
            }
            let net_ok = rows.iter().all(|(_, p)| {
                p.net_ns_per_op.median.is_finite() && p.net_ns_per_op.median >= NET_FLOOR_NS
            });
            let entries = rows
                .iter()
                .map(|(row, p)| {
                    let s = if net_ok { p.net_ns_per_op } else { p.ns_per_op };
                    RankedFigure {
                        name: row.subject.clone(),
                        value: s.median,
                        iqr: Some((s.q1, s.q3)),
                    }
                })
                .collect();
            let note = (!net_ok).then(|| {
                format!(
                    "gross ns/op: a net figure is below {NET_FLOOR_NS} ns, within the empty call's noise"
                )
            });
            let f = Field::new(&w.name, entries, Better::Lower, note);
            (!f.entries.is_empty()).then_some(f)
        })
        .collect()
}

pub(super) fn speed(r: &CompareResults, phase: &str, c: Characteristic) -> Section {
    let fields = speed_fields(r, phase);
    let order = subject_order(r);
    let noun = if phase == "free" {
        "free"
    } else {
        "allocation"
    };
    let Some(ranking) = rank(&fields, Better::Lower, &order) else {
        return Section {
            characteristic: c,
            leader: None,
            tied: Vec::new(),
            summary: format!("No workload has a timed `{phase}` phase with figures."),
            points: Vec::new(),
        };
    };
    let verb = if phase == "free" {
        "frees fastest"
    } else {
        "allocates fastest"
    };
    let summary = leader_sentence(
        &ranking,
        verb,
        &format!("workloads with a timed `{phase}` phase"),
        |name, adv| format!("{} faster than {name}", ratio(adv)),
        &format!("per {noun} it is"),
    );
    let mut points: Vec<String> = fields
        .iter()
        .map(|f| {
            format!(
                "`{}`, ns per {noun} (net median): {}",
                f.workload,
                figures_line(f, Better::Lower, ns)
            )
        })
        .collect();
    points.extend(tail_points(r, phase));
    if phase == "free" {
        points.extend(free_order_point(r));
    }
    points.extend(os_points(r, &fields, &ranking.leader, noun));
    Section {
        characteristic: c,
        leader: Some(ranking.leader),
        tied: Vec::new(),
        summary,
        points,
    }
}

/// The p99.9 latency of `op` on the latency workloads.
pub(super) fn tail_points(r: &CompareResults, op: &str) -> Vec<String> {
    r.workloads
        .iter()
        .filter(|w| w.name == "small-random" || w.name == "churn")
        .filter_map(|w| {
            let entries = ok_rows(w)
                .filter_map(|row| {
                    let l = row.latency.iter().find(|l| l.op == op)?;
                    Some(RankedFigure {
                        name: row.subject.clone(),
                        value: l.p999,
                        iqr: None,
                    })
                })
                .collect();
            let f = Field::new(&w.name, entries, Better::Lower, None);
            (f.entries.len() > 1).then(|| {
                format!(
                    "Tail latency on `{}` (p99.9 of one `{op}` call): {}",
                    w.name,
                    figures_line(&f, Better::Lower, ns)
                )
            })
        })
        .collect()
}

/// How much each allocator's free time depends on the free order
/// (`small-random`, `small-lifo`, `small-fifo`: same blocks, different order).
pub(super) fn free_order_point(r: &CompareResults) -> Option<String> {
    let ws: Vec<&WorkloadResult> = r
        .workloads
        .iter()
        .filter(|w| w.name.starts_with("small-") && !w.name.ends_with("-aged"))
        .collect();
    if ws.len() < 2 {
        return None;
    }
    let mut spreads: Vec<(String, f64)> = subject_order(r)
        .into_iter()
        .filter_map(|name| {
            let v: Vec<f64> = ws
                .iter()
                .filter_map(|w| {
                    let row = ok_rows(w).find(|row| row.subject == name)?;
                    let m = row
                        .phases
                        .iter()
                        .find(|p| p.name == "free")?
                        .ns_per_op
                        .median;
                    (m.is_finite() && m > 0.0).then_some(m)
                })
                .collect();
            (v.len() == ws.len()).then(|| {
                let (lo, hi) = v
                    .iter()
                    .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
                (name, hi / lo)
            })
        })
        .collect();
    if spreads.is_empty() {
        return None;
    }
    spreads.sort_by(|a, b| b.1.total_cmp(&a.1));
    let names: Vec<String> = ws.iter().map(|w| format!("`{}`", w.name)).collect();
    let list: Vec<String> = spreads
        .iter()
        .map(|(n, s)| format!("{n} {}", ratio(*s)))
        .collect();
    Some(format!(
        "Free order (the same blocks freed in the orders of {}), slowest over fastest order, gross \
         ns/op: {}.",
        and_list(&names),
        list.join(", ")
    ))
}

/// Allocators that take memory from the OS: how much slower, and their page
/// faults per call.
pub(super) fn os_points(
    r: &CompareResults,
    fields: &[Field],
    leader: &str,
    noun: &str,
) -> Vec<String> {
    let mut points = Vec::new();
    for s in r
        .subjects
        .iter()
        .filter(|s| s.facts.is_some_and(|f| !f.uses_arena))
    {
        if s.name == leader {
            continue;
        }
        let adv: Vec<f64> = fields
            .iter()
            .filter_map(|f| {
                Some(advantage(
                    f.get(leader)?.value,
                    f.get(&s.name)?.value,
                    Better::Lower,
                ))
            })
            .collect();
        let Some(g) = geomean(&adv) else { continue };
        let mut p = format!(
            "{} takes its memory from the OS rather than the arena (documented): per {noun} it \
             takes {} as long as {leader} (geometric mean)",
            s.name,
            ratio(g)
        );
        if let Some((w, faults, allocs)) = r.workloads.iter().find_map(|w| {
            let row = ok_rows(w).find(|row| row.subject == s.name)?;
            let allocs: usize = row.phases.iter().map(|p| p.successes).sum();
            let f = row.kernel.minor_faults;
            (allocs > 0 && f.is_finite()).then_some((&w.name, f, allocs))
        }) {
            let per_alloc = faults / allocs as f64;
            let _ = write!(
                p,
                "; on `{w}` it takes {faults:.0} minor page faults per repetition for {allocs} \
                 successful allocations"
            );
            if (0.8..=1.25).contains(&per_alloc) {
                p.push_str(
                    " — about one per allocation (the arena allocators work in a pre-faulted \
                     arena)",
                );
            } else {
                let _ = write!(p, " ({per_alloc:.2} per allocation)");
            }
        }
        p.push('.');
        points.push(p);
    }
    points
}

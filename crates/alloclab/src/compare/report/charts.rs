//! The figures of `alloclab compare --report`: the usage chart, a time
//! chart per workload, latency charts; drawn with the report toolkit's
//! chart engine (`toolkit/chart.rs`).

use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;

use crate::engine::results::{CompareResults, WorkloadResult};
use crate::engine::workload::UsageKind;
use crate::toolkit::chart::{
    Axis, Bar, Chart, Colors, EXACT_LINE, Figure, Group, Mark, POW2_LINE, Panel, RefKind, Unit,
    register_font, render, slug,
};
use crate::toolkit::format::{ns, pct};

/// The allocators' colors: by table order, then by first appearance.
fn colors_of(r: &CompareResults) -> Colors {
    let mut names: Vec<String> = r.subjects.iter().map(|s| s.name.clone()).collect();
    for row in r.workloads.iter().flat_map(|w| &w.rows) {
        if !names.contains(&row.subject) {
            names.push(row.subject.clone());
        }
    }
    Colors(names)
}

/// Colors of p50, p99, p99.9.
const PERCENTILES: [(&str, RGBColor); 3] = [
    ("p50", RGBColor(158, 202, 225)),
    ("p99", RGBColor(49, 130, 189)),
    ("p99.9", RGBColor(8, 48, 107)),
];

/// The usage chart: a group per usage workload, a bar per allocator, the
/// ideal bounds as dashed lines.
fn usage_figure(r: &CompareResults, colors: &Colors) -> Option<Figure> {
    let mut groups = Vec::new();
    for w in r
        .workloads
        .iter()
        .filter(|w| w.usage_kind != UsageKind::None)
    {
        if !w
            .rows
            .iter()
            .any(|row| row.usage.is_some_and(|u| u.factor.is_finite()))
        {
            continue;
        }
        let bars = w
            .rows
            .iter()
            .map(|row| {
                let value = row.usage.map_or(f64::NAN, |u| u.factor);
                let text = match (&row.failure, value.is_finite()) {
                    (Some(_), _) if row.too_slow => format!("{}: too slow", row.subject),
                    (Some(_), _) => format!("{}: failed", row.subject),
                    (None, true) => format!("{} {}", row.subject, pct(value)),
                    (None, false) => format!("{}: n/a (not an arena allocator)", row.subject),
                };
                Bar {
                    value,
                    whisker: None,
                    color: colors.get(&row.subject),
                    text,
                }
            })
            .collect();
        let refs = w
            .bounds
            .map(|b| vec![(b.pow2, RefKind::Pow2), (b.exact, RefKind::Exact)])
            .unwrap_or_default();
        groups.push(Group {
            label: w.name.clone(),
            bars,
            refs,
        });
    }
    if groups.is_empty() {
        return None;
    }
    let has_bounds = groups.iter().any(|g| !g.refs.is_empty());
    Some(Figure {
        title: "Usage factor per allocator (higher is better)".into(),
        panels: vec![Panel {
            title: String::new(),
            x_desc: "share of the arena serving requests (fill: at the first refusal; traces: peak live / smallest arena)".into(),
            unit: Unit::Percent,
            groups,
        }],
        legend: if has_bounds {
            vec![
                ("ideal power-of-two allocator".into(), Mark::Dashed(POW2_LINE)),
                ("ideal exact-size allocator".into(), Mark::Dashed(EXACT_LINE)),
            ]
        } else {
            Vec::new()
        },
    })
}

/// Time per operation on one workload: a group per timed phase, a bar per
/// allocator (net median, interquartile whisker).
fn time_figure(w: &WorkloadResult, colors: &Colors) -> Option<Figure> {
    let mut phase_names: Vec<String> = w.empty_call_ns.iter().map(|(n, _)| n.clone()).collect();
    for p in w.rows.iter().flat_map(|r| &r.phases) {
        if !phase_names.contains(&p.name) {
            phase_names.push(p.name.clone());
        }
    }
    let mut any = false;
    let groups: Vec<Group> = phase_names
        .iter()
        .map(|phase| Group {
            label: phase.clone(),
            refs: Vec::new(),
            bars: w
                .rows
                .iter()
                .map(|row| {
                    let p = row.phases.iter().find(|p| &p.name == phase);
                    let s = p.map(|p| p.net_ns_per_op);
                    let value = s.map_or(f64::NAN, |s| s.median);
                    any |= value.is_finite();
                    let text = match (&row.failure, value.is_finite()) {
                        (Some(_), _) if row.too_slow => format!("{}: too slow", row.subject),
                        (Some(_), _) => format!("{}: failed", row.subject),
                        (None, true) => format!("{} {}", row.subject, ns(value)),
                        (None, false) => format!("{}: no figure", row.subject),
                    };
                    Bar {
                        value,
                        whisker: s.map(|s| (s.q1, s.q3)),
                        color: colors.get(&row.subject),
                        text,
                    }
                })
                .collect(),
        })
        .collect();
    if !any {
        return None;
    }
    let panel = Panel {
        title: String::new(),
        x_desc: String::new(),
        unit: Unit::Ns,
        groups,
    };
    let log = Axis::new(&panel.values(), Unit::Ns).log;
    Some(Figure {
        title: format!("{}: time per operation (lower is better)", w.name),
        panels: vec![Panel {
            x_desc: format!(
                "ns per call, net of the empty call: median of the repetitions, whisker = interquartile range{}",
                if log { " (log scale)" } else { "" }
            ),
            ..panel
        }],
        legend: Vec::new(),
    })
}

/// Latency percentiles of alloc and free on one workload: a panel per
/// operation, a group per allocator, a bar per percentile.
fn latency_figure(w: &WorkloadResult) -> Option<Figure> {
    let mut panels = Vec::new();
    for op in ["alloc", "free"] {
        let groups: Vec<Group> = w
            .rows
            .iter()
            .filter(|row| row.failure.is_none())
            .filter_map(|row| {
                let l = row.latency.iter().find(|l| l.op == op)?;
                Some(Group {
                    label: row.subject.clone(),
                    refs: Vec::new(),
                    bars: [l.p50, l.p99, l.p999]
                        .into_iter()
                        .zip(PERCENTILES)
                        .map(|(v, (name, color))| Bar {
                            value: v,
                            whisker: None,
                            color,
                            text: format!("{name} {}", ns(v)),
                        })
                        .collect(),
                })
            })
            .collect();
        if groups.is_empty() {
            continue;
        }
        panels.push(Panel {
            title: format!("{op} (one call)"),
            x_desc: String::new(),
            unit: Unit::Ns,
            groups,
        });
    }
    if panels.is_empty() {
        return None;
    }
    let values: Vec<f64> = panels.iter().flat_map(Panel::values).collect();
    let log = Axis::new(&values, Unit::Ns).log;
    for p in &mut panels {
        p.x_desc = format!(
            "ns per call, net of the cycle counter's own cost{}",
            if log { " (log scale)" } else { "" }
        );
    }
    Some(Figure {
        title: format!("{}: latency percentiles per call (lower is better)", w.name),
        panels,
        legend: PERCENTILES
            .iter()
            .map(|(n, c)| (n.to_string(), Mark::Box(*c)))
            .collect(),
    })
}

/// The workloads that get a latency chart.
pub const LATENCY_WORKLOADS: [&str; 2] = ["small-random", "churn"];

/// Draws every chart of `r` into `dir` (which must exist).
pub fn render_all(r: &CompareResults, dir: &Path) -> Result<Vec<Chart>> {
    register_font()?;
    let colors = colors_of(r);
    let mut charts = Vec::new();
    if let Some(fig) = usage_figure(r, &colors) {
        render(dir, "usage", &fig)?;
        charts.push(Chart {
            stem: "usage".into(),
            title: fig.title,
            workload: None,
        });
    }
    for w in &r.workloads {
        if let Some(fig) = time_figure(w, &colors) {
            let stem = format!("time-{}", slug(&w.name));
            render(dir, &stem, &fig)?;
            charts.push(Chart {
                stem,
                title: fig.title,
                workload: Some(w.name.clone()),
            });
        }
        if LATENCY_WORKLOADS.contains(&w.name.as_str())
            && let Some(fig) = latency_figure(w)
        {
            let stem = format!("latency-{}", slug(&w.name));
            render(dir, &stem, &fig)?;
            charts.push(Chart {
                stem,
                title: fig.title,
                workload: Some(w.name.clone()),
            });
        }
    }
    Ok(charts)
}

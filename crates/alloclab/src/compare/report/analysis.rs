//! The written analysis that ends the report: for each of the brief's four
//! characteristics (usage factor, allocation speed, free speed, ease of
//! use), which allocator leads and by how much, and the trade-offs the
//! numbers show. Every sentence is computed from [`CompareResults`]: no
//! allocator is named here in advance.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::compare::results::{CompareResults, Row, SubjectInfo, WorkloadResult};
use crate::compare::workload::UsageKind;
use crate::facts::ReallocKind;

/// One of the brief's four characteristics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Characteristic {
    /// How much of the arena can serve requests.
    Usage,
    /// Time per allocation.
    AllocSpeed,
    /// Time per free.
    FreeSpeed,
    /// What a user must know and what happens on misuse.
    EaseOfUse,
}

impl Characteristic {
    /// The section title.
    pub fn title(self) -> &'static str {
        match self {
            Characteristic::Usage => "Usage factor",
            Characteristic::AllocSpeed => "Allocation speed",
            Characteristic::FreeSpeed => "Free speed",
            Characteristic::EaseOfUse => "Ease of use",
        }
    }
}

/// The analysis of one characteristic.
#[derive(Clone, Debug)]
pub struct Section {
    /// Which characteristic.
    pub characteristic: Characteristic,
    /// The allocator that leads on it, if the numbers name one.
    pub leader: Option<String>,
    /// The allocators tied for the lead, when there is no single leader.
    pub tied: Vec<String>,
    /// The headline sentence.
    pub summary: String,
    /// Per-workload figures and trade-offs, one Markdown bullet each.
    pub points: Vec<String>,
}

/// The whole analysis.
#[derive(Clone, Debug)]
pub struct Analysis {
    /// Usage, allocation speed, free speed, ease of use, in that order.
    pub sections: Vec<Section>,
    /// Rows that were not compared, and why.
    pub failures: Vec<String>,
}

impl Analysis {
    /// The section of `c`.
    #[cfg(test)]
    pub fn section(&self, c: Characteristic) -> Option<&Section> {
        self.sections.iter().find(|s| s.characteristic == c)
    }

    /// "usage factor: X; allocation speed: Y; ..." (who leads each).
    pub fn leaders_line(&self) -> String {
        self.sections
            .iter()
            .map(|s| {
                let who = match (&s.leader, s.tied.as_slice()) {
                    (Some(l), _) => l.clone(),
                    (None, []) => "no figures".into(),
                    (None, t) => format!("a tie between {}", and_list(t)),
                };
                format!("{}: {who}", s.characteristic.title().to_lowercase())
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// As Markdown (a `###` heading per characteristic).
    pub fn markdown(&self) -> String {
        let mut s = format!("Leads on {}.\n\n", self.leaders_line());
        for sec in &self.sections {
            let _ = writeln!(s, "### {}\n\n{}\n", sec.characteristic.title(), sec.summary);
            for p in &sec.points {
                let _ = writeln!(s, "- {p}");
            }
            if !sec.points.is_empty() {
                s.push('\n');
            }
        }
        if !self.failures.is_empty() {
            let _ = writeln!(
                s,
                "Not compared (no figures): {}.\n",
                self.failures.join("; ")
            );
        }
        s
    }
}

/// Computes the analysis of `r`.
pub fn analyse(r: &CompareResults) -> Analysis {
    let failures = r
        .workloads
        .iter()
        .flat_map(|w| {
            w.rows.iter().filter_map(move |row| {
                row.failure
                    .as_ref()
                    .map(|f| format!("{} on `{}` ({})", row.subject, w.name, f))
            })
        })
        .collect();
    Analysis {
        sections: vec![
            usage(r),
            speed(r, "alloc", Characteristic::AllocSpeed),
            speed(r, "free", Characteristic::FreeSpeed),
            ease(r),
        ],
        failures,
    }
}

// ───────────────────────────── formatting ─────────────────────────────

/// `1.03x`, `1.8x`, `12x`, `1200x`.
pub fn ratio(x: f64) -> String {
    if !x.is_finite() {
        "∞x".into()
    } else if x < 1.095 {
        format!("{x:.2}x")
    } else if x < 9.95 {
        format!("{x:.1}x")
    } else {
        format!("{x:.0}x")
    }
}

/// `9.1 ns`, `152 ns`, `12.3 µs`, `1.20 ms`.
pub fn ns(x: f64) -> String {
    if !x.is_finite() {
        "n/a".into()
    } else if x.abs() < 100.0 {
        format!("{x:.1} ns")
    } else if x.abs() < 10_000.0 {
        format!("{x:.0} ns")
    } else if x.abs() < 1e6 {
        format!("{:.1} µs", x / 1e3)
    } else {
        format!("{:.2} ms", x / 1e6)
    }
}

/// `74.7%`.
pub fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.1}%", 100.0 * x)
    } else {
        "n/a".into()
    }
}

/// The singular or plural form for `n` subjects.
fn agree(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [a] => a.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

// ───────────────────────────── ranking ─────────────────────────────

/// Which way a figure is better.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Better {
    Higher,
    Lower,
}

/// One allocator's figure on one workload.
#[derive(Clone, Debug)]
struct Entry {
    name: String,
    value: f64,
    /// Interquartile range, for "the difference is within the spread".
    iqr: Option<(f64, f64)>,
}

/// The comparable figures of one workload, best first.
#[derive(Clone, Debug)]
struct Field {
    workload: String,
    entries: Vec<Entry>,
    /// Said after the figures (e.g. which basis was used).
    note: Option<String>,
}

impl Field {
    fn new(workload: &str, mut entries: Vec<Entry>, better: Better, note: Option<String>) -> Field {
        entries.retain(|e| e.value.is_finite() && e.value > 0.0);
        entries.sort_by(|a, b| match better {
            Better::Higher => b.value.total_cmp(&a.value),
            Better::Lower => a.value.total_cmp(&b.value),
        });
        Field {
            workload: workload.into(),
            entries,
            note,
        }
    }

    fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }
}

/// How many times better `a` is than `b` (≥ 1 when `a` is better).
fn advantage(a: f64, b: f64, better: Better) -> f64 {
    match better {
        Better::Higher => a / b,
        Better::Lower => b / a,
    }
}

fn geomean(xs: &[f64]) -> Option<f64> {
    let xs: Vec<f64> = xs
        .iter()
        .copied()
        .filter(|x| x.is_finite() && *x > 0.0)
        .collect();
    (!xs.is_empty()).then(|| (xs.iter().map(|x| x.ln()).sum::<f64>() / xs.len() as f64).exp())
}

/// The overall standing over several workloads.
struct Ranking {
    leader: String,
    /// Workloads where the leader is best, of `fields`.
    wins: usize,
    fields: usize,
    /// Every other allocator: the leader's advantage over it (geometric mean
    /// over the workloads both have figures on), and on how many.
    others: Vec<(String, f64, usize)>,
}

/// The leader is the allocator, among those with figures on the most
/// workloads, whose figures are closest to each workload's best (geometric
/// mean of best/own); ties go to table order.
fn rank(fields: &[Field], better: Better, order: &[String]) -> Option<Ranking> {
    let fields: Vec<&Field> = fields.iter().filter(|f| !f.entries.is_empty()).collect();
    let mut coverage: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &fields {
        for e in &f.entries {
            *coverage.entry(e.name.as_str()).or_default() += 1;
        }
    }
    let most = *coverage.values().max()?;
    let score = |name: &str| {
        let own: Vec<f64> = fields
            .iter()
            .filter_map(|f| Some(advantage(f.entries[0].value, f.get(name)?.value, better)))
            .collect();
        geomean(&own).unwrap_or(f64::INFINITY)
    };
    let position = |name: &str| order.iter().position(|n| n == name).unwrap_or(usize::MAX);
    let leader = coverage
        .iter()
        .filter(|&(_, &c)| c == most)
        .map(|(&n, _)| (score(n), position(n), n))
        .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))?
        .2
        .to_string();
    let wins = fields
        .iter()
        .filter(|f| f.entries[0].name == leader)
        .count();
    let mut others: Vec<(String, f64, usize)> = coverage
        .keys()
        .filter(|&&n| n != leader)
        .filter_map(|&n| {
            let adv: Vec<f64> = fields
                .iter()
                .filter_map(|f| Some(advantage(f.get(&leader)?.value, f.get(n)?.value, better)))
                .collect();
            Some((n.to_string(), geomean(&adv)?, adv.len()))
        })
        .collect();
    others.sort_by(|a, b| a.1.total_cmp(&b.1));
    Some(Ranking {
        leader,
        wins,
        fields: fields.len(),
        others,
    })
}

fn subject_order(r: &CompareResults) -> Vec<String> {
    r.subjects.iter().map(|s| s.name.clone()).collect()
}

fn ok_rows(w: &WorkloadResult) -> impl Iterator<Item = &Row> {
    w.rows.iter().filter(|r| r.failure.is_none())
}

// ───────────────────────────── usage ─────────────────────────────

fn usage_fields(r: &CompareResults) -> Vec<Field> {
    r.workloads
        .iter()
        .filter(|w| w.usage_kind != UsageKind::None)
        .map(|w| {
            let entries = ok_rows(w)
                .filter_map(|row| {
                    Some(Entry {
                        name: row.subject.clone(),
                        value: row.usage?.factor,
                        iqr: None,
                    })
                })
                .collect();
            Field::new(&w.name, entries, Better::Higher, None)
        })
        .filter(|f| !f.entries.is_empty())
        .collect()
}

fn usage_kind_words(k: UsageKind) -> &'static str {
    match k {
        UsageKind::Fill => "fill efficiency",
        UsageKind::Trace => "peak live bytes / smallest arena that replays the trace",
        _ => "usage factor",
    }
}

fn usage(r: &CompareResults) -> Section {
    let fields = usage_fields(r);
    let order = subject_order(r);
    let Some(ranking) = rank(&fields, Better::Higher, &order) else {
        return Section {
            characteristic: Characteristic::Usage,
            leader: None,
            tied: Vec::new(),
            summary: "No allocator has usage figures (no usage workload ran, or no arena \
                      allocator took part)."
                .into(),
            points: usage_tradeoffs(r),
        };
    };
    let summary = leader_sentence(
        &ranking,
        "has the highest usage factor",
        "usage workloads",
        |name, adv| format!("{} {name}'s", ratio(adv)),
        "its usage factor is",
    );
    let mut points = Vec::new();
    for f in &fields {
        let Some(w) = r.workloads.iter().find(|w| w.name == f.workload) else {
            continue;
        };
        let mut line = format!("`{}` ({}", f.workload, usage_kind_words(w.usage_kind));
        if let Some(b) = &w.bounds {
            let _ = write!(
                line,
                "; ideal bounds {} with power-of-two rounding, {} with exact sizes",
                pct(b.pow2),
                pct(b.exact)
            );
        }
        line.push_str("): ");
        line.push_str(&figures_line(f, Better::Higher, pct));
        points.push(line);
    }
    points.extend(usage_tradeoffs(r));
    Section {
        characteristic: Characteristic::Usage,
        leader: Some(ranking.leader),
        tied: Vec::new(),
        summary,
        points,
    }
}

/// `L 99.6%; X 74.7% (L 1.33x)`.
fn figures_line(f: &Field, better: Better, fmt: fn(f64) -> String) -> String {
    let Some(best) = f.entries.first() else {
        return "no figures".into();
    };
    let mut parts = vec![format!("**{}** {}", best.name, fmt(best.value))];
    // At most the five best and the worst: the summary has every ratio.
    let n = f.entries.len();
    for (i, e) in f.entries.iter().enumerate().skip(1) {
        if n > 7 && i == 5 {
            parts.push("…".into());
        }
        if n > 7 && (5..n - 1).contains(&i) {
            continue;
        }
        let adv = advantage(best.value, e.value, better);
        let how = if adv < 1.005 {
            "same".to_string()
        } else {
            match better {
                Better::Higher => format!("leader's is {}", ratio(adv)),
                Better::Lower => format!("takes {}", ratio(adv)),
            }
        };
        parts.push(format!("{} {} ({how})", e.name, fmt(e.value)));
    }
    let mut s = parts.join("; ");
    if let (Some(second), Some((lo, hi))) = (f.entries.get(1), best.iqr)
        && let Some((lo2, hi2)) = second.iqr
        && lo <= hi2
        && lo2 <= hi
    {
        let _ = write!(
            s,
            " — {} and {} overlap within their interquartile ranges",
            best.name, second.name
        );
    }
    if let Some(n) = &f.note {
        let _ = write!(s, " ({n})");
    }
    s
}

/// "L leads: best on 2 of 3 ...; its figure is 1.3x X's, ...".
fn leader_sentence(
    ranking: &Ranking,
    leads: &str,
    what: &str,
    compare: impl Fn(&str, f64) -> String,
    lead_in: &str,
) -> String {
    if ranking.others.is_empty() {
        return format!(
            "**{}** is the only allocator with figures on the {} {what}: there is nothing to \
             compare it with.",
            ranking.leader, ranking.fields
        );
    }
    let mut s = format!(
        "**{}** {leads}: best on {} of {} {what}",
        ranking.leader, ranking.wins, ranking.fields
    );
    let others: Vec<String> = ranking
        .others
        .iter()
        .map(|(n, adv, _)| compare(n, *adv))
        .collect();
    let _ = write!(
        s,
        "; {lead_in} {} (geometric mean over the workloads both ran).",
        and_list(&others)
    );
    s
}

fn usage_tradeoffs(r: &CompareResults) -> Vec<String> {
    let mut points = Vec::new();
    let uniform: Vec<&WorkloadResult> = r
        .workloads
        .iter()
        .filter(|w| w.bounds.is_some_and(|b| b.exact - b.pow2 >= 0.02))
        .collect();
    let exact_pow2: Vec<&WorkloadResult> = r
        .workloads
        .iter()
        .filter(|w| w.bounds.is_some_and(|b| (b.exact - b.pow2).abs() < 1e-9))
        .collect();
    if let (Some(u), Some(p)) = (uniform.first(), exact_pow2.first())
        && let (Some(bu), Some(bp)) = (u.bounds, p.bounds)
    {
        let mut s = format!(
            "Power-of-two rounding: on `{}` an ideal power-of-two allocator reaches {} against {} \
             with exact sizes (rounding alone costs {:.1} points); on `{}`, where every request is \
             already a power of two, both bounds are {}.",
            u.name,
            pct(bu.pow2),
            pct(bu.exact),
            100.0 * (bu.exact - bu.pow2),
            p.name,
            pct(bp.pow2)
        );
        // Allocators that stay within the power-of-two bound on uniform
        // sizes but reach it on exact powers of two: their loss is rounding.
        let vs = |w: &WorkloadResult, name: &str| {
            ok_rows(w)
                .find(|row| row.subject == name)
                .and_then(|row| row.usage?.vs_ideal_pow2)
                .filter(|v| v.is_finite())
        };
        let mut rounders = Vec::new();
        let mut beyond = Vec::new();
        for name in subject_order(r) {
            let on_uniform: Vec<f64> = uniform.iter().filter_map(|w| vs(w, &name)).collect();
            let on_pow2: Vec<f64> = exact_pow2.iter().filter_map(|w| vs(w, &name)).collect();
            if on_uniform.is_empty() {
                continue;
            }
            let max_uniform = on_uniform.iter().copied().fold(f64::MIN, f64::max);
            if max_uniform <= 1.0 + 1e-9
                && !on_pow2.is_empty()
                && on_pow2.iter().all(|&v| v >= 0.95)
            {
                rounders.push(format!("{name} ({} of the bound)", pct(max_uniform)));
            } else if max_uniform > 1.0 + 1e-9 {
                beyond.push(format!("{name} ({})", ratio(max_uniform)));
            }
        }
        if !rounders.is_empty() {
            let _ = write!(
                s,
                " {} {} within the power-of-two bound on uniform sizes yet {} at least 95% of it \
                 on exact powers of two: what {} on uniform sizes is the rounding.",
                and_list(&rounders),
                agree(rounders.len(), "stays", "stay"),
                agree(rounders.len(), "reaches", "reach"),
                agree(rounders.len(), "it loses", "they lose")
            );
        }
        if !beyond.is_empty() {
            let _ = write!(
                s,
                " {} {} the power-of-two bound on uniform sizes, so {} not round every request \
                 up to a power of two.",
                and_list(&beyond),
                agree(beyond.len(), "exceeds", "exceed"),
                agree(beyond.len(), "it does", "they do")
            );
        }
        points.push(s);
    }
    // On exact powers of two every request fits an ideal allocator: who
    // falls short, and what each block costs it.
    for w in &exact_pow2 {
        let bound = w.bounds.map_or(0.0, |b| b.pow2);
        for row in ok_rows(w) {
            let Some(u) = row.usage else { continue };
            let Some(v) = u.vs_ideal_pow2.filter(|v| v.is_finite() && *v < 0.9) else {
                continue;
            };
            let refused: usize = row.phases.first().map_or(0, |p| p.refusals);
            let calls: usize = row.phases.first().map_or(0, |p| p.calls);
            let mut s = format!(
                "On `{}` (exact powers of two, bound {}), {} reaches {} of the bound",
                w.name,
                pct(bound),
                row.subject,
                pct(v)
            );
            if refused > 0 {
                let _ = write!(s, ", refusing {refused} of {calls} requests");
            }
            if let Some(util) = u.utilization.filter(|x| x.is_finite() && *x > 0.0) {
                let _ = write!(s, "; it holds {} the requested bytes", ratio(1.0 / util));
            }
            if let Some(h) = facts_of(r, &row.subject)
                .map(|f| f.adapter_header)
                .filter(|&h| h > 0)
            {
                let _ = write!(
                    s,
                    " — the runner's adapter puts a {h}-byte size header in front of each of its \
                     blocks (documented), which pushes a power-of-two request into the next size"
                );
            }
            s.push('.');
            points.push(s);
        }
    }
    let outside: Vec<String> = r
        .subjects
        .iter()
        .filter(|s| s.facts.is_some_and(|f| !f.uses_arena))
        .map(|s| s.name.clone())
        .collect();
    if !outside.is_empty() {
        points.push(format!(
            "{} {} memory from the OS instead of the arena (documented), so a usage factor does \
             not apply to {}.",
            and_list(&outside),
            agree(outside.len(), "takes", "take"),
            agree(outside.len(), "it", "them")
        ));
    }
    points
}

fn facts_of<'a>(r: &'a CompareResults, name: &str) -> Option<&'a crate::facts::TypedFacts> {
    r.subjects
        .iter()
        .find(|s| s.name == name)
        .and_then(|s| s.facts.as_ref())
}

// ───────────────────────────── speed ─────────────────────────────

/// Net figures below this are within the timer's and the empty call's noise:
/// a workload with one compares gross figures instead.
const NET_FLOOR_NS: f64 = 1.0;

fn speed_fields(r: &CompareResults, phase: &str) -> Vec<Field> {
    r.workloads
        .iter()
        .filter_map(|w| {
            let rows: Vec<(&Row, &crate::compare::results::PhaseResult)> = ok_rows(w)
                .filter_map(|row| Some((row, row.phases.iter().find(|p| p.name == phase)?)))
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
                    Entry {
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

fn speed(r: &CompareResults, phase: &str, c: Characteristic) -> Section {
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
fn tail_points(r: &CompareResults, op: &str) -> Vec<String> {
    r.workloads
        .iter()
        .filter(|w| w.name == "small-random" || w.name == "churn")
        .filter_map(|w| {
            let entries = ok_rows(w)
                .filter_map(|row| {
                    let l = row.latency.iter().find(|l| l.op == op)?;
                    Some(Entry {
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
fn free_order_point(r: &CompareResults) -> Option<String> {
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
fn os_points(r: &CompareResults, fields: &[Field], leader: &str, noun: &str) -> Vec<String> {
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

// ───────────────────────────── ease of use ─────────────────────────────

/// A bad-pointer probe's outcome is harmless: rejected, no effect, or a
/// deliberate abort (the probe texts of `observe.rs`).
fn harmless(outcome: &str) -> bool {
    outcome.starts_with("rejected")
        || outcome.starts_with("no visible effect")
        || outcome.starts_with("aborts")
}

/// The ease-of-use checks of one allocator: (passed, total, what failed).
fn checks(s: &SubjectInfo) -> (usize, usize, Vec<String>) {
    let o = &s.observed;
    let mut failed = Vec::new();
    let mut total = 0;
    let mut check = |ok: Option<bool>, why: String| {
        total += 1;
        match ok {
            Some(true) => {}
            Some(false) => failed.push(why),
            None => failed.push(format!("{why}: not probed")),
        }
    };
    let needs_size = s.facts.is_some_and(|f| f.free_needs_size);
    check(Some(!needs_size), "free needs the block's size".into());
    let realloc = match &s.facts {
        Some(f) => f.realloc == ReallocKind::Native,
        None => o.has_realloc,
    };
    check(Some(realloc), "no native realloc".into());
    for (what, outcome) in [
        ("interior free", &o.interior_free),
        ("double free", &o.double_free),
        ("foreign free", &o.foreign_free),
    ] {
        let why = format!("{what}: {}", outcome.as_deref().unwrap_or("-"));
        check(outcome.as_deref().map(harmless), why);
    }
    check(
        o.exhaustion
            .as_deref()
            .map(|e| e.starts_with("returns NULL") || e.starts_with("never refuses")),
        format!(
            "when full: {}",
            o.exhaustion.as_deref().unwrap_or("not probed")
        ),
    );
    check(
        o.alignment.map(|a| a >= 16),
        match o.alignment {
            Some(a) => format!("blocks aligned to {a} B only"),
            None => "alignment".into(),
        },
    );
    check(
        Some(o.has_stats || o.has_check),
        "no introspection (allocator_stats / allocator_check)".into(),
    );
    (total - failed.len(), total, failed)
}

fn ease(r: &CompareResults) -> Section {
    const WHAT: &str = "free without the size, native realloc, harmless interior / double / \
                        foreign free, NULL or no refusal when full, 16-byte alignment, \
                        introspection";
    let mut scored: Vec<(String, usize, usize, Vec<String>)> = r
        .subjects
        .iter()
        .map(|s| {
            let (p, t, f) = checks(s);
            (s.name.clone(), p, t, f)
        })
        .collect();
    // Stable: ties keep table order.
    scored.sort_by_key(|s| std::cmp::Reverse(s.1));
    let Some((leader, best, total, _)) = scored.first().cloned() else {
        return Section {
            characteristic: Characteristic::EaseOfUse,
            leader: None,
            tied: Vec::new(),
            summary: "No allocator was probed.".into(),
            points: Vec::new(),
        };
    };
    let tied: Vec<String> = scored
        .iter()
        .filter(|s| s.1 == best)
        .map(|s| s.0.clone())
        .collect();
    let bold: Vec<String> = tied.iter().map(|t| format!("**{t}**")).collect();
    let summary = if tied.len() > 1 {
        format!(
            "{} tie with {best} of {total} ease-of-use checks passed ({WHAT}).",
            and_list(&bold)
        )
    } else if scored.len() == 1 {
        format!("**{leader}** passes {best} of {total} ease-of-use checks ({WHAT}).")
    } else {
        format!(
            "**{leader}** passes the most ease-of-use checks: {best} of {total} ({WHAT}), {} more \
             than the next.",
            best - scored[1].1
        )
    };
    let mut points: Vec<String> = scored
        .iter()
        .map(|(n, p, t, f)| {
            if f.is_empty() {
                format!("{n}: {p} of {t}")
            } else {
                format!("{n}: {p} of {t} — {}", f.join("; "))
            }
        })
        .collect();
    let mut smallest: Vec<(String, usize)> = r
        .subjects
        .iter()
        .filter_map(|s| {
            Some((
                s.name.clone(),
                s.observed.smallest_arena.filter(|&n| n > 0)?,
            ))
        })
        .collect();
    smallest.sort_by_key(|s| s.1);
    if let [(first, n), rest @ ..] = smallest.as_slice() {
        let others: Vec<String> = rest
            .iter()
            .map(|(m, k)| format!("{m} {k} B ({})", ratio(*k as f64 / *n as f64)))
            .collect();
        let mut p = format!("Smallest usable arena (create + one `alloc(1)`): **{first}** {n} B");
        if !others.is_empty() {
            let _ = write!(p, "; {}", others.join(", "));
        }
        p.push('.');
        points.push(p);
    }
    Section {
        characteristic: Characteristic::EaseOfUse,
        leader: (tied.len() == 1).then_some(leader),
        tied: if tied.len() > 1 { tied } else { Vec::new() },
        summary,
        points,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::report::sample::{self, Spec};

    fn leaders(r: &CompareResults) -> Vec<Option<String>> {
        let a = analyse(r);
        a.sections.iter().map(|s| s.leader.clone()).collect()
    }

    #[test]
    fn picks_the_allocator_with_the_best_numbers() {
        let r = sample::results(&sample::specs());
        let a = analyse(&r);
        let l = |c| a.section(c).unwrap().leader.clone();
        // beta: 0.99 usage against kappa's 0.74; kappa: 10/5 ns against 40/30.
        assert_eq!(l(Characteristic::Usage).as_deref(), Some("beta"));
        assert_eq!(l(Characteristic::AllocSpeed).as_deref(), Some("kappa"));
        assert_eq!(l(Characteristic::FreeSpeed).as_deref(), Some("kappa"));
        assert_eq!(l(Characteristic::EaseOfUse).as_deref(), Some("kappa"));
        let alloc = &a.section(Characteristic::AllocSpeed).unwrap().summary;
        assert!(alloc.contains("4.0x faster than beta"), "{alloc}");
        assert!(alloc.contains("900x faster than os-fallback"), "{alloc}");
        let free = &a.section(Characteristic::FreeSpeed).unwrap().summary;
        assert!(free.contains("6.0x faster than beta"), "{free}");
        let md = a.markdown();
        assert!(md.contains("### Usage factor") && md.contains("### Ease of use"));
        assert!(
            md.contains("beta on `realloc` (no allocator_realloc)"),
            "{md}"
        );
        assert!(md.contains("takes its memory from the OS"), "{md}");
        assert!(md.contains("about one per allocation"), "{md}");
        assert!(md.contains("rounding alone costs 24.2 points"), "{md}");
    }

    #[test]
    fn swapped_numbers_swap_the_leaders() {
        // The same names, the numbers exchanged: no winner is built in.
        let mut specs = sample::specs();
        let (k, b) = (specs[0].clone(), specs[1].clone());
        specs[0] = Spec { name: k.name, ..b };
        specs[1] = Spec { name: b.name, ..k };
        let r = sample::results(&specs);
        assert_eq!(
            leaders(&r),
            [
                Some("kappa".into()),
                Some("beta".into()),
                Some("beta".into()),
                Some("beta".into())
            ]
        );
        let a = analyse(&r);
        let alloc = &a.section(Characteristic::AllocSpeed).unwrap().summary;
        assert!(alloc.contains("4.0x faster than kappa"), "{alloc}");
    }

    #[test]
    fn close_figures_are_flagged_and_ties_named() {
        let specs = vec![
            Spec::arena("one", 10.0, 5.0, 0.7),
            Spec::arena("two", 10.2, 5.1, 0.7),
        ];
        let a = analyse(&sample::results(&specs));
        let alloc = a.section(Characteristic::AllocSpeed).unwrap();
        assert_eq!(alloc.leader.as_deref(), Some("one"));
        assert!(
            alloc.points[0].contains("overlap within their interquartile ranges"),
            "{:?}",
            alloc.points
        );
        let ease = a.section(Characteristic::EaseOfUse).unwrap();
        assert_eq!(ease.leader, None);
        assert!(ease.summary.contains("tie"), "{}", ease.summary);
    }

    #[test]
    fn odd_data_does_not_panic() {
        let mut r = sample::results(&sample::specs());
        for w in &mut r.workloads {
            for row in &mut w.rows {
                for p in &mut row.phases {
                    p.net_ns_per_op.median = f64::NAN;
                    p.ns_per_op.median = -1.0;
                }
                if let Some(u) = &mut row.usage {
                    u.factor = f64::NAN;
                    u.vs_ideal_pow2 = Some(f64::INFINITY);
                }
                row.latency.clear();
            }
        }
        let a = analyse(&r);
        assert!(a.sections.iter().take(3).all(|s| s.leader.is_none()));
        let _ = a.markdown();
        r.workloads.clear();
        r.subjects.clear();
        let a = analyse(&r);
        assert!(a.sections.iter().all(|s| s.leader.is_none()));
        let _ = a.markdown();
    }

    #[test]
    fn numbers_are_formatted_compactly() {
        assert_eq!(ratio(1.03), "1.03x");
        assert_eq!(ratio(1.8), "1.8x");
        assert_eq!(ratio(12.4), "12x");
        assert_eq!(ns(9.12), "9.1 ns");
        assert_eq!(ns(1234.0), "1234 ns");
        assert_eq!(ns(12_345.0), "12.3 µs");
        assert_eq!(pct(0.7472), "74.7%");
        assert_eq!(
            and_list(&["a".into(), "b".into(), "c".into()]),
            "a, b and c"
        );
    }
}

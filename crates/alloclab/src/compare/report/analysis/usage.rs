//! The usage-factor section of the analysis: who uses the arena best, and
//! the trade-offs (rounding, headers, metadata) the figures show.

#[allow(unused_imports)]
use super::*;

pub(super) fn usage_fields(r: &CompareResults) -> Vec<Field> {
    r.workloads
        .iter()
        .filter(|w| w.usage_kind != UsageKind::None)
        .map(|w| {
            let entries = ok_rows(w)
                .filter_map(|row| {
                    Some(RankedFigure {
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

pub(super) fn usage_kind_words(k: UsageKind) -> &'static str {
    match k {
        UsageKind::Fill => "fill efficiency",
        UsageKind::Trace => "peak live bytes / smallest arena that replays the trace",
        _ => "usage factor",
    }
}

pub(super) fn usage(r: &CompareResults) -> Section {
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
pub(super) fn figures_line(f: &Field, better: Better, fmt: fn(f64) -> String) -> String {
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
pub(super) fn leader_sentence(
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

pub(super) fn usage_tradeoffs(r: &CompareResults) -> Vec<String> {
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
    points.extend(rounding_point(r, &uniform, &exact_pow2));
    // On exact powers of two every request fits an ideal allocator: who
    // falls short, and what each block costs it.
    for w in &exact_pow2 {
        points.extend(ok_rows(w).filter_map(|row| short_of_pow2(r, w, row)));
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

/// What power-of-two rounding costs (uniform sizes against exact powers of
/// two), and who loses only that or rounds less.
pub(super) fn rounding_point(
    r: &CompareResults,
    uniform: &[&WorkloadResult],
    exact_pow2: &[&WorkloadResult],
) -> Option<String> {
    let (u, p) = (uniform.first()?, exact_pow2.first()?);
    let (bu, bp) = (u.bounds?, p.bounds?);
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
    let (rounders, beyond) = rounders(r, uniform, exact_pow2);
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
    Some(s)
}

/// Allocators that stay within the power-of-two bound on uniform sizes but
/// reach it on exact powers of two (their loss is rounding), and those
/// beyond the bound (they do not round to powers of two).
pub(super) fn rounders(
    r: &CompareResults,
    uniform: &[&WorkloadResult],
    exact_pow2: &[&WorkloadResult],
) -> (Vec<String>, Vec<String>) {
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
        if max_uniform <= 1.0 + 1e-9 && !on_pow2.is_empty() && on_pow2.iter().all(|&v| v >= 0.95) {
            rounders.push(format!("{name} ({} of the bound)", pct(max_uniform)));
        } else if max_uniform > 1.0 + 1e-9 {
            beyond.push(format!("{name} ({})", ratio(max_uniform)));
        }
    }
    (rounders, beyond)
}

/// On a workload of exact powers of two, a row below 90% of the bound: how
/// far, what it refused, and what its blocks cost it.
pub(super) fn short_of_pow2(r: &CompareResults, w: &WorkloadResult, row: &Row) -> Option<String> {
    let bound = w.bounds.map_or(0.0, |b| b.pow2);
    let u = row.usage?;
    let v = u.vs_ideal_pow2.filter(|v| v.is_finite() && *v < 0.9)?;
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
    Some(s)
}

pub(super) fn facts_of<'a>(
    r: &'a CompareResults,
    name: &str,
) -> Option<&'a crate::allocators::facts::TypedFacts> {
    r.subjects
        .iter()
        .find(|s| s.name == name)
        .and_then(|s| s.facts.as_ref())
}

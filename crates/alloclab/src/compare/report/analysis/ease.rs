//! The ease-of-use section of the analysis: what each allocator asks of a C
//! caller (the size at `free`, `realloc`, bad pointers, a full arena,
//! alignment, introspection), from its documented facts and the probes.

#[allow(unused_imports)]
use super::*;

/// A bad-pointer probe's outcome is harmless: rejected, no effect, or a
/// deliberate abort (the probe texts of `observe.rs`).
pub(super) fn harmless(outcome: &str) -> bool {
    outcome.starts_with("rejected")
        || outcome.starts_with("no visible effect")
        || outcome.starts_with("aborts")
}

/// The ease-of-use checks of one allocator: (passed, total, what failed).
pub(super) fn checks(s: &SubjectInfo) -> (usize, usize, Vec<String>) {
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
        None => o.caps.has_realloc,
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
        Some(o.caps.has_stats || o.caps.has_check),
        "no introspection (allocator_stats / allocator_check)".into(),
    );
    (total - failed.len(), total, failed)
}

/// The ease-of-use section. No allocator "wins" on a count of checks: the
/// summary names those that pass every check, and the points say what each
/// other one asks of a C caller, check by check.
pub(super) fn ease(r: &CompareResults) -> Section {
    const WHAT: &str = "free without the size, native realloc, harmless interior / double / \
                        foreign free, NULL or no refusal when full, 16-byte alignment, \
                        introspection";
    let scored: Vec<(String, usize, usize, Vec<String>)> = r
        .subjects
        .iter()
        .map(|s| {
            let (p, t, f) = checks(s);
            (s.name.clone(), p, t, f)
        })
        .collect();
    let Some(total) = scored.first().map(|s| s.2) else {
        return Section {
            characteristic: Characteristic::EaseOfUse,
            leader: None,
            tied: Vec::new(),
            summary: "No allocator was probed.".into(),
            points: Vec::new(),
        };
    };
    let all: Vec<String> = scored
        .iter()
        .filter(|s| s.3.is_empty())
        .map(|s| s.0.clone())
        .collect();
    let bold: Vec<String> = all.iter().map(|t| format!("**{t}**")).collect();
    let short = scored.len() - all.len();
    let summary = match (all.len(), short) {
        (0, _) => format!(
            "No allocator passes all {total} ease-of-use checks ({WHAT}); what each asks of a C \
             caller is below."
        ),
        (_, 0) => format!("Every allocator passes all {total} ease-of-use checks ({WHAT})."),
        (n, _) => format!(
            "{} {} all {total} ease-of-use checks ({WHAT}); the other {short} {} a C caller to \
             work around something, listed below.",
            and_list(&bold),
            agree(n, "passes", "pass"),
            agree(short, "asks", "ask"),
        ),
    };
    let mut points: Vec<String> = scored
        .iter()
        .filter(|(_, _, _, f)| !f.is_empty())
        .map(|(n, p, t, f)| format!("{n} ({p} of {t}): {}", f.join("; ")))
        .collect();
    points.extend(smallest_arena_point(r));
    Section {
        characteristic: Characteristic::EaseOfUse,
        leader: (all.len() == 1).then(|| all[0].clone()),
        tied: if all.len() > 1 { all } else { Vec::new() },
        summary,
        points,
    }
}

/// "Smallest usable arena: **A** 96 B; B 4096 B (43x), ...", when probed.
fn smallest_arena_point(r: &CompareResults) -> Option<String> {
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
    let [(first, n), rest @ ..] = smallest.as_slice() else {
        return None;
    };
    let others: Vec<String> = rest
        .iter()
        .map(|(m, k)| format!("{m} {k} B ({})", ratio(*k as f64 / *n as f64)))
        .collect();
    let mut p = format!("Smallest usable arena (create + one `alloc(1)`): **{first}** {n} B");
    if !others.is_empty() {
        let _ = write!(p, "; {}", others.join(", "));
    }
    p.push('.');
    Some(p)
}

//! The ranking engine of the analysis: a workload's comparable figures,
//! best first ([`Field`]), and the overall standing over several workloads
//! ([`rank`]), with the sentences that state them.

#[allow(unused_imports)]
use super::*;

/// Which way a figure is better.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Better {
    Higher,
    Lower,
}

/// One allocator's figure on one workload.
#[derive(Clone, Debug)]
pub(super) struct RankedFigure {
    pub(super) name: String,
    pub(super) value: f64,
    /// Interquartile range, for "the difference is within the spread".
    pub(super) iqr: Option<(f64, f64)>,
}

/// The comparable figures of one workload, best first.
#[derive(Clone, Debug)]
pub(super) struct Field {
    pub(super) workload: String,
    pub(super) entries: Vec<RankedFigure>,
    /// Said after the figures (e.g. which basis was used).
    pub(super) note: Option<String>,
}

impl Field {
    pub(super) fn new(
        workload: &str,
        mut entries: Vec<RankedFigure>,
        better: Better,
        note: Option<String>,
    ) -> Field {
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

    pub(super) fn get(&self, name: &str) -> Option<&RankedFigure> {
        self.entries.iter().find(|e| e.name == name)
    }
}

/// How many times better `a` is than `b` (≥ 1 when `a` is better).
pub(super) fn advantage(a: f64, b: f64, better: Better) -> f64 {
    match better {
        Better::Higher => a / b,
        Better::Lower => b / a,
    }
}

pub(super) fn geomean(xs: &[f64]) -> Option<f64> {
    let xs: Vec<f64> = xs
        .iter()
        .copied()
        .filter(|x| x.is_finite() && *x > 0.0)
        .collect();
    (!xs.is_empty()).then(|| (xs.iter().map(|x| x.ln()).sum::<f64>() / xs.len() as f64).exp())
}

/// The overall standing over several workloads.
pub(super) struct Ranking {
    pub(super) leader: String,
    /// Workloads where the leader is best, of `fields`.
    pub(super) wins: usize,
    pub(super) fields: usize,
    /// Every other allocator: the leader's advantage over it (geometric mean
    /// over the workloads both have figures on), and on how many.
    pub(super) others: Vec<(String, f64, usize)>,
}

/// The leader is the allocator, among those with figures on the most
/// workloads, whose figures are closest to each workload's best (geometric
/// mean of best/own); ties go to table order.
pub(super) fn rank(fields: &[Field], better: Better, order: &[String]) -> Option<Ranking> {
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

pub(super) fn subject_order(r: &CompareResults) -> Vec<String> {
    r.subjects.iter().map(|s| s.name.clone()).collect()
}

pub(super) fn ok_rows(w: &WorkloadResult) -> impl Iterator<Item = &Row> {
    w.rows.iter().filter(|r| r.failure.is_none())
}

//! The written analysis that ends the report: for each of the brief's four
//! characteristics (usage factor, allocation speed, free speed, ease of
//! use), which allocator leads and by how much, and the trade-offs the
//! numbers show. Every sentence is computed from [`CompareResults`]: no
//! allocator is named here in advance.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::allocators::facts::ReallocKind;
use crate::engine::results::{CompareResults, Row, SubjectInfo, WorkloadResult};
use crate::engine::workload::UsageKind;
use crate::toolkit::format::{agree, and_list, ns, pct, ratio};

mod ease;
mod ranking;
mod speed;
mod usage;

use ease::*;
use ranking::*;
use speed::*;
use usage::*;

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
                    (None, t) if s.characteristic == Characteristic::EaseOfUse => {
                        format!("every check passed by {}", and_list(t))
                    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::report::sample::{self, SampleAllocator};

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
        specs[0] = SampleAllocator { name: k.name, ..b };
        specs[1] = SampleAllocator { name: b.name, ..k };
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
            SampleAllocator::arena("one", 10.0, 5.0, 0.7),
            SampleAllocator::arena("two", 10.2, 5.1, 0.7),
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
        assert!(
            ease.summary
                .starts_with("Every allocator passes all 8 ease-of-use checks"),
            "{}",
            ease.summary
        );
        assert!(
            a.leaders_line()
                .contains("ease of use: every check passed by one and two"),
            "{}",
            a.leaders_line()
        );
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

//! The x axis of a chart: linear from 0, or log10 when the values span
//! more than two decades; its ticks and their labels.

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::prelude::*;

use super::Unit;

/// The x axis: linear, or log10 of the value.
pub(crate) struct Axis {
    /// Log10 of the values (they span more than two decades).
    pub(crate) log: bool,
    /// Coordinate range (log10 of values when `log`).
    pub(super) lo: f64,
    /// Top of the plot: room for the bar texts.
    pub(super) hi_ext: f64,
    /// Labeled ticks and unlabeled ones, in coordinates.
    pub(super) ticks: Vec<f64>,
    pub(super) minor: Vec<f64>,
}

impl Axis {
    /// The axis that shows `values` in `unit`.
    pub(crate) fn new(values: &[f64], unit: Unit) -> Axis {
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let pos: Vec<f64> = finite.iter().copied().filter(|&v| v > 0.0).collect();
        let max = finite.iter().copied().fold(f64::MIN, f64::max);
        let min_pos = pos.iter().copied().fold(f64::MAX, f64::min);
        let log = unit == Unit::Ns && !pos.is_empty() && max / min_pos > 100.0;
        if log {
            let lo = min_pos.max(1e-3).log10().floor();
            let mut hi = max.log10().ceil();
            if hi <= lo {
                hi = lo + 1.0;
            }
            let ticks: Vec<f64> = (lo as i32..=hi as i32).map(f64::from).collect();
            let minor = ticks
                .iter()
                .flat_map(|&d| (2..10).map(move |k| d + f64::from(k).log10()))
                .filter(|&c| c < hi)
                .collect();
            return Axis {
                log,
                lo,
                hi_ext: hi + 0.42 * (hi - lo),
                ticks,
                minor,
            };
        }
        let lo = finite.iter().copied().fold(0.0, f64::min);
        let mut hi = if finite.is_empty() { 1.0 } else { max.max(0.0) };
        if unit == Unit::Percent {
            hi = hi.max(1.0);
        }
        if hi - lo < 1e-12 {
            hi = lo + 1.0;
        }
        let step = nice_step((hi - lo) / 6.0);
        let first = (lo / step).ceil() as i64;
        let last = (hi / step).floor() as i64;
        let ticks = (first..=last).map(|k| k as f64 * step).collect();
        Axis {
            log,
            lo,
            hi_ext: hi + 0.42 * (hi - lo),
            ticks,
            minor: Vec::new(),
        }
    }

    /// Value to coordinate (clamped into the plot).
    pub(super) fn map(&self, v: f64) -> f64 {
        let c = if self.log {
            v.max(10f64.powf(self.lo)).log10()
        } else {
            v
        };
        c.clamp(self.lo, self.hi_ext)
    }

    /// Coordinate to value.
    pub(super) fn unmap(&self, c: f64) -> f64 {
        if self.log { 10f64.powf(c) } else { c }
    }

    /// Where bars start.
    pub(super) fn base(&self) -> f64 {
        if self.log { self.lo } else { 0.0 }
    }
}

/// A linear f64 coordinate whose ticks are given (plotters' `WithKeyPoints`
/// over f64 has no label formatter).
pub(super) struct Keyed {
    pub(super) lo: f64,
    pub(super) hi: f64,
    pub(super) bold: Vec<f64>,
    pub(super) light: Vec<f64>,
}

impl Ranged for Keyed {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let span = self.hi - self.lo;
        let frac = if span > 0.0 && v.is_finite() {
            (v - self.lo) / span
        } else {
            0.0
        };
        limit.0 + (f64::from(limit.1 - limit.0) * frac).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.light.clone()
        } else {
            self.bold.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
pub(super) fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * p)
}

/// An axis tick label: `0%`, `50%`; `1 ns`, `10 µs`.
pub(super) fn tick_label(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Ratio => {
            let s = format!("{v:.2}");
            format!("{}×", s.trim_end_matches('0').trim_end_matches('.'))
        }
        Unit::Percent => format!("{:.0}%", 100.0 * v),
        Unit::Ns => {
            let (x, u) = if v.abs() >= 1e6 {
                (v / 1e6, "ms")
            } else if v.abs() >= 1e3 {
                (v / 1e3, "µs")
            } else {
                (v, "ns")
            };
            let s = format!("{x:.2}");
            let s = s.trim_end_matches('0').trim_end_matches('.');
            format!("{s} {u}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_axis_only_past_two_decades() {
        assert!(!Axis::new(&[1.0, 50.0], Unit::Ns).log);
        let a = Axis::new(&[3.0, 9000.0], Unit::Ns);
        assert!(a.log);
        assert_eq!(a.lo, 0.0);
        assert_eq!(a.ticks, [0.0, 1.0, 2.0, 3.0, 4.0]);
        assert!(!Axis::new(&[0.001, 1.0], Unit::Percent).log);
        // Odd values do not break the axis.
        for v in [&[][..], &[f64::NAN], &[0.0, 0.0], &[-3.0, f64::INFINITY]] {
            let a = Axis::new(v, Unit::Ns);
            assert!(a.lo.is_finite() && a.hi_ext > a.lo, "{v:?}");
            assert!(a.map(f64::NAN).is_nan() || a.map(f64::NAN).is_finite());
        }
    }

    #[test]
    fn tick_labels() {
        assert_eq!(tick_label(0.5, Unit::Percent), "50%");
        assert_eq!(tick_label(10.0, Unit::Ns), "10 ns");
        assert_eq!(tick_label(2500.0, Unit::Ns), "2.5 µs");
        assert_eq!(tick_label(1e6, Unit::Ns), "1 ms");
        assert_eq!(tick_label(1.5, Unit::Ratio), "1.5×");
        assert_eq!(tick_label(2.0, Unit::Ratio), "2×");
        assert_eq!(nice_step(0.13), 0.2);
    }
}

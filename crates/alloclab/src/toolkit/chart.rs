//! The report's charts, each written as SVG and PNG with plotters. Text is
//! drawn with the bundled DejaVu Sans (`assets/`, registered with
//! [`plotters::style::register_font`]), so no system font is needed.
//!
//! Every chart is a set of horizontal bar panels: a bar per allocator (or
//! per percentile), grouped by workload or phase, its value written at its
//! end, so that allocator names never have to fit under a bar.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Result, anyhow, bail};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";
// Font sizes are even: plotters' ab_glyph renderer truncates half a font
// size when it places each glyph, which at odd sizes lifts short glyphs
// such as "." by a pixel.

/// Registers the bundled font as plotters' `sans-serif` (once).
pub(crate) fn register_font() -> Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok()
            && plotters::style::register_font(FAMILY, FontStyle::Bold, FONT).is_ok()
    });
    if ok {
        Ok(())
    } else {
        bail!("the bundled font assets/DejaVuSans.ttf could not be loaded")
    }
}

/// A chart written to the report directory.
#[derive(Clone, Debug)]
pub struct Chart {
    /// File name without extension (`.svg` and `.png` exist).
    pub stem: String,
    /// What it shows (alt text).
    pub title: String,
    /// The workload it belongs to (None: several).
    pub workload: Option<String>,
}

/// Colors of the allocators (Tableau 10), by table order.
pub(crate) const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

pub(crate) const POW2_LINE: RGBColor = RGBColor(0, 0, 0);
pub(crate) const EXACT_LINE: RGBColor = RGBColor(120, 120, 120);

/// How values are written.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// Fractions written as percentages; linear axis from 0.
    Percent,
    /// Nanoseconds; log axis when the values span more than two decades.
    Ns,
    /// Multiples of a reference (`1.5×`); linear axis from 0.
    Ratio,
}

/// One bar.
pub(crate) struct Bar {
    pub(crate) value: f64,
    /// Interquartile range, drawn as a whisker.
    pub(crate) whisker: Option<(f64, f64)>,
    pub(crate) color: RGBColor,
    /// Written at the end of the bar (or alone, when `value` is not finite).
    pub(crate) text: String,
}

/// A vertical reference line across one group.
#[derive(Clone, Copy)]
pub(crate) enum RefKind {
    Pow2,
    Exact,
}

/// Bars sharing one label on the y axis.
pub(crate) struct Group {
    pub(crate) label: String,
    pub(crate) bars: Vec<Bar>,
    pub(crate) refs: Vec<(f64, RefKind)>,
}

/// One plot.
pub(crate) struct Panel {
    pub(crate) title: String,
    pub(crate) x_desc: String,
    pub(crate) unit: Unit,
    pub(crate) groups: Vec<Group>,
}

/// A legend mark.
pub(crate) enum Mark {
    Box(RGBColor),
    Dashed(RGBColor),
}

/// A whole image: a title, panels side by side, a legend strip.
pub(crate) struct Figure {
    pub(crate) title: String,
    pub(crate) panels: Vec<Panel>,
    pub(crate) legend: Vec<(String, Mark)>,
}

const BAR_PX: u32 = 22;
const GAP_SLOTS: f64 = 0.7;
const WIDTH: u32 = 1000;
const TITLE_H: u32 = 44;
const LEGEND_H: u32 = 34;

impl Figure {
    fn slots(p: &Panel) -> f64 {
        p.groups.iter().map(|g| g.bars.len() as f64).sum::<f64>()
            + GAP_SLOTS * p.groups.len().saturating_sub(1) as f64
    }

    /// Height of one panel: its bars, the x axis, its caption.
    fn panel_height(p: &Panel) -> u32 {
        let caption = if p.title.is_empty() { 0 } else { 32 };
        caption + 20 + 52 + 12 + (Self::slots(p).max(1.0) * f64::from(BAR_PX)) as u32
    }

    fn legend_height(&self) -> u32 {
        if self.legend.is_empty() { 0 } else { LEGEND_H }
    }

    /// Panels are stacked, so that the image stays readable at page width.
    fn size(&self) -> (u32, u32) {
        let panels: u32 = self.panels.iter().map(Self::panel_height).sum();
        (WIDTH, TITLE_H + panels + self.legend_height())
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        root.fill(&WHITE).map_err(draw_err)?;
        let (w, _) = root.dim_in_pixel();
        let (top, mut rest) = root.split_vertically(TITLE_H);
        top.draw(&Text::new(
            self.title.clone(),
            (w as i32 / 2, TITLE_H as i32 / 2),
            (FAMILY, 20)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))
        .map_err(draw_err)?;
        // One axis for all panels, so that they compare at a glance.
        let axis = Axis::new(
            &self
                .panels
                .iter()
                .flat_map(Panel::values)
                .collect::<Vec<_>>(),
            self.panels.first().map_or(Unit::Ns, |p| p.unit),
        );
        for panel in &self.panels {
            let (area, below) = rest.split_vertically(Self::panel_height(panel));
            draw_panel(&area, panel, &axis)?;
            rest = below;
        }
        if !self.legend.is_empty() {
            draw_legend(&rest, &self.legend)?;
        }
        Ok(())
    }
}

fn draw_err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing a chart: {e}")
}

/// The x axis: linear, or log10 of the value.
pub(crate) struct Axis {
    /// Log10 of the values (they span more than two decades).
    pub(crate) log: bool,
    /// Coordinate range (log10 of values when `log`).
    lo: f64,
    /// Top of the plot: room for the bar texts.
    hi_ext: f64,
    /// Labeled ticks and unlabeled ones, in coordinates.
    ticks: Vec<f64>,
    minor: Vec<f64>,
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
    fn map(&self, v: f64) -> f64 {
        let c = if self.log {
            v.max(10f64.powf(self.lo)).log10()
        } else {
            v
        };
        c.clamp(self.lo, self.hi_ext)
    }

    /// Coordinate to value.
    fn unmap(&self, c: f64) -> f64 {
        if self.log { 10f64.powf(c) } else { c }
    }

    /// Where bars start.
    fn base(&self) -> f64 {
        if self.log { self.lo } else { 0.0 }
    }
}

/// A linear f64 coordinate whose ticks are given (plotters' `WithKeyPoints`
/// over f64 has no label formatter).
struct Keyed {
    lo: f64,
    hi: f64,
    bold: Vec<f64>,
    light: Vec<f64>,
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
fn nice_step(raw: f64) -> f64 {
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
fn tick_label(v: f64, unit: Unit) -> String {
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

impl Panel {
    /// Every value the axis must show: bars, whiskers, reference lines.
    pub(crate) fn values(&self) -> Vec<f64> {
        let mut values = Vec::new();
        for g in &self.groups {
            for b in &g.bars {
                values.push(b.value);
                if let Some((lo, hi)) = b.whisker {
                    values.extend([lo, hi]);
                }
            }
            values.extend(g.refs.iter().map(|r| r.0));
        }
        values
    }
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &Panel,
    axis: &Axis,
) -> Result<()> {
    let total = Figure::slots(p).max(1.0);
    // Slot positions, top down; y grows upwards in plotters.
    let mut at = 0.0;
    let mut centers = Vec::new();
    let mut layout = Vec::new();
    for g in &p.groups {
        let start = at;
        let mut ys = Vec::new();
        for _ in &g.bars {
            ys.push(total - at - 0.5);
            at += 1.0;
        }
        centers.push((total - (start + at) / 2.0, g.label.clone()));
        layout.push((total - start, total - at, ys));
        at += GAP_SLOTS;
    }
    let label_px = p
        .groups
        .iter()
        .map(|g| g.label.chars().count())
        .max()
        .unwrap_or(4) as u32
        * 9
        + 18;
    let x_spec = Keyed {
        lo: axis.lo,
        hi: axis.hi_ext,
        bold: axis.ticks.clone(),
        light: axis.minor.clone(),
    };
    let y_spec = Keyed {
        lo: 0.0,
        hi: total,
        bold: centers.iter().map(|c| c.0).collect(),
        light: Vec::new(),
    };
    let mut builder = ChartBuilder::on(area);
    builder
        .margin(10)
        .margin_right(20)
        .x_label_area_size(52)
        .y_label_area_size(label_px.min(260));
    if !p.title.is_empty() {
        builder.caption(&p.title, (FAMILY, 18));
    }
    let mut chart = builder
        .build_cartesian_2d(x_spec, y_spec)
        .map_err(draw_err)?;
    let unit = p.unit;
    let x_fmt = |c: &f64| tick_label(axis.unmap(*c), unit);
    let y_fmt = |y: &f64| {
        centers
            .iter()
            .min_by(|a, b| (a.0 - y).abs().total_cmp(&(b.0 - y).abs()))
            .map(|c| c.1.clone())
            .unwrap_or_default()
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc(p.x_desc.as_str())
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 14))
        .bold_line_style(RGBColor(200, 200, 200))
        .light_line_style(RGBColor(236, 236, 236))
        .draw()
        .map_err(draw_err)?;

    let text_style = (FAMILY, 14)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    // Reference lines first, then bars and whiskers, then the texts on a
    // white ground, so that a line crossing a text does not hide it.
    for (g, (top, bottom, _)) in p.groups.iter().zip(&layout) {
        for &(v, kind) in &g.refs {
            if !v.is_finite() {
                continue;
            }
            let x = axis.map(v);
            let (color, dash, gap) = match kind {
                RefKind::Pow2 => (POW2_LINE, 8, 4),
                RefKind::Exact => (EXACT_LINE, 3, 3),
            };
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(x, *top), (x, *bottom)],
                    dash,
                    gap,
                    color.stroke_width(2),
                ))
                .map_err(draw_err)?;
        }
    }
    let mut texts = Vec::new();
    for (g, (_, _, ys)) in p.groups.iter().zip(&layout) {
        for (b, &y) in g.bars.iter().zip(ys) {
            let mut text_x = axis.base();
            if b.value.is_finite() {
                let x = axis.map(b.value);
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(axis.base(), y - 0.4), (x, y + 0.4)],
                        b.color.filled(),
                    )))
                    .map_err(draw_err)?;
                text_x = text_x.max(x);
            }
            if let Some((lo, hi)) = b.whisker.filter(|w| w.0.is_finite() && w.1.is_finite()) {
                let (lo, hi) = (axis.map(lo), axis.map(hi));
                let style = BLACK.stroke_width(2);
                chart
                    .draw_series([
                        PathElement::new(vec![(lo, y), (hi, y)], style),
                        PathElement::new(vec![(lo, y - 0.22), (lo, y + 0.22)], style),
                        PathElement::new(vec![(hi, y - 0.22), (hi, y + 0.22)], style),
                    ])
                    .map_err(draw_err)?;
                text_x = text_x.max(hi);
            }
            texts.push((text_x, y, &b.text));
        }
    }
    for (x, y, text) in texts {
        let (w, _) = area
            .estimate_text_size(text, &text_style)
            .map_err(draw_err)?;
        chart
            .draw_series(std::iter::once(
                EmptyElement::at((x, y))
                    + Rectangle::new([(4, -8), (w as i32 + 9, 8)], WHITE.mix(0.8).filled())
                    + Text::new(text.clone(), (6, 0), text_style.clone()),
            ))
            .map_err(draw_err)?;
    }
    Ok(())
}

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(String, Mark)],
) -> Result<()> {
    let style = (FAMILY, 14)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let mut x = 20;
    let y = 16;
    for (label, mark) in entries {
        match mark {
            Mark::Box(c) => area
                .draw(&Rectangle::new([(x, y - 7), (x + 14, y + 7)], c.filled()))
                .map_err(draw_err)?,
            Mark::Dashed(c) => {
                for k in 0..3 {
                    area.draw(&PathElement::new(
                        vec![(x + k * 9, y), (x + k * 9 + 5, y)],
                        c.stroke_width(2),
                    ))
                    .map_err(draw_err)?;
                }
            }
        }
        area.draw(&Text::new(label.clone(), (x + 32, y), style.clone()))
            .map_err(draw_err)?;
        x += 32 + 8 * label.chars().count() as i32 + 28;
    }
    Ok(())
}

/// Writes `fig` as `dir/stem.svg` and `dir/stem.png`.
pub(crate) fn render(dir: &Path, stem: &str, fig: &Figure) -> Result<()> {
    let size = fig.size();
    let svg = dir.join(format!("{stem}.svg"));
    {
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        fig.draw(&root)?;
        root.present().map_err(draw_err)?;
    }
    let png = dir.join(format!("{stem}.png"));
    {
        let root = BitMapBackend::new(&png, size).into_drawing_area();
        fig.draw(&root)?;
        root.present().map_err(draw_err)?;
    }
    Ok(())
}

/// A file-name-safe form of a workload name (`trace:x` → `trace-x`).
pub(crate) fn slug(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// The allocators' colors: by table order, then by first appearance.
pub(crate) struct Colors(pub(crate) Vec<String>);

impl Colors {
    /// The color of `name`.
    pub(crate) fn get(&self, name: &str) -> RGBColor {
        let i = self.0.iter().position(|n| n == name).unwrap_or(0);
        PALETTE[i % PALETTE.len()]
    }
}

/// A bar of [`render_ratio_chart`]: an allocator's value relative to a
/// reference, and the range of its runs.
pub struct RatioBar {
    /// Allocator (its color is that of its first appearance).
    pub allocator: String,
    /// The ratio (NaN: no bar, only the text).
    pub value: f64,
    /// The range, drawn as a whisker.
    pub range: Option<(f64, f64)>,
    /// Written at the end of the bar.
    pub text: String,
}

/// Bars sharing a label (`alloclab programs`: a program).
pub struct RatioGroup {
    /// The label on the y axis.
    pub label: String,
    /// One bar per allocator.
    pub bars: Vec<RatioBar>,
}

/// Writes `dir/stem.svg` and `dir/stem.png`: stacked panels of ratio bars
/// (one per `(caption, x axis description, groups)`) on one linear axis.
pub fn render_ratio_chart(
    dir: &Path,
    stem: &str,
    title: &str,
    panels: Vec<(String, String, Vec<RatioGroup>)>,
) -> Result<()> {
    register_font()?;
    let mut names: Vec<String> = Vec::new();
    for b in panels.iter().flat_map(|p| &p.2).flat_map(|g| &g.bars) {
        if !names.contains(&b.allocator) {
            names.push(b.allocator.clone());
        }
    }
    let colors = Colors(names);
    let fig = Figure {
        title: title.into(),
        panels: panels
            .into_iter()
            .map(|(caption, x_desc, groups)| Panel {
                title: caption,
                x_desc,
                unit: Unit::Ratio,
                groups: groups
                    .into_iter()
                    .map(|g| Group {
                        label: g.label,
                        refs: Vec::new(),
                        bars: g
                            .bars
                            .into_iter()
                            .map(|b| Bar {
                                color: colors.get(&b.allocator),
                                value: b.value,
                                whisker: b.range,
                                text: b.text,
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
        legend: Vec::new(),
    };
    render(dir, stem, &fig)
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
        assert_eq!(slug("trace:Foo bar"), "trace-foo-bar");
    }
}

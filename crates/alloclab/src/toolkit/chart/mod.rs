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
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

mod axis;

pub(crate) use axis::Axis;
use axis::{Keyed, tick_label};

static FONT: &[u8] = include_bytes!("../../../assets/DejaVuSans.ttf");
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

/// Where a panel's bars go, in slots from the top: each group's (top,
/// bottom, bar centres), and each group's centre with its label.
struct Slots {
    total: f64,
    centers: Vec<(f64, String)>,
    groups: Vec<(f64, f64, Vec<f64>)>,
}

impl Slots {
    fn of(p: &Panel) -> Slots {
        let total = Figure::slots(p).max(1.0);
        // Slot positions, top down; y grows upwards in plotters.
        let mut at = 0.0;
        let mut centers = Vec::new();
        let mut groups = Vec::new();
        for g in &p.groups {
            let start = at;
            let mut ys = Vec::new();
            for _ in &g.bars {
                ys.push(total - at - 0.5);
                at += 1.0;
            }
            centers.push((total - (start + at) / 2.0, g.label.clone()));
            groups.push((total - start, total - at, ys));
            at += GAP_SLOTS;
        }
        Slots {
            total,
            centers,
            groups,
        }
    }
}

/// A panel's plotting area.
type Plot<'a, DB> = ChartContext<'a, DB, Cartesian2d<Keyed, Keyed>>;

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &Panel,
    axis: &Axis,
) -> Result<()> {
    let slots = Slots::of(p);
    let mut chart = panel_frame(area, p, axis, &slots)?;
    // Reference lines first, then bars and whiskers, then the texts on a
    // white ground, so that a line crossing a text does not hide it.
    draw_refs(&mut chart, p, axis, &slots)?;
    let texts = draw_bars(&mut chart, p, axis, &slots)?;
    let text_style = (FAMILY, 14)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
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

/// The panel's axes, grid, labels and caption.
fn panel_frame<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    p: &Panel,
    axis: &Axis,
    slots: &Slots,
) -> Result<Plot<'a, DB>> {
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
        hi: slots.total,
        bold: slots.centers.iter().map(|c| c.0).collect(),
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
        slots
            .centers
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
    Ok(chart)
}

/// Each group's reference lines (dashed, across the group).
fn draw_refs<DB: DrawingBackend>(
    chart: &mut Plot<'_, DB>,
    p: &Panel,
    axis: &Axis,
    slots: &Slots,
) -> Result<()> {
    for (g, (top, bottom, _)) in p.groups.iter().zip(&slots.groups) {
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
    Ok(())
}

/// The bars and their whiskers; returns where each bar's text goes.
fn draw_bars<'p, DB: DrawingBackend>(
    chart: &mut Plot<'_, DB>,
    p: &'p Panel,
    axis: &Axis,
    slots: &Slots,
) -> Result<Vec<(f64, f64, &'p String)>> {
    let mut texts = Vec::new();
    for (g, (_, _, ys)) in p.groups.iter().zip(&slots.groups) {
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
    Ok(texts)
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
    fn slugs() {
        assert_eq!(slug("trace:Foo bar"), "trace-foo-bar");
    }
}

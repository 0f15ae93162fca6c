//! Drawing arena maps and fragmentation-over-time lines, as SVG and PNG
//! (plotters, text in the report's bundled font).
//!
//! A map is a square: the arena laid along a Hilbert curve (nearby
//! addresses stay nearby; it starts at the top-left corner and ends at the
//! top-right), each cell coloured by the byte class holding most of its bytes,
//! with a bar of the class totals under it. All maps of one figure show the
//! same number of bytes per cell.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::classify::{ArenaMap, ByteClass};
use super::curve;
use super::replay::Replay;
use crate::toolkit::chart::register_font;

/// Cells per side of a map (a power of two).
const CELLS: u32 = 128;
/// Pixels per cell.
const CELL_PX: u32 = 2;
const MAP_PX: u32 = CELLS * CELL_PX;
const PANEL_W: u32 = MAP_PX + 40;
const PANEL_H: u32 = MAP_PX + 110;
const PER_ROW: u32 = 4;
const TIME_W: u32 = 380;
const TIME_H: u32 = 260;

/// The lines of a fragmentation-over-time panel.
type Line = (&'static str, RGBColor, fn(&super::replay::Sample) -> usize);
const LINES: [Line; 3] = [
    ("live bytes asked", COLORS[0], |s| s.requested),
    ("held for live blocks", COLORS[1], |s| s.held),
    ("largest free block", RGBColor(44, 160, 44), |s| {
        s.largest_free
    }),
];

/// Colours of the byte classes, in [`ByteClass::ALL`] order.
const COLORS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 160, 40),
    RGBColor(90, 90, 90),
    RGBColor(220, 240, 220),
    RGBColor(240, 150, 150),
];

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing an arena map: {e}")
}

/// The colour of a cell holding `mix` bytes of each class: the class with
/// the most bytes in it (a cell is a fraction of the smallest blocks drawn,
/// so most cells are one class; a majority keeps the picture's totals close
/// to the bar's, and neighbouring cells of one class merge into one
/// rectangle in the SVG).
fn blend(mix: [usize; 5]) -> Option<RGBColor> {
    let (k, &n) = mix
        .iter()
        .enumerate()
        .max_by_key(|(k, n)| (**n, std::cmp::Reverse(*k)))?;
    (n > 0).then_some(COLORS[k])
}

/// The colour of every cell, row by row, for `map` at `per_cell` bytes per cell.
fn cells(map: &ArenaMap, per_cell: usize) -> Vec<Option<RGBColor>> {
    let mut grid = vec![None; (CELLS * CELLS) as usize];
    for d in 0..u64::from(CELLS * CELLS) {
        let from = d as usize * per_cell;
        if from >= map.len {
            break;
        }
        let (x, y) = curve::cell(CELLS, d);
        grid[(y * CELLS + x) as usize] = blend(map.mix(from, (from + per_cell).min(map.len)));
    }
    grid
}

fn pct(n: usize, of: usize) -> String {
    format!("{:.1}%", 100.0 * n as f64 / of.max(1) as f64)
}

pub(crate) fn size(n: usize) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// One allocator's map and bar in `area`.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    name: &str,
    r: &Replay,
    per_cell: usize,
) -> Result<()> {
    let title = TextStyle::from(("sans-serif", 16).into_font()).color(&BLACK);
    let small = TextStyle::from(("sans-serif", 12).into_font()).color(&BLACK);
    area.draw_text(name, &title, (20, 4)).map_err(err)?;
    let t = r.map.totals();
    let used = t[ByteClass::Requested.index()];
    let line = format!(
        "requested {}, largest hole {}",
        pct(used, r.map.len),
        size(r.map.largest_hole())
    );
    area.draw_text(&line, &small, (20, 24)).map_err(err)?;
    let (x0, y0) = (20i32, 44i32);
    let grid = cells(&r.map, per_cell);
    for y in 0..CELLS {
        let mut x = 0;
        while x < CELLS {
            let c = grid[(y * CELLS + x) as usize];
            let mut end = x + 1;
            while end < CELLS && grid[(y * CELLS + end) as usize] == c {
                end += 1;
            }
            if let Some(c) = c {
                let (px, py) = (x0 + (x * CELL_PX) as i32, y0 + (y * CELL_PX) as i32);
                let rect = [(px, py), (x0 + (end * CELL_PX) as i32, py + CELL_PX as i32)];
                area.draw(&Rectangle::new(rect, c.filled())).map_err(err)?;
            }
            x = end;
        }
    }
    let frame = [(x0 - 1, y0 - 1), (x0 + MAP_PX as i32, y0 + MAP_PX as i32)];
    area.draw(&Rectangle::new(frame, BLACK.stroke_width(1)))
        .map_err(err)?;
    // The totals as one stacked bar.
    let by = y0 + MAP_PX as i32 + 10;
    let mut bx = x0;
    for class in ByteClass::ALL {
        let w =
            (f64::from(MAP_PX) * t[class.index()] as f64 / r.map.len.max(1) as f64).round() as i32;
        if w > 0 {
            let rect = [(bx, by), (bx + w, by + 14)];
            area.draw(&Rectangle::new(rect, COLORS[class.index()].filled()))
                .map_err(err)?;
            bx += w;
        }
    }
    let moment = TextStyle::from(("sans-serif", 10).into_font()).color(&BLACK);
    let words: String = r.moment.chars().take(52).collect();
    area.draw_text(&words, &moment, (20, by + 20))
        .map_err(err)?;
    let meta = t[ByteClass::Metadata.index()];
    let waste = t[ByteClass::Rounding.index()];
    let free = t[ByteClass::FreeUsable.index()] + t[ByteClass::FreeUnusable.index()];
    let sums = format!(
        "rounding {}, metadata {}, free {}",
        pct(waste, r.map.len),
        pct(meta, r.map.len),
        pct(free, r.map.len)
    );
    area.draw_text(&sums, &moment, (20, by + 34)).map_err(err)?;
    Ok(())
}

/// The legend and the notes on what is measured, at the foot of `area`.
fn legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, notes: &[String]) -> Result<()> {
    let style = TextStyle::from(("sans-serif", 12).into_font()).color(&BLACK);
    let mut x = 20;
    for class in ByteClass::ALL {
        let rect = [(x, 6), (x + 14, 20)];
        area.draw(&Rectangle::new(rect, COLORS[class.index()].filled()))
            .map_err(err)?;
        area.draw(&Rectangle::new(rect, BLACK.stroke_width(1)))
            .map_err(err)?;
        area.draw_text(class.label(), &style, (x + 20, 7))
            .map_err(err)?;
        x += 36 + 7 * class.label().chars().count() as i32;
    }
    let note = TextStyle::from(("sans-serif", 10).into_font()).color(&BLACK);
    for (i, n) in notes.iter().enumerate() {
        area.draw_text(n, &note, (20, 30 + 14 * i as i32))
            .map_err(err)?;
    }
    Ok(())
}

/// What the legend says about where the classes come from.
fn notes(maps: &[(String, Replay)], per_cell: usize) -> Vec<String> {
    let measured: Vec<&str> = maps
        .iter()
        .filter(|(_, r)| r.map.held_measured && r.map.metadata_measured)
        .map(|(n, _)| n.as_str())
        .collect();
    let mut out = vec![
        format!(
            "Arena laid along a Hilbert curve from the top-left corner to the top-right, {} per cell; \
             blocks and sizes asked: the runner's record (measured).",
            size(per_cell)
        ),
        "Rounding: allocator_usable_size minus the size asked, where the allocator answers it; \
         metadata: allocator_stats' amount, placed at the arena's start then end (inferred place)."
            .to_string(),
        "Free fits the next request: a hole it fits in at 16-byte alignment, no larger than \
         allocator_stats' largest free block (inferred)."
            .to_string(),
    ];
    out.push(if measured.len() == maps.len() {
        "Every allocator here answers allocator_usable_size and allocator_stats.".to_string()
    } else {
        format!(
            "Others: no usable size or stats; their headers are metadata, the rest of their own \
             state counts as free (measured for: {}).",
            if measured.is_empty() {
                "none".to_string()
            } else {
                measured.join(", ")
            }
        )
    });
    out
}

/// Writes the maps of `maps` (same workload, same arena size) side by side
/// as `dir/stem.png` and, with `svg`, `dir/stem.svg` (a rectangle per run
/// of cells: a megabyte or two), under `title`.
pub fn maps(
    dir: &Path,
    stem: &str,
    title: &str,
    maps: &[(String, Replay)],
    svg: bool,
) -> Result<()> {
    register_font()?;
    let len = maps.iter().map(|(_, r)| r.map.len).max().unwrap_or(1);
    let per_cell = len.div_ceil((CELLS * CELLS) as usize).max(1);
    let n = maps.len().max(1) as u32;
    let cols = n.min(PER_ROW);
    let rows = n.div_ceil(PER_ROW);
    let notes = notes(maps, per_cell);
    let size = (
        cols * PANEL_W + 20,
        40 + rows * PANEL_H + 40 + 14 * notes.len() as u32,
    );
    if svg {
        let svg = dir.join(format!("{stem}.svg"));
        draw_maps(
            SVGBackend::new(&svg, size).into_drawing_area(),
            title,
            maps,
            per_cell,
            &notes,
        )?;
    }
    let png = dir.join(format!("{stem}.png"));
    draw_maps(
        BitMapBackend::new(&png, size).into_drawing_area(),
        title,
        maps,
        per_cell,
        &notes,
    )?;
    Ok(())
}

fn draw_maps<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    maps: &[(String, Replay)],
    per_cell: usize,
    notes: &[String],
) -> Result<()> {
    let (w, h) = root.dim_in_pixel();
    let rows = (maps.len().max(1) as u32).div_ceil(PER_ROW);
    root.fill(&WHITE).map_err(err)?;
    let head = TextStyle::from(("sans-serif", 18).into_font()).color(&BLACK);
    root.draw_text(title, &head, (20, 10)).map_err(err)?;
    for (i, (name, r)) in maps.iter().enumerate() {
        let (c, row) = (i as u32 % PER_ROW, i as u32 / PER_ROW);
        let x = (c * PANEL_W) as i32;
        let y = (40 + row * PANEL_H) as i32;
        let area = root.clone().shrink((x, y), (PANEL_W, PANEL_H));
        panel(&area, name, r, per_cell)?;
    }
    let top = 40 + rows * PANEL_H;
    let foot = root.clone().shrink((0, top as i32), (w, h - top));
    legend(&foot, notes)?;
    root.present().map_err(err)
}

/// One allocator's fragmentation-over-time lines in `area`.
fn timeline_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    name: &str,
    r: &Replay,
    x_max: usize,
    y_max: f64,
) -> Result<()> {
    let mut chart = ChartBuilder::on(area)
        .caption(name, ("sans-serif", 14))
        .margin(6)
        .x_label_area_size(28)
        .y_label_area_size(48)
        .build_cartesian_2d(0f64..x_max.max(1) as f64, 0f64..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("operations")
        .y_desc("MiB")
        .x_labels(4)
        .y_labels(5)
        .x_label_formatter(&|v| format!("{:.0}k", v / 1000.0))
        .label_style(("sans-serif", 10))
        .draw()
        .map_err(err)?;
    let mib = |n: usize| n as f64 / f64::from(1 << 20);
    for (_, color, get) in LINES {
        let pts = r.timeline.iter().map(|s| (s.op as f64, mib(get(s))));
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(err)?;
    }
    let mark = r.op as f64;
    chart
        .draw_series(std::iter::once(PathElement::new(
            [(mark, 0.0), (mark, y_max)],
            BLACK.mix(0.4).stroke_width(1),
        )))
        .map_err(err)?;
    Ok(())
}

/// Writes the fragmentation-over-time lines of `maps` side by side (same
/// axes) as `dir/stem.svg` and `.png`.
pub fn timelines(dir: &Path, stem: &str, title: &str, maps: &[(String, Replay)]) -> Result<()> {
    register_font()?;
    let x_max = maps
        .iter()
        .flat_map(|(_, r)| r.timeline.last())
        .map(|s| s.op)
        .max()
        .unwrap_or(1);
    let top = maps
        .iter()
        .flat_map(|(_, r)| &r.timeline)
        .map(|s| s.requested.max(s.held).max(s.largest_free))
        .max()
        .unwrap_or(1);
    let y_max = (top as f64 / f64::from(1 << 20) * 1.1).max(0.01);
    let n = maps.len().max(1) as u32;
    let (cols, rows) = (n.min(3), n.div_ceil(3));
    let size = (cols * TIME_W, 40 + rows * TIME_H + 46);
    let svg = dir.join(format!("{stem}.svg"));
    draw_timelines(
        SVGBackend::new(&svg, size).into_drawing_area(),
        title,
        maps,
        x_max,
        y_max,
    )?;
    let png = dir.join(format!("{stem}.png"));
    draw_timelines(
        BitMapBackend::new(&png, size).into_drawing_area(),
        title,
        maps,
        x_max,
        y_max,
    )?;
    Ok(())
}

fn draw_timelines<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    maps: &[(String, Replay)],
    x_max: usize,
    y_max: f64,
) -> Result<()> {
    let (w, h) = (TIME_W, TIME_H);
    let rows = (maps.len().max(1) as u32).div_ceil(3);
    root.fill(&WHITE).map_err(err)?;
    let head = TextStyle::from(("sans-serif", 18).into_font()).color(&BLACK);
    root.draw_text(title, &head, (20, 10)).map_err(err)?;
    for (i, (name, r)) in maps.iter().enumerate() {
        let (c, row) = (i as u32 % 3, i as u32 / 3);
        let area = root
            .clone()
            .shrink(((c * w) as i32, (40 + row * h) as i32), (w, h));
        timeline_panel(&area, name, r, x_max, y_max)?;
    }
    let note = TextStyle::from(("sans-serif", 10).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Top));
    let mut x = 20;
    let key = TextStyle::from(("sans-serif", 12).into_font()).color(&BLACK);
    for (label, color, _) in LINES {
        let y = (40 + rows * h + 8) as i32;
        root.draw(&PathElement::new(
            [(x, y + 6), (x + 20, y + 6)],
            color.stroke_width(3),
        ))
        .map_err(err)?;
        root.draw_text(label, &key, (x + 26, y)).map_err(err)?;
        x += 60 + 7 * label.len() as i32;
    }
    root.draw_text(
        "Held and largest free block from allocator_stats where the allocator has it; \
         else the sizes asked and the largest hole (inferred). Grey line: the moment of the map.",
        &note,
        (20, (40 + rows * h + 28) as i32),
    )
    .map_err(err)?;
    root.present().map_err(err)
}

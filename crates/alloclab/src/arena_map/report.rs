//! The arena maps in `compare --report`: for the arena allocators measured,
//! a map of `fill` at its first refusal and of each trace at its peak, with
//! their fragmentation over time, and a section of `report.md` right after
//! the usage factors that says what each map shows.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::classify::ByteClass;
use super::replay::Replay;
use super::run::{self, Request, Target, WorkloadArg};

/// One workload to map: its name, and the trace file for a trace.
pub struct ToMap {
    /// `fill` or `trace:NAME`.
    pub name: String,
    /// The trace file, for a trace.
    pub trace: Option<PathBuf>,
}

fn pct(n: usize, of: usize) -> String {
    format!("{:.1} %", 100.0 * n as f64 / of.max(1) as f64)
}

/// What the map of one allocator shows, in one table row.
fn row(name: &str, r: &Replay) -> String {
    let t = r.map.totals();
    let len = r.map.len;
    let free = t[ByteClass::FreeUsable.index()] + t[ByteClass::FreeUnusable.index()];
    let lost = [
        (t[ByteClass::Rounding.index()], "rounding inside blocks"),
        (t[ByteClass::Metadata.index()], "metadata"),
        (
            t[ByteClass::FreeUnusable.index()],
            "free holes too small for the next request",
        ),
        (
            t[ByteClass::FreeUsable.index()],
            "free space that still fits the next request",
        ),
    ];
    let main = lost.iter().max_by_key(|(n, _)| *n).filter(|(n, _)| *n > 0);
    let says = match main {
        Some((n, what)) => format!("most of the rest: {what} ({})", pct(*n, len)),
        None => "nothing is lost".to_string(),
    };
    let measured = if r.map.held_measured && r.map.metadata_measured {
        "measured"
    } else {
        "inferred (no usable size / stats)"
    };
    format!(
        "| {name} | {} | {} | {} | {} | {} | {} | {says}; {measured} |\n",
        pct(t[ByteClass::Requested.index()], len),
        pct(t[ByteClass::Rounding.index()], len),
        pct(t[ByteClass::Metadata.index()], len),
        pct(free, len),
        pct(t[ByteClass::FreeUnusable.index()], len),
        super::draw::size(r.map.largest_hole()),
    )
}

/// Draws the maps of `targets` (name, how to make it, flags) on `workloads`
/// into `dir`; returns the Markdown section. An allocator that cannot be
/// mapped is left out with a line on stderr.
pub fn section(
    targets: &[Target],
    workloads: &[ToMap],
    quick: bool,
    seed: u64,
    dir: &Path,
) -> Result<String> {
    let mut md = String::from(
        "## Arena maps\n\nWhere the bytes of each arena go, at the moment that explains the usage \
         factor: `fill` at its first refusal, each trace at its peak of live bytes. The arena is \
         laid along a Hilbert curve (nearby addresses stay nearby); blocks and sizes asked are the \
         runner's record, rounding comes from `allocator_usable_size`, metadata from \
         `allocator_stats` (its place inferred), free space is judged against the next request. \
         Drawn from an untimed replay: nothing timed above changes. `alloclab map` draws them for \
         any allocator.\n\n",
    );
    for w in workloads {
        let req = Request {
            at: if w.trace.is_some() { "peak" } else { "refusal" }.into(),
            samples: 200,
            quick,
            seed,
            arena_size: None,
            // PNG only in the report: a map's SVG is a megabyte or two.
            svg: false,
        };
        let arg = match &w.trace {
            Some(p) => WorkloadArg::Trace(p.clone()),
            None => WorkloadArg::Named(w.name.clone()),
        };
        let (stems, done) = run::write(targets, &req, &arg, dir)
            .with_context(|| format!("drawing the arena maps of {}", w.name))?;
        let _ = write!(
            md,
            "### `{}`\n\n![arena maps of {}]({}.png)\n\n",
            w.name, w.name, stems[0]
        );
        md.push_str(
            "| allocator | requested | rounding | metadata | free | of it, too small | largest hole | what the map shows |\n\
             |---|---:|---:|---:|---:|---:|---:|---|\n",
        );
        for (name, r) in &done {
            md.push_str(&row(name, r));
        }
        let _ = write!(
            md,
            "\n![fragmentation over time on {}]({}.png)\n\n",
            w.name, stems[1]
        );
    }
    Ok(md)
}

/// Puts `section` into `dir/report.md` before its `## Workloads` heading
/// (right after the usage factors), or at its end.
pub fn insert(dir: &Path, section: &str) -> Result<()> {
    let path = dir.join("report.md");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let at = text.find("\n## Workloads").map_or(text.len(), |i| i + 1);
    let mut out = String::with_capacity(text.len() + section.len());
    out.push_str(&text[..at]);
    out.push_str(section);
    out.push_str(&text[at..]);
    std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))
}

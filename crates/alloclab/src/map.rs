//! `alloclab map`: draws the arenas of allocators side by side at one moment
//! of a workload, and their fragmentation over time (`arena_map`), as PNG
//! and SVG; prints what each map shows.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use crate::allocators::subject::Spec;
use crate::arena_map::classify::ByteClass;
use crate::arena_map::draw;
use crate::arena_map::run::{self, Request, WorkloadArg};
use crate::output::outln;

/// Arguments of `alloclab map`.
#[derive(Args, Debug)]
pub struct MapArgs {
    /// Allocators to map: this project's (`buddy`, `mckusick-karels`,
    /// `mckusick-karels+faithful`, `mckusick-karels+return`), a built-in peer
    /// by name (`rlsf`, `talc`, ...), or a plugin's path. Default: this
    /// project's two and the arena peers.
    pub plugins: Vec<String>,

    /// The workload: a built-in one (`fill`, `churn`, ...) or `trace:NAME`
    /// for a shipped trace.
    #[arg(long, default_value = "fill")]
    pub workload: String,

    /// A trace file to replay instead of a named workload.
    #[arg(long)]
    pub trace: Option<PathBuf>,

    /// The moment drawn: `refusal` (the first refused allocation; the peak
    /// when there is none), `peak` (the most requested bytes live) or
    /// `op:N` (after N operations).
    #[arg(long, default_value = "refusal")]
    pub at: String,

    /// Points of the fragmentation-over-time line.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(2..=10_000))]
    pub samples: u32,

    /// The workloads' `--quick` sizes (arenas and op counts divided by 4).
    #[arg(long)]
    pub quick: bool,

    /// Seed of the workload (as `compare --seed`).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// The arena's size (K, M, G suffixes), instead of the workload's own.
    #[arg(long, value_parser = crate::toolkit::format::parse_bytes)]
    pub arena_size: Option<usize>,

    /// Folder the pictures are written to (created if missing).
    #[arg(long, default_value = "target/alloclab-map")]
    pub out: PathBuf,
}

/// Arguments of the internal `alloclab __map` (one allocator, JSON out).
#[derive(Args, Debug)]
pub struct MapChildArgs {
    /// A plugin's path.
    #[arg(long)]
    plugin: Option<PathBuf>,
    /// A built-in allocator's name.
    #[arg(long)]
    builtin: Option<String>,
    /// Creation flags.
    #[arg(long, default_value_t = 0)]
    flags: u32,
    /// Built-in workload name.
    #[arg(long)]
    workload: Option<String>,
    /// Trace file.
    #[arg(long)]
    trace: Option<PathBuf>,
    /// The moment.
    #[arg(long)]
    at: String,
    /// Points of the line.
    #[arg(long)]
    samples: u32,
    /// `--quick` sizes.
    #[arg(long)]
    quick: bool,
    /// The workload's seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Sample the whole script, not only up to the moment.
    #[arg(long)]
    whole: bool,
    /// Arena bytes (default: the workload's).
    #[arg(long)]
    arena_size: Option<usize>,
}

fn pct(n: usize, of: usize) -> String {
    format!("{:.1}%", 100.0 * n as f64 / of.max(1) as f64)
}

/// Runs `alloclab map`.
pub fn main(args: &MapArgs) -> Result<()> {
    // The arguments first: a bad one gets its own message even where the
    // project's plugins are not built yet (`run::target` looks for them).
    args.at
        .parse::<crate::arena_map::replay::At>()
        .map_err(anyhow::Error::msg)?;
    let workload = WorkloadArg::of(&args.workload, args.trace.as_deref())?;
    let names = if args.plugins.is_empty() {
        run::default_names()
    } else {
        args.plugins.clone()
    };
    let targets = names
        .iter()
        .map(|n| run::target(n))
        .collect::<Result<Vec<_>>>()?;
    let req = Request {
        at: args.at.clone(),
        samples: args.samples,
        quick: args.quick,
        seed: args.seed,
        arena_size: args.arena_size,
        svg: true,
    };
    let (stems, done) = run::write(&targets, &req, &workload, &args.out)?;
    for (name, r) in &done {
        let t = r.map.totals();
        let len = r.map.len;
        let free = t[ByteClass::FreeUsable.index()] + t[ByteClass::FreeUnusable.index()];
        outln!(
            "{name}: {}; requested {}, rounding {}, metadata {}, free {} (too small for the next request: {}), largest hole {}",
            r.moment,
            pct(t[ByteClass::Requested.index()], len),
            pct(t[ByteClass::Rounding.index()], len),
            pct(t[ByteClass::Metadata.index()], len),
            pct(free, len),
            pct(t[ByteClass::FreeUnusable.index()], len),
            draw::size(r.map.largest_hole()),
        );
    }
    for stem in stems {
        outln!("{}", args.out.join(format!("{stem}.png")).display());
        outln!("{}", args.out.join(format!("{stem}.svg")).display());
    }
    Ok(())
}

/// Runs `alloclab __map`: one allocator's replay, as JSON on stdout.
pub fn child_main(args: &MapChildArgs) -> Result<()> {
    let spec = match (&args.plugin, &args.builtin) {
        (Some(p), _) => Spec::Plugin(p.clone()),
        (None, Some(n)) => Spec::Builtin(n.clone()),
        (None, None) => bail!("__map needs --plugin or --builtin"),
    };
    let workload = match (&args.trace, &args.workload) {
        (Some(p), _) => WorkloadArg::Trace(p.clone()),
        (None, Some(n)) => WorkloadArg::Named(n.clone()),
        (None, None) => bail!("__map needs --workload or --trace"),
    };
    let req = Request {
        at: args.at.clone(),
        samples: args.samples,
        quick: args.quick,
        seed: args.seed,
        arena_size: args.arena_size,
        svg: false,
    };
    let r = run::replay_here(&spec, args.flags, &workload, &req, args.whole)?;
    outln!("{}", serde_json::to_string(&r)?);
    Ok(())
}

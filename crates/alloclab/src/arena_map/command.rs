//! `alloclab map`: draws the arenas of allocators side by side at one moment
//! of a workload, and their fragmentation over time. Each allocator runs in
//! a child process (`alloclab __map`), so a plugin that crashes costs its own
//! panel, not the command.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Args;

use super::classify::ByteClass;
use super::draw;
use super::replay::{self, At, Replay};
use crate::artifacts;
use crate::compare::workload::{self, Scale};
use crate::compare::{OWN_PLUGINS, trace};
use crate::output::outln;
use crate::subject::{Spec, Subject};

/// The allocators mapped when none is named: this project's two and every
/// peer that manages the arena it is given.
fn default_names() -> Vec<String> {
    let own = ["buddy", "mckusick-karels"].map(String::from);
    let peers = crate::peers::all()
        .into_iter()
        .filter(|p| p.facts.uses_arena)
        .map(|p| p.name.to_string());
    own.into_iter().chain(peers).collect()
}

/// Arguments of `alloclab map`.
#[derive(Args, Debug)]
pub struct MapArgs {
    /// Allocators to map: this project's (`buddy`, `mckusick-karels`,
    /// `mckusick-karels+return`), a built-in peer by name (`rlsf`, `talc`,
    /// ...), or a plugin's path. Default: this project's and the arena peers.
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
    #[arg(long, value_parser = crate::parse_bytes)]
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
    #[arg(long)]
    at: String,
    #[arg(long)]
    samples: u32,
    #[arg(long)]
    quick: bool,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Sample the whole script, not only up to the moment.
    #[arg(long)]
    whole: bool,
    /// Arena bytes (default: the workload's).
    #[arg(long)]
    arena_size: Option<usize>,
}

/// How to make one allocator, and its name in the pictures.
struct Target {
    name: String,
    spec: Spec,
    flags: u32,
}

fn target(arg: &str) -> Result<Target> {
    if let Some((artifact, flags, name)) = OWN_PLUGINS.iter().find(|(_, _, n)| *n == arg) {
        artifacts::ensure_built()?;
        let path = artifacts::find(*artifact)?;
        return Ok(Target {
            name: name.to_string(),
            spec: Spec::Plugin(path),
            flags: *flags,
        });
    }
    if Subject::builtin_named(arg).is_some() && !arg.contains('/') {
        return Ok(Target {
            name: arg.to_string(),
            spec: Spec::Builtin(arg.to_string()),
            flags: 0,
        });
    }
    let path = PathBuf::from(arg);
    if !path.exists() {
        bail!(
            "`{arg}` is neither an allocator of alloclab nor a file (allocators with an arena: {}, mckusick-karels+return)",
            default_names().join(", ")
        );
    }
    let name = crate::subject::file_stem_name(&path);
    Ok(Target {
        name,
        spec: Spec::Plugin(path),
        flags: 0,
    })
}

/// The trace file a `trace:NAME` workload names.
fn shipped_trace(name: &str) -> Result<PathBuf> {
    let stem = name.trim_start_matches("trace:");
    let files = artifacts::shipped_traces()?;
    files
        .iter()
        .find(|p| p.file_stem().is_some_and(|s| s == stem))
        .cloned()
        .with_context(|| format!("no shipped trace `{stem}`"))
}

/// Runs one allocator's replay in a child process.
fn run_child(
    t: &Target,
    args: &MapArgs,
    workload: &WorkloadArg,
    whole: bool,
) -> Result<Replay, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    cmd.arg("__map");
    match &t.spec {
        Spec::Plugin(p) => cmd.arg("--plugin").arg(p),
        Spec::Builtin(n) => cmd.arg("--builtin").arg(n),
    };
    match workload {
        WorkloadArg::Named(n) => cmd.arg("--workload").arg(n),
        WorkloadArg::Trace(p) => cmd.arg("--trace").arg(p),
    };
    cmd.args(["--flags", &t.flags.to_string(), "--at", &args.at]);
    cmd.args(["--samples", &args.samples.to_string()]);
    cmd.args(["--seed", &args.seed.to_string()]);
    if args.quick {
        cmd.arg("--quick");
    }
    if whole {
        cmd.arg("--whole");
    }
    if let Some(n) = args.arena_size {
        cmd.args(["--arena-size", &n.to_string()]);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start the child: {e}"))?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        let line = why
            .lines()
            .last()
            .unwrap_or("")
            .trim_start_matches("alloclab: ");
        return Err(match out.status.code() {
            Some(_) => line.to_string(),
            None => format!(
                "it crashed ({}) {line}",
                crate::signals::describe(out.status)
            ),
        });
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("unreadable answer: {e}"))
}

/// A workload as given: a name, or a trace file.
pub enum WorkloadArg {
    /// A built-in workload.
    Named(String),
    /// A trace file.
    Trace(PathBuf),
}

impl WorkloadArg {
    fn of(args: &MapArgs) -> Result<WorkloadArg> {
        Ok(match (&args.trace, args.workload.as_str()) {
            (Some(p), _) => WorkloadArg::Trace(p.clone()),
            (None, w) if w.starts_with("trace:") => WorkloadArg::Trace(shipped_trace(w)?),
            (None, w) if workload::BUILT_IN.contains(&w) => WorkloadArg::Named(w.to_string()),
            (None, w) => bail!(
                "no workload `{w}` (known: {}, and trace:NAME)",
                workload::BUILT_IN.join(", ")
            ),
        })
    }

    fn script(&self, quick: bool, seed: u64) -> Result<workload::Script, String> {
        match self {
            WorkloadArg::Named(n) => workload::generate(
                n,
                Scale {
                    divisor: if quick { 4 } else { 1 },
                    seed,
                },
            )
            .ok_or_else(|| format!("no workload `{n}`")),
            WorkloadArg::Trace(p) => trace::load(p),
        }
    }
}

/// The maps and timelines of `targets` on `workload`, each allocator's
/// failure on its own line; the pictures written to `dir` as
/// `map-<workload>.{png,svg}` and `timeline-<workload>.{png,svg}`.
/// What [`write`] drew: the file stems, and each allocator's replay.
pub type Drawn = (Vec<String>, Vec<(String, Replay)>);

/// Returns the stems written and the replays drawn.
pub fn write(
    targets: &[(String, Spec, u32)],
    args: &MapArgs,
    workload: &WorkloadArg,
    dir: &Path,
) -> Result<Drawn> {
    let script = workload
        .script(args.quick, args.seed)
        .map_err(anyhow::Error::msg)?;
    let mut done = Vec::new();
    for (name, spec, flags) in targets {
        let t = Target {
            name: name.clone(),
            spec: spec.clone(),
            flags: *flags,
        };
        let whole = matches!(workload, WorkloadArg::Trace(_));
        match run_child(&t, args, workload, whole) {
            Ok(r) => done.push((name.clone(), r)),
            Err(why) => eprintln!("alloclab map: {name}: {why}"),
        }
    }
    if done.is_empty() {
        bail!("no allocator could be mapped");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let slug = crate::compare::report::charts::slug(&script.name);
    let arena = args.arena_size.unwrap_or(script.arena);
    let title = format!("Arena maps: {} ({} arena)", script.name, draw::size(arena));
    let map_stem = format!("map-{slug}");
    draw::maps(dir, &map_stem, &title, &done)?;
    let time_stem = format!("timeline-{slug}");
    let title = format!("Fragmentation over time: {}", script.name);
    draw::timelines(dir, &time_stem, &title, &done)?;
    Ok((vec![map_stem, time_stem], done))
}

/// Runs `alloclab map`.
pub fn main(args: &MapArgs) -> Result<()> {
    args.at.parse::<At>().map_err(anyhow::Error::msg)?;
    let workload = WorkloadArg::of(args)?;
    let names: Vec<String> = if args.plugins.is_empty() {
        default_names()
    } else {
        args.plugins.clone()
    };
    let targets = names
        .iter()
        .map(|n| target(n).map(|t| (t.name, t.spec, t.flags)))
        .collect::<Result<Vec<_>>>()?;
    let (stems, done) = write(&targets, args, &workload, &args.out)?;
    for (name, r) in &done {
        let t = r.map.totals();
        let part = |c: ByteClass| {
            format!(
                "{:.1}%",
                100.0 * t[c.index()] as f64 / r.map.len.max(1) as f64
            )
        };
        outln!(
            "{name}: {}; requested {}, rounding {}, metadata {}, free {} (too small for the next request: {}), largest hole {}",
            r.moment,
            part(ByteClass::Requested),
            part(ByteClass::Rounding),
            part(ByteClass::Metadata),
            format!(
                "{:.1}%",
                100.0 * (t[3] + t[4]) as f64 / r.map.len.max(1) as f64
            ),
            part(ByteClass::FreeUnusable),
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
    let at: At = args.at.parse().map_err(anyhow::Error::msg)?;
    let spec = match (&args.plugin, &args.builtin) {
        (Some(p), _) => Spec::Plugin(p.clone()),
        (None, Some(n)) => Spec::Builtin(n.clone()),
        (None, None) => bail!("__map needs --plugin or --builtin"),
    };
    let subject = Subject::from_spec(&spec, args.flags).map_err(anyhow::Error::msg)?;
    let workload = match (&args.trace, &args.workload) {
        (Some(p), _) => WorkloadArg::Trace(p.clone()),
        (None, Some(n)) => WorkloadArg::Named(n.clone()),
        (None, None) => bail!("__map needs --workload or --trace"),
    };
    let script = workload
        .script(args.quick, args.seed)
        .map_err(anyhow::Error::msg)?;
    let arena = args.arena_size.unwrap_or(script.arena);
    let r = replay::replay(
        &subject,
        &script,
        arena,
        at,
        args.samples as usize,
        args.whole,
    )
    .map_err(anyhow::Error::msg)?;
    let json = serde_json::to_string(&r)?;
    outln!("{json}");
    Ok(())
}

//! Running the replays behind the maps: which allocator a name means, the
//! workload, one child process (`alloclab __map`) per allocator so that a
//! plugin that crashes costs its own panel, and the pictures.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::draw;
use super::replay::{self, At, Replay};
use crate::allocators::subject::{self, Spec};
use crate::allocators::{self, peers};
use crate::artifacts;
use crate::engine::trace;
use crate::engine::workload::{self, Scale, Script};

/// How to make one allocator, and its name in the pictures.
#[derive(Clone, Debug)]
pub struct Target {
    /// Its name in the pictures.
    pub name: String,
    /// How to make it.
    pub spec: Spec,
    /// Creation flags.
    pub flags: u32,
}

/// The allocators mapped when none is named: this project's two and every
/// peer that manages the arena it is given.
pub fn default_names() -> Vec<String> {
    let own = ["buddy", "mckusick-karels"].map(String::from);
    let peers = peers::all()
        .into_iter()
        .filter(|p| p.facts.uses_arena)
        .map(|p| p.name.to_string());
    own.into_iter().chain(peers).collect()
}

/// The allocator `arg` names: one of this project's (built first when the
/// runner was started by cargo), a built-in peer, or a plugin's path.
pub fn target(arg: &str) -> Result<Target> {
    if let Some((artifact, flags, name)) =
        allocators::OWN_PLUGINS.iter().find(|(_, _, n)| *n == arg)
    {
        artifacts::ensure_built()?;
        let path = artifacts::find(*artifact)?;
        return Ok(Target {
            name: name.to_string(),
            spec: Spec::Plugin(path),
            flags: *flags,
        });
    }
    if allocators::builtin(arg).is_some() && !arg.contains('/') {
        return Ok(Target {
            name: arg.to_string(),
            spec: Spec::Builtin(arg.to_string()),
            flags: 0,
        });
    }
    let path = PathBuf::from(arg);
    if !path.exists() {
        bail!(
            "`{arg}` is neither an allocator of alloclab nor a file (allocators with an arena: {}, mckusick-karels+faithful, mckusick-karels+return)",
            default_names().join(", ")
        );
    }
    let name = subject::file_stem_name(&path);
    Ok(Target {
        name,
        spec: Spec::Plugin(path),
        flags: 0,
    })
}

/// A workload as given: a built-in one by name, or a trace file.
#[derive(Clone, Debug)]
pub enum WorkloadArg {
    /// A built-in workload.
    Named(String),
    /// A trace file.
    Trace(PathBuf),
}

impl WorkloadArg {
    /// `name` (a built-in workload or `trace:NAME` of a shipped trace), or
    /// the trace file `trace`.
    pub fn of(name: &str, trace: Option<&Path>) -> Result<WorkloadArg> {
        Ok(match (trace, name) {
            (Some(p), _) => WorkloadArg::Trace(p.to_path_buf()),
            (None, w) if w.starts_with("trace:") => WorkloadArg::Trace(shipped_trace(w)?),
            (None, w) if workload::BUILT_IN.contains(&w) => WorkloadArg::Named(w.to_string()),
            (None, w) => bail!(
                "no workload `{w}` (known: {}, and trace:NAME)",
                workload::BUILT_IN.join(", ")
            ),
        })
    }

    /// The script, at `compare`'s sizes (`quick`: divided by 4) and seed.
    pub fn script(&self, quick: bool, seed: u64) -> Result<Script, String> {
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

/// What to replay and how.
#[derive(Clone, Debug)]
pub struct Request {
    /// The moment (`refusal`, `peak`, `op:N`).
    pub at: String,
    /// Points of the fragmentation-over-time line.
    pub samples: u32,
    /// `compare --quick`'s sizes.
    pub quick: bool,
    /// The workloads' seed.
    pub seed: u64,
    /// The arena's size, instead of the workload's.
    pub arena_size: Option<usize>,
    /// Write the maps as SVG too (PNG always).
    pub svg: bool,
}

/// Runs one allocator's replay in a child process (`alloclab __map`).
fn run_child(
    t: &Target,
    req: &Request,
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
    cmd.args(["--flags", &t.flags.to_string(), "--at", &req.at]);
    cmd.args([
        "--samples",
        &req.samples.to_string(),
        "--seed",
        &req.seed.to_string(),
    ]);
    if req.quick {
        cmd.arg("--quick");
    }
    if whole {
        cmd.arg("--whole");
    }
    if let Some(n) = req.arena_size {
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

/// The replay a child runs: `target` made from `spec` with `flags`.
pub fn replay_here(
    spec: &Spec,
    flags: u32,
    workload: &WorkloadArg,
    req: &Request,
    whole: bool,
) -> Result<Replay> {
    let at: At = req.at.parse().map_err(anyhow::Error::msg)?;
    let subject = allocators::from_spec(spec, flags).map_err(anyhow::Error::msg)?;
    let script = workload
        .script(req.quick, req.seed)
        .map_err(anyhow::Error::msg)?;
    let arena = req.arena_size.unwrap_or(script.arena);
    replay::replay(&subject, &script, arena, at, req.samples as usize, whole)
        .map_err(anyhow::Error::msg)
}

/// What [`write`] drew: the file stems, and each allocator's replay.
pub type Drawn = (Vec<String>, Vec<(String, Replay)>);

/// The maps and timelines of `targets` on `workload` written to `dir` as
/// `map-<workload>.{png,svg}` and `timeline-<workload>.{png,svg}`; an
/// allocator that cannot be mapped gets a line on stderr and no panel.
pub fn write(
    targets: &[Target],
    req: &Request,
    workload: &WorkloadArg,
    dir: &Path,
) -> Result<Drawn> {
    req.at.parse::<At>().map_err(anyhow::Error::msg)?;
    let script = workload
        .script(req.quick, req.seed)
        .map_err(anyhow::Error::msg)?;
    let whole = matches!(workload, WorkloadArg::Trace(_));
    let mut done = Vec::new();
    for t in targets {
        match run_child(t, req, workload, whole) {
            Ok(r) => done.push((t.name.clone(), r)),
            Err(why) => eprintln!("alloclab map: {}: {why}", t.name),
        }
    }
    if done.is_empty() {
        bail!("no allocator could be mapped");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let slug = crate::toolkit::chart::slug(&script.name);
    let arena = req.arena_size.unwrap_or(script.arena);
    let title = format!("Arena maps: {} ({} arena)", script.name, draw::size(arena));
    let map_stem = format!("map-{slug}");
    draw::maps(dir, &map_stem, &title, &done, req.svg)?;
    let time_stem = format!("timeline-{slug}");
    let title = format!("Fragmentation over time: {}", script.name);
    draw::timelines(dir, &time_stem, &title, &done)?;
    Ok((vec![map_stem, time_stem], done))
}

//! `alloclab compare`: every allocator on every workload, measured the same
//! way in the same run. See `run.rs` for the method, `workload.rs` for the
//! workloads, `results.rs` for what is reported.

pub mod csv;
pub mod report;
pub mod table;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::allocators;
use crate::allocators::subject::{Spec, Subject};
use crate::arena::Arena;
use crate::artifacts;
use crate::engine::entry::{Entry, RunsIn};
use crate::engine::results::{CompareResults, Method, Observed, SubjectInfo, WorkloadResult};
use crate::engine::scripts::WorkloadSpec;
use crate::engine::settings::Settings;
use crate::engine::{measure, observe, run, trace, workload};
use crate::output::outln;
use crate::toolkit::machine::{machine, output_dir};
use run::Plan;
use workload::Scale;

/// Options of `alloclab compare`.
#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// More allocator plugins to compare (paths), beside the two of this
    /// project and the built-in peers.
    pub plugins: Vec<PathBuf>,

    /// A short run (about 100 s once built, on the 2-CPU machine of the
    /// README): fewer repetitions, smaller workloads.
    #[arg(long)]
    pub quick: bool,

    /// Timed repetitions per allocator and workload (default 21, 5 with --quick).
    #[arg(long)]
    pub reps: Option<usize>,

    /// Workloads to run (comma-separated; default: all): built-in names, and
    /// `trace:NAME` for a trace shipped in `traces/` or a `--trace` file
    /// called NAME.trace.
    #[arg(long, value_delimiter = ',')]
    pub workloads: Vec<String>,

    /// Allocators to run, by name (comma-separated; default: all).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,

    /// Seed of every workload.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Write the results as JSON to this file (`-`: stdout).
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// Write one CSV line per allocator, workload and phase to this file.
    #[arg(long)]
    pub csv: Option<PathBuf>,

    /// Write a Markdown report (report.md) with SVG and PNG charts into this
    /// directory.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,

    /// Replace the text between `<!-- results:begin -->` and
    /// `<!-- results:end -->` in this file (the README) with the headline
    /// results, linking the --report directory's report and a chart.
    #[arg(long, value_name = "FILE")]
    pub readme: Option<PathBuf>,

    /// Replay this allocation trace (alloclab trace format) as a workload;
    /// repeatable. The traces shipped in `traces/` run by default.
    #[arg(long)]
    pub trace: Vec<PathBuf>,

    /// Start every repetition with the arena flushed from the caches (a cold
    /// heap) instead of read once (a heap in use, the default).
    #[arg(long)]
    pub cold: bool,

    /// Seconds a third-party plugin's worker may take to answer one request
    /// (a checked pass, a repetition) before it is killed as hung.
    #[arg(long, default_value_t = 120)]
    pub deadline: u64,

    /// Seconds of CPU time an allocator's checked (untimed) pass of one
    /// workload may take: past it, the allocator is reported as too slow for that
    /// workload and not timed on it (default 10, 3 with --quick)
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub pass_limit: Option<u64>,

    /// Do not pin the measuring thread to a CPU.
    #[arg(long)]
    pub no_pin: bool,
}

/// Every allocator to compare, in table order: this project's plugins
/// (called in this process), third-party plugins given on the command line
/// (each in a worker child process), the fallback and the peers. This
/// project's plugins must load (they are what the comparison is for): an
/// error says which file is missing and how to build it.
fn entries(args: &CompareArgs, settings: Settings) -> Result<Vec<Entry>> {
    let wanted = |name: &str| args.only.is_empty() || args.only.iter().any(|n| n == name);
    let mut out = Vec::new();
    if allocators::OWN_PLUGINS
        .iter()
        .any(|(_, _, name)| wanted(name))
    {
        artifacts::ensure_built()?;
    }
    for (artifact, flags, name) in allocators::OWN_PLUGINS {
        if !wanted(name) {
            continue;
        }
        let path = artifacts::find(artifact)?;
        let mut s =
            Subject::load(&path).with_context(|| format!("{} cannot be used", artifact.what))?;
        s.flags = flags;
        s.name = name.into();
        out.push(Entry::local(s, settings));
    }
    let own_count = out.len();
    let mut third_party = Vec::new();
    for path in &args.plugins {
        let entry = Entry::isolated(path, settings).map_err(anyhow::Error::msg)?;
        third_party.push((path, entry));
    }
    out.push(Entry::local(crate::allocators::fallback(), settings));
    out.extend(
        crate::allocators::peer_subjects()
            .into_iter()
            .map(|s| Entry::local(s, settings)),
    );
    // A third-party plugin called like another allocator (a `libbump.so`
    // beside the built-in bump) gets the file's name in its rows.
    let mut names: Vec<String> = out.iter().map(|e| e.name.clone()).collect();
    let mut isolated = Vec::new();
    for (path, mut entry) in third_party {
        if names.contains(&entry.name) {
            let renamed = distinct_name(&entry.name, path, &names);
            eprintln!(
                "alloclab: plugin {} calls itself `{}`, as another allocator here does: its rows are `{renamed}`",
                crate::output::shown(&path.display().to_string()),
                entry.name
            );
            entry.name = renamed;
        }
        names.push(entry.name.clone());
        isolated.push((path, entry));
    }
    if !args.only.is_empty() {
        // `--only` names an allocator, or a plugin by the path given.
        isolated.retain(|(path, e)| {
            args.only
                .iter()
                .any(|n| n == &e.name || Path::new(n) == path.as_path())
        });
        out.retain(|e| wanted(&e.name));
    }
    let rest = out.split_off(own_count);
    out.extend(isolated.into_iter().map(|(_, e)| e));
    out.extend(rest);
    if out.is_empty() {
        bail!("--only {} matches no allocator", args.only.join(","));
    }
    Ok(out)
}

/// A name for the plugin at `path` called `name` like one of `taken`:
/// `name (FILE)`, else `name (PATH)`, else numbered.
fn distinct_name(name: &str, path: &Path, taken: &[String]) -> String {
    let file = path.file_name().map_or_else(
        || path.display().to_string(),
        |f| f.to_string_lossy().into_owned(),
    );
    let full = path.display().to_string();
    [file, full.clone()]
        .into_iter()
        .map(|which| format!("{name} ({})", crate::output::shown(&which)))
        .chain((2..).map(|k| format!("{name} ({} #{k})", crate::output::shown(&full))))
        .find(|candidate| !taken.contains(candidate))
        .unwrap_or_else(|| name.to_string())
}

/// A trace's workload name: `trace:` and the file's stem.
fn trace_name(path: &Path) -> String {
    format!(
        "trace:{}",
        path.file_stem()
            .map_or_else(|| "trace".into(), |s| s.to_string_lossy())
    )
}

/// The traces to replay: the `--trace` files, and the shipped traces named
/// `trace:NAME` in `--workloads`; with neither `--trace` nor `--workloads`,
/// every shipped trace.
fn trace_files(args: &CompareArgs) -> Result<Vec<PathBuf>> {
    let shipped = || artifacts::shipped_traces();
    if args.workloads.is_empty() {
        return Ok(if !args.trace.is_empty() {
            args.trace.clone()
        } else {
            shipped().unwrap_or_else(|e| {
                eprintln!("alloclab: {e:#}; replaying no trace (give one with --trace FILE)");
                Vec::new()
            })
        });
    }
    let mut files = args.trace.clone();
    for name in args.workloads.iter().filter(|w| w.starts_with("trace:")) {
        if args.trace.iter().any(|p| &trace_name(p) == name) {
            continue; // a --trace file of that name
        }
        let shipped = shipped()?;
        match shipped.iter().find(|p| &trace_name(p) == name) {
            Some(p) => files.push(p.clone()),
            None => bail!(
                "no trace `{name}`: neither a --trace file nor a shipped trace (shipped: {})",
                shipped
                    .iter()
                    .map(|p| trace_name(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    Ok(files)
}

/// Runs `alloclab compare`.
pub fn main(args: &CompareArgs) -> Result<()> {
    if let Some(path) = &args.readme {
        report::check_readme(path)?; // before a long run, not after it
    }
    for path in [&args.json, &args.csv].into_iter().flatten() {
        output_dir(path)?;
    }
    let scripts = scripts(args)?;
    // Before pinning: afterwards this thread sees one CPU.
    let machine = machine();
    let settings = Settings {
        cold: args.cold,
        deadline_secs: args.deadline.max(1),
        cpu: (!args.no_pin).then(measure::pin_to_last_cpu).flatten(),
        pass_limit_secs: args.pass_limit.unwrap_or(if args.quick { 3 } else { 10 }),
    };
    // After pinning, so every worker is told the run's CPU.
    let mut entries = entries(args, settings)?;
    let plan = Plan {
        reps: args.reps.unwrap_or(if args.quick { 5 } else { 21 }).max(1),
        quick: args.quick,
        seed: args.seed,
        budget_s: if args.quick { 1.0 } else { 8.0 },
        min_reps: if args.quick { 3 } else { 5 },
        slow_s: if args.quick { 0.25 } else { 1.0 },
        settings,
    };
    let method = method(&plan);
    let observed: Vec<Observed> = entries.iter().map(probe).collect();
    let workloads = measure_all(&scripts, &mut entries, &plan, &method)?;
    let results = CompareResults {
        machine,
        method,
        subjects: subjects(&entries, observed, &workloads),
        workloads,
    };
    outln!("── ease of use ──\n{}", table::ease_table(&results));
    write_outputs(args, &results)?;
    if let Some(dir) = &args.report {
        write_arena_maps(&entries, &scripts, args, dir)?;
    }
    Ok(())
}

/// Every workload to run, with what makes it again in a worker: the
/// built-in ones named (all by default), then the traces.
fn scripts(args: &CompareArgs) -> Result<Vec<(workload::Script, WorkloadSpec)>> {
    let scale = Scale {
        divisor: if args.quick { 4 } else { 1 },
        seed: args.seed,
    };
    let names: Vec<String> = if args.workloads.is_empty() {
        workload::BUILT_IN.iter().map(|s| s.to_string()).collect()
    } else {
        args.workloads.clone()
    };
    let mut scripts = Vec::new();
    for name in names.iter().filter(|n| !n.starts_with("trace:")) {
        let script = workload::generate(name, scale).with_context(|| {
            format!(
                "no workload `{name}` (known: {}, and trace:NAME for a shipped trace)",
                workload::BUILT_IN.join(", ")
            )
        })?;
        let spec = WorkloadSpec::BuiltIn {
            name: name.clone(),
            divisor: scale.divisor,
            seed: scale.seed,
        };
        scripts.push((script, spec));
    }
    for path in trace_files(args)? {
        let script = trace::load(&path).map_err(anyhow::Error::msg)?;
        scripts.push((script, WorkloadSpec::Trace { path }));
    }
    Ok(scripts)
}

/// How the figures are taken (on the pinned thread: the clocks' costs).
fn method(plan: &Plan) -> Method {
    #[cfg(target_arch = "x86_64")]
    let (tsc_hz, tsc_overhead) = match measure::tsc_hz() {
        Some(hz) => (Some(hz), Some(measure::tsc_overhead_cycles())),
        None => (None, None),
    };
    #[cfg(not(target_arch = "x86_64"))]
    let (tsc_hz, tsc_overhead) = (None, None);
    Method {
        repetitions: plan.reps,
        quick: plan.quick,
        seed: plan.seed,
        pinned_cpu: plan.settings.cpu,
        cold: plan.settings.cold,
        instant_ns: measure::instant_cost_ns(),
        tsc_hz,
        tsc_overhead_cycles: tsc_overhead,
    }
}

/// What the probes observe of one allocator (in child processes).
fn probe(e: &Entry) -> Observed {
    if let RunsIn::Failed(why) = &e.exec {
        eprintln!("alloclab: plugin {} {why}; its rows say so", e.name);
        return Observed::default();
    }
    eprintln!(
        "alloclab: probing {} (bad pointers, exhaustion, smallest arena) in child processes",
        e.name
    );
    observe::observe(e)
}

/// Every workload on every entry, each workload's table printed as it ends.
fn measure_all(
    scripts: &[(workload::Script, WorkloadSpec)],
    entries: &mut [Entry],
    plan: &Plan,
    method: &Method,
) -> Result<Vec<WorkloadResult>> {
    let max_arena = scripts
        .iter()
        .map(|(s, _)| s.arena)
        .max()
        .unwrap_or(1 << 20);
    // Aligned to its size: the same figures on every run (see `map_aligned`).
    let arena = Arena::map_aligned(max_arena, max_arena.next_power_of_two())?;
    let bar = run::progress(run::steps(entries.len(), plan) * scripts.len() as u64);
    let mut workloads = Vec::new();
    for (script, spec) in scripts {
        let warmup = spec.scripts().map_err(anyhow::Error::msg)?.1;
        let bench = run::Bench {
            arena: &arena,
            plan,
            method,
            bar: &bar,
        };
        let w = run::run_workload(script, &warmup, spec, entries, &bench);
        bar.suspend(|| {
            outln!("{}", table::workload_legend(&w));
            outln!("{}\n", table::workload_table(&w));
        });
        workloads.push(w);
    }
    bar.finish_and_clear();
    Ok(workloads)
}

/// Each entry as the results describe it.
fn subjects(
    entries: &[Entry],
    observed: Vec<Observed>,
    workloads: &[WorkloadResult],
) -> Vec<SubjectInfo> {
    entries
        .iter()
        .zip(observed)
        .map(|(s, mut observed)| {
            observed.alignment = workloads
                .iter()
                .flat_map(|w| w.rows.iter().filter(|r| r.subject == s.name))
                .filter_map(|r| r.alignment)
                .min();
            let isolated = matches!(s.exec, RunsIn::Worker(_));
            SubjectInfo {
                name: s.name.clone(),
                origin: match &s.spec {
                    Spec::Plugin(p) => artifacts::report_path(p),
                    Spec::Builtin(_) => "built into alloclab".into(),
                },
                isolated,
                worker_settings: isolated.then_some(s.settings),
                facts: s.facts,
                description: s.description.clone(),
                observed,
            }
        })
        .collect()
}

/// The JSON, CSV, report and README block the options ask for.
fn write_outputs(args: &CompareArgs, results: &CompareResults) -> Result<()> {
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(results)?;
        if path.as_os_str() == "-" {
            outln!("{text}");
        } else {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    if let Some(path) = &args.csv {
        csv::write_file(results, path)?;
    }
    let charts = match &args.report {
        Some(dir) => Some((dir.as_path(), report::write(results, dir)?)),
        None => None,
    };
    if let Some(path) = &args.readme {
        report::update_readme(path, results, charts.as_ref().map(|(d, c)| (*d, &c[..])))?;
    }
    Ok(())
}

/// The arena maps of the report (`arena_map::report`): the arena
/// allocators measured, on `fill` and the traces among `scripts`.
fn write_arena_maps(
    entries: &[Entry],
    scripts: &[(workload::Script, WorkloadSpec)],
    args: &CompareArgs,
    dir: &Path,
) -> Result<()> {
    use crate::arena_map::report::{self as maps, ToMap};
    use crate::arena_map::run::Target;
    let targets: Vec<Target> = entries
        .iter()
        .filter(|e| e.blocks_in_arena && !matches!(e.exec, RunsIn::Failed(_)))
        .map(|e| Target {
            name: e.name.clone(),
            spec: e.spec.clone(),
            flags: e.flags,
        })
        .collect();
    let workloads: Vec<ToMap> = scripts
        .iter()
        .filter_map(|(s, spec)| match spec {
            WorkloadSpec::Trace { path } => Some(ToMap {
                name: s.name.clone(),
                trace: Some(path.clone()),
            }),
            WorkloadSpec::BuiltIn { name, .. } if name == "fill" => Some(ToMap {
                name: name.clone(),
                trace: None,
            }),
            _ => None,
        })
        .collect();
    if targets.is_empty() || workloads.is_empty() {
        return Ok(());
    }
    eprintln!("alloclab: drawing the arena maps (untimed replays in child processes)");
    let section = maps::section(&targets, &workloads, args.quick, args.seed, dir)?;
    maps::insert(dir, &section)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colliding_plugins_get_distinct_names() {
        let taken = vec!["bump".to_string(), "bump (libbump.so)".to_string()];
        let path = Path::new("/x/libbump.so");
        assert_eq!(
            distinct_name("bump", path, &taken[..1]),
            "bump (libbump.so)"
        );
        assert_eq!(distinct_name("bump", path, &taken), "bump (/x/libbump.so)");
        let mut more = taken.clone();
        more.push("bump (/x/libbump.so)".into());
        assert_eq!(
            distinct_name("bump", path, &more),
            "bump (/x/libbump.so #2)"
        );
    }
}

//! `alloclab`: loads an allocator plugin by path and measures it.
//!
//! - `alloclab [PLUGIN]`: the brief's run. Loads the plugin at `PLUGIN`
//!   (`dlopen`); with no argument, or when nothing loadable is there, says why
//!   on stderr and uses the built-in `mmap`/`munmap` fallback instead. Then
//!   runs the brief's workload and prints its figures.
//! - `alloclab compare`: every allocator (the two plugins, the fallback, the
//!   peers) on every workload, measured the same way in one run.
//! - `alloclab record -- COMMAND`: records a program's allocation calls as a
//!   trace (`record.rs`).
//! - `alloclab programs`: real programs under glibc, the two malloc shims,
//!   mimalloc and jemalloc (`programs.rs`).
#![deny(unsafe_op_in_unsafe_fn)]

mod allocators;
mod arena;
mod arena_map;
mod artifacts;
mod compare;
mod engine;
mod map;
mod output;
mod postmortem;
mod programs;
mod record;
mod signals;
mod toolkit;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use toolkit::format::parse_bytes;

use crate::engine::lab::{self, BriefConfig, BriefResult, Shown};
use crate::engine::worker::{StartError, Worker};

/// A `--max-size`: a byte count of at least 1.
fn parse_max_size(s: &str) -> Result<usize, String> {
    match parse_bytes(s)? {
        0 => Err("the largest request must be at least 1 byte".into()),
        n => Ok(n),
    }
}

/// Loads an allocator plugin by path and measures it.
///
/// `alloclab [PLUGIN]` runs the brief's workload on one plugin (or on the
/// built-in mmap/munmap fallback); `alloclab compare` compares every allocator.
#[derive(Parser, Debug)]
#[command(
    name = "alloclab",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    brief: BriefArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Compare every allocator on every workload: usage factor, allocation
    /// and free speed, latency, ease of use.
    Compare(compare::CompareArgs),
    /// Run a program under the recording library and write its allocation
    /// calls as a trace (replayed by `compare`).
    Record(record::RecordArgs),
    /// Run real programs (Python, sort, git, xz) under glibc, this project's
    /// malloc shims, mimalloc and jemalloc: wall time and peak RSS relative
    /// to glibc, outputs checked.
    Programs(programs::ProgramsArgs),
    /// Draw the arenas of allocators side by side at one moment of a
    /// workload (where each byte goes: data, rounding, metadata, free), and
    /// their fragmentation over time, as PNG and SVG.
    Map(map::MapArgs),
    /// (internal) One allocator's arena map, run by `map` in a child process.
    #[command(name = "__map", hide = true)]
    MapChild(map::MapChildArgs),
    /// (internal) One ease-of-use probe, run by `compare` in a child process.
    #[command(name = "__probe", hide = true)]
    Probe(engine::observe::ProbeArgs),
    /// (internal) A third-party plugin's measurements, run by `compare` in a child process.
    #[command(name = "__worker", hide = true)]
    Worker(engine::worker::WorkerArgs),
    /// (internal) Runs and measures one process for `programs`.
    #[command(name = "__spawn", hide = true)]
    Spawn(programs::spawn::SpawnArgs),
}

/// The brief's run (no subcommand). A file named like a subcommand
/// (`compare`) is loaded as `./compare`.
#[derive(Args, Debug)]
struct BriefArgs {
    /// Path to an allocator plugin (a shared library exporting the functions
    /// of include/allocator.h): absolute, relative, or a file name in the
    /// current folder. Without it, or if nothing loadable is there, the
    /// built-in mmap/munmap fallback is used.
    plugin: Option<PathBuf>,

    /// Arena size in bytes (K, M, G suffixes: powers of 1024).
    #[arg(long, default_value = "1M", value_parser = parse_bytes)]
    arena_size: usize,

    /// Number of allocation requests (at most 100,000,000: the runner keeps
    /// 24 bytes per request).
    #[arg(long, default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=lab::MAX_COUNT as u64))]
    count: u64,

    /// Largest request (at least 1); sizes are uniform in 1..=MAX_SIZE.
    #[arg(long, default_value = "4096", value_parser = parse_max_size)]
    max_size: usize,

    /// Seed of the request sizes.
    #[arg(long, default_value_t = 42)]
    seed: u64,

    /// Seconds the plugin may take for the whole run (it runs in a child
    /// process) before it is killed as hung.
    #[arg(long, default_value_t = 60)]
    deadline: u64,

    /// Timed runs (the median is reported; 1 to 10,000).
    #[arg(long, default_value_t = 21,
          value_parser = clap::value_parser!(u64).range(1..=lab::MAX_REPEAT as u64))]
    repeat: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let done = |r: anyhow::Result<()>| r.map(|()| ExitCode::SUCCESS);
    let result = match &cli.command {
        Some(Command::Compare(args)) => done(compare::main(args)),
        Some(Command::Record(args)) => record::main(args),
        Some(Command::Programs(args)) => done(programs::main(args)),
        Some(Command::Spawn(args)) => done(programs::spawn::child_main(args)),
        Some(Command::Map(args)) => done(map::main(args)),
        Some(Command::MapChild(args)) => done(map::child_main(args)),
        Some(Command::Probe(args)) => done(engine::observe::child_main(args)),
        Some(Command::Worker(args)) => done(engine::worker::child_main(args)),
        None => done(run_brief(&cli.brief)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("alloclab: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The brief's run: the plugin at the given path, run and measured in a
/// worker process (a plugin that crashes, hangs or ends the process gets one
/// line saying what it did, and a non-zero exit), or the built-in fallback
/// when no path is given or nothing loadable is there.
fn run_brief(args: &BriefArgs) -> anyhow::Result<()> {
    let cfg = BriefConfig {
        arena_size: args.arena_size,
        count: args.count as usize,
        max_size: args.max_size,
        seed: args.seed,
        repeat: args.repeat as usize,
    };
    cfg.check()?;
    let settings = engine::settings::Settings {
        deadline_secs: args.deadline.max(1),
        ..Default::default()
    };
    let fallback = |why: &str| -> anyhow::Result<(Shown, BriefResult)> {
        eprintln!("alloclab: {why}; using the built-in mmap/munmap fallback");
        let subject = crate::allocators::fallback();
        let result = lab::run(&subject, &cfg)?;
        let shown = Shown {
            name: subject.name,
            origin: subject.origin,
            blocks_in_arena: subject.blocks_in_arena,
        };
        Ok((shown, result))
    };
    let (shown, result) = match &args.plugin {
        None => fallback("no plugin path given")?,
        Some(path) => {
            let origin = crate::output::shown(&path.display().to_string());
            match Worker::start(path, 0, &settings) {
                Ok((mut worker, hello)) => {
                    let result = worker.brief(&cfg).map_err(|e| {
                        let more = if e.starts_with("hung") {
                            " (--deadline SECONDS gives it longer)"
                        } else {
                            ""
                        };
                        anyhow::anyhow!("plugin {origin}: {e}{more}")
                    })?;
                    let shown = Shown {
                        name: hello.name,
                        origin,
                        blocks_in_arena: true,
                    };
                    (shown, result)
                }
                Err(StartError::NotLoadable(why)) => fallback(&why)?,
                Err(StartError::Failed(why)) => anyhow::bail!("plugin {origin}: {why}"),
            }
        }
    };
    lab::print(&shown, &cfg, &result);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts() {
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("1M"), Ok(1 << 20));
        assert_eq!(parse_bytes("64k"), Ok(64 << 10));
        assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
        assert_eq!(parse_bytes("16 KB"), Ok(16 << 10));
        assert_eq!(parse_bytes("3Mi"), Ok(3 << 20));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("99999999999999999999G").is_err());
    }
}

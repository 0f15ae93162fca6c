//! `alloclab record [--output FILE] -- COMMAND ARGS...`: runs a program under
//! the recording library (`liballoc_recorder.so`, crate `alloc-recorder`)
//! and writes what it asked of its allocator as an alloclab trace, which
//! `alloclab compare --trace FILE` replays on every allocator.
//!
//! The recorder forwards every call to the real allocator and records it.
//! Only the program started records (through any `exec`: `env X=1 prog`
//! records `prog`), not the programs it starts; a child made by `fork` stops
//! recording. See `docs/traces.md`.

use std::ffi::{OsStr, OsString};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::signals;

/// Options of `alloclab record`.
#[derive(Args, Debug, Clone)]
pub struct RecordArgs {
    /// The trace file to write (replaced if it exists). Default: the
    /// command's file name with `.trace`, in the current folder.
    #[arg(long, short)]
    pub output: Option<PathBuf>,

    /// The program to run and its arguments (after `--` when an argument
    /// starts with `-`).
    #[arg(required = true, trailing_var_arg = true)]
    pub command: Vec<OsString>,
}

/// `LD_PRELOAD` with `lib` first, keeping what the environment preloads.
pub fn preload_with(lib: &Path) -> OsString {
    let mut v = lib.as_os_str().to_os_string();
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|o| !o.is_empty()) {
        v.push(":");
        v.push(old);
    }
    v
}

/// Runs `alloclab record`; the exit status is the program's (128 + the
/// signal if it was killed), or 1 when no trace could be had.
pub fn main(args: &RecordArgs) -> Result<ExitCode> {
    crate::artifacts::ensure_built()?;
    let recorder = crate::artifacts::find(crate::artifacts::RECORDER)?;
    let (program, rest) = args
        .command
        .split_first()
        .context("no command given (alloclab record -- COMMAND ARGS...)")?;
    let shown = program.to_string_lossy();
    let output = create_output(args.output.as_deref(), program)?;
    let status = Command::new(program)
        .args(rest)
        .env("LD_PRELOAD", preload_with(&recorder))
        .env("ALLOCLAB_TRACE", &output)
        .env("ALLOCLAB_TRACE_PPID", std::process::id().to_string())
        .status()
        .with_context(|| format!("cannot run {shown}"))?;
    let passed_on = || ExitCode::from(signals::shell_code(status).max(1));
    let bytes = std::fs::read(&output)
        .with_context(|| format!("reading back the trace {}", output.display()))?;
    let killed = status.signal().is_some();
    // The recorder writes the magic when it starts, its events when its
    // buffer is full and at exit: an empty file means it never ran, the
    // magic alone that the program ended before it wrote an event.
    if bytes.is_empty() || (killed && bytes.len() <= alloc_trace::MAGIC.len()) {
        let _ = std::fs::remove_file(&output);
        explain_no_trace(&shown, status, killed);
        return Ok(passed_on());
    }
    let s = consistent_stats(&bytes).with_context(|| format!("trace {}", output.display()))?;
    eprintln!(
        "alloclab: wrote {} ({} bytes): {} events — {} allocs, {} frees, {} reallocs; {}; \
         peak {} KiB live in {} blocks; {} blocks live at exit",
        output.display(),
        bytes.len(),
        s.allocs + s.frees + s.reallocs,
        s.allocs,
        s.frees,
        s.reallocs,
        threads(&s),
        s.peak_live_bytes >> 10,
        s.peak_live_blocks,
        s.live_at_end
    );
    if status.success() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "alloclab: {shown} {}; {}",
        signals::describe(status),
        if killed {
            "the trace holds the events written before (the recorder's last buffer is lost), kept"
        } else {
            "the trace was kept"
        }
    );
    Ok(passed_on())
}

/// The absolute path of the trace (`output`, or `PROGRAM.trace` here),
/// created empty before the program runs.
fn create_output(output: Option<&Path>, program: &OsStr) -> Result<PathBuf> {
    let output = match output {
        Some(o) => o.to_path_buf(),
        None => {
            let stem = Path::new(program)
                .file_name()
                .map_or_else(|| "program".into(), |s| s.to_string_lossy().into_owned());
            PathBuf::from(format!("{stem}.trace"))
        }
    };
    let output = std::path::absolute(&output)
        .with_context(|| format!("output path {}", output.display()))?;
    // The trace's folder must exist, and the file be writable, before the
    // program runs. Creating it empty also replaces a stale trace: a program
    // that records nothing leaves an empty file, never an old trace.
    if let Some(dir) = output.parent().filter(|d| !d.is_dir()) {
        bail!(
            "cannot write the trace {}: the folder {} does not exist",
            output.display(),
            dir.display()
        );
    }
    std::fs::File::create(&output)
        .with_context(|| format!("cannot write the trace {}", output.display()))?;
    Ok(output)
}

/// Says why the program left no trace: killed before it could write one, or
/// the recorder never ran in it.
fn explain_no_trace(shown: &str, status: ExitStatus, killed: bool) {
    if killed {
        eprintln!(
            "alloclab: {shown} {}; no trace was written (the recorder writes its events at exit, \
             and a killed process does not exit)",
            signals::describe(status)
        );
    } else {
        eprintln!(
            "alloclab: {shown} {} and wrote no trace: the recorder did not run in it (a statically \
             linked or setuid program ignores LD_PRELOAD)",
            signals::describe(status)
        );
    }
}

/// "1 thread", "17 threads (at most 2 at once)".
fn threads(s: &alloc_trace::TraceStats) -> String {
    match (s.threads, s.concurrent_threads) {
        (1, _) => "1 thread".into(),
        (n, c) if c == n => format!("{n} threads"),
        (n, c) => format!("{n} threads (at most {c} at once)"),
    }
}

/// The figures of the trace in `bytes`, checked consistent, one event at a
/// time.
fn consistent_stats(bytes: &[u8]) -> Result<alloc_trace::TraceStats> {
    let mut stats = alloc_trace::StatsBuilder::default();
    for e in alloc_trace::Events::new(bytes)? {
        stats
            .add(e?)
            .map_err(anyhow::Error::msg)
            .context("the trace is inconsistent")?;
    }
    Ok(stats.finish())
}

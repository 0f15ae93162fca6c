//! `alloclab record [--output FILE] -- COMMAND ARGS...`: runs a program under
//! the recording library (`liballoc_recorder.so`, crate `alloc-recorder`)
//! and writes what it asked of its allocator as an alloclab trace, which
//! `alloclab compare --trace FILE` replays on every allocator.
//!
//! The recorder forwards every call to the real allocator and records it.
//! Only the program started records (through any `exec`: `env X=1 prog`
//! records `prog`), not the programs it starts; a child made by `fork` stops
//! recording. See `docs/traces.md`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Args;

/// Options of `alloclab record`.
#[derive(Args, Debug, Clone)]
pub struct RecordArgs {
    /// The trace file to write (replaced if it exists). Default: the
    /// command's file name with `.trace`, in the current folder.
    #[arg(long, short)]
    pub output: Option<PathBuf>,

    /// The program to run and its arguments (after `--`).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
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

/// Runs `alloclab record`.
pub fn main(args: &RecordArgs) -> Result<()> {
    crate::artifacts::ensure_built()?;
    let recorder = crate::artifacts::find(crate::artifacts::RECORDER)?;
    let (program, rest) = args
        .command
        .split_first()
        .context("no command given (alloclab record -- COMMAND ARGS...)")?;
    let output = match &args.output {
        Some(o) => o.clone(),
        None => {
            let stem = Path::new(program)
                .file_name()
                .map_or_else(|| "program".into(), |s| s.to_string_lossy().into_owned());
            PathBuf::from(format!("{stem}.trace"))
        }
    };
    let output = std::path::absolute(&output)
        .with_context(|| format!("output path {}", output.display()))?;
    // No stale trace may survive a program that records nothing.
    match std::fs::remove_file(&output) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", output.display())),
    }
    let status = Command::new(program)
        .args(rest)
        .env("LD_PRELOAD", preload_with(&recorder))
        .env("ALLOCLAB_TRACE", &output)
        .env("ALLOCLAB_TRACE_PPID", std::process::id().to_string())
        .status()
        .with_context(|| format!("running {}", program.to_string_lossy()))?;
    let bytes = std::fs::read(&output).with_context(|| {
        format!(
            "{} wrote no trace to {} (a static or setuid program ignores LD_PRELOAD)",
            program.to_string_lossy(),
            output.display()
        )
    })?;
    let events =
        alloc_trace::decode(&bytes).with_context(|| format!("trace {}", output.display()))?;
    let s = alloc_trace::stats(&events)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("trace {} is inconsistent", output.display()))?;
    eprintln!(
        "alloclab: wrote {} ({} bytes): {} events — {} allocs, {} frees, {} reallocs; {} thread(s); \
         peak {} KiB live; {} block ids; {} blocks live at exit",
        output.display(),
        bytes.len(),
        events.len(),
        s.allocs,
        s.frees,
        s.reallocs,
        s.threads,
        s.peak_live_bytes >> 10,
        s.ids,
        s.live_at_end
    );
    if !status.success() {
        bail!(
            "{} failed ({status}); the trace was kept",
            program.to_string_lossy()
        );
    }
    Ok(())
}

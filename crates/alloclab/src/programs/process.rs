//! One run of one program under one allocator: each step started through
//! the `alloclab __spawn` trampoline, timed from `fork` to `wait4`, its peak
//! and mean RSS, its output, and the shim's own counts of allocation calls.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::allocators::Allocator;
use super::set::{self, Program};
use super::spawn;

/// The result of one run of one program under one allocator.
#[derive(Clone, Debug, Default)]
pub(super) struct RunOutcome {
    pub(super) wall_s: f64,
    pub(super) max_rss_kib: u64,
    pub(super) stdout: Vec<u8>,
    /// Mean sampled RSS, KiB (weighted by the steps' times).
    pub(super) mean_rss_kib: u64,
    /// What went wrong, if anything (the failing step and how).
    pub(super) failure: Option<String>,
    /// Allocations counted by our shim's statistics lines.
    pub(super) shim_allocs: Option<u64>,
    /// All allocation calls (allocations, frees, reallocations) counted.
    pub(super) shim_calls: Option<u64>,
    /// Bytes of large blocks counted.
    pub(super) shim_large_bytes: Option<u64>,
    /// Large blocks counted.
    pub(super) shim_large_allocs: Option<u64>,
}

/// The 1-minute load average (`/proc/loadavg`).
pub(super) fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Runs one step through `alloclab __spawn` (see `spawn.rs`): its wall
/// time from `fork` to `wait4`, its `ru_maxrss`, how it ended.
pub(super) fn run_process(
    step: &set::Step,
    preload: Option<&Path>,
    dir: &Path,
    io: &Path,
    env: &[(&str, &OsStr)],
    timeout: Duration,
) -> Result<spawn::Measured> {
    let result = io.join("result");
    let _ = std::fs::remove_file(&result);
    let mut cmd = Command::new(std::env::current_exe().context("the runner's own path")?);
    cmd.arg("__spawn")
        .arg("--result")
        .arg(&result)
        .arg("--timeout")
        .arg(timeout.as_secs().to_string());
    if let Some(p) = preload {
        cmd.arg("--preload").arg(p);
    }
    if let Some(server) = &step.server {
        for a in &server.argv {
            cmd.arg("--server-arg").arg(a);
        }
        cmd.arg("--server-port").arg(server.port.to_string());
    }
    cmd.arg("--")
        .args(&step.argv)
        .current_dir(dir)
        .env("HOME", dir)
        .env_remove("LD_PRELOAD")
        .env_remove("ALLOCLAB_SHIM_STATS")
        .env_remove("MALLOC_CONF")
        .envs(step.env.iter().map(|(k, v)| (k, v)))
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(io.join("stdout"))?)
        .stderr(std::fs::File::create(io.join("stderr"))?);
    let status = cmd.status().context("cannot start alloclab __spawn")?;
    if !status.success() {
        bail!(
            "alloclab __spawn failed ({status}): {}",
            std::fs::read_to_string(io.join("stderr")).unwrap_or_default()
        );
    }
    spawn::read_result(&result)
}

/// The sum of the given `name=` fields over the statistics lines in `path`
/// (one per process that exited normally), or None if there is none.
pub(super) fn shim_counts(path: &Path, names: &[&str]) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut total = None;
    for line in text.lines().filter(|l| l.starts_with("alloclab-shim:")) {
        let n: u64 = line
            .split_whitespace()
            .filter_map(|f| {
                let (k, v) = f.split_once('=')?;
                names.contains(&k).then(|| v.parse::<u64>().ok())?
            })
            .sum();
        total = Some(total.unwrap_or(0) + n);
    }
    total
}

/// Allocations (`allocs=` and `large_allocs=`) counted in `path`.
pub(super) fn shim_allocs(path: &Path) -> Option<u64> {
    shim_counts(path, &["allocs", "large_allocs"])
}

/// All allocation calls counted in `path`.
pub(super) fn shim_calls(path: &Path) -> Option<u64> {
    shim_counts(
        path,
        &["allocs", "large_allocs", "frees", "large_frees", "reallocs"],
    )
}

/// Runs every step of `p` under `a` in `run_dir`; the outputs and the
/// statistics go to `io_dir` (outside the program's folder: git adds
/// everything it finds there).
pub(super) fn run_program(
    p: &Program,
    a: &Allocator,
    run_dir: &Path,
    io_dir: &Path,
    timeout: Duration,
) -> Result<RunOutcome> {
    set::prepare_run(&p.setup, run_dir)?;
    std::fs::create_dir_all(io_dir)?;
    let stats = io_dir.join("shim-stats");
    let _ = std::fs::remove_file(&stats);
    let mut env: Vec<(&str, &OsStr)> = Vec::new();
    if a.ours {
        env.push(("ALLOCLAB_SHIM_STATS", stats.as_os_str()));
    }
    let mut out = RunOutcome::default();
    // A program that links another malloc gets glibc's back for the glibc row.
    let preload = match (&a.preload, &p.glibc_preload) {
        (None, Some(g)) => Some(g.as_path()),
        (p, _) => p.as_deref(),
    };
    let mut rss_time = 0.0;
    for s in &p.steps {
        let m = run_process(s, preload, run_dir, io_dir, &env, timeout)
            .with_context(|| format!("running {}", s.argv[0].to_string_lossy()))?;
        out.wall_s += m.wall_s;
        out.max_rss_kib = out.max_rss_kib.max(m.max_rss_kib);
        rss_time += m.mean_rss_kib as f64 * m.wall_s;
        if s.compare {
            out.stdout.extend(std::fs::read(io_dir.join("stdout"))?);
        }
        let err = std::fs::read_to_string(io_dir.join("stderr")).unwrap_or_default();
        let step_name = || {
            let prog = Path::new(&s.argv[0])
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let arg = s.argv.iter().skip(1).find(|a| {
                let a = a.to_string_lossy();
                !a.starts_with('-') && !a.contains('=') && !a.contains('/')
            });
            match arg {
                Some(arg) if p.steps.len() > 1 => format!("{prog} {}", arg.to_string_lossy()),
                _ => prog,
            }
        };
        if err.contains("cannot be preloaded") {
            out.failure = Some(format!("{}: the library was not preloaded", step_name()));
        }
        if let Err(e) = m.ended {
            let last = err.lines().last().unwrap_or("").trim().to_string();
            let detail = if last.is_empty() {
                String::new()
            } else {
                format!(": {last}")
            };
            out.failure = Some(format!("{}: {e}{detail}", step_name()));
            break;
        }
    }
    if out.wall_s > 0.0 {
        out.mean_rss_kib = (rss_time / out.wall_s) as u64;
    }
    if a.ours {
        out.shim_allocs = shim_allocs(&stats);
        out.shim_calls = shim_calls(&stats);
        out.shim_large_bytes = shim_counts(&stats, &["large_bytes"]);
        out.shim_large_allocs = shim_counts(&stats, &["large_allocs"]);
        if out.failure.is_none() && out.shim_allocs.unwrap_or(0) == 0 {
            out.failure = Some("the shim served no allocation (not loaded?)".into());
        }
    }
    Ok(out)
}

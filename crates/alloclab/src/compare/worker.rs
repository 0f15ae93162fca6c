//! Third-party plugins run in a child process (`alloclab __worker`), so one
//! that crashes or hangs loses only its own row. The parent drives the
//! worker in lock-step with the interleaved repetitions: one JSON line per
//! command on the worker's stdin, one JSON line per answer on its stdout;
//! every command has a deadline, after which the worker is killed.
//!
//! The worker generates the same scripts from the same parameters (the
//! workloads are deterministic), maps its own arena, and runs the very same
//! code as the parent's in-process measurements (`run.rs`).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use clap::Args;
use serde::{Deserialize, Serialize};

use super::results::Latency;
use super::run::{self, CheckedOut, RepOut};
use super::workload::{self, IdealBounds, Scale, Script};
use crate::arena::Arena;
use crate::subject::{Spec, Subject};

/// Arguments of the hidden `alloclab __worker` command.
#[derive(Args, Debug, Clone)]
pub struct WorkerArgs {
    /// The plugin to run.
    #[arg(long)]
    pub plugin: PathBuf,
    /// Creation flags.
    #[arg(long, default_value_t = 0)]
    pub flags: u32,
}

/// Which workload the next commands are about.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum WorkloadSpec {
    /// A built-in workload.
    BuiltIn {
        /// Its name.
        name: String,
        /// `Scale::divisor`.
        divisor: usize,
        /// `Scale::seed`.
        seed: u64,
    },
    /// A trace file.
    Trace {
        /// Its path.
        path: PathBuf,
    },
}

impl WorkloadSpec {
    /// The script and its warm-up (the same workload from another seed; a
    /// trace warms up with itself).
    pub fn scripts(&self) -> Result<(Script, Script), String> {
        let script = self.script()?;
        let warmup = match self {
            WorkloadSpec::BuiltIn {
                name,
                divisor,
                seed,
            } => WorkloadSpec::BuiltIn {
                name: name.clone(),
                divisor: *divisor,
                seed: seed ^ 0xA5A5_A5A5_A5A5_A5A5,
            }
            .script()?,
            WorkloadSpec::Trace { .. } => script.clone(),
        };
        Ok((script, warmup))
    }

    /// Generates the script.
    pub fn script(&self) -> Result<Script, String> {
        match self {
            WorkloadSpec::BuiltIn {
                name,
                divisor,
                seed,
            } => workload::generate(
                name,
                Scale {
                    divisor: *divisor,
                    seed: *seed,
                },
            )
            .ok_or_else(|| format!("no workload {name}")),
            WorkloadSpec::Trace { path } => super::trace::load(path),
        }
    }
}

/// A command to the worker.
#[derive(Debug, Serialize, Deserialize)]
enum Request {
    Workload(WorkloadSpec),
    Checked(Option<IdealBounds>),
    Rep(u64, bool),
    Latency(f64, f64, bool),
}

/// The worker's first line: what the plugin is.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Hello {
    /// The plugin's name.
    pub name: String,
    /// Its `allocator_info` description.
    pub description: Option<String>,
    /// Exports `allocator_realloc`.
    pub has_realloc: bool,
    /// Exports `allocator_stats`.
    pub has_stats: bool,
    /// Exports `allocator_check`.
    pub has_check: bool,
    /// `allocator_info` says it supports `ALLOCATOR_FLAG_LOCKED`.
    pub lockable: bool,
}

type Reply<T> = Result<T, String>;

/// The worker process (child side).
pub fn child_main(args: &WorkerArgs) -> anyhow::Result<()> {
    let subject = Subject::from_spec(&Spec::Plugin(args.plugin.clone()), args.flags)
        .map_err(anyhow::Error::msg)?;
    let mut out = std::io::stdout().lock();
    let hello = Hello {
        name: subject.name.clone(),
        description: subject.description(),
        has_realloc: subject.api.realloc.is_some(),
        has_stats: subject.api.stats.is_some(),
        has_check: subject.api.check.is_some(),
        lockable: subject.lockable(),
    };
    writeln!(out, "{}", serde_json::to_string(&hello)?)?;
    out.flush()?;
    let mut script: Option<(Script, Script)> = None;
    let mut arena: Option<Arena> = None;
    for line in std::io::stdin().lock().lines() {
        let request: Request = serde_json::from_str(&line?)?;
        let reply = match request {
            Request::Workload(spec) => {
                let s = spec.scripts();
                let answer: Reply<()> = s.as_ref().map(|_| ()).map_err(Clone::clone);
                if let Ok((s, w)) = s {
                    let need = s.arena.max(w.arena);
                    if arena.as_ref().is_none_or(|a| a.len() < need) {
                        // Aligned as the runner's own arena is.
                        arena = Some(Arena::map_aligned(need, need.next_power_of_two())?);
                    }
                    script = Some((s, w));
                }
                serde_json::to_string(&answer)?
            }
            Request::Checked(bounds) => {
                let (s, a) = (script.as_ref(), arena.as_ref());
                let answer: Reply<CheckedOut> = match (s, a) {
                    (Some((s, _)), Some(a)) => Ok(run::checked_pass(&subject, s, a, bounds)),
                    _ => Err("no workload".into()),
                };
                serde_json::to_string(&answer)?
            }
            Request::Rep(round, warm) => {
                let answer: Reply<RepOut> = match (script.as_ref(), arena.as_ref()) {
                    (Some((s, w)), Some(a)) => {
                        run::one_rep(&subject, s, warm.then_some(w), a, round)
                    }
                    _ => Err("no workload".into()),
                };
                serde_json::to_string(&answer)?
            }
            Request::Latency(hz, overhead, warm) => {
                let answer: Reply<Vec<Latency>> = match (script.as_ref(), arena.as_ref()) {
                    (Some((s, w)), Some(a)) => Ok(run::latency_pass(
                        &subject,
                        s,
                        warm.then_some(w),
                        a,
                        hz,
                        overhead,
                    )),
                    _ => Err("no workload".into()),
                };
                serde_json::to_string(&answer)?
            }
        };
        writeln!(out, "{reply}")?;
        out.flush()?;
    }
    Ok(())
}

/// A running worker (parent side). Once it failed, every call answers with
/// the failure.
pub struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Why it stopped, once it did.
    pub dead: Option<String>,
}

/// How long one command may take.
/// How long one command to a worker may take (`compare --deadline`).
pub static DEADLINE_SECS: AtomicU64 = AtomicU64::new(120);

impl Worker {
    /// Starts a worker for the plugin at `path`; returns it and its hello.
    pub fn start(path: &std::path::Path, flags: u32) -> Result<(Worker, Hello), String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .arg("__worker")
            .arg("--plugin")
            .arg(path)
            .arg("--flags")
            .arg(flags.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start a worker: {e}"))?;
        let stdout = child.stdout.take().ok_or("no worker stdout")?;
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        let mut worker = Worker {
            child,
            stdin,
            lines: rx,
            dead: None,
        };
        let hello = worker.read::<Hello>()?;
        Ok((worker, hello))
    }

    fn fail(&mut self, why: String) -> String {
        let _ = self.child.kill();
        let status = self.child.wait().ok();
        let why = match status.and_then(|s| s.signal()) {
            Some(libc::SIGSEGV) => "crashed (SIGSEGV)".to_string(),
            Some(libc::SIGABRT) => "aborted (SIGABRT)".to_string(),
            Some(libc::SIGKILL) if why.contains("no answer") => why,
            Some(sig) => format!("killed by signal {sig}"),
            None => why,
        };
        self.dead = Some(why.clone());
        why
    }

    fn read<T: for<'de> Deserialize<'de>>(&mut self) -> Result<T, String> {
        if let Some(d) = &self.dead {
            return Err(d.clone());
        }
        let deadline = Duration::from_secs(DEADLINE_SECS.load(Ordering::Relaxed));
        match self.lines.recv_timeout(deadline) {
            Ok(line) => serde_json::from_str(&line)
                .map_err(|e| self.fail(format!("unreadable answer: {e}"))),
            Err(RecvTimeoutError::Timeout) => {
                Err(self.fail(format!("hung (no answer in {} s)", deadline.as_secs())))
            }
            Err(RecvTimeoutError::Disconnected) => Err(self.fail("exited".into())),
        }
    }

    fn call<T: for<'de> Deserialize<'de>>(&mut self, request: &Request) -> Result<T, String> {
        if let Some(d) = &self.dead {
            return Err(d.clone());
        }
        let line = serde_json::to_string(request).map_err(|e| e.to_string())?;
        let sent = match self.stdin.as_mut() {
            Some(stdin) => writeln!(stdin, "{line}").and_then(|()| stdin.flush()),
            None => Err(std::io::Error::other("closed")),
        };
        if sent.is_err() {
            return Err(self.fail("exited".into()));
        }
        self.read::<Reply<T>>()?
    }

    /// Selects the workload.
    pub fn workload(&mut self, spec: &WorkloadSpec) -> Result<(), String> {
        self.call(&Request::Workload(spec.clone()))
    }

    /// The checked pass.
    pub fn checked(&mut self, bounds: Option<IdealBounds>) -> Result<CheckedOut, String> {
        self.call(&Request::Checked(bounds))
    }

    /// One timed repetition (after a warm-up run if `warm`).
    pub fn rep(&mut self, round: u64, warm: bool) -> Result<RepOut, String> {
        self.call(&Request::Rep(round, warm))
    }

    /// The latency pass (after a warm-up run if `warm`).
    pub fn latency(&mut self, hz: f64, overhead: f64, warm: bool) -> Result<Vec<Latency>, String> {
        self.call(&Request::Latency(hz, overhead, warm))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! Plugins the runner does not trust run in a child process (`alloclab
//! __worker`), so one that crashes, hangs or ends the process loses only
//! its own row (`compare`'s third-party plugins) or ends with one line
//! saying what it did (the lab program, `alloclab PLUGIN`). The parent
//! drives the worker in lock-step with the interleaved repetitions: one
//! JSON line per command on the worker's stdin, one JSON line per answer on
//! a copy of its stdout (its stdout itself goes to stderr, so a plugin that
//! prints cannot garble the answers); every command has a deadline, after
//! which the worker is killed. A shared page (`postmortem.rs`) says what
//! the worker was doing when it died.
//!
//! The worker generates the same scripts from the same parameters (the
//! workloads are deterministic), maps its own arena, and runs the very same
//! code as the parent's in-process measurements (`run.rs`, `lab.rs`).

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::FromRawFd;
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
use crate::allocators::subject::{Subject, SubjectError};
use crate::arena::Arena;
use crate::engine::lab::{BriefConfig, BriefResult};
use crate::postmortem::{self, Stage, Watch};

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
    Brief(BriefConfig),
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

/// Why the worker cannot run the plugin (its first line instead of a
/// [`Hello`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Refusal {
    /// Nothing loadable at the path: the loader's message.
    NotLoadable(String),
    /// It loaded, but what it says about itself is wrong.
    Invalid(String),
}

/// Why [`Worker::start`] gave no worker.
#[derive(Clone, Debug)]
pub enum StartError {
    /// Nothing loadable at the path (the loader's message): the brief falls
    /// back to the built-in allocator.
    NotLoadable(String),
    /// The plugin loaded and failed: crashed, hung or ended the process
    /// while loading, or says wrong things about itself.
    Failed(String),
}

type Reply<T> = Result<T, String>;

/// The answers' channel: a copy of stdout made before stdout itself is
/// pointed at stderr (for what the plugin prints).
fn answers_channel() -> anyhow::Result<File> {
    std::io::stdout().flush()?;
    // SAFETY: duplicating and redirecting our own standard descriptors.
    let fd = unsafe {
        let fd = libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3);
        if fd < 0 || libc::dup2(2, 1) < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        fd
    };
    // SAFETY: `fd` is a fresh descriptor of ours.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// The worker process (child side).
pub fn child_main(args: &WorkerArgs) -> anyhow::Result<()> {
    postmortem::install_in_child();
    let mut out = answers_channel()?;
    let mut say = |line: String| -> anyhow::Result<()> {
        writeln!(out, "{line}")?;
        out.flush()?;
        Ok(())
    };
    let subject = match Subject::load(&args.plugin) {
        Ok(mut s) => {
            s.flags = args.flags;
            s
        }
        Err(e) => {
            let refusal = match e {
                SubjectError::Load(e) => Refusal::NotLoadable(e.to_string()),
                SubjectError::Invalid { why, .. } => Refusal::Invalid(why),
            };
            return say(serde_json::to_string(&Err::<Hello, _>(refusal))?);
        }
    };
    let hello = Hello {
        name: subject.name.clone(),
        description: subject.description(),
        has_realloc: subject.api.realloc.is_some(),
        has_stats: subject.api.stats.is_some(),
        has_check: subject.api.check.is_some(),
        lockable: subject.lockable(),
    };
    say(serde_json::to_string(&Ok::<_, Refusal>(hello))?)?;
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
                postmortem::stage(Stage::CheckedPass);
                let (s, a) = (script.as_ref(), arena.as_ref());
                let answer: Reply<CheckedOut> = match (s, a) {
                    (Some((s, _)), Some(a)) => Ok(run::checked_pass(&subject, s, a, bounds)),
                    _ => Err("no workload".into()),
                };
                serde_json::to_string(&answer)?
            }
            Request::Rep(round, warm) => {
                postmortem::stage(Stage::Repetition);
                let answer: Reply<RepOut> = match (script.as_ref(), arena.as_ref()) {
                    (Some((s, w)), Some(a)) => {
                        run::one_rep(&subject, s, warm.then_some(w), a, round)
                    }
                    _ => Err("no workload".into()),
                };
                serde_json::to_string(&answer)?
            }
            Request::Latency(hz, overhead, warm) => {
                postmortem::stage(Stage::LatencyPass);
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
            Request::Brief(cfg) => {
                let answer: Reply<BriefResult> =
                    crate::engine::lab::run(&subject, &cfg).map_err(|e| format!("{e:#}"));
                serde_json::to_string(&answer)?
            }
        };
        postmortem::stage(Stage::Idle);
        say(reply)?;
    }
    Ok(())
}

/// A running worker (parent side). Once it failed, every call answers with
/// the failure.
pub struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    watch: Watch,
    /// Why it stopped, once it did.
    pub dead: Option<String>,
}

/// How long one command may take.
/// How long one command to a worker may take (`compare --deadline`).
pub static DEADLINE_SECS: AtomicU64 = AtomicU64::new(120);

impl Worker {
    /// Starts a worker for the plugin at `path`; returns it and its hello.
    pub fn start(path: &std::path::Path, flags: u32) -> Result<(Worker, Hello), StartError> {
        let failed = |e: String| StartError::Failed(e);
        let exe = std::env::current_exe().map_err(|e| failed(e.to_string()))?;
        let watch = Watch::new().map_err(|e| failed(format!("cannot watch a worker: {e}")))?;
        let mut cmd = Command::new(exe);
        cmd.arg("__worker")
            .arg("--plugin")
            .arg(path)
            .arg("--flags")
            .arg(flags.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        watch.attach(&mut cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| failed(format!("cannot start a worker: {e}")))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| failed("no worker stdout".into()))?;
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
            watch,
            dead: None,
        };
        match worker.read::<Result<Hello, Refusal>>().map_err(failed)? {
            Ok(hello) => Ok((worker, hello)),
            Err(Refusal::NotLoadable(e)) => Err(StartError::NotLoadable(e)),
            Err(Refusal::Invalid(e)) => Err(StartError::Failed(e)),
        }
    }

    /// Ends the worker after `why` (an unreadable answer, no answer in
    /// time, a closed channel) and says what happened, in one line.
    fn fail(&mut self, why: Failure) -> String {
        let stage = self.watch.stage();
        if matches!(why, Failure::Hung(_)) {
            let _ = self.child.kill();
        }
        let status = match why {
            // A worker that closed its answers' channel is ending (or
            // closed it itself): wait a little, then make sure.
            Failure::Exited => wait_a_little(&mut self.child),
            _ => None,
        };
        let status = status.or_else(|| {
            let _ = self.child.kill();
            self.child.wait().ok()
        });
        let why = match (why, status) {
            (Failure::Hung(secs), _) => {
                format!("hung {}: no answer in {secs} s (killed)", stage.words())
            }
            (Failure::Unreadable(e), _) => {
                format!("gave an unreadable answer ({e}) {}", stage.words())
            }
            (Failure::Exited, Some(status)) => self.watch.death(status),
            (Failure::Exited, None) => format!("stopped answering {}", stage.words()),
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
                .map_err(|e| self.fail(Failure::Unreadable(e.to_string()))),
            Err(RecvTimeoutError::Timeout) => Err(self.fail(Failure::Hung(deadline.as_secs()))),
            Err(RecvTimeoutError::Disconnected) => Err(self.fail(Failure::Exited)),
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
            return Err(self.fail(Failure::Exited));
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

    /// The lab program's whole run (`lab.rs`).
    pub fn brief(&mut self, cfg: &BriefConfig) -> Result<BriefResult, String> {
        self.call(&Request::Brief(cfg.clone()))
    }
}

/// How the parent lost a worker.
enum Failure {
    /// No answer within the deadline (seconds).
    Hung(u64),
    /// An answer that is not the protocol's.
    Unreadable(String),
    /// The answers' channel closed.
    Exited,
}

/// The child's status if it ends within a second.
fn wait_a_little(child: &mut Child) -> Option<std::process::ExitStatus> {
    for _ in 0..200 {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

impl Drop for Worker {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

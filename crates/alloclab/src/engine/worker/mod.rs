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
//! code as the parent's in-process measurements (`passes.rs`, `lab.rs`).
//!
//! This file is the parent's side; `protocol.rs` holds what the two say to
//! each other, `child.rs` the worker's main loop. The run's [`Settings`]
//! travel to the worker on its command line: it pins itself to the run's
//! CPU and starts its repetitions cold when the run does, and says so in its
//! [`Hello`].

mod child;
mod protocol;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use serde::Deserialize;

pub use child::{WorkerArgs, child_main};
pub use protocol::{Hello, StartError};
use protocol::{Refusal, Reply, Request};

use super::lab::{BriefConfig, BriefResult};
use super::passes::{CheckedOut, RepOut};
use super::results::Latency;
use super::scripts::WorkloadSpec;
use super::settings::Settings;
use super::workload::IdealBounds;
use crate::postmortem::Watch;

/// A running worker (parent side). Once it failed, every call answers with
/// the failure.
pub struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    watch: Watch,
    /// How long one request may take.
    deadline: Duration,
    /// Why it stopped, once it did.
    pub dead: Option<String>,
}

impl Worker {
    /// Starts a worker for the plugin at `path`, measuring with `settings`;
    /// returns it and its hello.
    pub fn start(
        path: &std::path::Path,
        flags: u32,
        settings: &Settings,
    ) -> Result<(Worker, Hello), StartError> {
        let failed = |e: String| StartError::Failed(e);
        let exe = std::env::current_exe().map_err(|e| failed(e.to_string()))?;
        let watch = Watch::new().map_err(|e| failed(format!("cannot watch a worker: {e}")))?;
        let mut cmd = Command::new(exe);
        cmd.arg("__worker")
            .arg("--plugin")
            .arg(path)
            .arg("--flags")
            .arg(flags.to_string())
            .arg("--settings")
            .arg(serde_json::to_string(settings).map_err(|e| failed(e.to_string()))?)
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
            deadline: Duration::from_secs(settings.deadline_secs.max(1)),
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
        let deadline = self.deadline;
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

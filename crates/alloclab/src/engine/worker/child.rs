//! The worker process's side: loads the plugin, pins itself and takes the
//! run's settings from its command line, says hello, then answers one
//! request per line with the very same passes the runner runs in-process.

use std::fs::File;
use std::io::{BufRead, Write};
use std::os::fd::FromRawFd;
use std::path::PathBuf;

use clap::Args;

use super::protocol::{Hello, Refusal, Reply, Request};
use crate::allocators::subject::{Subject, SubjectError};
use crate::arena::Arena;
use crate::engine::passes::{self, CheckedOut, RepOut};
use crate::engine::results::Latency;
use crate::engine::settings::Settings;
use crate::engine::workload::Script;
use crate::postmortem::{self, Stage};

/// Arguments of the hidden `alloclab __worker` command.
#[derive(Args, Debug, Clone)]
pub struct WorkerArgs {
    /// The plugin to run.
    #[arg(long)]
    pub plugin: PathBuf,
    /// Creation flags.
    #[arg(long, default_value_t = 0)]
    pub flags: u32,
    /// The run's settings (JSON of `Settings`).
    #[arg(long)]
    pub settings: String,
}

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

/// What the worker holds between requests.
struct State {
    subject: Subject,
    settings: Settings,
    /// The workload's script and warm-up.
    script: Option<(Script, Script)>,
    arena: Option<Arena>,
}

/// The worker process (child side).
pub fn child_main(args: &WorkerArgs) -> anyhow::Result<()> {
    postmortem::install_in_child();
    let mut settings: Settings = serde_json::from_str(&args.settings)?;
    settings.cpu = settings.apply_pinning();
    let mut out = answers_channel()?;
    let mut say = |line: String| -> anyhow::Result<()> {
        writeln!(out, "{line}")?;
        out.flush()?;
        Ok(())
    };
    let mut subject = match Subject::load(&args.plugin) {
        Ok(s) => s,
        Err(e) => {
            let refusal = match e {
                SubjectError::Load(e) => Refusal::NotLoadable(e.to_string()),
                SubjectError::Invalid { why, .. } => Refusal::Invalid(why),
            };
            return say(serde_json::to_string(&Err::<Hello, _>(refusal))?);
        }
    };
    subject.flags = args.flags;
    let hello = Hello {
        name: subject.name.clone(),
        description: subject.description(),
        caps: subject.capabilities(),
        applied: settings,
    };
    say(serde_json::to_string(&Ok::<_, Refusal>(hello))?)?;
    let mut state = State {
        subject,
        settings,
        script: None,
        arena: None,
    };
    for line in std::io::stdin().lock().lines() {
        let request: Request = serde_json::from_str(&line?)?;
        let reply = state.answer(request)?;
        postmortem::stage(Stage::Idle);
        say(reply)?;
    }
    Ok(())
}

impl State {
    /// The answer to `request`, as a JSON line.
    fn answer(&mut self, request: Request) -> anyhow::Result<String> {
        let no_workload = || "no workload".to_string();
        let (subject, settings) = (&self.subject, &self.settings);
        let ready = self.script.as_ref().zip(self.arena.as_ref());
        Ok(match request {
            Request::Workload(spec) => {
                let scripts = spec.scripts();
                let answer: Reply<()> = scripts.as_ref().map(|_| ()).map_err(Clone::clone);
                if let Ok(scripts) = scripts {
                    self.workload(scripts)?;
                }
                serde_json::to_string(&answer)?
            }
            Request::Checked(bounds) => {
                postmortem::stage(Stage::CheckedPass);
                let answer: Reply<CheckedOut> = ready
                    .map(|((s, _), a)| passes::checked_pass(subject, s, settings, a, bounds))
                    .ok_or_else(no_workload);
                serde_json::to_string(&answer)?
            }
            Request::Rep(round, warm) => {
                postmortem::stage(Stage::Repetition);
                let answer: Reply<RepOut> =
                    ready.ok_or_else(no_workload).and_then(|((s, w), a)| {
                        passes::one_rep(subject, s, warm.then_some(w), settings, a, round)
                    });
                serde_json::to_string(&answer)?
            }
            Request::Latency(hz, overhead, warm) => {
                postmortem::stage(Stage::LatencyPass);
                let answer: Reply<Vec<Latency>> = ready
                    .map(|((s, w), a)| {
                        let w = warm.then_some(w);
                        passes::latency_pass(subject, s, w, settings, a, hz, overhead)
                    })
                    .ok_or_else(no_workload);
                serde_json::to_string(&answer)?
            }
            Request::Brief(cfg) => {
                let answer = crate::engine::lab::run(subject, &cfg).map_err(|e| format!("{e:#}"));
                serde_json::to_string(&answer)?
            }
        })
    }

    /// Keeps the workload's scripts, with an arena large enough for both.
    fn workload(&mut self, (s, w): (Script, Script)) -> anyhow::Result<()> {
        let need = s.arena.max(w.arena);
        if self.arena.as_ref().is_none_or(|a| a.len() < need) {
            // Aligned as the runner's own arena is.
            self.arena = Some(Arena::map_aligned(need, need.next_power_of_two())?);
        }
        self.script = Some((s, w));
        Ok(())
    }
}

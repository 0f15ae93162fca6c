//! An allocator of a comparison and where it runs: called in this process
//! (this project's plugins, the fallback, the peers), or in a worker child
//! process (a third-party plugin), or nowhere (a plugin that failed as it
//! was loaded: its rows say why). The three answer the same passes.

use super::passes::{CheckedOut, RepOut, checked_pass, latency_pass, one_rep};
use super::results::Latency;
use super::settings::Settings;
use super::worker::{StartError, Worker};
use super::workload::{self, Script};
use crate::allocators::facts::TypedFacts;
use crate::allocators::subject::{Capabilities, Spec, Subject, file_stem_name};
use crate::arena::Arena;

/// Where a subject runs: in this process, or in a worker child process.
pub enum RunsIn {
    /// A trusted allocator, called in this process.
    Local(Box<Subject>),
    /// A third-party plugin, called in a child process.
    Worker(Worker),
    /// A third-party plugin that failed as it was loaded: why (its rows
    /// say so).
    Failed(String),
}

/// An allocator of the comparison and where it runs.
pub struct Entry {
    /// Its name in the tables.
    pub name: String,
    /// How to make it again (for the probes' child processes).
    pub spec: Spec,
    /// Creation flags.
    pub flags: u32,
    /// Its blocks lie in the arena.
    pub blocks_in_arena: bool,
    /// Documented facts (built-in allocators).
    pub facts: Option<TypedFacts>,
    /// The plugin's `allocator_info` description.
    pub description: Option<String>,
    /// What it exports and supports.
    pub caps: Capabilities,
    /// The settings it is measured with: the run's for an allocator called
    /// in this process, the worker's own account for a worker.
    pub settings: Settings,
    /// Where it runs.
    pub exec: RunsIn,
}

impl Entry {
    /// An allocator called in this process, measured with `settings`.
    pub fn local(subject: Subject, settings: Settings) -> Entry {
        Entry {
            name: subject.name.clone(),
            spec: subject.spec.clone(),
            flags: subject.flags,
            blocks_in_arena: subject.blocks_in_arena,
            facts: subject.facts,
            description: subject.description(),
            caps: subject.capabilities(),
            settings,
            exec: RunsIn::Local(Box::new(subject)),
        }
    }

    /// A third-party plugin, called in a child process that measures with
    /// `settings`; one that fails as it is loaded (crashes, hangs, says
    /// wrong things about itself) is an entry whose rows say why. An error
    /// when nothing loadable is there.
    pub fn isolated(path: &std::path::Path, settings: Settings) -> Result<Entry, String> {
        let mut entry = Entry {
            name: file_stem_name(path),
            spec: Spec::Plugin(path.to_path_buf()),
            flags: 0,
            blocks_in_arena: true,
            facts: None,
            description: None,
            caps: Capabilities::default(),
            settings,
            exec: RunsIn::Failed(String::new()),
        };
        match Worker::start(path, 0, &settings) {
            Ok((worker, hello)) => {
                entry.name = hello.name;
                entry.description = hello.description;
                entry.caps = hello.caps;
                entry.settings = hello.applied;
                entry.exec = RunsIn::Worker(worker);
            }
            Err(StartError::NotLoadable(why)) => return Err(why),
            Err(StartError::Failed(why)) => entry.exec = RunsIn::Failed(why),
        }
        Ok(entry)
    }

    /// The checked pass.
    pub fn checked(
        &mut self,
        script: &Script,
        arena: &Arena,
        bounds: Option<workload::IdealBounds>,
    ) -> CheckedOut {
        let failed = |why: String| CheckedOut {
            failure: Some(why),
            ..CheckedOut::default()
        };
        match &mut self.exec {
            RunsIn::Local(subject) => checked_pass(subject, script, &self.settings, arena, bounds),
            RunsIn::Worker(w) => w.checked(bounds).unwrap_or_else(failed),
            RunsIn::Failed(why) => failed(why.clone()),
        }
    }

    /// One timed repetition (after a warm-up run of `warmup`, if any).
    pub fn rep(
        &mut self,
        script: &Script,
        warmup: Option<&Script>,
        arena: &Arena,
        round: u64,
    ) -> Result<RepOut, String> {
        match &mut self.exec {
            RunsIn::Local(subject) => {
                one_rep(subject, script, warmup, &self.settings, arena, round)
            }
            RunsIn::Worker(w) => w.rep(round, warmup.is_some()),
            RunsIn::Failed(why) => Err(why.clone()),
        }
    }

    /// The latency pass (after a warm-up run of `warmup`, if any).
    pub fn latency(
        &mut self,
        script: &Script,
        warmup: Option<&Script>,
        arena: &Arena,
        (hz, overhead): (f64, f64),
    ) -> Result<Vec<Latency>, String> {
        match &mut self.exec {
            RunsIn::Local(s) => Ok(latency_pass(
                s,
                script,
                warmup,
                &self.settings,
                arena,
                hz,
                overhead,
            )),
            RunsIn::Worker(w) => w.latency(hz, overhead, warmup.is_some()),
            RunsIn::Failed(why) => Err(why.clone()),
        }
    }
}

//! What the runner and a worker say to each other: one JSON line per
//! request on the worker's stdin, one JSON line per answer on its answers'
//! channel; the worker's first line is a [`Hello`] or a [`Refusal`].

use serde::{Deserialize, Serialize};

use crate::allocators::subject::Capabilities;
use crate::engine::lab::BriefConfig;
use crate::engine::scripts::WorkloadSpec;
use crate::engine::settings::Settings;
use crate::engine::workload::IdealBounds;

/// A command to the worker.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// Make this workload's script and warm-up, and an arena for them.
    Workload(WorkloadSpec),
    /// The checked pass.
    Checked(Option<IdealBounds>),
    /// One timed repetition of this round (after a warm-up run if true).
    Rep(u64, bool),
    /// The latency pass: the cycle counter's Hz, its own cost in cycles,
    /// warm-up or not.
    Latency(f64, f64, bool),
    /// The lab program's whole run.
    Brief(BriefConfig),
}

/// The worker's first line: what the plugin is.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Hello {
    /// The plugin's name.
    pub name: String,
    /// Its `allocator_info` description.
    pub description: Option<String>,
    /// What it exports and supports.
    pub caps: Capabilities,
    /// The settings the worker measures with, as it applied them: `cpu` is
    /// the CPU it is pinned to now (read back from the kernel), not the one
    /// it was asked for.
    pub applied: Settings,
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

/// Why `Worker::start` gave no worker.
#[derive(Clone, Debug)]
pub enum StartError {
    /// Nothing loadable at the path (the loader's message): the brief falls
    /// back to the built-in allocator.
    NotLoadable(String),
    /// The plugin loaded and failed: crashed, hung or ended the process
    /// while loading, or says wrong things about itself.
    Failed(String),
}

/// An answer: the figures, or why there are none.
pub type Reply<T> = Result<T, String>;

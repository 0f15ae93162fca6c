//! Which workload: a built-in one by name, scale and seed, or a trace file;
//! and how to make its script and its warm-up. A value small enough to send
//! to a worker process, which makes the very same scripts from it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::workload::{self, Scale, Script};

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

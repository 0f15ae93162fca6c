//! How a run measures, as one value: whether repetitions start cold, how
//! long a worker may take to answer, and the CPU the measuring thread is
//! pinned to. The runner hands it to every pass it runs itself, and sends it
//! to every worker process it starts (`worker/`), so a third-party plugin is
//! measured exactly as the runner's own allocators are.

use serde::{Deserialize, Serialize};

/// The settings of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Every repetition starts with the arena flushed from the caches
    /// (`--cold`) instead of warmed up.
    pub cold: bool,
    /// Seconds a worker may take to answer one request (`--deadline`).
    pub deadline_secs: u64,
    /// The CPU the measuring thread is pinned to (None: not pinned).
    pub cpu: Option<usize>,
    /// Seconds of CPU time an allocator's checked pass of one workload may take
    /// (`--pass-limit`): past it the pass stops, and the allocator is
    /// reported as too slow for that workload and not timed on it (an
    /// O(n) first-fit list through a million churn operations would
    /// otherwise hold the whole run for many minutes).
    pub pass_limit_secs: u64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            cold: false,
            deadline_secs: 120,
            cpu: None,
            pass_limit_secs: 10,
        }
    }
}

impl Settings {
    /// Pins the calling thread to [`Settings::cpu`], if any; returns the CPU
    /// it now runs on alone, if it is pinned.
    pub fn apply_pinning(&self) -> Option<usize> {
        let cpu = self.cpu?;
        let mut set = rustix::thread::CpuSet::new();
        set.set(cpu);
        rustix::thread::sched_setaffinity(None, &set).ok()?;
        pinned_cpu()
    }
}

/// The one CPU the calling thread may run on, if it may run on one only.
pub fn pinned_cpu() -> Option<usize> {
    let set = rustix::thread::sched_getaffinity(None).ok()?;
    let cpus: Vec<usize> = (0..rustix::thread::CpuSet::MAX_CPU)
        .filter(|&c| set.is_set(c))
        .collect();
    match cpus[..] {
        [one] => Some(one),
        _ => None,
    }
}

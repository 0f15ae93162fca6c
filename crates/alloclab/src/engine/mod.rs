//! The measurement engine: workloads (`workload.rs`, `trace.rs`), the script
//! executor (`exec.rs`, its checked loop in `checked.rs`), clocks and counters (`measure.rs`), the passes one
//! allocator runs (`passes.rs`) and their schedule across allocators
//! (`run.rs`), where each allocator runs (`entry.rs`), the run's settings
//! as one value (`settings.rs`), the worker process for untrusted plugins
//! (`worker/`), the probes (`observe.rs`), the lab program's workload
//! (`lab.rs`), and what it all produces (`results.rs`).
//!
//! Layer: above the allocators under test, below the commands; it imports
//! no command (`compare`, `programs`, `record`).

pub mod checked;
pub mod entry;
pub mod exec;
pub mod lab;
pub mod measure;
pub mod observe;
pub mod passes;
pub mod results;
pub mod run;
pub mod scripts;
pub mod settings;
pub mod trace;
pub mod worker;
pub mod workload;

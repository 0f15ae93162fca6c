//! The measurement engine: workloads (`workload.rs`, `trace.rs`), the script
//! executor (`exec.rs`), clocks and counters (`measure.rs`), the passes and
//! their schedule (`run.rs`), the worker process for untrusted plugins
//! (`worker.rs`), the probes (`observe.rs`), the lab program's workload
//! (`lab.rs`), and what it all produces (`results.rs`).
//!
//! Layer: above the allocators under test, below the commands; it imports
//! no command (`compare`, `programs`, `record`).

pub mod exec;
pub mod lab;
pub mod measure;
pub mod observe;
pub mod results;
pub mod run;
pub mod trace;
pub mod worker;
pub mod workload;

//! The report toolkit, shared by `compare` and `programs`: how numbers are
//! written (`format.rs`), Markdown tables (`markdown.rs`), generated blocks
//! in a README (`readme.rs`), the chart engine (`chart.rs`), and the machine
//! a measurement ran on (`machine.rs`).
//!
//! Layer: above the base only; it knows nothing of allocators, the engine
//! or a command.

pub mod chart;
pub mod format;
pub mod machine;
pub mod markdown;
pub mod readme;

//! Arena maps: where the memory of an arena goes. For an allocator whose
//! blocks lie in the arena the runner gives it, the runner knows every block
//! it holds, and the allocator may say how much it holds for each
//! (`allocator_usable_size`) and for itself (`allocator_stats`): from these,
//! every byte of the arena is classed ([`classify`]) at a chosen moment of a
//! workload ([`replay`], never timed), drawn as a square along a Hilbert
//! curve ([`curve`], [`draw`]), beside the fragmentation over time (live
//! bytes asked, bytes held, the largest free block). `alloclab map`
//! (`map.rs`, through [`run`]) draws them for any allocator; `compare --report`
//! for the arena allocators it measured ([`report`]).
//!
//! Layer: beside the measurement engine (it replays the engine's workloads
//! on the allocators under test and draws with the report toolkit); below
//! the commands.

pub mod classify;
pub mod curve;
pub mod draw;
pub mod replay;
pub mod report;
pub mod run;

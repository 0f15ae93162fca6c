//! Arena maps: where the memory of an arena goes. For an allocator whose
//! blocks lie in the arena the runner gives it, the runner knows every block
//! it holds, and the allocator may say how much it holds for each
//! (`allocator_usable_size`) and for itself (`allocator_stats`): from these,
//! every byte of the arena is classed ([`classify`]) at a chosen moment of a
//! workload ([`replay`], never timed), drawn as a square along a Hilbert
//! curve ([`curve`], [`draw`]), beside the fragmentation over time (live
//! bytes asked, bytes held, the largest free block). `alloclab map`
//! ([`command`]) draws them for any allocator; `compare --report` for the
//! arena allocators it measured.

pub mod classify;
pub mod command;
pub mod curve;
pub mod draw;
pub mod replay;
pub mod report;

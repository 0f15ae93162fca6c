//! The allocators under test: plugins loaded by path (`subject.rs`, their
//! self-description checked in `plugin_data.rs`), the built-in `mmap`
//! fallback (`fallback.rs`), and the peers (`peers/`), all seen through one
//! function table as a [`subject::Subject`].
//!
//! Layer: above the base (`arena`, `postmortem`, `output`), below the
//! measurement engine; it imports neither the engine nor a command.

pub mod facts;
pub mod fallback;
pub mod peers;
pub mod plugin_data;
pub mod subject;

//! The typed half of the ease-of-use table: what a user must know and do to
//! use an allocator, as its documentation states it. The other half (the
//! alignment actually returned, behaviour on a bad pointer and on
//! exhaustion, the smallest usable arena, metadata per block) is observed by
//! the runner, never typed.

use serde::Serialize;

/// How an allocator offers `realloc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ReallocKind {
    /// The allocator has its own (it may resize in place).
    Native,
    /// The runner's adapter does alloc + copy + free, as a C caller would have to.
    Emulated,
}

/// Facts from an allocator's documentation.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct TypedFacts {
    /// The calls a user makes, in order of use.
    pub calls: &'static str,
    /// `free` needs the block's size or layout: a `malloc`-style caller must keep it.
    pub free_needs_size: bool,
    /// How `realloc` is provided.
    pub realloc: ReallocKind,
    /// What one instance promises across threads.
    pub threads: &'static str,
    /// The statistics it exposes.
    pub introspection: &'static str,
    /// Bytes the runner's adapter puts in front of each block (a size header,
    /// for allocators whose free needs the size). Counted in usage figures:
    /// a C caller would pay them too.
    pub adapter_header: usize,
    /// It manages the arena it is given (false: it takes memory from the OS
    /// itself, so "usage factor" does not apply).
    pub uses_arena: bool,
}

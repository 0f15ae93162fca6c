//! The peers: the allocators people would otherwise pick, each behind the
//! same plugin ABI (`include/allocator.h`) as the project's own allocators, so
//! the runner calls every allocator through the same kind of function pointer.
//!
//! Three are system allocators that take memory from the OS themselves
//! ([`glibc`], [`mimalloc`], [`jemalloc`]); six manage the arena given to
//! `allocator_create` ([`talc`], [`rlsf`], [`linked_list`], [`buddy_system`],
//! [`buddy_alloc`], [`bump`]). Every adapter keeps its state at the
//! (16-byte aligned) start of the arena, as the ABI asks, so the handle is a
//! pointer into the arena and is checked against a magic number on every call.
//!
//! What the adapters add is what a C caller with a `malloc`/`free(ptr)` API
//! would have to add: a 16-byte size header in front of each block where the
//! crate's `free` needs the size ([`HEADER`]), `realloc` emulated by
//! alloc + copy + free where the crate has none, `malloc`'s rules for size 0,
//! `realloc(NULL, n)` and `realloc(p, 0)`. They do **not** add what the
//! crates lack on purpose: a pointer the peer did not hand out, or one freed
//! twice, is undefined behaviour for the peers (see [`Peer`]).

use std::alloc::Layout;
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::{self, NonNull, null_mut};

use plugin_abi::Allocator;
use plugin_abi::loader::PluginApi;

use crate::allocators::facts::TypedFacts;

pub mod buddy_alloc;
pub mod buddy_system;
pub mod bump;
pub mod glibc;
mod headered;
pub mod jemalloc;
pub mod linked_list;
pub mod mimalloc;
pub mod rlsf;
mod system;
pub mod talc;

/// Every block handed out by a peer adapter is aligned to this.
pub const ALIGN: usize = plugin_abi::ALLOCATOR_ALIGNMENT;

/// Bytes an adapter puts in front of each block when the crate's free needs
/// the block's size: the size is kept in the first word, and 16 keeps the
/// block 16-byte aligned.
pub const HEADER: usize = 16;

/// A peer allocator behind the plugin ABI.
///
/// # Bad pointers
///
/// Freeing (or reallocating) a pointer the peer did not hand out, or one
/// already freed, is **undefined behaviour** for every peer: they are
/// third-party allocators and the adapters do not validate pointers (doing so
/// would measure the adapter, not the peer). The runner observes what each
/// one does with such a pointer in a child process. A panic raised inside a
/// Rust peer (its own assertions, e.g. `linked_list_allocator`'s "Freed node
/// aliases existing hole! Bad free?") is caught at the C boundary; the
/// instance is then *poisoned*: every later call on it returns NULL or does
/// nothing.
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    /// Short, unique name, used in reports and on the command line.
    pub name: &'static str,
    /// The adapter's functions.
    pub api: PluginApi,
    /// What its documentation says a user must know and do.
    pub facts: TypedFacts,
}

/// Every peer, system allocators first.
pub fn all() -> Vec<Peer> {
    vec![
        glibc::peer(),
        mimalloc::peer(),
        jemalloc::peer(),
        talc::peer(),
        rlsf::peer(),
        linked_list::peer(),
        buddy_system::peer(),
        buddy_alloc::peer(),
        bump::peer(),
    ]
}

/// The peer called `name` (ASCII case-insensitive), if there is one.
pub fn by_name(name: &str) -> Option<Peer> {
    all()
        .into_iter()
        .find(|p| p.name.eq_ignore_ascii_case(name))
}

// ---------------------------------------------------------------------------
// Shared machinery of the adapters.
// ---------------------------------------------------------------------------

/// Magic of a destroyed instance: later calls on the handle find no live state.
const DEAD: u64 = u64::from_le_bytes(*b"peerdead");

/// An adapter's state, placed at the 16-byte aligned start of the arena.
#[repr(C)]
pub(crate) struct Slot<T> {
    /// The peer's magic while live, [`DEAD`] after destroy, 0 while being built.
    magic: u64,
    /// A panic escaped the peer: its state may be half-updated, so the
    /// instance answers nothing any more.
    poisoned: bool,
    /// The peer's own state.
    pub(crate) inner: T,
}

/// What [`Slot::create`] hands to the peer: the arena after the slot.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rest {
    /// First byte after the slot (16-byte aligned).
    pub(crate) start: *mut u8,
    /// Bytes from `start` to the end of the arena.
    pub(crate) len: usize,
}

impl<T> Slot<T> {
    /// Bytes the slot takes, rounded up so the rest of the arena starts
    /// 16-byte aligned.
    pub(crate) const SIZE: usize = size_of::<Slot<T>>().next_multiple_of(ALIGN);

    /// Builds a slot at the first 16-byte aligned address of
    /// `[memory, memory + size)`, then lets `setup` give the rest of the arena
    /// to the peer. Returns the handle, or NULL when `memory` is NULL, the
    /// arena cannot hold the slot, or `setup` refuses (or panics).
    ///
    /// # Safety
    ///
    /// `[memory, memory + size)` is writable and unused until destroy (the
    /// `allocator_create` contract).
    pub(crate) unsafe fn create(
        memory: *mut c_void,
        size: usize,
        magic: u64,
        new: impl FnOnce() -> T,
        setup: impl FnOnce(&mut T, Rest) -> bool,
    ) -> *mut Allocator {
        const { assert!(align_of::<Slot<T>>() <= ALIGN) };
        if memory.is_null() || (memory as usize).checked_add(size).is_none() {
            return null_mut();
        }
        let pad = memory.cast::<u8>().align_offset(ALIGN);
        let Some(len) = size
            .checked_sub(pad)
            .and_then(|s| s.checked_sub(Self::SIZE))
        else {
            return null_mut();
        };
        // SAFETY: `pad + SIZE <= size`: the slot and the rest lie inside the
        // caller's arena; the slot's address is 16-byte aligned.
        let (slot, rest) = unsafe {
            let slot = memory.cast::<u8>().add(pad).cast::<Slot<T>>();
            let start = slot.cast::<u8>().add(Self::SIZE);
            (slot, Rest { start, len })
        };
        let Ok(inner) = catch_unwind(AssertUnwindSafe(new)) else {
            return null_mut();
        };
        // SAFETY: `slot` is aligned and inside the arena (above).
        unsafe {
            slot.write(Slot {
                magic: 0,
                poisoned: false,
                inner,
            })
        };
        // SAFETY: just written; nothing else refers to it.
        let s = unsafe { &mut *slot };
        match catch_unwind(AssertUnwindSafe(|| setup(&mut s.inner, rest))) {
            Ok(true) => {
                s.magic = magic;
                slot.cast()
            }
            _ => null_mut(),
        }
    }

    /// The live state behind handle `a`, if it is one of this peer's.
    ///
    /// # Safety
    ///
    /// `a` is NULL or a handle returned by this peer's `create` whose arena
    /// is still mapped (the ABI's contract), and no other reference to the
    /// state is alive.
    pub(crate) unsafe fn get<'a>(a: *const Allocator, magic: u64) -> Option<&'a mut Slot<T>> {
        // SAFETY: caller's contract: a non-null `a` points to a `Slot<T>`.
        let s = unsafe { a.cast::<Slot<T>>().cast_mut().as_mut()? };
        (s.magic == magic && !s.poisoned).then_some(s)
    }

    /// Runs `f` on the peer's state; a panic inside it poisons the instance
    /// and yields `failed`.
    pub(crate) fn run<R>(&mut self, failed: R, f: impl FnOnce(&mut T) -> R) -> R {
        match catch_unwind(AssertUnwindSafe(|| f(&mut self.inner))) {
            Ok(r) => r,
            Err(_) => {
                self.poisoned = true;
                failed
            }
        }
    }

    /// Ends the instance behind `a`: later calls on the handle find nothing.
    /// Returns the state for a last look (the system peers need none).
    ///
    /// # Safety
    ///
    /// As for [`Slot::get`].
    pub(crate) unsafe fn kill<'a>(a: *mut Allocator, magic: u64) -> Option<&'a mut T> {
        // SAFETY: forwarded contract.
        let s = unsafe { a.cast::<Slot<T>>().as_mut()? };
        if s.magic != magic {
            return None;
        }
        s.magic = DEAD;
        Some(&mut s.inner)
    }
}

/// The layout of a block with a size header: `HEADER + max(size, 1)` bytes,
/// 16-byte aligned; `None` when that overflows or exceeds `isize::MAX`.
pub(crate) fn header_layout(size: usize) -> Option<Layout> {
    let total = size.max(1).checked_add(HEADER)?;
    Layout::from_size_align(total, ALIGN).ok()
}

/// Writes the size header at the start of `block` and returns the caller's
/// pointer, `HEADER` bytes in.
///
/// # Safety
///
/// `block` is a fresh block of [`header_layout`]`(size)`.
pub(crate) unsafe fn put_header(block: NonNull<u8>, size: usize) -> *mut c_void {
    // SAFETY: the block is at least HEADER + 1 bytes and 16-byte aligned.
    unsafe {
        block.as_ptr().cast::<usize>().write(size.max(1));
        block.as_ptr().add(HEADER).cast()
    }
}

/// The block start and the size (as recorded, at least 1) of a caller's
/// pointer made by [`put_header`].
///
/// # Safety
///
/// `p` came from [`put_header`] and its block is live.
pub(crate) unsafe fn get_header(p: *mut c_void) -> (NonNull<u8>, usize) {
    // SAFETY: `p` is HEADER bytes into a live block whose first word holds
    // its size; a live block is never at address 0.
    unsafe {
        let block = p.cast::<u8>().sub(HEADER);
        (NonNull::new_unchecked(block), block.cast::<usize>().read())
    }
}

/// `realloc` as a C caller writes it over `malloc`/`free`: a new block,
/// `copy` bytes copied, the old block freed. NULL (and the old block intact)
/// when the new block cannot be had.
///
/// # Safety
///
/// `a` is a live handle of the peer whose `alloc`/`free` these are, `p` a
/// live block of it with at least `copy` readable bytes (bytes past the
/// block's end, up to `copy`, may be garbage but must be inside the arena),
/// `size > 0`.
pub(crate) unsafe fn emulated_realloc(
    api: (plugin_abi::AllocFn, plugin_abi::FreeFn),
    a: *mut Allocator,
    p: *mut c_void,
    size: usize,
    copy: usize,
) -> *mut c_void {
    let (alloc, free) = api;
    // SAFETY: forwarded contract.
    let q = unsafe { alloc(a, size) };
    if q.is_null() {
        return null_mut();
    }
    // SAFETY: `q` holds `size >= copy.min(size)` bytes; `p` has `copy`
    // readable bytes. `ptr::copy` (memmove) because an over-read past the old
    // block (when its size is unknown) may reach into the new one.
    unsafe { ptr::copy(p.cast::<u8>(), q.cast::<u8>(), copy.min(size)) };
    // SAFETY: `p` is live and not used again by the caller.
    unsafe { free(a, p) };
    q
}

#[cfg(test)]
mod tests;

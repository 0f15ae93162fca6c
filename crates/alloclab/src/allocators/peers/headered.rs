//! The one adapter of the arena crates whose `free` needs the block's size
//! (talc, linked_list_allocator, buddy_system_allocator): the state lives in
//! a [`Slot`] at the start of the arena, each block gets a [`HEADER`] that
//! records its size (as a C caller with a `free(ptr)` API would have to
//! add), and `realloc` resizes in place where the crate can, else allocates,
//! copies and frees. Each crate says only how to make its calls
//! ([`HeaderedCrate`]).

use std::alloc::Layout;
use std::ffi::c_void;
use std::marker::PhantomData;
use std::ptr::{NonNull, null_mut};

use plugin_abi::Allocator;
use plugin_abi::loader::PluginApi;

use super::{HEADER, Rest, Slot, get_header, header_layout, put_header};
use crate::allocators::table;

/// An arena crate's calls, as the adapter makes them.
///
/// # Safety
///
/// `allocate` returns blocks of at least `layout.size()` bytes, aligned to
/// `layout.align()`, inside the memory given to `setup`, disjoint from
/// every other live block.
pub(crate) unsafe trait HeaderedCrate: Sized + 'static {
    /// The handle's magic number.
    const MAGIC: u64;
    /// The crate's state before it is given memory.
    fn new() -> Self;
    /// Gives the crate the rest of the arena; false when it cannot use it.
    ///
    /// # Safety
    ///
    /// `rest` is writable and unused until the instance is destroyed, and
    /// given once.
    unsafe fn setup(&mut self, rest: Rest) -> bool;
    /// A block of `layout`, or None.
    fn allocate(&mut self, layout: Layout) -> Option<NonNull<u8>>;
    /// Frees `block`, allocated with `layout`.
    ///
    /// # Safety
    ///
    /// `block` is live, from this instance, allocated with `layout`.
    unsafe fn deallocate(&mut self, block: NonNull<u8>, layout: Layout);
    /// Resizes `block` (allocated with `old`) in place to `new` bytes, if
    /// the crate can; false leaves it as it was.
    ///
    /// # Safety
    ///
    /// As for [`HeaderedCrate::deallocate`].
    unsafe fn resize_in_place(&mut self, block: NonNull<u8>, old: Layout, new: usize) -> bool {
        let _ = (block, old, new);
        false
    }
}

/// The adapter's functions for `C`.
struct Adapter<C>(PhantomData<C>);

impl<C: HeaderedCrate> Adapter<C> {
    unsafe extern "C" fn create(memory: *mut c_void, size: usize) -> *mut Allocator {
        // SAFETY: the rest of the arena is ours until destroy, given once.
        let setup = |c: &mut C, rest: Rest| unsafe { c.setup(rest) };
        // SAFETY: the `allocator_create` contract.
        unsafe { Slot::<C>::create(memory, size, C::MAGIC, C::new, setup) }
    }

    unsafe extern "C" fn destroy(a: *mut Allocator) {
        // SAFETY: the `allocator_destroy` contract; the state is all in the
        // arena.
        unsafe { Slot::<C>::kill(a, C::MAGIC) };
    }

    unsafe extern "C" fn alloc(a: *mut Allocator, size: usize) -> *mut c_void {
        // SAFETY: the `allocator_alloc` contract.
        let Some(s) = (unsafe { Slot::<C>::get(a, C::MAGIC) }) else {
            return null_mut();
        };
        let Some(layout) = header_layout(size) else {
            return null_mut();
        };
        s.run(null_mut(), |c| match c.allocate(layout) {
            // SAFETY: a fresh block of `layout` gets its header.
            Some(b) => unsafe { put_header(b, size) },
            None => null_mut(),
        })
    }

    unsafe extern "C" fn free(a: *mut Allocator, p: *mut c_void) {
        if p.is_null() {
            return;
        }
        // SAFETY: the `allocator_free` contract.
        let Some(s) = (unsafe { Slot::<C>::get(a, C::MAGIC) }) else {
            return;
        };
        s.run((), |c| {
            // SAFETY: `p` is a live block of this peer (else undefined, as
            // documented), so its header gives the layout it was allocated
            // with.
            unsafe {
                let (block, size) = get_header(p);
                c.deallocate(block, header_layout(size).unwrap_unchecked());
            }
        })
    }

    unsafe extern "C" fn realloc(a: *mut Allocator, p: *mut c_void, size: usize) -> *mut c_void {
        if p.is_null() {
            // SAFETY: forwarded contract.
            return unsafe { Self::alloc(a, size) };
        }
        if size == 0 {
            // SAFETY: forwarded contract.
            unsafe { Self::free(a, p) };
            return null_mut();
        }
        let Some(new_layout) = header_layout(size) else {
            return null_mut();
        };
        // SAFETY: the `allocator_realloc` contract.
        let Some(s) = (unsafe { Slot::<C>::get(a, C::MAGIC) }) else {
            return null_mut();
        };
        // SAFETY: `p` is a live block of this peer (else undefined, as
        // documented); its header gives its layout; on any failure the old
        // block is left as it was.
        s.run(null_mut(), |c| unsafe { resize(c, p, size, new_layout) })
    }
}

/// `realloc` of the live block `p` to `size > 0` bytes (`new_layout` with
/// the header): in place if the crate can, else a new block, the bytes
/// copied, the old block freed. NULL (and `p` intact) when no block can be
/// had.
///
/// # Safety
///
/// `p` is a live block of `c`, made by the adapter's `alloc`.
unsafe fn resize<C: HeaderedCrate>(
    c: &mut C,
    p: *mut c_void,
    size: usize,
    new_layout: Layout,
) -> *mut c_void {
    // SAFETY: the caller's contract: `p` has a header.
    let (block, old) = unsafe { get_header(p) };
    // SAFETY: the header's size gave the block's layout when it was made.
    let old_layout = unsafe { header_layout(old).unwrap_unchecked() };
    // SAFETY: `block` is live, allocated with `old_layout`.
    if unsafe { c.resize_in_place(block, old_layout, new_layout.size()) } {
        // SAFETY: the block now holds `new_layout`.
        return unsafe { put_header(block, size) };
    }
    let Some(fresh) = c.allocate(new_layout) else {
        return null_mut();
    };
    // SAFETY: both blocks are live and disjoint; `old.min(size)` bytes are
    // readable in the old one and writable in the new one; then the old one
    // is freed with its own layout.
    unsafe {
        fresh
            .as_ptr()
            .add(HEADER)
            .copy_from_nonoverlapping(p.cast::<u8>(), old.min(size));
        c.deallocate(block, old_layout);
        put_header(fresh, size)
    }
}

/// The function table of the arena crate `C` behind the plugin ABI.
pub(crate) fn api<C: HeaderedCrate>() -> PluginApi {
    PluginApi {
        realloc: Some(Adapter::<C>::realloc),
        ..table(
            Adapter::<C>::create,
            Adapter::<C>::destroy,
            Adapter::<C>::alloc,
            Adapter::<C>::free,
        )
    }
}

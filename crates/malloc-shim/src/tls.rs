//! The one thread-local word of the shim: a pointer to the calling thread's
//! cache ([`crate::tcache`]), read on every `malloc` and `free`.
//!
//! # Why initial-exec, and how it is checked not to allocate
//!
//! A `cdylib` compiled by stable Rust reaches a `thread_local!` through
//! `__tls_get_addr` (the general-dynamic model). For a library loaded at
//! start-up (`LD_PRELOAD`) that finds the variable in the static TLS block,
//! but glibc's `__tls_get_addr` first compares the thread's DTV generation
//! with the global one, and after the program `dlopen`s any module with TLS
//! it takes a slow path that may *resize the DTV with `malloc`* — from
//! inside our `malloc`. mimalloc and jemalloc avoid that by declaring their
//! thread-local state initial-exec, and so does this module on x86_64: the
//! word is defined in `.tbss` by `global_asm!` and read with
//! `mov %fs:0, r; add sym@GOTTPOFF(%rip), r` — two instructions, no call, no
//! allocation ever. The price: a library with initial-exec TLS must be loaded
//! at start-up (`LD_PRELOAD`, or linked), which a `malloc` is anyway; the
//! linker marks it `STATIC_TLS`.
//!
//! It is checked by the test suite (`tests/c_threads.rs`): the shim's
//! statistics line counts `tls_reentry`, the calls that reached the shim
//! while a thread's cache was being set up (0 under every program run), the
//! library's dynamic section has the `STATIC_TLS` flag, and its code has no
//! call to `__tls_get_addr`.
//!
//! On other architectures the word is a `thread_local!` with a constant
//! initialiser and no destructor (general-dynamic: correct, slower, and
//! subject to the DTV caveat above).

use crate::tcache::ThreadCache;

/// No cache yet on this thread.
pub const NONE: usize = 0;
/// The thread is exiting (its cache was returned): no cache any more.
pub const DEAD: usize = 1;
/// The thread's cache is being set up: calls made meanwhile are not cached.
pub const BUSY: usize = 2;

#[cfg(target_arch = "x86_64")]
mod imp {
    core::arch::global_asm!(
        ".pushsection .tbss,\"awT\",@nobits",
        ".p2align 3",
        ".globl alloclab_malloc_shim_tcache",
        ".hidden alloclab_malloc_shim_tcache",
        ".type alloclab_malloc_shim_tcache,@object",
        ".size alloclab_malloc_shim_tcache,8",
        "alloclab_malloc_shim_tcache:",
        ".zero 8",
        ".popsection",
    );

    /// The address of this thread's word.
    #[inline(always)]
    pub fn slot() -> *mut usize {
        let p: *mut usize;
        // SAFETY: reads the thread pointer and the word's static TLS offset
        // from the GOT (initial-exec): no memory is written, nothing is
        // called.
        unsafe {
            core::arch::asm!(
                "mov %fs:0, {p}",
                "add alloclab_malloc_shim_tcache@GOTTPOFF(%rip), {p}",
                p = out(reg) p,
                options(att_syntax, pure, readonly, nostack),
            );
        }
        p
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod imp {
    use core::cell::Cell;

    std::thread_local! {
        static WORD: Cell<usize> = const { Cell::new(0) };
    }

    /// The address of this thread's word.
    #[inline(always)]
    pub fn slot() -> *mut usize {
        WORD.with(Cell::as_ptr)
    }
}

/// The calling thread's word: [`NONE`], [`DEAD`], [`BUSY`] or a cache.
#[inline(always)]
pub fn get() -> usize {
    // SAFETY: the thread's own word, written only by this thread.
    unsafe { imp::slot().read() }
}

/// Sets the calling thread's word.
#[inline]
pub fn set(v: usize) {
    // SAFETY: as in `get`.
    unsafe { imp::slot().write(v) }
}

/// The calling thread's cache, if it has one.
#[inline(always)]
pub fn cache() -> Option<&'static ThreadCache> {
    let v = get();
    if v > BUSY {
        // SAFETY: a value above BUSY is a cache given to this thread by
        // `tcache::attach`, live until the thread's exit handler resets the
        // word to DEAD.
        Some(unsafe { &*(v as *const ThreadCache) })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_thread_has_its_own_word() {
        let before = get();
        set(12345);
        assert_eq!(get(), 12345);
        let other = std::thread::spawn(get).join().unwrap();
        assert_eq!(other, NONE, "a new thread starts with no cache");
        set(before);
    }
}

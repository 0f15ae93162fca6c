//! `liballoc_recorder.so`: records what a program asks of its allocator.
//!
//! Loaded with `LD_PRELOAD` (as `alloclab record -- COMMAND` does), it
//! exports `malloc`, `free`, `calloc`, `realloc`, `reallocarray`,
//! `posix_memalign`, `aligned_alloc`, `memalign`, `valloc`, `pvalloc` and
//! `malloc_usable_size`. Each forwards to the real allocator — the next
//! definition in the search order, found with `dlsym(RTLD_NEXT, ...)` — and
//! records the call in the alloclab trace format (`alloc-trace`) into the
//! file named by `ALLOCLAB_TRACE`:
//!
//! - block ids are the smallest id not in use ([`ids`]), so a trace's ids
//!   stay below its peak number of live blocks;
//! - a `THREAD` event marks each change of the calling thread;
//! - events are encoded with `alloc_trace::encode` (no allocation) into a
//!   1 MiB `mmap`'d buffer, written with `write(2)` when full and at exit.
//!
//! Which process records: with `ALLOCLAB_TRACE_PPID` set (as `alloclab
//! record` does, to its own pid), the process whose parent has that pid —
//! the program started, whatever it `exec`s into (each `exec` starts the
//! file again, so `env VAR=1 prog` records `prog`); without it, the first
//! process to create the file (`O_EXCL`). Either way the programs it starts
//! inherit `LD_PRELOAD` and the variables but do not record, and a child
//! made by `fork` stops recording. Calls made while
//! `dlsym` itself runs are served from a static bootstrap buffer ([`real`]).
//! The trace is written at exit by the library's destructor, and by `_exit`
//! and `_Exit` (exported too: they write it, then end the process). Events
//! after the destructor (the last stage of `exit`) are not recorded, nor
//! those still buffered when the process `exec`s another program (which
//! starts the file again) or is killed.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod ids;
pub mod real;
pub mod recorder;
pub mod table;

use core::ffi::{c_int, c_void};
use core::ptr;

use recorder::Recorder;

static REC: Recorder = Recorder::new();

unsafe extern "C" fn fork_prepare() {
    REC.fork_prepare();
}
unsafe extern "C" fn fork_parent() {
    REC.fork_parent();
}
unsafe extern "C" fn fork_child() {
    REC.fork_child();
}

extern "C" fn start() {
    use malloc_shim::sys;
    let Some(path) = sys::getenv(c"ALLOCLAB_TRACE") else {
        return;
    };
    // `alloclab record` names itself the parent of the process to record:
    // that process records, whatever it `exec`s into (`env VAR=1 prog`
    // records `prog`); its own children do not.
    let exclusive = match sys::getenv(c"ALLOCLAB_TRACE_PPID") {
        Some(ppid) => {
            // SAFETY: getppid has no preconditions.
            let parent = unsafe { libc::getppid() };
            if sys::parse_small(ppid.to_bytes()) != usize::try_from(parent).ok() {
                return;
            }
            false
        }
        None => true,
    };
    if path.is_empty() || !real::ready() {
        return;
    }
    if REC.start(path, exclusive) {
        // SAFETY: plain functions valid for the life of the library.
        unsafe { libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child)) };
    }
}

extern "C" fn finish() {
    REC.finish();
}

#[used]
#[unsafe(link_section = ".init_array")]
static START: extern "C" fn() = start;
#[used]
#[unsafe(link_section = ".fini_array")]
static FINISH: extern "C" fn() = finish;

/// C `_exit`: writes the trace, then ends the process (`exit_group`), as
/// the real one does. Programs such as dash end with `_exit`, which runs no
/// library destructor.
#[unsafe(no_mangle)]
pub extern "C" fn _exit(status: c_int) -> ! {
    REC.finish();
    loop {
        // SAFETY: exit_group ends every thread of the process; it does not
        // return.
        unsafe { libc::syscall(libc::SYS_exit_group, status) };
    }
}

/// C `_Exit`: as `_exit`.
#[unsafe(no_mangle)]
pub extern "C" fn _Exit(status: c_int) -> ! {
    _exit(status)
}

/// C `malloc`: forwarded and recorded.
#[unsafe(no_mangle)]
pub extern "C" fn malloc(n: usize) -> *mut c_void {
    if !real::ready() {
        return real::boot_alloc(n, 16);
    }
    let p = real::malloc(n);
    if !p.is_null() {
        REC.alloc(p, n, 16);
    }
    p
}

/// C `free`: recorded, then forwarded.
///
/// # Safety
///
/// `p` is NULL or a live block.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free(p: *mut c_void) {
    if p.is_null() || real::is_boot(p) || !real::ready() {
        return;
    }
    REC.free(p);
    // SAFETY: the caller's contract.
    unsafe { real::free(p) }
}

/// C `calloc`.
#[unsafe(no_mangle)]
pub extern "C" fn calloc(n: usize, m: usize) -> *mut c_void {
    if !real::ready() {
        return match n.checked_mul(m) {
            Some(total) => real::boot_alloc(total, 16),
            None => ptr::null_mut(),
        };
    }
    let p = real::calloc(n, m);
    if !p.is_null() {
        REC.alloc(p, n.wrapping_mul(m), 16);
    }
    p
}

/// C `realloc`.
///
/// # Safety
///
/// `p` is NULL or a live block.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn realloc(p: *mut c_void, n: usize) -> *mut c_void {
    if p.is_null() {
        return malloc(n);
    }
    if real::is_boot(p) || !real::ready() {
        // A bootstrap block moves to the real allocator (or to another
        // bootstrap block while resolving); the old one is never freed.
        let q = if real::ready() {
            malloc(n)
        } else {
            real::boot_alloc(n, 16)
        };
        if !q.is_null() && real::is_boot(p) {
            // SAFETY: `p` is a bootstrap block of `boot_size(p)` bytes, `q`
            // a new block of at least `n`.
            unsafe {
                ptr::copy_nonoverlapping(p.cast::<u8>(), q.cast::<u8>(), real::boot_size(p).min(n))
            };
        }
        return q;
    }
    let id = REC.realloc_begin(p);
    // SAFETY: the caller's contract.
    let q = unsafe { real::realloc(p, n) };
    REC.realloc_end(id, p, q, n);
    q
}

/// C `reallocarray`: `realloc(p, n * m)`, or NULL and `ENOMEM` on overflow.
///
/// # Safety
///
/// `p` is NULL or a live block.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: usize, m: usize) -> *mut c_void {
    match n.checked_mul(m) {
        // SAFETY: the caller's contract.
        Some(total) => unsafe { realloc(p, total) },
        None => {
            malloc_shim::sys::set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}

/// C `posix_memalign`.
///
/// # Safety
///
/// `out` is valid for a pointer write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, n: usize) -> c_int {
    if !real::ready() {
        if !align.is_power_of_two() || align < size_of::<*mut c_void>() {
            return libc::EINVAL;
        }
        let p = real::boot_alloc(n, align);
        if p.is_null() {
            return libc::ENOMEM;
        }
        // SAFETY: the caller's contract.
        unsafe { out.write(p) };
        return 0;
    }
    // SAFETY: the caller's contract.
    let r = unsafe { real::posix_memalign(out, align, n) };
    if r == 0 {
        // SAFETY: written by the successful call.
        REC.alloc(unsafe { out.read() }, n, align);
    }
    r
}

fn aligned(p: *mut c_void, n: usize, align: usize) -> *mut c_void {
    if !p.is_null() {
        REC.alloc(p, n, align);
    }
    p
}

/// C `aligned_alloc`.
#[unsafe(no_mangle)]
pub extern "C" fn aligned_alloc(align: usize, n: usize) -> *mut c_void {
    if !real::ready() {
        return real::boot_alloc(n, align.next_power_of_two());
    }
    aligned(real::aligned_alloc(align, n), n, align)
}

/// C `memalign`.
#[unsafe(no_mangle)]
pub extern "C" fn memalign(align: usize, n: usize) -> *mut c_void {
    if !real::ready() {
        return real::boot_alloc(n, align.next_power_of_two());
    }
    aligned(real::memalign(align, n), n, align)
}

/// C `valloc`.
#[unsafe(no_mangle)]
pub extern "C" fn valloc(n: usize) -> *mut c_void {
    if !real::ready() {
        return real::boot_alloc(n, 4096);
    }
    aligned(real::valloc(n), n, 4096)
}

/// C `pvalloc`.
#[unsafe(no_mangle)]
pub extern "C" fn pvalloc(n: usize) -> *mut c_void {
    if !real::ready() {
        return real::boot_alloc(n.next_multiple_of(4096), 4096);
    }
    let rounded = n.checked_next_multiple_of(4096).unwrap_or(n).max(4096);
    aligned(real::pvalloc(n), rounded, 4096)
}

/// C `malloc_usable_size`.
///
/// # Safety
///
/// `p` is NULL or a live block.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    if p.is_null() {
        return 0;
    }
    if real::is_boot(p) {
        // SAFETY: a bootstrap block.
        return unsafe { real::boot_size(p) };
    }
    if !real::ready() {
        return 0;
    }
    // SAFETY: the caller's contract.
    unsafe { real::usable_size(p) }
}

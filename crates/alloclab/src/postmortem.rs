//! What a child process running a plugin was doing when it died, hung or
//! ended on its own: the runner's words for "the plugin crashed", one line.
//!
//! The parent makes a small shared page (a `memfd`) and hands it to the
//! child as fd 3 ([`Watch::attach`]); the child maps it ([`install_in_child`])
//! and keeps there, with plain stores outside any timed loop:
//!
//! - the *stage*: which plugin call, or which part of a run, is under way
//!   ([`stage`], [`Stage`]);
//! - the arena it gave the plugin last ([`note_arena`]);
//! - on a fatal signal (`SIGSEGV`, `SIGBUS`, `SIGILL`, `SIGFPE`, `SIGABRT`),
//!   the signal, the faulting address and whether the access was a write,
//!   stored by a handler that then lets the signal kill the process as it
//!   would have.
//!
//! After the child ends, [`Watch::death`] turns the page and the exit status
//! into one line: "wrote 8 bytes past the end of its arena (SIGSEGV) in
//! allocator_create", "ended the process (exit status 0) in
//! allocator_create", "dereferenced a null pointer (SIGSEGV at 0x10)
//! during the allocations". Arenas have guard pages on both sides
//! (`arena.rs`), so an access just outside one faults where it happens.

use std::ffi::c_void;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

use crate::signals;

/// The environment variable naming the page's descriptor in a child.
const FD_VAR: &str = "ALLOCLAB_POSTMORTEM_FD";
/// The descriptor the page has in a child.
const CHILD_FD: i32 = 3;

/// Where a child is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Stage {
    /// Between requests, in the runner's own code.
    Idle = 0,
    /// `dlopen` of the plugin (its initialisers run).
    Loading,
    /// `allocator_info`, and reading what it returned.
    Info,
    /// `allocator_create` (or `allocator_create_with_flags`).
    Create,
    /// A batch of `allocator_alloc` calls.
    Allocs,
    /// A batch of `allocator_free` calls.
    Frees,
    /// `allocator_stats`.
    Stats,
    /// `allocator_check`.
    Check,
    /// `allocator_destroy`.
    Destroy,
    /// `compare`'s checked pass of a workload.
    CheckedPass,
    /// A timed repetition of a workload.
    Repetition,
    /// The latency pass of a workload.
    LatencyPass,
    /// An ease-of-use probe.
    Probe,
}

impl Stage {
    const ALL: [Stage; 13] = [
        Stage::Idle,
        Stage::Loading,
        Stage::Info,
        Stage::Create,
        Stage::Allocs,
        Stage::Frees,
        Stage::Stats,
        Stage::Check,
        Stage::Destroy,
        Stage::CheckedPass,
        Stage::Repetition,
        Stage::LatencyPass,
        Stage::Probe,
    ];

    /// "in allocator_create", "while it was loaded (dlopen)".
    pub fn words(self) -> &'static str {
        match self {
            Stage::Idle => "between calls",
            Stage::Loading => "while it was loaded (dlopen ran its initialisers)",
            Stage::Info => "in allocator_info",
            Stage::Create => "in allocator_create",
            Stage::Allocs => "during the allocations (allocator_alloc)",
            Stage::Frees => "during the frees (allocator_free)",
            Stage::Stats => "in allocator_stats",
            Stage::Check => "in allocator_check",
            Stage::Destroy => "in allocator_destroy",
            Stage::CheckedPass => "during the checked pass",
            Stage::Repetition => "during a timed repetition",
            Stage::LatencyPass => "during the latency pass",
            Stage::Probe => "during the probe",
        }
    }
}

/// The shared page's contents.
#[repr(C)]
struct Record {
    stage: AtomicU32,
    signal: AtomicU32,
    fault_addr: AtomicU64,
    /// 0 unknown, 1 a read, 2 a write.
    access: AtomicU32,
    arena_lo: AtomicU64,
    arena_hi: AtomicU64,
}

const PAGE_BYTES: usize = 4096;
const _: () = assert!(size_of::<Record>() <= PAGE_BYTES);

/// The child's page, once installed.
static RECORD: AtomicPtr<Record> = AtomicPtr::new(null_mut());

fn record() -> Option<&'static Record> {
    // SAFETY: RECORD is null or points to a shared mapping of a whole page
    // that lives until the process ends (never unmapped).
    unsafe { RECORD.load(Ordering::Relaxed).as_ref() }
}

/// Says what the child does from now on; returns what it did before (to be
/// put back with another call). A plain store: nothing when not in a child.
pub fn stage(s: Stage) -> Stage {
    let Some(r) = record() else {
        return Stage::Idle;
    };
    let before = r.stage.swap(s as u32, Ordering::Relaxed);
    Stage::ALL
        .get(before as usize)
        .copied()
        .unwrap_or(Stage::Idle)
}

/// Notes the arena `[lo, lo + len)` just given to the plugin.
pub fn note_arena(lo: *const c_void, len: usize) {
    if let Some(r) = record() {
        r.arena_lo.store(lo as u64, Ordering::Relaxed);
        r.arena_hi
            .store((lo as u64).saturating_add(len as u64), Ordering::Relaxed);
    }
}

/// The fatal-signal handler: notes the signal, the address and the kind of
/// access, and returns; `SA_RESETHAND` has restored the default action, so
/// the faulting instruction faults again and the signal ends the process
/// as it would have (or `abort` raises `SIGABRT` again).
extern "C" fn on_fatal_signal(sig: i32, info: *mut libc::siginfo_t, context: *mut c_void) {
    let Some(r) = record() else {
        return;
    };
    r.signal.store(sig as u32, Ordering::Relaxed);
    if !info.is_null() && sig != libc::SIGABRT {
        // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler;
        // si_addr is defined for SIGSEGV, SIGBUS, SIGILL and SIGFPE.
        let addr = unsafe { (*info).si_addr() };
        r.fault_addr.store(addr as u64, Ordering::Relaxed);
    }
    #[cfg(target_arch = "x86_64")]
    if sig == libc::SIGSEGV && !context.is_null() {
        // SAFETY: for an SA_SIGINFO handler the third argument is the
        // interrupted context; on x86-64 REG_ERR holds the page-fault error
        // code, whose bit 1 is set for a write.
        let err = unsafe {
            (*context.cast::<libc::ucontext_t>()).uc_mcontext.gregs[libc::REG_ERR as usize]
        };
        r.access
            .store(if err & 2 != 0 { 2 } else { 1 }, Ordering::Relaxed);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = context;
}

/// In a child started with a [`Watch`]: maps the page and installs the
/// fatal-signal handlers. Nothing when the runner did not pass a page.
pub fn install_in_child() {
    let Some(fd) = std::env::var(FD_VAR)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return;
    };
    // SAFETY: a shared mapping of the page the parent passed as `fd`; it is
    // never unmapped.
    let p = unsafe {
        libc::mmap(
            null_mut(),
            PAGE_BYTES,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return;
    }
    RECORD.store(p.cast(), Ordering::Relaxed);
    for sig in [
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGILL,
        libc::SIGFPE,
        libc::SIGABRT,
    ] {
        // SAFETY: installing a handler that only stores to the page (async-
        // signal-safe); SA_ONSTACK runs it on the alternate stack that Rust
        // sets up for the main thread, so a stack overflow is reported too.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_fatal_signal as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESETHAND;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, null_mut());
        }
    }
}

/// The parent's side: the page of one child.
pub struct Watch {
    fd: OwnedFd,
    page: *const Record,
}

// SAFETY: the page is read with atomics only; the mapping lives as long as
// the value.
unsafe impl Send for Watch {}

impl Watch {
    /// A fresh page (all zero: idle, no signal).
    pub fn new() -> io::Result<Watch> {
        // SAFETY: memfd_create with a NUL-terminated name.
        let raw = unsafe { libc::memfd_create(c"alloclab-postmortem".as_ptr(), libc::MFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a descriptor we just made and own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sizing and mapping our own memfd.
        let page = unsafe {
            if libc::ftruncate(fd.as_raw_fd(), PAGE_BYTES as libc::off_t) != 0 {
                return Err(io::Error::last_os_error());
            }
            libc::mmap(
                null_mut(),
                PAGE_BYTES,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if page == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Watch {
            fd,
            page: page.cast(),
        })
    }

    /// Passes the page to the child `cmd` starts (as fd 3).
    pub fn attach(&self, cmd: &mut Command) {
        let fd = self.fd.as_raw_fd();
        cmd.env(FD_VAR, CHILD_FD.to_string());
        // SAFETY: dup2 and fcntl are async-signal-safe; this runs in the
        // child between fork and exec. dup2 clears close-on-exec on the
        // copy; when the page is fd 3 already, dup2 does nothing and the
        // flag is cleared by hand.
        unsafe {
            cmd.pre_exec(move || {
                let done = if fd == CHILD_FD {
                    libc::fcntl(fd, libc::F_SETFD, 0)
                } else {
                    libc::dup2(fd, CHILD_FD)
                };
                if done < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }

    fn record(&self) -> &Record {
        // SAFETY: a live shared mapping of one page, as long as `self`.
        unsafe { &*self.page }
    }

    /// What the child is doing now (or did last).
    pub fn stage(&self) -> Stage {
        let s = self.record().stage.load(Ordering::Relaxed);
        Stage::ALL.get(s as usize).copied().unwrap_or(Stage::Idle)
    }

    /// One line on how the child ended, from its status and the page:
    /// "crashed: wrote 8 bytes past the end of its arena (SIGSEGV) in
    /// allocator_create".
    pub fn death(&self, status: ExitStatus) -> String {
        let r = self.record();
        let at = self.stage().words();
        let Some(sig) = status.signal() else {
            return format!(
                "ended the process (exit status {}) {at}",
                status.code().unwrap_or(-1)
            );
        };
        let noted = r.signal.load(Ordering::Relaxed) as i32 == sig;
        let name = signals::name(sig);
        if !noted || !matches!(sig, libc::SIGSEGV | libc::SIGBUS) {
            return match sig {
                libc::SIGABRT => format!("aborted (SIGABRT) {at}"),
                _ => format!("crashed ({name}) {at}"),
            };
        }
        let addr = r.fault_addr.load(Ordering::Relaxed);
        let (lo, hi) = (
            r.arena_lo.load(Ordering::Relaxed),
            r.arena_hi.load(Ordering::Relaxed),
        );
        let verb = match r.access.load(Ordering::Relaxed) {
            1 => "read",
            2 => "wrote",
            _ => "touched",
        };
        let guard = crate::arena::GUARD_BYTES as u64;
        let what = if hi > lo && addr >= hi && addr - hi < guard {
            format!(
                "{verb} outside its arena, at byte {} after its end",
                addr - hi
            )
        } else if hi > lo && addr < lo && lo - addr <= guard {
            format!(
                "{verb} outside its arena, {} bytes before its start",
                lo - addr
            )
        } else if addr < 4096 {
            format!("{verb} through a null pointer (address {addr:#x})")
        } else {
            format!("{verb} an address it must not touch ({addr:#x})")
        };
        format!("crashed: {what} ({name}) {at}")
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // SAFETY: our mapping of one page; no reference to it survives.
        unsafe { libc::munmap(self.page.cast_mut().cast(), PAGE_BYTES) };
    }
}

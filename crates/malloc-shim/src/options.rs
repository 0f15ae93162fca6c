//! The environment variables the shim reads at start-up (with `getenv`,
//! which does not allocate).
//!
//! | variable | effect |
//! |---|---|
//! | `ALLOCLAB_SHIM_STATS` | `1` (or any value but `0`): one line of counters on stderr at exit; an absolute path: appended to that file |
//! | `ALLOCLAB_SHIM_ABORT` | `1`: a bad or double `free`/`realloc` prints a glibc-style message and aborts, instead of being counted and ignored |
//! | `ALLOCLAB_SHIM_TCACHE` | `0`: no thread caches (every call takes an arena lock; for measuring what they bring) |
//! | `ALLOCLAB_SHIM_ARENAS` | `N`: arenas filled at the same time (lock stripes), 1 to 8; default `min(8, 2 × CPUs)` |

use crate::sys;

/// The options, as read from the environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Lock stripes.
    pub stripes: usize,
    /// Abort on a bad or double free.
    pub abort_on_bad_free: bool,
    /// Thread caches on.
    pub tcache: bool,
    /// Where the statistics line goes (-1: nowhere).
    pub stats_fd: i32,
}

/// True if variable `name` is set to something other than empty or `0`.
fn flag(name: &core::ffi::CStr) -> Option<bool> {
    sys::getenv(name).map(|v| !matches!(v.to_bytes(), b"" | b"0"))
}

impl Options {
    /// Reads the environment (`max_stripes` caps the stripes).
    #[inline] // compiled beside the callers: see "The library's own memory" in lib.rs
    pub fn from_env(max_stripes: usize) -> Options {
        let stripes = sys::getenv(c"ALLOCLAB_SHIM_ARENAS")
            .and_then(|v| sys::parse_small(v.to_bytes()))
            .unwrap_or_else(|| sys::cpus().saturating_mul(2))
            .clamp(1, max_stripes);
        Options {
            stripes,
            abort_on_bad_free: flag(c"ALLOCLAB_SHIM_ABORT").unwrap_or(false),
            tcache: flag(c"ALLOCLAB_SHIM_TCACHE").unwrap_or(true),
            stats_fd: open_stats_fd(),
        }
    }
}

/// The descriptor the statistics line goes to, from `ALLOCLAB_SHIM_STATS`:
/// unset, empty or `0`: none (-1); an absolute path: that file, appended to
/// (one `write` per process, so the lines of a process tree do not mix);
/// anything else: a duplicate of stderr, made now because some programs
/// close stderr before library destructors run. Close-on-exec either way (an
/// exec'd program opens its own).
pub fn open_stats_fd() -> i32 {
    let Some(v) = sys::getenv(c"ALLOCLAB_SHIM_STATS") else {
        return -1;
    };
    match v.to_bytes() {
        b"" | b"0" => -1,
        [b'/', ..] => {
            // SAFETY: the value is a NUL-terminated C string from the
            // environment (getenv's); open does not allocate.
            unsafe {
                libc::open(
                    v.as_ptr().cast(),
                    libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_CLOEXEC,
                    0o644,
                )
            }
        }
        // SAFETY: fcntl on fd 2 has no memory effects.
        _ => unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3) },
    }
}

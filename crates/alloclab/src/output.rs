//! Standard output that ends quietly when its reader goes away.
//!
//! Rust programs ignore `SIGPIPE`, so `println!` to a closed pipe
//! (`alloclab libbuddy.so | true`, `alloclab compare | head`) panics with
//! "failed printing to stdout: Broken pipe". The runner prints through
//! [`outln!`] instead: when the reader is gone it ends the way `ls | true`
//! does, killed by `SIGPIPE`, with no message. `SIGPIPE` itself stays
//! ignored for the rest of the runner: a write to a worker or a probe that
//! died must return an error, not end the runner. (`clippy.toml` forbids
//! `println!` and `print!` in this crate.)

use std::fmt;
use std::io::{ErrorKind, Write};

/// `println!` that ends the process quietly when stdout's reader is gone.
macro_rules! outln {
    () => {
        $crate::output::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

/// Writes `args` and a newline to stdout, and flushes it.
pub fn line(args: fmt::Arguments) {
    let mut out = std::io::stdout().lock();
    let written = out
        .write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if let Err(e) = written {
        drop(out);
        if e.kind() == ErrorKind::BrokenPipe {
            end_as_by_sigpipe();
        }
        eprintln!("alloclab: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// Ends the process as the default action of `SIGPIPE` does.
fn end_as_by_sigpipe() -> ! {
    // SAFETY: restoring the default action of a signal and raising it; the
    // process ends here (exit below only if the signal is blocked).
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    std::process::exit(128 + libc::SIGPIPE);
}

/// `s` with control characters escaped (`\n`, `\u{1b}`): safe to print on
/// one line of a table or a terminal.
pub fn shown(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

//! How a child process ended, in words: the signal's name (`SIGSEGV`), or
//! its exit status.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// `SIGSEGV` for 11, and so on (`signal N` for one without a name here).
pub fn name(sig: i32) -> String {
    let known = [
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGILL, "SIGILL"),
        (libc::SIGTRAP, "SIGTRAP"),
        (libc::SIGABRT, "SIGABRT"),
        (libc::SIGBUS, "SIGBUS"),
        (libc::SIGFPE, "SIGFPE"),
        (libc::SIGKILL, "SIGKILL"),
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGSEGV, "SIGSEGV"),
        (libc::SIGUSR2, "SIGUSR2"),
        (libc::SIGPIPE, "SIGPIPE"),
        (libc::SIGALRM, "SIGALRM"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGXCPU, "SIGXCPU"),
        (libc::SIGXFSZ, "SIGXFSZ"),
        (libc::SIGSYS, "SIGSYS"),
    ];
    known
        .iter()
        .find(|(n, _)| *n == sig)
        .map_or_else(|| format!("signal {sig}"), |(_, name)| name.to_string())
}

/// "signal 11, SIGSEGV" (or "signal 42" for one without a name here).
pub fn numbered(sig: i32) -> String {
    let name = name(sig);
    if name.starts_with("SIG") {
        format!("signal {sig}, {name}")
    } else {
        name
    }
}

/// "killed by SIGSEGV", "exited with status 7", "exited normally".
pub fn describe(status: ExitStatus) -> String {
    match (status.signal(), status.code()) {
        (Some(sig), _) => format!(
            "was killed by {}{}",
            name(sig),
            if status.core_dumped() {
                " (core dumped)"
            } else {
                ""
            }
        ),
        (None, Some(0)) => "exited normally".into(),
        (None, Some(code)) => format!("exited with status {code}"),
        (None, None) => format!("ended ({status})"),
    }
}

/// The exit status a shell would give for `status` (128 + the signal for a
/// killed process), to pass a child's status on.
pub fn shell_code(status: ExitStatus) -> u8 {
    match (status.signal(), status.code()) {
        (Some(sig), _) => (128 + sig).clamp(0, 255) as u8,
        (None, Some(code)) => code.clamp(0, 255) as u8,
        (None, None) => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_in_words() {
        assert_eq!(name(libc::SIGSEGV), "SIGSEGV");
        assert_eq!(name(200), "signal 200");
        let killed = ExitStatus::from_raw(libc::SIGSEGV);
        assert_eq!(describe(killed), "was killed by SIGSEGV");
        assert_eq!(shell_code(killed), 139);
        let seven = ExitStatus::from_raw(7 << 8);
        assert_eq!(describe(seven), "exited with status 7");
        assert_eq!(shell_code(seven), 7);
    }
}

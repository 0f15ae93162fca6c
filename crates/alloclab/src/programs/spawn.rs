//! Running one measured process: `fork`, `exec`, `wait4`, from a small
//! process of its own.
//!
//! Why not straight from the runner: Linux charges a process's `ru_maxrss`
//! with the memory of the address space it `exec`s from. A child spawned by
//! the runner (with `vfork`/`posix_spawn`, or `fork`) starts with the
//! runner's resident set — tens of MiB with its tables and buffers — which
//! would hide the peak of a small program. So the runner starts
//! `alloclab __spawn` (a fresh image, a few hundred KiB of anonymous
//! memory), which forks and execs the program, times it from `fork` to
//! `wait4`, reads its `ru_maxrss`, and writes the figures to a file. The
//! preloaded library is set only in the program's environment, not in the
//! trampoline's.
//!
//! Beside the peak (`ru_maxrss`), the trampoline samples the program's
//! resident set every [`SAMPLE`] from `/proc/PID/statm` and reports its
//! mean over the run: the *steady-state* RSS (what the program holds
//! while it works, not only at its worst instant).
//!
//! **Server programs** (`--server-arg`, `--server-port`): the trampoline
//! starts the server (with the preloaded library), waits until it accepts
//! connections on the loopback port, runs the client (the program given,
//! under glibc), then stops the server with `SIGTERM` and waits for it. The
//! time is the client's; the memory figures and the exit status are the
//! server's.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;

/// Options of the hidden `alloclab __spawn`.
#[derive(Args, Debug)]
pub struct SpawnArgs {
    /// Where to write the figures (`WALL_S RSS_KIB ok|exit N|signal N|timeout S`).
    #[arg(long)]
    pub result: PathBuf,
    /// Kill the program's process group after this many seconds.
    #[arg(long)]
    pub timeout: u64,
    /// A server to start first (its argv, one word per option), measured
    /// instead of the client.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    pub server: Vec<OsString>,
    /// The loopback TCP port the server listens on (the client starts once
    /// it accepts connections).
    #[arg(long)]
    pub server_port: Option<u16>,
    /// `LD_PRELOAD` for the program.
    #[arg(long)]
    pub preload: Option<OsString>,
    /// The program (an absolute path) and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub argv: Vec<OsString>,
}

/// What one process did.
#[derive(Clone, Debug, PartialEq)]
pub struct Measured {
    /// From `fork` to `wait4`, seconds.
    pub wall_s: f64,
    /// `ru_maxrss`, KiB (the process and its waited-for children).
    pub max_rss_kib: u64,
    /// The mean of the process's resident set sampled during the run, KiB
    /// (0 if it ended before the first sample).
    pub mean_rss_kib: u64,
    /// How it ended: `Ok` for exit status 0.
    pub ended: Result<(), String>,
}

static TARGET: AtomicI32 = AtomicI32::new(0);
static TIMED_OUT: AtomicBool = AtomicBool::new(false);

extern "C" fn on_alarm(_: libc::c_int) {
    let pid = TARGET.load(Ordering::SeqCst);
    if pid > 0 {
        TIMED_OUT.store(true, Ordering::SeqCst);
        // SAFETY: kill is async-signal-safe; the group is the program's.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
}

fn cstring(s: &OsStr) -> Result<CString> {
    CString::new(s.as_bytes()).context("an argument holds a NUL byte")
}

/// The interval between two samples of the resident set (a process that
/// ends before the first sample reports its peak as its mean).
pub const SAMPLE: Duration = Duration::from_millis(5);

fn env_with(preload: Option<&OsStr>) -> Result<Vec<CString>> {
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != "LD_PRELOAD")
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            cstring(&kv)
        })
        .collect::<Result<_>>()?;
    if let Some(p) = preload {
        let mut kv = OsString::from("LD_PRELOAD=");
        kv.push(p);
        env.push(cstring(&kv)?);
    }
    Ok(env)
}

/// Forks and execs `argv` in a process group of its own (its standard
/// output sent to `/dev/null` if `quiet`).
fn start(argv: &[OsString], env: &[CString], quiet: bool) -> Result<libc::pid_t> {
    let null = if quiet {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .ok()
    } else {
        None
    };
    let null_fd = null.as_ref().map_or(-1, std::os::fd::AsRawFd::as_raw_fd);
    let args: Vec<CString> = argv.iter().map(|a| cstring(a)).collect::<Result<_>>()?;
    if args.is_empty() {
        bail!("no program");
    }
    let mut argp: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argp.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: the child only calls async-signal-safe functions (setpgid,
    // execve, write, _exit) on memory prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        bail!("fork: {}", std::io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: see above; `argp`/`envp` are NULL-terminated arrays of
        // C strings that live until exec.
        unsafe {
            libc::setpgid(0, 0);
            if null_fd >= 0 {
                libc::dup2(null_fd, 1);
            }
            libc::execve(argp[0], argp.as_ptr(), envp.as_ptr());
            let msg = b"alloclab __spawn: cannot execute the program\n";
            libc::write(2, msg.as_ptr().cast(), msg.len());
            libc::_exit(127);
        }
    }
    Ok(pid)
}

/// Samples the resident set of `pid` every [`SAMPLE`] until `done`; the mean
/// in KiB.
fn sample_rss(pid: libc::pid_t, done: &AtomicBool) -> u64 {
    let path = format!("/proc/{pid}/statm");
    let page_kib = 4; // the shims check for 4 KiB pages; so does this
    let (mut sum, mut n) = (0u64, 0u64);
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(SAMPLE);
        let Ok(text) = std::fs::read_to_string(&path) else {
            break;
        };
        if let Some(resident) = text
            .split_whitespace()
            .nth(1)
            .and_then(|r| r.parse::<u64>().ok())
        {
            if resident == 0 {
                continue; // a zombie
            }
            sum += resident * page_kib;
            n += 1;
        }
    }
    sum.checked_div(n).unwrap_or(0)
}

/// Waits for `pid`: its status and resource usage.
fn wait(pid: libc::pid_t) -> Result<(i32, libc::rusage)> {
    let mut status = 0;
    // SAFETY: plain data to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waits for (and reaps) our child.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            return Ok((status, usage));
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            bail!("wait4: {}", std::io::Error::last_os_error());
        }
    }
}

fn ended(status: i32, timeout: Duration) -> Result<(), String> {
    if TIMED_OUT.load(Ordering::SeqCst) {
        Err(format!("timed out after {} s", timeout.as_secs().max(1)))
    } else if libc::WIFSIGNALED(status) {
        Err(format!(
            "crashed ({})",
            crate::signals::numbered(libc::WTERMSIG(status))
        ))
    } else if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) != 0 {
        Err(format!("exit status {}", libc::WEXITSTATUS(status)))
    } else {
        Ok(())
    }
}

fn arm_timeout(pid: libc::pid_t, timeout: Duration) {
    TARGET.store(pid, Ordering::SeqCst);
    TIMED_OUT.store(false, Ordering::SeqCst);
    // SAFETY: installs a handler that only calls async-signal-safe kill.
    unsafe {
        libc::signal(libc::SIGALRM, on_alarm as *const () as libc::sighandler_t);
        libc::alarm(u32::try_from(timeout.as_secs().max(1)).unwrap_or(u32::MAX));
    }
}

fn disarm_timeout() {
    // SAFETY: cancels the alarm.
    unsafe { libc::alarm(0) };
    TARGET.store(0, Ordering::SeqCst);
}

/// Forks, execs `argv` (with `LD_PRELOAD=preload` if given, in a process
/// group of its own), waits for it and measures it. A program still
/// running after `timeout` is killed with its group.
pub fn fork_exec_wait(
    argv: &[OsString],
    preload: Option<&OsStr>,
    timeout: Duration,
) -> Result<Measured> {
    let env = env_with(preload)?;
    let started = Instant::now();
    let pid = start(argv, &env, false)?;
    arm_timeout(pid, timeout);
    let done = AtomicBool::new(false);
    let (waited, mean) = std::thread::scope(|s| {
        let sampler = s.spawn(|| sample_rss(pid, &done));
        let w = wait(pid);
        done.store(true, Ordering::Relaxed);
        (w, sampler.join().unwrap_or(0))
    });
    let (status, usage) = waited?;
    let wall_s = started.elapsed().as_secs_f64();
    disarm_timeout();
    let max_rss_kib = u64::try_from(usage.ru_maxrss).unwrap_or(0);
    Ok(Measured {
        wall_s,
        max_rss_kib,
        // Ended before the first sample: its peak is all there is.
        mean_rss_kib: if mean == 0 { max_rss_kib } else { mean },
        ended: ended(status, timeout),
    })
}

/// Starts `server` (preloaded), waits until it accepts connections on
/// `127.0.0.1:port`, runs `client` (not preloaded) and times it, stops the
/// server with `SIGTERM` and measures it.
pub fn serve_and_run(
    server: &[OsString],
    port: u16,
    client: &[OsString],
    preload: Option<&OsStr>,
    timeout: Duration,
) -> Result<Measured> {
    let server_env = env_with(preload)?;
    let client_env = env_with(None)?;
    let spid = start(server, &server_env, true)?;
    arm_timeout(spid, timeout);
    let ready = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if ready.elapsed() > Duration::from_secs(20) || TIMED_OUT.load(Ordering::SeqCst) {
            // SAFETY: our child's group.
            unsafe { libc::kill(-spid, libc::SIGKILL) };
            let _ = wait(spid);
            disarm_timeout();
            bail!("the server did not accept connections on port {port}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let done = AtomicBool::new(false);
    let (client_result, server_result, mean) = std::thread::scope(|s| {
        let sampler = s.spawn(|| sample_rss(spid, &done));
        let started = Instant::now();
        let c = start(client, &client_env, false).and_then(|cpid| {
            let (st, _) = wait(cpid)?;
            Ok((st, started.elapsed().as_secs_f64()))
        });
        // SAFETY: asks our server to stop (it exits normally on SIGTERM).
        unsafe { libc::kill(spid, libc::SIGTERM) };
        let w = wait(spid);
        done.store(true, Ordering::Relaxed);
        (c, w, sampler.join().unwrap_or(0))
    });
    disarm_timeout();
    let (client_status, wall_s) = client_result?;
    let (status, usage) = server_result?;
    let ended = ended(client_status, timeout)
        .map_err(|e| format!("the client: {e}"))
        .and_then(|()| ended(status, timeout));
    Ok(Measured {
        wall_s,
        max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
        mean_rss_kib: mean,
        ended,
    })
}

/// `alloclab __spawn`: measures one program and writes the figures to
/// `--result`.
pub fn child_main(args: &SpawnArgs) -> Result<()> {
    let timeout = Duration::from_secs(args.timeout);
    let m = match args.server_port {
        Some(port) if !args.server.is_empty() => serve_and_run(
            &args.server,
            port,
            &args.argv,
            args.preload.as_deref(),
            timeout,
        )?,
        _ => fork_exec_wait(&args.argv, args.preload.as_deref(), timeout)?,
    };
    let ended = match &m.ended {
        Ok(()) => "ok".to_string(),
        Err(e) => e.clone(),
    };
    std::fs::write(
        &args.result,
        format!(
            "{} {} {} {ended}\n",
            m.wall_s, m.max_rss_kib, m.mean_rss_kib
        ),
    )
    .with_context(|| format!("writing {}", args.result.display()))
}

/// Reads what `alloclab __spawn` wrote.
pub fn read_result(path: &Path) -> Result<Measured> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("alloclab __spawn wrote no {}", path.display()))?;
    let mut parts = text.trim_end().splitn(4, ' ');
    let wall_s = parts
        .next()
        .unwrap_or("")
        .parse()
        .context("bad wall time")?;
    let max_rss_kib = parts.next().unwrap_or("").parse().context("bad RSS")?;
    let mean_rss_kib = parts.next().unwrap_or("").parse().context("bad mean RSS")?;
    let ended = match parts.next().unwrap_or("") {
        "ok" => Ok(()),
        e => Err(e.to_string()),
    };
    Ok(Measured {
        wall_s,
        max_rss_kib,
        mean_rss_kib,
        ended,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<OsString> {
        ["/bin/sh", "-c", script].map(OsString::from).to_vec()
    }

    #[test]
    fn crashes_exits_and_timeouts_are_told_apart() {
        let t = Duration::from_secs(20);
        let m = fork_exec_wait(&sh("kill -SEGV $$"), None, t).unwrap();
        assert_eq!(m.ended, Err("crashed (signal 11, SIGSEGV)".into()));
        let m = fork_exec_wait(&sh("exit 3"), None, t).unwrap();
        assert_eq!(m.ended, Err("exit status 3".into()));
        let m = fork_exec_wait(&sh("test \"$LD_PRELOAD\" = x.so"), Some("x.so".as_ref()), t);
        // ld.so complains about x.so but the shell runs and sees the variable.
        assert_eq!(m.unwrap().ended, Ok(()));
        let started = Instant::now();
        let m = fork_exec_wait(&sh("sleep 30"), None, Duration::from_secs(1)).unwrap();
        assert_eq!(m.ended, Err("timed out after 1 s".into()));
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn results_round_trip() {
        let dir = std::env::temp_dir().join(format!("alloclab-spawn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("r");
        std::fs::write(&f, "0.5 1234 1000 crashed (signal 6, SIGABRT)\n").unwrap();
        let m = read_result(&f).unwrap();
        assert_eq!(m.wall_s, 0.5);
        assert_eq!(m.max_rss_kib, 1234);
        assert_eq!(m.mean_rss_kib, 1000);
        assert_eq!(m.ended, Err("crashed (signal 6, SIGABRT)".into()));
        std::fs::write(&f, "0.25 10 8 ok\n").unwrap();
        assert_eq!(read_result(&f).unwrap().ended, Ok(()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

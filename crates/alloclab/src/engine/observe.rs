//! The observed half of the ease-of-use table: what an allocator does with a
//! bad pointer, when its arena is full, and how small an arena it accepts.
//! Each probe runs in a child process (`alloclab __probe ...`), so an
//! allocator that crashes or hangs on bad input only loses its probe.

use std::ffi::c_void;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

use super::entry::Entry;
use super::results::Observed;
use crate::allocators::subject::{Spec, Subject};
use crate::arena::Arena;
use crate::output::outln;
use crate::postmortem::{self, Stage, Watch};
use plugin_abi::Allocator;
use plugin_abi::loader::PluginApi;

/// A probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Probe {
    /// `free` of a pointer 32 bytes into a live block.
    InteriorFree,
    /// `free` of the same block twice.
    DoubleFree,
    /// `free` of a pointer the allocator never handed out (a stack address).
    ForeignFree,
    /// 64-byte blocks until the first refusal, on a 1 MiB arena.
    Exhaustion,
    /// The smallest arena on which create and `alloc(1)` succeed.
    SmallestArena,
}

/// Arguments of the hidden `alloclab __probe` command.
#[derive(Args, Debug, Clone)]
pub struct ProbeArgs {
    /// The probe.
    #[arg(long, value_enum)]
    pub probe: Probe,
    /// A plugin path.
    #[arg(long, conflicts_with = "builtin")]
    pub plugin: Option<PathBuf>,
    /// A built-in allocator's name.
    #[arg(long)]
    pub builtin: Option<String>,
    /// Creation flags.
    #[arg(long, default_value_t = 0)]
    pub flags: u32,
}

/// What a probe found (one JSON line on the child's stdout).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Found {
    outcome: String,
    number: Option<usize>,
}

const ARENA: usize = 1 << 20;
const CAP_OS_BYTES: usize = 64 << 20;

/// Child side: runs the probe and prints what it found.
pub fn child_main(args: &ProbeArgs) -> anyhow::Result<()> {
    postmortem::install_in_child();
    postmortem::stage(Stage::Probe);
    let spec = match (&args.plugin, &args.builtin) {
        (Some(p), _) => Spec::Plugin(p.clone()),
        (None, Some(b)) => Spec::Builtin(b.clone()),
        (None, None) => anyhow::bail!("__probe needs --plugin or --builtin"),
    };
    let subject = crate::allocators::from_spec(&spec, args.flags).map_err(anyhow::Error::msg)?;
    let found = match args.probe {
        Probe::InteriorFree | Probe::DoubleFree | Probe::ForeignFree => {
            bad_pointer(&subject, args.probe)?
        }
        Probe::Exhaustion => exhaustion(&subject)?,
        Probe::SmallestArena => smallest_arena(&subject)?,
    };
    outln!("{}", serde_json::to_string(&found)?);
    Ok(())
}

/// Fills `[p, p + len)` with a byte pattern of `tag`.
///
/// # Safety
///
/// `p` valid for writes of `len` bytes.
unsafe fn mark(p: *mut c_void, len: usize, tag: u8) {
    // SAFETY: caller's contract.
    unsafe { p.cast::<u8>().write_bytes(tag, len) };
}

/// # Safety
///
/// `p` valid for reads of `len` bytes.
unsafe fn marked(p: *mut c_void, len: usize, tag: u8) -> bool {
    // SAFETY: caller's contract.
    (0..len).all(|i| unsafe { p.cast::<u8>().add(i).read() } == tag)
}

fn bad_pointer(subject: &Subject, probe: Probe) -> anyhow::Result<Found> {
    let arena = Arena::map(ARENA)?;
    // SAFETY: the arena is ours until the process ends.
    let a = unsafe { subject.create(arena.as_ptr(), ARENA) };
    anyhow::ensure!(!a.is_null(), "create refused a 1 MiB arena");
    let api = subject.api;
    // SAFETY: `a` is live; blocks are used within their sizes. The bad call
    // is the point of the probe: for third-party allocators it may be
    // undefined, which is why this runs in a child process.
    unsafe {
        let (x, y, z) = (
            (api.alloc)(a, 100),
            (api.alloc)(a, 100),
            (api.alloc)(a, 4000),
        );
        anyhow::ensure!(
            !x.is_null() && !y.is_null() && !z.is_null(),
            "cannot allocate three blocks"
        );
        mark(x, 100, 0x11);
        mark(y, 100, 0x22);
        mark(z, 4000, 0x33);
        let before = subject
            .stats(a, ARENA)
            .ok()
            .flatten()
            .map(|s| s.rejected_frees);
        let mut live = vec![(x, 100usize, 0x11u8), (z, 4000, 0x33)];
        match probe {
            Probe::InteriorFree => {
                live.push((y, 100, 0x22));
                (api.free)(a, x.cast::<u8>().add(32).cast());
            }
            Probe::DoubleFree => {
                (api.free)(a, y);
                (api.free)(a, y);
            }
            _ => {
                let mut local = [0u64; 4];
                (api.free)(a, std::hint::black_box(local.as_mut_ptr().add(2)).cast());
            }
        }
        let after = subject
            .stats(a, ARENA)
            .ok()
            .flatten()
            .map(|s| s.rejected_frees);
        let rejected = match (before, after) {
            (Some(b), Some(n)) => n > b,
            _ => false,
        };
        let corrupt = corruption(&api, a, &live);
        let outcome = match (corrupt, rejected) {
            (Some(c), _) => c.to_string(),
            (None, true) => "rejected and counted, nothing changed".to_string(),
            (None, false) => "no visible effect (not reported)".to_string(),
        };
        Ok(Found {
            outcome,
            number: None,
        })
    }
}

/// After a bad call: does the allocator now hand out memory that is still
/// live (or overlapping another fresh block), has a live block (pointer,
/// size, the byte it was filled with) changed, or does `allocator_check`
/// fail? The first such finding, if any.
///
/// # Safety
///
/// `a` is a live allocator of `api`; `live` are its live blocks, each
/// filled with its tag.
unsafe fn corruption(
    api: &PluginApi,
    a: *mut Allocator,
    live: &[(*mut c_void, usize, u8)],
) -> Option<&'static str> {
    let mut fresh = Vec::new();
    for i in 0..64 {
        let size = if i % 16 == 0 { 4000 } else { 100 };
        // SAFETY: `a` is live.
        let p = unsafe { (api.alloc)(a, size) };
        if !p.is_null() {
            fresh.push((p, size));
        }
    }
    let overlaps = |(p, n): (*mut c_void, usize), (q, m): (*mut c_void, usize)| {
        let (p, q) = (p as usize, q as usize);
        p < q + m && q < p + n
    };
    let mut corrupt = None;
    for (i, &f) in fresh.iter().enumerate() {
        if live.iter().any(|&(p, n, _)| overlaps(f, (p, n)))
            || fresh[..i].iter().any(|&g| overlaps(f, g))
        {
            corrupt = Some("corrupts the heap: hands out memory that is still live");
            break;
        }
    }
    for &(p, n, tag) in live {
        // SAFETY: a live block of `n` bytes (caller).
        if corrupt.is_none() && !unsafe { marked(p, n, tag) } {
            corrupt = Some("corrupts a live block");
        }
    }
    // SAFETY: `a` is live.
    if corrupt.is_none() && api.check.is_some_and(|check| unsafe { check(a) } != 0) {
        corrupt = Some("corrupts its own state (allocator_check fails)");
    }
    corrupt
}

fn exhaustion(subject: &Subject) -> anyhow::Result<Found> {
    let arena = Arena::map(ARENA)?;
    // SAFETY: the arena is ours until the process ends.
    let a = unsafe { subject.create(arena.as_ptr(), ARENA) };
    anyhow::ensure!(!a.is_null(), "create refused a 1 MiB arena");
    let (lo, hi) = arena.bounds();
    let mut blocks: Vec<usize> = Vec::new();
    let outcome = |what: String| {
        Ok(Found {
            outcome: what,
            number: None,
        })
    };
    loop {
        // SAFETY: `a` is live.
        let p = unsafe { (subject.api.alloc)(a, 64) } as usize;
        if p == 0 {
            break;
        }
        if subject.blocks_in_arena && (p < lo || p + 64 > hi) {
            return outcome(format!(
                "returns a block outside its arena ({p:#x}; the arena is [{lo:#x}, {hi:#x}))"
            ));
        }
        blocks.push(p);
        if blocks.len() * 64 >= CAP_OS_BYTES {
            break;
        }
    }
    // Every block is live: none may overlap another.
    blocks.sort_unstable();
    if let Some(w) = blocks.windows(2).find(|w| w[1] < w[0] + 64) {
        return outcome(if w[0] == w[1] {
            format!(
                "returns the same block twice while it is live ({:#x})",
                w[0]
            )
        } else {
            format!(
                "returns overlapping blocks ({:#x} and {:#x}, 64 B each)",
                w[0], w[1]
            )
        });
    }
    let n = blocks.len();
    if n * 64 >= CAP_OS_BYTES {
        return outcome(format!(
            "never refuses (served {} MiB from a 1 MiB arena: memory from the OS)",
            CAP_OS_BYTES >> 20
        ));
    }
    let outcome = if subject.blocks_in_arena {
        format!(
            "returns NULL; {n} blocks of 64 B fit in 1 MiB ({:.1} B each)",
            ARENA as f64 / n.max(1) as f64
        )
    } else {
        format!("returns NULL after {n} blocks of 64 B (its own limit)")
    };
    Ok(Found {
        outcome,
        number: Some(n),
    })
}

fn smallest_arena(subject: &Subject) -> anyhow::Result<Found> {
    let arena = Arena::map(ARENA)?;
    let works = |len: usize| {
        // SAFETY: the arena is ours; each allocator is destroyed before the next.
        unsafe {
            let a = subject.create(arena.as_ptr(), len);
            if a.is_null() {
                return false;
            }
            let p = (subject.api.alloc)(a, 1) as usize;
            subject.destroy(a);
            // A block outside the arena does not count.
            let lo = arena.as_ptr() as usize;
            p != 0 && (!subject.blocks_in_arena || (p >= lo && p < lo + len))
        }
    };
    if !works(ARENA) {
        return Ok(Found {
            outcome: "needs more than 1 MiB".into(),
            number: None,
        });
    }
    // Not monotone in general (alignment effects), so scan up from small
    // sizes in 16-byte steps to the first size that works, up to 64 KiB,
    // then bisect.
    let first = (1..=4096).map(|k| k * 16).find(|&len| works(len));
    let n = match first {
        Some(n) => n,
        None => {
            let (mut lo, mut hi) = (64 << 10, ARENA);
            while hi - lo > 16 {
                let mid = lo + (hi - lo) / 2;
                if works(mid) { hi = mid } else { lo = mid }
            }
            hi
        }
    };
    Ok(Found {
        outcome: format!("{n} B"),
        number: Some(n),
    })
}

/// Parent side: runs `probe` for `entry` in a child process (10 s at most,
/// or `compare --deadline` if shorter).
fn run_child(exe: &Path, entry: &Entry, probe: Probe) -> Found {
    let mut cmd = probe_command(exe, entry, probe);
    let Ok(watch) = Watch::new() else {
        return Found {
            outcome: "could not watch the probe".into(),
            number: None,
        };
    };
    watch.attach(&mut cmd);
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        return Found {
            outcome: "could not start the probe".into(),
            number: None,
        };
    };
    let limit = Duration::from_secs(entry.settings.deadline_secs.clamp(1, 10));
    let status = wait_at_most(&mut child, limit);
    let (out, err) = read_outputs(&mut child);
    let first_err = err
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string();
    let said = if first_err.is_empty() {
        String::new()
    } else {
        format!(": \"{first_err}\"")
    };
    let outcome = |outcome: String| Found {
        outcome,
        number: None,
    };
    match status {
        None => outcome(format!(
            "hangs {} (killed after {} s)",
            watch.stage().words(),
            limit.as_secs()
        )),
        // The probe's own answer is its last line: a plugin may print too.
        Some(s) if s.success() => out
            .lines()
            .last()
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| outcome(watch.death(s))),
        Some(s) => match s.signal() {
            Some(libc::SIGABRT) => outcome(format!("aborts the process (SIGABRT){said}")),
            _ if s.code() == Some(1) && !first_err.is_empty() => outcome(crate::output::shown(
                first_err.trim_start_matches("alloclab: "),
            )),
            _ => outcome(watch.death(s)),
        },
    }
}

/// The `alloclab __probe` command line running `probe` for `entry`.
fn probe_command(exe: &Path, entry: &Entry, probe: Probe) -> Command {
    let mut cmd = Command::new(exe);
    cmd.arg("__probe").arg("--probe").arg(
        probe
            .to_possible_value()
            .map_or("".into(), |v| v.get_name().to_string()),
    );
    match &entry.spec {
        Spec::Plugin(p) => cmd.arg("--plugin").arg(p),
        Spec::Builtin(b) => cmd.arg("--builtin").arg(b),
    };
    cmd.arg("--flags").arg(entry.flags.to_string());
    cmd
}

/// Waits for `child` for `limit` at most; kills it after that (`None`).
fn wait_at_most(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() < limit => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    }
}

/// Everything `child` wrote to its standard output and error.
fn read_outputs(child: &mut Child) -> (String, String) {
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    (out, err)
}

/// Every probe for `entry`.
pub fn observe(entry: &Entry) -> Observed {
    let Ok(exe) = std::env::current_exe() else {
        return Observed::default();
    };
    let run = |p| run_child(&exe, entry, p);
    Observed {
        alignment: None,
        interior_free: Some(run(Probe::InteriorFree).outcome),
        double_free: Some(run(Probe::DoubleFree).outcome),
        foreign_free: Some(run(Probe::ForeignFree).outcome),
        exhaustion: Some(run(Probe::Exhaustion).outcome),
        smallest_arena: if entry.blocks_in_arena {
            run(Probe::SmallestArena).number
        } else {
            None
        },
        caps: entry.caps,
    }
}

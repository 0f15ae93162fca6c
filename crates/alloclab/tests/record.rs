//! `alloclab record`: a C program with a known sequence of allocation calls
//! (`tests/c/record_me.c`) is recorded; the trace must hold exactly that
//! sequence, with smallest-free block ids, be consistent
//! (`alloc_trace::stats`), and carry THREAD events when two threads allocate.

use std::path::{Path, PathBuf};
use std::process::Command;

use alloc_testkit::plugins::{built_plugin, workspace_root};
use alloc_trace::Event;

fn compile(source: &str, name: &str) -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(cc)
        .args([
            "-O1",
            "-fno-builtin",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pthread",
        ])
        .arg(workspace_root().join(source))
        .arg("-o")
        .arg(&exe)
        .status()
        .expect("a C compiler (cc) is needed");
    assert!(status.success(), "{source} does not compile");
    exe
}

/// Runs `alloclab record -o TRACE -- args...`, checks the program printed
/// `done`, and decodes the trace.
fn record(trace: &Path, args: &[&std::ffi::OsStr]) -> Vec<Event> {
    let (events, stdout) = record_any(trace, args);
    assert_eq!(stdout, "done\n");
    events
}

fn record_any(trace: &Path, args: &[&std::ffi::OsStr]) -> (Vec<Event>, String) {
    built_plugin("alloc-recorder"); // next to the runner, in target/debug
    let out = Command::new(env!("CARGO_BIN_EXE_alloclab"))
        .arg("record")
        .arg("-o")
        .arg(trace)
        .arg("--")
        .args(args)
        .output()
        .expect("cannot run alloclab");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "alloclab record failed: {stderr}");
    assert!(stderr.contains("alloclab: wrote"), "{stderr}");
    let events = alloc_trace::decode(&std::fs::read(trace).unwrap()).unwrap();
    (events, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What `record_me.c`'s `work(seed)` asks of the allocator, with the ids a
/// smallest-free-id recorder gives (the same LCG and the same cases).
fn expected(seed: u32) -> Vec<Event> {
    let mut s = seed;
    let mut next = || {
        s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        s >> 4
    };
    let mut slot: [Option<u64>; 256] = [None; 256];
    let mut used: Vec<bool> = Vec::new();
    let mut out = Vec::new();
    let new_id = |used: &mut Vec<bool>| {
        let id = used.iter().position(|u| !u).unwrap_or(used.len());
        if id == used.len() {
            used.push(true);
        } else {
            used[id] = true;
        }
        id as u64
    };
    let free = |slot: &mut Option<u64>, used: &mut Vec<bool>, out: &mut Vec<Event>| {
        if let Some(id) = slot.take() {
            out.push(Event::Free { id });
            used[id as usize] = false;
        }
    };
    for _ in 0..20_000 {
        let r = next();
        let k = (r % 256) as usize;
        match (r >> 8) % 5 {
            0 => {
                free(&mut slot[k], &mut used, &mut out);
                let id = new_id(&mut used);
                out.push(Event::Alloc {
                    id,
                    size: u64::from(r % 2000),
                });
                slot[k] = Some(id);
            }
            1 => {
                free(&mut slot[k], &mut used, &mut out);
                let id = new_id(&mut used);
                out.push(Event::Alloc {
                    id,
                    size: u64::from(r % 50 + 1) * 8,
                });
                slot[k] = Some(id);
            }
            2 => {
                let size = u64::from(r % 5000 + 1);
                match slot[k] {
                    Some(id) => out.push(Event::Realloc { id, size }),
                    None => {
                        let id = new_id(&mut used);
                        out.push(Event::Alloc { id, size });
                        slot[k] = Some(id);
                    }
                }
            }
            3 => {
                free(&mut slot[k], &mut used, &mut out);
                let id = new_id(&mut used);
                out.push(Event::AllocAligned {
                    id,
                    size: u64::from(r % 3000 + 1),
                    align: 64,
                });
                slot[k] = Some(id);
            }
            _ => free(&mut slot[k], &mut used, &mut out),
        }
    }
    for s in &mut slot {
        free(s, &mut used, &mut out);
    }
    out
}

/// The largest number of blocks live at once.
fn peak_live(events: &[Event]) -> u64 {
    let (mut live, mut peak) = (0i64, 0i64);
    for e in events {
        match e {
            Event::Alloc { .. } | Event::AllocAligned { .. } => live += 1,
            Event::Free { .. } => live -= 1,
            _ => {}
        }
        peak = peak.max(live);
    }
    peak as u64
}

#[test]
fn a_program_is_recorded_call_for_call() {
    let exe = compile("crates/alloclab/tests/c/record_me.c", "record_me");
    let trace = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("record_me.trace");
    let events = record(&trace, &[exe.as_os_str()]);
    assert_eq!(
        events,
        expected(1),
        "the trace is not the program's call sequence"
    );
    let s = alloc_trace::stats(events.iter().copied()).expect("a consistent trace");
    assert_eq!(
        (s.allocs, s.frees, s.live_at_end, s.threads),
        (s.frees, s.allocs, 0, 1)
    );
    assert_eq!(s.ids, peak_live(&events), "ids are the smallest free ones");
}

#[test]
fn two_threads_are_told_apart_and_the_trace_stays_consistent() {
    let exe = compile("crates/alloclab/tests/c/record_me.c", "record_me_threads");
    let trace = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("record_me_threads.trace");
    let events = record(&trace, &[exe.as_os_str(), "threads".as_ref()]);
    let s = alloc_trace::stats(events.iter().copied()).expect("a consistent trace");
    assert_eq!(s.threads, 2, "{s:?}");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Thread { thread: 1 }))
    );
    let mine = expected(1).len() + expected(7).len();
    assert!(events.len() > mine, "both threads' calls are there");
    // glibc keeps one block for the finished thread (its TLS vector).
    assert!(s.live_at_end <= 2, "{s:?}");
    assert_eq!(s.ids, peak_live(&events), "ids are the smallest free ones");
    // Each thread's own calls appear in its order: the main thread's events,
    // ids aside, are those of work(1).
    let mut current = 0;
    let mut main_kinds = Vec::new();
    for e in &events {
        match *e {
            Event::Thread { thread } => current = thread,
            e if current == 0 => main_kinds.push(kind(e)),
            _ => {}
        }
    }
    // pthread_create allocates a block or two on the main thread as well.
    let want: Vec<_> = expected(1).into_iter().map(kind).collect();
    assert!(
        main_kinds.len() >= want.len() && main_kinds.len() <= want.len() + 4,
        "main thread: {} events for {} calls",
        main_kinds.len(),
        want.len()
    );
    let mut rest = main_kinds.iter();
    assert!(
        want.iter().all(|w| rest.any(|m| m == w)),
        "the main thread's calls are recorded in order"
    );
}

/// An event without its id.
fn kind(e: Event) -> (u8, u64, u64) {
    match e {
        Event::Alloc { size, .. } => (0, size, 0),
        Event::Free { .. } => (1, 0, 0),
        Event::Realloc { size, .. } => (2, size, 0),
        Event::AllocAligned { size, align, .. } => (3, size, align),
        Event::Thread { thread } => (4, thread, 0),
    }
}

#[test]
fn a_program_run_through_env_is_recorded_and_its_children_are_not() {
    let exe = compile("crates/alloclab/tests/c/record_me.c", "record_me_env");
    let trace = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("record_me_env.trace");
    // `sh -c 'prog; prog; true'`: the shell is the recorded process and
    // ends with `_exit` (dash); its children do not record, so the trace
    // has none of record_me's 12819 allocations.
    let script = format!("{0}; {0}; true", exe.display());
    let (sh, stdout) = record_any(&trace, &["sh".as_ref(), "-c".as_ref(), script.as_ref()]);
    assert_eq!(stdout, "done\ndone\n");
    let s = alloc_trace::stats(sh.iter().copied()).unwrap();
    assert!(s.allocs > 0, "the shell's own calls are recorded: {s:?}");
    assert!(
        s.allocs < 5000,
        "a child recorded into the parent's trace: {s:?}"
    );
    // `env X=1 prog`: env execs the program, which records.
    let via_env = record(&trace, &["env".as_ref(), "X=1".as_ref(), exe.as_os_str()]);
    assert_eq!(via_env, expected(1));
}

/// Runs `alloclab record ARGS...` and returns what it did.
fn alloclab_record(args: &[&std::ffi::OsStr]) -> std::process::Output {
    built_plugin("alloc-recorder");
    Command::new(env!("CARGO_BIN_EXE_alloclab"))
        .arg("record")
        .args(args)
        .output()
        .expect("cannot run alloclab")
}

/// Threads run one after another reuse one stack and one `pthread_self`
/// value; each is a thread of its own in the trace, and the figures say how
/// many ran at once.
#[test]
fn threads_run_one_after_another_are_counted_apart() {
    let exe = compile(
        "crates/alloclab/tests/c/record_me.c",
        "record_me_sequential",
    );
    let trace = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("record_me_sequential.trace");
    let out = alloclab_record(&[
        "-o".as_ref(),
        trace.as_os_str(),
        "--".as_ref(),
        exe.as_os_str(),
        "sequential".as_ref(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("17 threads (at most 2 at once)"),
        "{stderr}"
    );
    let events = alloc_trace::decode(&std::fs::read(&trace).unwrap()).unwrap();
    let s = alloc_trace::stats(events).unwrap();
    assert_eq!((s.threads, s.concurrent_threads), (17, 2), "{s:?}");
}

/// What `record` says when the program does not end well, or the trace
/// cannot be written: one line, and the program's own status passed on.
#[test]
fn record_says_what_happened() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let trace = dir.join("record_says.trace");
    let sh = |script: &str| -> Vec<std::ffi::OsString> {
        [
            "-o".into(),
            trace.clone().into_os_string(),
            "--".into(),
            "sh".into(),
            "-c".into(),
            script.into(),
        ]
        .into()
    };
    let run = |args: Vec<std::ffi::OsString>| {
        let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let out = alloclab_record(&refs);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    // Killed by a signal before the recorder's first flush: no trace left.
    let (code, stderr) = run(sh("kill -SEGV $$"));
    assert_eq!(code, Some(139), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("sh was killed by SIGSEGV") && stderr.contains("no trace"),
        "{stderr}"
    );
    assert!(!trace.exists(), "an empty trace was left behind");

    // The program's exit status is passed on; the trace is kept.
    let (code, stderr) = run(sh("exit 7"));
    assert_eq!(code, Some(7), "{stderr}");
    assert!(
        stderr.contains("exited with status 7") && stderr.contains("kept"),
        "{stderr}"
    );
    assert!(alloc_trace::decode(&std::fs::read(&trace).unwrap()).is_ok());

    // An output folder that does not exist is named as such.
    let nowhere = dir.join("no-such-folder").join("x.trace");
    let (code, stderr) = run(vec![
        "-o".into(),
        nowhere.into_os_string(),
        "--".into(),
        "true".into(),
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no-such-folder does not exist"), "{stderr}");

    // An option record does not have is an error, not a program to run.
    let (code, stderr) = run(vec!["--bogus".into()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("unexpected argument '--bogus'"), "{stderr}");

    // A program that cannot be started.
    let (code, stderr) = run(vec![
        "-o".into(),
        trace.clone().into_os_string(),
        "--".into(),
        "no-such-program-here".into(),
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot run no-such-program-here"),
        "{stderr}"
    );
}

//! Traces that hold anything a file can hold, replayed by `alloclab compare
//! --trace FILE` under `ulimit -v` (512 MiB of address space, far less than
//! a runner that sized its tables by a block id would need): block ids far
//! apart replay in a table as large as the blocks live at once; a trace
//! that cannot be replayed ends the run with one line naming the file and
//! what is wrong, and a non-zero exit.

use std::path::PathBuf;
use std::process::{Command, Output};

/// One LEB128 varint.
fn varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A record: opcode, id, then the numbers it carries.
fn record(op: u64, id: u64, more: &[u64]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(id << 3 | op, &mut out);
    for &m in more {
        varint(m, &mut out);
    }
    out
}

const ALLOC: u64 = 0;
const FREE: u64 = 1;

fn trace(name: &str, records: &[Vec<u8>]) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.trace"));
    let mut bytes = b"ALLOCTR1".to_vec();
    for r in records {
        bytes.extend(r);
    }
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `alloclab compare` of the trace alone, on the built-in bump allocator,
/// with at most 512 MiB of address space.
fn replay(path: &std::path::Path) -> Output {
    let name = format!("trace:{}", path.file_stem().unwrap().to_string_lossy());
    Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 524288 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_alloclab"))
        .args(["compare", "--quick", "--reps", "1", "--only", "bump"])
        .args(["--workloads", &name, "--trace"])
        .arg(path)
        .output()
        .expect("cannot run alloclab")
}

#[test]
fn sparse_block_ids_replay_in_bounded_memory() {
    let cases = [
        // 14 bytes: block 2^31 (a table indexed by id: 32 GiB).
        trace("id-2-31", &[record(ALLOC, 1 << 31, &[16])]),
        // The largest id a record can carry (capacity overflow).
        trace(
            "id-2-61",
            &[
                record(ALLOC, (1 << 61) - 1, &[16]),
                record(FREE, (1 << 61) - 1, &[]),
            ],
        ),
        // 2^26 (1 GiB and seconds for a table indexed by id).
        trace(
            "id-2-26",
            &[
                record(ALLOC, 1 << 26, &[16]),
                record(ALLOC, 3, &[100]),
                record(FREE, 1 << 26, &[]),
            ],
        ),
    ];
    for path in cases {
        let out = replay(&path);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.lines().any(|l| l.starts_with("│ bump ")),
            "{}: no bump row in {stdout}",
            path.display()
        );
    }
}

#[test]
fn a_trace_that_cannot_be_replayed_is_named_in_one_line() {
    let mut ten_bytes = vec![0xff; 9];
    ten_bytes.push(0x7f); // a number of 70 bits
    let cases = [
        (
            trace(
                "live-beyond-64-bits",
                &[record(ALLOC, 0, &[1 << 63]), record(ALLOC, 1, &[1 << 63])],
            ),
            "event 1: more than 2^64 bytes live",
        ),
        (
            trace("peak-32-tib", &[record(ALLOC, 0, &[1 << 45])]),
            "needs an arena too large",
        ),
        (
            trace("seventy-bits", &[ten_bytes]),
            "corrupt trace at byte 8",
        ),
        (
            trace(
                "free-of-nothing",
                &[record(ALLOC, 5, &[10]), record(FREE, 6, &[])],
            ),
            "event 1: free of block 6, not live",
        ),
        (trace("empty", &[]), "no allocation call"),
        (
            trace("reserved-opcode", &[record(6, 1, &[])]),
            "reserved opcode",
        ),
    ];
    for (path, says) in cases {
        let out = replay(&path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {stderr}", path.display());
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!("alloclab: trace {}: ", path.display()))
                && stderr.contains(says),
            "{stderr}"
        );
    }
    let out = replay(std::path::Path::new("/dev/zero"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("trace /dev/zero: not an alloclab trace"),
        "{stderr}"
    );
}

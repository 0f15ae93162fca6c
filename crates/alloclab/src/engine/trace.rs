//! A recorded trace as a workload (`trace:NAME`), read from a file that
//! may hold anything: memory bounded by the file's size, every error naming
//! the file.
//!
//! The script: one timed phase replaying every event (alignment requests
//! become plain allocations of at least the alignment; thread switches are
//! replayed on one thread), then an untimed phase freeing what the trace
//! left live. Block ids are a file's word, not an index: each live id gets
//! a slot, the smallest free one (for the recorder's traces, whose ids are
//! already the smallest free ones, slot = id), so the slot table holds the
//! trace's peak of live blocks whatever its ids. The arena is twice the
//! trace's peak live bytes, rounded up to a power of two (at least 1 MiB):
//! room for any power-of-two allocator's rounding.
//!
//! Memory: the file's bytes, 16 bytes per event for the script, and a few
//! words per live block; a file larger than [`MAX_TRACE_BYTES`] is refused
//! before it is read, as is a trace whose arena would not fit in the
//! machine's available memory.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::Read;
use std::path::Path;

use alloc_trace::{Event, Events, StatsBuilder};

use super::workload::{Op, Script, UsageKind, timed, untimed};

/// The largest trace file replayed: its script takes up to 16 bytes per
/// event, 2 GiB at this size (a typical record takes 2 to 4 bytes).
pub const MAX_TRACE_BYTES: u64 = 256 << 20;

/// The trace at `path` as a workload named `trace:` and the file's stem.
/// Every error starts with "trace PATH:".
pub fn load(path: &Path) -> Result<Script, String> {
    let named = |e: String| format!("trace {}: {e}", path.display());
    let bytes = read_bounded(path).map_err(named)?;
    let name = path
        .file_stem()
        .map_or_else(|| "trace".into(), |s| s.to_string_lossy().into_owned());
    let events = Events::new(&bytes).map_err(|e| named(e.to_string()))?;
    script(&name, events.map(|e| e.map_err(|e| e.to_string()))).map_err(named)
}

/// The script of `events`, already decoded.
#[cfg(test)]
pub fn from_events(name: &str, events: &[Event]) -> Result<Script, String> {
    script(name, events.iter().map(|&e| Ok(e)))
}

/// The whole file, refused beyond [`MAX_TRACE_BYTES`] (also when it is not
/// a regular file and never ends) or when it does not start as a trace.
fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    let too_large = || {
        format!(
            "larger than {} MiB, the largest trace alloclab replays",
            MAX_TRACE_BYTES >> 20
        )
    };
    if file.metadata().is_ok_and(|m| m.len() > MAX_TRACE_BYTES) {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    (&mut file)
        .take(alloc_trace::MAGIC.len() as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if bytes != alloc_trace::MAGIC {
        return Err(alloc_trace::TraceError::NotATrace.to_string());
    }
    file.take(MAX_TRACE_BYTES + 1 - bytes.len() as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() as u64 > MAX_TRACE_BYTES {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Slots for live block ids: the smallest free slot first.
#[derive(Default)]
struct Slots {
    of: HashMap<u64, usize>,
    free: BinaryHeap<Reverse<usize>>,
    count: usize,
}

impl Slots {
    fn take(&mut self, id: u64) -> usize {
        let slot = match self.free.pop() {
            Some(Reverse(s)) => s,
            None => {
                self.count += 1;
                self.count - 1
            }
        };
        self.of.insert(id, slot);
        slot
    }

    fn give_back(&mut self, id: u64) -> Option<usize> {
        let slot = self.of.remove(&id)?;
        self.free.push(Reverse(slot));
        Some(slot)
    }
}

fn script(
    name: &str,
    events: impl Iterator<Item = Result<Event, String>>,
) -> Result<Script, String> {
    let size = |s: u64| usize::try_from(s).unwrap_or(usize::MAX);
    let mut stats = StatsBuilder::default();
    let mut slots = Slots::default();
    let mut replay = Vec::new();
    for e in events {
        let e = e?;
        // Checks the event against the ones before: every id below is live
        // (or, for an allocation, not live).
        stats.add(e)?;
        let unseen = |id| format!("block {id} has no slot"); // cannot happen after `add`
        match e {
            Event::Alloc { id, size: s } => replay.push(Op::alloc(slots.take(id), size(s))),
            Event::AllocAligned { id, size: s, align } => {
                replay.push(Op::alloc(slots.take(id), size(s.max(align))))
            }
            Event::Free { id } => {
                replay.push(Op::free(slots.give_back(id).ok_or_else(|| unseen(id))?))
            }
            Event::Realloc { id, size: s } => {
                let slot = *slots.of.get(&id).ok_or_else(|| unseen(id))?;
                replay.push(Op::realloc(slot, size(s)));
            }
            Event::Thread { .. } => {}
        }
    }
    let stats = stats.finish();
    if replay.is_empty() {
        return Err("it holds no allocation call".into());
    }
    if u32::try_from(slots.count).is_err() {
        return Err(format!(
            "{} blocks live at once, more than 2^32",
            slots.count
        ));
    }
    let mut live: Vec<usize> = slots.of.values().copied().collect();
    live.sort_unstable();
    let cleanup = live.into_iter().map(Op::free).collect();
    let peak = size(stats.peak_live_bytes);
    let arena = peak
        .checked_mul(2)
        .and_then(usize::checked_next_power_of_two)
        .map(|a| a.max(1 << 20))
        .ok_or_else(|| format!("its peak of {peak} bytes live needs an arena beyond 2^64 bytes"))?;
    crate::arena::check_size(arena)
        .map_err(|e| format!("its peak of {peak} bytes live needs an arena too large: {e}"))?;
    Ok(Script {
        name: format!("trace:{name}"),
        description: format!(
            "replay of {name}: {} allocs, {} frees, {} reallocs, peak {} KiB live, in a {} MiB arena",
            stats.allocs,
            stats.frees,
            stats.reallocs,
            peak >> 10,
            arena >> 20
        ),
        arena,
        slots: slots.count,
        phases: vec![timed("replay", replay), untimed("cleanup", cleanup)],
        usage: UsageKind::Trace,
        peak_live: peak,
    })
}

#[cfg(test)]
mod tests {
    use super::super::workload::OpKind;
    use super::*;

    #[test]
    fn traces_become_scripts() {
        let events = [
            Event::Alloc { id: 0, size: 100 },
            Event::Thread { thread: 1 },
            Event::AllocAligned {
                id: 1,
                size: 8,
                align: 64,
            },
            Event::Realloc { id: 0, size: 300 },
            Event::Free { id: 1 },
        ];
        let s = from_events("t", &events).unwrap();
        assert_eq!(s.name, "trace:t");
        assert_eq!(s.peak_live, 308);
        assert_eq!(s.arena, 1 << 20);
        let kinds: Vec<OpKind> = s.phases[0].ops.iter().map(|o| o.kind).collect();
        assert_eq!(
            kinds,
            [OpKind::Alloc, OpKind::Alloc, OpKind::Realloc, OpKind::Free]
        );
        assert_eq!(
            s.phases[0].ops[1].size, 64,
            "alignment kept as a minimum size"
        );
        assert_eq!(
            s.phases[1].ops.len(),
            1,
            "block 0 is freed by the clean-up phase"
        );
        assert!(from_events("bad", &[Event::Free { id: 0 }]).is_err());
    }

    /// Ids far apart take as many slots as blocks live at once, the smallest
    /// free slot first.
    #[test]
    fn ids_are_mapped_to_the_smallest_free_slots() {
        let events = [
            Event::Alloc {
                id: 1 << 61,
                size: 1,
            },
            Event::Alloc {
                id: 1 << 31,
                size: 1,
            },
            Event::Free { id: 1 << 61 },
            Event::Alloc { id: 5, size: 1 },
            Event::Alloc {
                id: 1 << 26,
                size: 1,
            },
        ];
        let s = from_events("sparse", &events).unwrap();
        assert_eq!(s.slots, 3);
        let slots: Vec<u32> = s.phases[0].ops.iter().map(|o| o.slot).collect();
        assert_eq!(slots, [0, 1, 0, 0, 2]);
        // The recorder's ids (smallest free) map to themselves.
        let dense = [
            Event::Alloc { id: 0, size: 1 },
            Event::Alloc { id: 1, size: 1 },
            Event::Free { id: 0 },
            Event::Alloc { id: 0, size: 1 },
            Event::Alloc { id: 2, size: 1 },
        ];
        let s = from_events("dense", &dense).unwrap();
        let slots: Vec<u32> = s.phases[0].ops.iter().map(|o| o.slot).collect();
        assert_eq!(slots, [0, 1, 0, 0, 2]);
    }

    #[test]
    fn errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("alloclab-trace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cases: [(&str, &[u8], &str); 5] = [
            ("notrace", b"hello", "no ALLOCTR1 magic"),
            ("cut", b"ALLOCTR1\x80", "cut short"),
            ("empty", b"ALLOCTR1", "no allocation call"),
            ("freed", b"ALLOCTR1\x01", "free of block 0, not live"),
            (
                "huge",
                b"ALLOCTR1\x00\xff\xff\xff\xff\xff\xff\xff\xff\x7f",
                "arena",
            ),
        ];
        for (name, bytes, what) in cases {
            let path = dir.join(format!("{name}.trace"));
            std::fs::write(&path, bytes).unwrap();
            let err = load(&path).unwrap_err();
            assert!(
                err.starts_with(&format!("trace {}: ", path.display())) && err.contains(what),
                "{name}: {err}"
            );
        }
        let err = load(&dir.join("missing.trace")).unwrap_err();
        assert!(
            err.contains("missing.trace") && err.contains("cannot open"),
            "{err}"
        );
        let err = load(Path::new("/dev/zero")).unwrap_err();
        assert!(
            err.contains("/dev/zero") && err.contains("no ALLOCTR1 magic"),
            "{err}"
        );
        let big = dir.join("big.trace");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(MAX_TRACE_BYTES + 1).unwrap(); // sparse: nothing written
        let err = load(&big).unwrap_err();
        assert!(
            err.contains("big.trace") && err.contains("larger than"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! The alloclab trace format: what a program asked of its allocator, in
//! order, compact enough to ship real traces in the repository.
//!
//! A trace is the 8-byte magic `ALLOCTR1` followed by records until the end
//! of the file. Every record starts with one unsigned LEB128 varint, the
//! *head*: its low 3 bits are the opcode, the rest (`head >> 3`) the block id
//! (or, for `THREAD`, the thread number). Some opcodes carry more varints:
//!
//! | opcode | name            | then            | meaning                                   |
//! |--------|-----------------|-----------------|-------------------------------------------|
//! | 0      | `ALLOC`         | size            | block `id` = malloc(size)                 |
//! | 1      | `FREE`          |                 | free(block `id`)                          |
//! | 2      | `REALLOC`       | size            | block `id` = realloc(block `id`, size)    |
//! | 3      | `ALLOC_ALIGNED` | size, alignment | block `id` = aligned_alloc(alignment, size) |
//! | 4      | `THREAD`        |                 | the following records are thread `id`'s   |
//! | 5–7    | reserved        |                 | a reader stops with an error              |
//!
//! Block ids are chosen by the recorder: the smallest id not in use, so the
//! ids of a trace stay below its peak number of live blocks and a replayer
//! can keep its blocks in a plain array. A block id is live from its `ALLOC`
//! to its `FREE`; `REALLOC` keeps the id. `calloc` is recorded as `ALLOC`,
//! `realloc(NULL, n)` as `ALLOC`, `realloc(p, 0)` as `FREE`; calls that failed
//! in the recorded program are not recorded.
//!
//! A typical record takes 2 to 4 bytes.

use std::fmt;
use std::io::{self, Read, Write};

/// The first 8 bytes of every trace.
pub const MAGIC: &[u8; 8] = b"ALLOCTR1";

/// One recorded call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Block `id` = malloc(`size`).
    Alloc {
        /// Block id.
        id: u64,
        /// Bytes asked for.
        size: u64,
    },
    /// free(block `id`).
    Free {
        /// Block id.
        id: u64,
    },
    /// Block `id` = realloc(block `id`, `size`).
    Realloc {
        /// Block id.
        id: u64,
        /// New size.
        size: u64,
    },
    /// Block `id` = aligned_alloc(`align`, `size`).
    AllocAligned {
        /// Block id.
        id: u64,
        /// Bytes asked for.
        size: u64,
        /// Alignment asked for.
        align: u64,
    },
    /// The following events come from thread `thread`.
    Thread {
        /// Thread number (0 = the first thread seen).
        thread: u64,
    },
}

/// Writes a trace.
pub struct TraceWriter<W: Write> {
    out: W,
}

impl<W: Write> TraceWriter<W> {
    /// Starts a trace on `out` (writes the magic).
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(MAGIC)?;
        Ok(TraceWriter { out })
    }

    /// Appends one event.
    pub fn write(&mut self, event: Event) -> io::Result<()> {
        let mut buf = [0u8; 40];
        let n = encode(event, &mut buf);
        self.out.write_all(&buf[..n])
    }

    /// Flushes and returns the sink.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Encodes `event` into `buf` (at most 40 bytes) and returns its length. No
/// allocation: a recorder inside `malloc` may call it.
pub fn encode(event: Event, buf: &mut [u8; 40]) -> usize {
    let mut n = 0;
    let mut put = |v: u64| {
        let mut v = v;
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                buf[n] = byte;
                n += 1;
                break;
            }
            buf[n] = byte | 0x80;
            n += 1;
        }
    };
    // Ids above 2^61 cannot be encoded with the 3-bit opcode; recorders
    // use small dense ids, so this never happens in practice.
    let head = |id: u64, op: u64| (id.min(u64::MAX >> 3) << 3) | op;
    match event {
        Event::Alloc { id, size } => {
            put(head(id, 0));
            put(size);
        }
        Event::Free { id } => put(head(id, 1)),
        Event::Realloc { id, size } => {
            put(head(id, 2));
            put(size);
        }
        Event::AllocAligned { id, size, align } => {
            put(head(id, 3));
            put(size);
            put(align);
        }
        Event::Thread { thread } => put(head(thread, 4)),
    }
    n
}

/// Why a trace could not be read.
#[derive(Debug)]
pub enum TraceError {
    /// Reading failed.
    Io(io::Error),
    /// The file does not start with [`MAGIC`].
    NotATrace,
    /// A record is cut short or has a reserved opcode.
    Corrupt {
        /// Byte offset of the bad record.
        offset: u64,
        /// What is wrong.
        what: &'static str,
    },
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceError::Io(e) => write!(f, "cannot read the trace: {e}"),
            TraceError::NotATrace => write!(f, "not an alloclab trace (no ALLOCTR1 magic)"),
            TraceError::Corrupt { offset, what } => {
                write!(f, "corrupt trace at byte {offset}: {what}")
            }
        }
    }
}

impl std::error::Error for TraceError {}

impl From<io::Error> for TraceError {
    fn from(e: io::Error) -> Self {
        TraceError::Io(e)
    }
}

/// Decodes a whole trace held in memory.
pub fn decode(bytes: &[u8]) -> Result<Vec<Event>, TraceError> {
    let body = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or(TraceError::NotATrace)?;
    let mut events = Vec::new();
    let mut pos = 0usize;
    let corrupt = |at: usize, what| TraceError::Corrupt {
        offset: (at + MAGIC.len()) as u64,
        what,
    };
    let varint = |pos: &mut usize| -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *body.get(*pos)?;
            *pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    };
    while pos < body.len() {
        let start = pos;
        let head = varint(&mut pos).ok_or_else(|| corrupt(start, "record cut short"))?;
        let (id, op) = (head >> 3, head & 7);
        let mut more = || varint(&mut pos).ok_or_else(|| corrupt(start, "record cut short"));
        events.push(match op {
            0 => Event::Alloc { id, size: more()? },
            1 => Event::Free { id },
            2 => Event::Realloc { id, size: more()? },
            3 => {
                let size = more()?;
                Event::AllocAligned {
                    id,
                    size,
                    align: more()?,
                }
            }
            4 => Event::Thread { thread: id },
            _ => return Err(corrupt(start, "reserved opcode")),
        });
    }
    Ok(events)
}

/// Reads and decodes a whole trace.
pub fn read(mut input: impl Read) -> Result<Vec<Event>, TraceError> {
    let mut bytes = Vec::new();
    input.read_to_end(&mut bytes)?;
    decode(&bytes)
}

/// Figures of a trace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceStats {
    /// Allocation events (ALLOC, ALLOC_ALIGNED).
    pub allocs: u64,
    /// FREE events.
    pub frees: u64,
    /// REALLOC events.
    pub reallocs: u64,
    /// Threads seen.
    pub threads: u64,
    /// Largest block id + 1.
    pub ids: u64,
    /// Largest sum of the sizes of live blocks at any point.
    pub peak_live_bytes: u64,
    /// Blocks still live at the end.
    pub live_at_end: u64,
}

/// Counts and the peak live bytes of `events`; `Err` if an event uses a
/// block id that is not live (or allocates one that is).
pub fn stats(events: &[Event]) -> Result<TraceStats, String> {
    let mut s = TraceStats::default();
    let mut sizes: Vec<Option<u64>> = Vec::new();
    let mut live = 0u64;
    let slot = |sizes: &mut Vec<Option<u64>>, id: u64| -> Result<usize, String> {
        let i = usize::try_from(id).map_err(|_| format!("block id {id} too large"))?;
        if i >= sizes.len() {
            sizes.resize(i + 1, None);
        }
        Ok(i)
    };
    for (n, e) in events.iter().enumerate() {
        match *e {
            Event::Alloc { id, size } | Event::AllocAligned { id, size, .. } => {
                let i = slot(&mut sizes, id)?;
                if sizes[i].replace(size).is_some() {
                    return Err(format!("event {n}: block {id} allocated while live"));
                }
                s.allocs += 1;
                live += size;
            }
            Event::Free { id } => {
                let i = slot(&mut sizes, id)?;
                live -= sizes[i]
                    .take()
                    .ok_or_else(|| format!("event {n}: free of block {id}, not live"))?;
                s.frees += 1;
            }
            Event::Realloc { id, size } => {
                let i = slot(&mut sizes, id)?;
                let old = sizes[i]
                    .replace(size)
                    .ok_or_else(|| format!("event {n}: realloc of block {id}, not live"))?;
                live = live - old + size;
                s.reallocs += 1;
            }
            Event::Thread { thread } => s.threads = s.threads.max(thread + 1),
        }
        s.peak_live_bytes = s.peak_live_bytes.max(live);
    }
    s.ids = sizes.len() as u64;
    s.live_at_end = sizes.iter().filter(|x| x.is_some()).count() as u64;
    s.threads = s.threads.max(1);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            (any::<u64>(), any::<u64>()).prop_map(|(id, size)| Event::Alloc { id: id >> 3, size }),
            any::<u64>().prop_map(|id| Event::Free { id: id >> 3 }),
            (any::<u64>(), any::<u64>())
                .prop_map(|(id, size)| Event::Realloc { id: id >> 3, size }),
            (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(id, size, align)| {
                Event::AllocAligned {
                    id: id >> 3,
                    size,
                    align,
                }
            }),
            any::<u64>().prop_map(|t| Event::Thread { thread: t >> 3 }),
        ]
    }

    proptest! {
        #[test]
        fn round_trips(events in proptest::collection::vec(event(), 0..200)) {
            let mut w = TraceWriter::new(Vec::new()).unwrap();
            for &e in &events {
                w.write(e).unwrap();
            }
            let bytes = w.finish().unwrap();
            prop_assert_eq!(decode(&bytes).unwrap(), events);
        }

        #[test]
        fn never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let mut with_magic = MAGIC.to_vec();
            with_magic.extend(&bytes);
            let _ = decode(&with_magic);
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn small_records_are_small() {
        let mut buf = [0u8; 40];
        assert_eq!(encode(Event::Alloc { id: 3, size: 100 }, &mut buf), 2);
        assert_eq!(encode(Event::Free { id: 3 }, &mut buf), 1);
        assert_eq!(
            encode(
                Event::Alloc {
                    id: 1000,
                    size: 4096
                },
                &mut buf
            ),
            4
        );
    }

    #[test]
    fn errors_are_reported() {
        assert!(matches!(decode(b"nope"), Err(TraceError::NotATrace)));
        let mut t = MAGIC.to_vec();
        t.push(0x80); // a varint that never ends
        assert!(matches!(
            decode(&t),
            Err(TraceError::Corrupt { offset: 8, .. })
        ));
        let mut t = MAGIC.to_vec();
        t.push(5); // reserved opcode
        assert!(
            decode(&t)
                .unwrap_err()
                .to_string()
                .contains("reserved opcode")
        );
    }

    #[test]
    fn stats_track_the_peak_and_reject_bad_ids() {
        let e = [
            Event::Alloc { id: 0, size: 100 },
            Event::Alloc { id: 1, size: 50 },
            Event::Realloc { id: 0, size: 200 },
            Event::Free { id: 1 },
            Event::Free { id: 0 },
        ];
        let s = stats(&e).unwrap();
        assert_eq!(
            (
                s.allocs,
                s.frees,
                s.reallocs,
                s.peak_live_bytes,
                s.live_at_end,
                s.ids
            ),
            (2, 2, 1, 250, 0, 2)
        );
        assert!(stats(&[Event::Free { id: 0 }]).is_err());
        assert!(
            stats(&[
                Event::Alloc { id: 0, size: 1 },
                Event::Alloc { id: 0, size: 1 }
            ])
            .is_err()
        );
    }
}

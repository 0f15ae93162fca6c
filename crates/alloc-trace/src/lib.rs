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
//! ids of a trace it writes stay below its peak number of live blocks. A
//! reader must not count on it (a trace is a file, and files can hold
//! anything): [`StatsBuilder`] keeps live blocks in a map, and a replayer
//! maps ids to its own slots. A block id is live from its `ALLOC`
//! to its `FREE`; `REALLOC` keeps the id. `calloc` is recorded as `ALLOC`,
//! `realloc(NULL, n)` as `ALLOC`, `realloc(p, 0)` as `FREE`; calls that failed
//! in the recorded program are not recorded.
//!
//! A typical record takes 2 to 4 bytes.

use std::collections::HashMap;
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

/// The events of a trace held in memory, decoded one at a time: reading a
/// trace takes no memory beyond its bytes. After an error the iterator
/// ends.
#[derive(Clone, Debug)]
pub struct Events<'a> {
    body: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> Events<'a> {
    /// The events of `bytes`, a whole trace (magic first).
    pub fn new(bytes: &'a [u8]) -> Result<Self, TraceError> {
        let body = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or(TraceError::NotATrace)?;
        Ok(Events {
            body,
            pos: 0,
            failed: false,
        })
    }

    /// Byte offset (in the file) of the next record.
    pub fn offset(&self) -> u64 {
        (self.pos + MAGIC.len()) as u64
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.body.get(self.pos)?;
            self.pos += 1;
            let bits = u64::from(b & 0x7f);
            // The tenth byte may only carry the top bit of a u64.
            if shift == 63 && bits > 1 {
                return None;
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn record(&mut self) -> Result<Event, TraceError> {
        let start = self.pos;
        let corrupt = |what| TraceError::Corrupt {
            offset: (start + MAGIC.len()) as u64,
            what,
        };
        let cut = "record cut short or a number longer than 64 bits";
        let head = self.varint().ok_or_else(|| corrupt(cut))?;
        let (id, op) = (head >> 3, head & 7);
        let mut more = || self.varint().ok_or_else(|| corrupt(cut));
        Ok(match op {
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
            _ => return Err(corrupt("reserved opcode")),
        })
    }
}

impl Iterator for Events<'_> {
    type Item = Result<Event, TraceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.body.len() {
            return None;
        }
        let r = self.record();
        self.failed = r.is_err();
        Some(r)
    }
}

/// Decodes a whole trace held in memory into a vector (32 bytes per event:
/// for small traces and tests; [`Events`] reads one event at a time).
pub fn decode(bytes: &[u8]) -> Result<Vec<Event>, TraceError> {
    Events::new(bytes)?.collect()
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
    /// Threads seen (distinct thread numbers; at least 1).
    pub threads: u64,
    /// The most threads active at once: a thread is active from its first
    /// event to its last (at least 1).
    pub concurrent_threads: u64,
    /// Largest block id + 1 (ids need not be dense: a replayer maps them).
    pub ids: u64,
    /// The most blocks live at once.
    pub peak_live_blocks: u64,
    /// Largest sum of the sizes of live blocks at any point.
    pub peak_live_bytes: u64,
    /// Blocks still live at the end.
    pub live_at_end: u64,
}

/// Computes [`TraceStats`] one event at a time, checking that the events
/// are consistent: no block id used while not live, none allocated while
/// live, the live bytes within 64 bits. Memory: one entry per live block
/// and per thread.
#[derive(Clone, Debug, Default)]
pub struct StatsBuilder {
    s: TraceStats,
    /// Size of each live block, by id.
    live: HashMap<u64, u64>,
    live_bytes: u64,
    /// Per thread number: its first and last event (indices of non-THREAD events).
    spans: HashMap<u64, (u64, u64)>,
    thread: u64,
    /// Events seen (THREAD events included).
    n: u64,
    /// Non-THREAD events seen.
    calls: u64,
}

impl StatsBuilder {
    /// Adds the next event; `Err` (naming the event's index) if it is not
    /// consistent with the ones before.
    pub fn add(&mut self, e: Event) -> Result<(), String> {
        let n = self.n;
        self.n += 1;
        let s = &mut self.s;
        match e {
            Event::Alloc { id, size } | Event::AllocAligned { id, size, .. } => {
                if self.live.insert(id, size).is_some() {
                    return Err(format!("event {n}: block {id} allocated while live"));
                }
                s.allocs += 1;
                self.live_bytes = self.live_bytes.checked_add(size).ok_or_else(|| {
                    format!("event {n}: more than 2^64 bytes live (block {id} of {size} bytes)")
                })?;
            }
            Event::Free { id } => {
                let size = self
                    .live
                    .remove(&id)
                    .ok_or_else(|| format!("event {n}: free of block {id}, not live"))?;
                self.live_bytes -= size;
                s.frees += 1;
            }
            Event::Realloc { id, size } => {
                let old = self
                    .live
                    .get_mut(&id)
                    .ok_or_else(|| format!("event {n}: realloc of block {id}, not live"))?;
                let bytes = (self.live_bytes - *old).checked_add(size).ok_or_else(|| {
                    format!("event {n}: more than 2^64 bytes live (block {id} of {size} bytes)")
                })?;
                *old = size;
                self.live_bytes = bytes;
                s.reallocs += 1;
            }
            Event::Thread { thread } => {
                self.thread = thread;
                return Ok(());
            }
        }
        let id = match e {
            Event::Alloc { id, .. }
            | Event::AllocAligned { id, .. }
            | Event::Free { id }
            | Event::Realloc { id, .. } => id,
            Event::Thread { .. } => unreachable!("returned above"),
        };
        s.ids = s.ids.max(id.saturating_add(1));
        s.peak_live_bytes = s.peak_live_bytes.max(self.live_bytes);
        s.peak_live_blocks = s.peak_live_blocks.max(self.live.len() as u64);
        let call = self.calls;
        self.calls += 1;
        self.spans
            .entry(self.thread)
            .and_modify(|span| span.1 = call)
            .or_insert((call, call));
        Ok(())
    }

    /// The figures of the events added.
    pub fn finish(self) -> TraceStats {
        let mut s = self.s;
        s.live_at_end = self.live.len() as u64;
        s.threads = (self.spans.len() as u64).max(1);
        // The most spans overlapping: +1 at each start, -1 after each end.
        let mut edges: Vec<(u64, i64)> = self
            .spans
            .values()
            .flat_map(|&(first, last)| [(first, 1), (last + 1, -1)])
            .collect();
        edges.sort_unstable_by_key(|&(at, delta)| (at, delta));
        let (mut active, mut most) = (0i64, 1i64);
        for (_, delta) in edges {
            active += delta;
            most = most.max(active);
        }
        s.concurrent_threads = most as u64;
        s
    }
}

/// Counts and the peak live bytes of `events`; `Err` if an event uses a
/// block id that is not live (or allocates one that is).
pub fn stats(events: impl IntoIterator<Item = Event>) -> Result<TraceStats, String> {
    let mut b = StatsBuilder::default();
    for e in events {
        b.add(e)?;
    }
    Ok(b.finish())
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
        let s = stats(e).unwrap();
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
        assert!(stats([Event::Free { id: 0 }]).is_err());
        assert!(
            stats([
                Event::Alloc { id: 0, size: 1 },
                Event::Alloc { id: 0, size: 1 }
            ])
            .is_err()
        );
    }

    /// Ids are a file's word, not an index: any id up to 2^61 costs one map
    /// entry, and live bytes beyond 64 bits are an error, not an overflow.
    #[test]
    fn large_ids_and_sizes_are_bounded() {
        let s = stats([
            Event::Alloc {
                id: 1 << 61,
                size: 7,
            },
            Event::Alloc {
                id: 1 << 31,
                size: 9,
            },
            Event::Free { id: 1 << 61 },
        ])
        .unwrap();
        assert_eq!(
            (s.peak_live_blocks, s.peak_live_bytes, s.live_at_end),
            (2, 16, 1)
        );
        assert_eq!(s.ids, (1 << 61) + 1);
        let err = stats([
            Event::Alloc {
                id: 0,
                size: u64::MAX,
            },
            Event::Alloc { id: 1, size: 1 },
        ])
        .unwrap_err();
        assert!(err.contains("event 1") && err.contains("2^64"), "{err}");
        let err = stats([
            Event::Alloc { id: 0, size: 1 },
            Event::Alloc { id: 1, size: 1 },
            Event::Realloc {
                id: 0,
                size: u64::MAX,
            },
        ])
        .unwrap_err();
        assert!(err.contains("event 2"), "{err}");
    }

    /// Threads run one after another are distinct threads, never more than
    /// two at once beside the main one.
    #[test]
    fn threads_and_how_many_at_once() {
        let mut e = vec![Event::Alloc { id: 0, size: 1 }];
        for t in 1..=16 {
            e.push(Event::Thread { thread: t });
            e.push(Event::Alloc { id: t, size: 1 });
            e.push(Event::Free { id: t });
        }
        e.push(Event::Thread { thread: 0 });
        e.push(Event::Free { id: 0 });
        let s = stats(e.iter().copied()).unwrap();
        assert_eq!((s.threads, s.concurrent_threads), (17, 2));
        // Two threads taking turns are both active throughout.
        let s = stats([
            Event::Alloc { id: 0, size: 1 },
            Event::Thread { thread: 1 },
            Event::Alloc { id: 1, size: 1 },
            Event::Thread { thread: 0 },
            Event::Free { id: 0 },
            Event::Thread { thread: 1 },
            Event::Free { id: 1 },
        ])
        .unwrap();
        assert_eq!((s.threads, s.concurrent_threads), (2, 2));
        assert_eq!(stats([]).unwrap().concurrent_threads, 1);
    }

    #[test]
    fn a_number_longer_than_64_bits_is_corrupt() {
        let mut t = MAGIC.to_vec();
        t.extend([0xff; 9]);
        t.push(0x02); // the tenth byte carries bit 64
        assert!(matches!(
            decode(&t),
            Err(TraceError::Corrupt { offset: 8, .. })
        ));
        let mut t = MAGIC.to_vec();
        t.extend([0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]); // 2^63 + 1: FREE of 2^60
        t.extend([0x80; 2]);
        let mut events = Events::new(&t).unwrap();
        assert_eq!(events.next().unwrap().unwrap(), Event::Free { id: 1 << 60 });
        assert!(events.next().unwrap().is_err());
        assert!(events.next().is_none(), "no event after an error");
    }
}

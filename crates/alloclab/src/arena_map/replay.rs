//! Replaying a workload on one allocator to draw its arena: never timed, so
//! nothing here changes what `compare` measures. The script runs twice on
//! the same memory (the allocators are deterministic): once to find the
//! moment to draw (the first refusal, the peak of live bytes, or an op
//! number), once to stop there, sampling the arena along the way.

use std::ffi::c_void;
use std::ptr::null_mut;

use plugin_abi::{Allocator, AllocatorStats};
use serde::{Deserialize, Serialize};

use super::classify::{self, ArenaMap, Block, Known};
use crate::allocators::subject::Subject;
use crate::arena::Arena;
use crate::engine::workload::{OpKind, Script};

/// The moment a map shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    /// The first refused allocation (for a workload without one: the peak).
    Refusal,
    /// Just after the operation that brought the most requested bytes live.
    Peak,
    /// Just after operation N (counted from 1 over all phases).
    Op(usize),
}

impl std::str::FromStr for At {
    type Err = String;

    fn from_str(s: &str) -> Result<At, String> {
        match s {
            "refusal" => Ok(At::Refusal),
            "peak" => Ok(At::Peak),
            _ => s
                .strip_prefix("op:")
                .and_then(|n| n.parse().ok())
                .filter(|&n: &usize| n > 0)
                .map(At::Op)
                .ok_or_else(|| format!("`{s}`: expected refusal, peak or op:N (N >= 1)")),
        }
    }
}

/// One point of the fragmentation-over-time line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// Operations done.
    pub op: usize,
    /// Bytes asked for by the live blocks.
    pub requested: usize,
    /// Bytes the allocator holds for them (measured, or as asked).
    pub held: usize,
    /// The largest block the allocator could hand out now (its stats), or
    /// the largest hole (inferred).
    pub largest_free: usize,
}

/// What one replay gives: the map at the moment, and the line up to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replay {
    /// The arena at the moment.
    pub map: ArenaMap,
    /// The moment, in words.
    pub moment: String,
    /// Operations done at the moment.
    pub op: usize,
    /// Samples from the start to the moment (or to the end with `whole`).
    pub timeline: Vec<Sample>,
    /// Held bytes and the largest free block come from the allocator.
    pub timeline_measured: bool,
}

/// A block table entry: the block and the size asked.
#[derive(Clone, Copy)]
struct Live {
    ptr: *mut c_void,
    size: usize,
}

/// An allocator on an arena, with the runner's record of its blocks.
struct Run<'s> {
    subject: &'s Subject,
    a: *mut Allocator,
    base: usize,
    len: usize,
    /// Where the script goes on: (phase, op in it).
    cursor: (usize, usize),
    slots: Vec<Live>,
    requested: usize,
    done: usize,
    /// The first refused allocation: (ops done before it, its size).
    refusal: Option<(usize, usize)>,
    peak: (usize, usize),
}

impl<'s> Run<'s> {
    fn new(subject: &'s Subject, arena: &Arena, script: &Script) -> Result<Run<'s>, String> {
        // SAFETY: the arena is ours, unused by anything else until destroy.
        let a = unsafe { subject.create(arena.as_ptr(), arena.len()) };
        if a.is_null() {
            return Err(format!(
                "{} refused an arena of {} bytes",
                subject.name,
                arena.len()
            ));
        }
        Ok(Run {
            subject,
            a,
            base: arena.as_ptr() as usize,
            len: arena.len(),
            cursor: (0, 0),
            slots: vec![
                Live {
                    ptr: null_mut(),
                    size: 0
                };
                script.slots
            ],
            requested: 0,
            done: 0,
            refusal: None,
            peak: (0, 0),
        })
    }

    /// Runs ops until `stop` ops are done (or the script ends), going on
    /// from where the last call stopped; a sample every `every` ops.
    fn go(&mut self, script: &Script, stop: usize, every: usize, out: &mut Vec<Sample>) {
        while self.done < stop {
            let (pi, oi) = self.cursor;
            let Some(phase) = script.phases.get(pi) else {
                return;
            };
            let Some(op) = phase.ops.get(oi) else {
                self.cursor = (pi + 1, 0);
                continue;
            };
            self.cursor.1 += 1;
            if self.step(op.kind, op.slot as usize, op.size) {
                if self.refusal.is_none() {
                    self.refusal = Some((self.done, op.size));
                }
                if phase.stop_at_first_refusal {
                    self.cursor = (pi + 1, 0);
                    continue;
                }
            }
            self.done += 1;
            if self.requested > self.peak.1 {
                self.peak = (self.done, self.requested);
            }
            if every > 0 && self.done.is_multiple_of(every) {
                out.push(self.sample());
            }
        }
    }

    /// One operation; true if an allocation was refused.
    fn step(&mut self, kind: OpKind, slot: usize, size: usize) -> bool {
        let api = &self.subject.api;
        let Some(live) = self.slots.get(slot).copied() else {
            return false;
        };
        // SAFETY: `a` is live; every pointer passed is NULL or a live block
        // of `a` from this table.
        let q = unsafe {
            match kind {
                OpKind::Alloc if live.ptr.is_null() => (api.alloc)(self.a, size),
                OpKind::Alloc => return false,
                OpKind::Free => {
                    if !live.ptr.is_null() {
                        (api.free)(self.a, live.ptr);
                        self.requested -= live.size;
                        self.slots[slot] = Live {
                            ptr: null_mut(),
                            size: 0,
                        };
                    }
                    return false;
                }
                OpKind::Realloc => match api.realloc {
                    Some(r) => r(self.a, live.ptr, size),
                    None => {
                        let q = (api.alloc)(self.a, size);
                        if !q.is_null() && !live.ptr.is_null() {
                            std::ptr::copy_nonoverlapping(
                                live.ptr.cast::<u8>(),
                                q.cast::<u8>(),
                                live.size.min(size),
                            );
                            (api.free)(self.a, live.ptr);
                        }
                        q
                    }
                },
            }
        };
        if q.is_null() {
            if kind == OpKind::Realloc && size == 0 && api.realloc.is_some() {
                // realloc(p, 0) frees p (the header's rule).
                self.requested -= live.size;
                self.slots[slot] = Live {
                    ptr: null_mut(),
                    size: 0,
                };
                return false;
            }
            return true;
        }
        self.requested = self.requested - live.size + size;
        self.slots[slot] = Live { ptr: q, size };
        false
    }

    fn stats(&self) -> Option<AllocatorStats> {
        let f = self.subject.api.stats?;
        let mut s = AllocatorStats::default();
        // SAFETY: `a` is live, `s` writable.
        (unsafe { f(self.a, &mut s) } == 0).then_some(s)
    }

    fn held(&self, p: *mut c_void) -> Option<usize> {
        let f = self.subject.api.usable_size?;
        // SAFETY: `a` is live, `p` one of its live blocks.
        Some(unsafe { f(self.a, p) }).filter(|&n| n > 0)
    }

    fn sample(&self) -> Sample {
        let stats = self.stats();
        let held = match stats {
            Some(s) => s.bytes_reserved,
            None => self
                .live()
                .map(|l| self.held(l.ptr).unwrap_or(l.size))
                .sum(),
        };
        let largest_free = match stats {
            Some(s) => s.largest_free_block,
            None => self.map(1, false).map_or(0, |m| m.largest_hole()),
        };
        Sample {
            op: self.done,
            requested: self.requested,
            held,
            largest_free,
        }
    }

    fn live(&self) -> impl Iterator<Item = &Live> {
        self.slots.iter().filter(|l| !l.ptr.is_null())
    }

    /// The arena now, free space judged against `next_request`; `refused`:
    /// the allocator has just refused it, so no hole fits it (measured).
    fn map(&self, next_request: usize, refused: bool) -> Result<ArenaMap, String> {
        let blocks: Vec<Block> = self
            .live()
            .map(|l| Block {
                offset: (l.ptr as usize).wrapping_sub(self.base),
                requested: l.size,
                held: self.held(l.ptr),
            })
            .collect();
        let stats = self.stats();
        let header = self.subject.facts.map_or(0, |f| f.adapter_header);
        let said = stats.map(|s| s.largest_free_block);
        let known = Known {
            metadata: stats.map(|s| s.metadata_bytes),
            reserved: stats.map(|s| s.bytes_reserved),
            free: stats.map(|s| s.bytes_free),
            largest_free: if refused {
                Some(
                    said.unwrap_or(usize::MAX)
                        .min(next_request.saturating_sub(1)),
                )
            } else {
                said
            },
            header,
        };
        classify::classify(self.len, &blocks, &known, next_request)
    }
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        // SAFETY: `a` came from `create` and is not used afterwards.
        unsafe { self.subject.destroy(self.a) };
    }
}

/// The size of the first allocation at or after op `from`, or `fallback`.
fn next_request(script: &Script, from: usize, fallback: usize) -> usize {
    script
        .phases
        .iter()
        .flat_map(|p| &p.ops)
        .skip(from)
        .find(|o| o.kind != OpKind::Free)
        .map_or(fallback, |o| o.size)
}

/// Replays `script` on `subject` and maps its arena at the moment `at`,
/// with about `samples` points of the fragmentation-over-time line (up to
/// the moment, or over the whole script when `whole`).
pub fn replay(
    subject: &Subject,
    script: &Script,
    arena_len: usize,
    at: At,
    samples: usize,
    whole: bool,
) -> Result<Replay, String> {
    if !subject.blocks_in_arena {
        return Err(format!(
            "{} takes its memory from the OS, not from the arena: it has no arena to map",
            subject.name
        ));
    }
    let arena = Arena::map_aligned(arena_len, arena_len.next_power_of_two())
        .map_err(|e| format!("{e:#}"))?;
    let total: usize = script.phases.iter().map(|p| p.ops.len()).sum();
    // First pass: where is the moment?
    let (stop, moment, request, refused) = {
        let mut run = Run::new(subject, &arena, script)?;
        run.go(script, total, 0, &mut Vec::new());
        let peak = |run: &Run| {
            let (op, bytes) = run.peak;
            (
                op,
                format!(
                    "the peak of live bytes ({} KiB asked), after op {op}",
                    bytes >> 10
                ),
                next_request(script, op, 16),
                false,
            )
        };
        match (at, run.refusal) {
            (At::Refusal, Some((op, size))) => (
                op,
                format!("the first refusal: op {} asked {size} B", op + 1),
                size,
                true,
            ),
            (At::Refusal | At::Peak, _) => peak(&run),
            (At::Op(n), _) => {
                let n = n.min(run.done);
                (
                    n,
                    format!("after op {n}"),
                    next_request(script, n, 16),
                    false,
                )
            }
        }
    };
    let mut run = Run::new(subject, &arena, script)?;
    let goal = if whole { total } else { stop };
    let every = (goal / samples.max(1)).max(1);
    let mut timeline = Vec::new();
    run.go(script, stop, every, &mut timeline);
    let map = run.map(request, refused)?;
    if whole {
        let mut rest = Vec::new();
        run.go(script, total, every, &mut rest);
        timeline.extend(rest);
    }
    Ok(Replay {
        map,
        moment,
        op: stop,
        timeline,
        timeline_measured: subject.api.stats.is_some(),
    })
}

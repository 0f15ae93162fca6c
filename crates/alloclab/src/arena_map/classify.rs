//! Where each byte of an arena goes, at one moment: every byte in exactly
//! one [`ByteClass`], from what the runner knows.
//!
//! What is **measured**: where each live block starts and how much was
//! asked for it (the runner's own record); how much the allocator holds for
//! it, where it answers `allocator_usable_size`; the adapter's size header in
//! front of a peer's block (its size is the adapter's). What is **inferred**:
//! where the allocator's own state lies (its amount comes from
//! `allocator_stats`, its place is taken to be the start of the arena, then
//! its end, where this project's allocators and the peer adapters keep it),
//! and which free bytes could serve the next request (a hole is usable when
//! the request fits in it at 16-byte alignment and, where `allocator_stats`
//! answers, is no larger than the allocator's largest free block).

use serde::{Deserialize, Serialize};

/// What one byte of the arena is, at the moment of the map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ByteClass {
    /// Inside a live block, within the size asked for it.
    Requested,
    /// Inside what the allocator holds for a live block, beyond the size
    /// asked (power-of-two rounding, size classes, alignment).
    Rounding,
    /// The allocator's own state: tables, bitmaps, headers, unusable tail.
    Metadata,
    /// Free, in a hole where the next request fits.
    FreeUsable,
    /// Free, in a hole too small (or of the wrong shape) for the next request.
    FreeUnusable,
}

impl ByteClass {
    /// Every class, in legend order.
    pub const ALL: [ByteClass; 5] = [
        ByteClass::Requested,
        ByteClass::Rounding,
        ByteClass::Metadata,
        ByteClass::FreeUsable,
        ByteClass::FreeUnusable,
    ];

    /// Position in [`ByteClass::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Legend text.
    pub fn label(self) -> &'static str {
        match self {
            ByteClass::Requested => "requested",
            ByteClass::Rounding => "rounding inside blocks",
            ByteClass::Metadata => "allocator metadata",
            ByteClass::FreeUsable => "free, fits the next request",
            ByteClass::FreeUnusable => "free, too small for it",
        }
    }
}

/// A live block as the runner knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// Offset of its first byte from the arena's start.
    pub offset: usize,
    /// Bytes asked for it.
    pub requested: usize,
    /// Bytes the allocator holds for it (`allocator_usable_size`), if known.
    pub held: Option<usize>,
}

/// What the allocator says about itself (`allocator_stats`), and the size of
/// the header an adapter puts in front of each block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Known {
    /// `metadata_bytes`.
    pub metadata: Option<usize>,
    /// `bytes_reserved`.
    pub reserved: Option<usize>,
    /// `bytes_free`.
    pub free: Option<usize>,
    /// `largest_free_block`.
    pub largest_free: Option<usize>,
    /// Bytes in front of each block that belong to the allocator (the peer
    /// adapters' size header; 0 for this project's allocators).
    pub header: usize,
}

/// Consecutive bytes of one class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// Offset from the arena's start.
    pub start: usize,
    /// Bytes.
    pub len: usize,
    /// What they are.
    pub class: ByteClass,
}

/// An arena at one moment: runs covering `[0, len)` in order, without gaps
/// or overlaps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArenaMap {
    /// Arena bytes.
    pub len: usize,
    /// The runs, by offset.
    pub runs: Vec<Run>,
    /// The request the free space is judged against.
    pub next_request: usize,
    /// Block sizes held come from `allocator_usable_size` (else: the size asked).
    pub held_measured: bool,
    /// The metadata amount comes from `allocator_stats` (else: only headers).
    pub metadata_measured: bool,
    /// What the allocator said at the moment.
    pub known: Known,
}

impl ArenaMap {
    /// Bytes per class, indexed by [`ByteClass::index`].
    pub fn totals(&self) -> [usize; 5] {
        let mut t = [0; 5];
        for r in &self.runs {
            t[r.class.index()] += r.len;
        }
        t
    }

    /// The largest run of free bytes (usable or not).
    pub fn largest_hole(&self) -> usize {
        holes(&self.runs).map(|(_, len)| len).max().unwrap_or(0)
    }

    /// Bytes of each class in `[from, to)`.
    pub fn mix(&self, from: usize, to: usize) -> [usize; 5] {
        let mut t = [0; 5];
        let first = self.runs.partition_point(|r| r.start + r.len <= from);
        for r in &self.runs[first..] {
            if r.start >= to {
                break;
            }
            let lo = r.start.max(from);
            let hi = (r.start + r.len).min(to);
            t[r.class.index()] += hi - lo;
        }
        t
    }
}

/// Maximal runs of free bytes: `(start, len)`.
fn holes(runs: &[Run]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let free = |c: ByteClass| matches!(c, ByteClass::FreeUsable | ByteClass::FreeUnusable);
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < runs.len() && !free(runs[i].class) {
            i += 1;
        }
        let start = runs.get(i)?.start;
        let mut end = start;
        while i < runs.len() && free(runs[i].class) {
            end = runs[i].start + runs[i].len;
            i += 1;
        }
        Some((start, end - start))
    })
}

/// Classifies every byte of an arena of `len` bytes holding `blocks`, the
/// free space judged against a request of `next_request` bytes.
///
/// Fails if a block (with its header) lies outside the arena or overlaps
/// another: the checked pass would have rejected such an allocator.
/// O(b log b) for b blocks.
pub fn classify(
    len: usize,
    blocks: &[Block],
    known: &Known,
    next_request: usize,
) -> Result<ArenaMap, String> {
    let mut blocks = blocks.to_vec();
    blocks.sort_unstable_by_key(|b| b.offset);
    let mut used = Vec::with_capacity(blocks.len() * 3);
    let mut end = 0;
    for b in &blocks {
        let held = b.held.unwrap_or(b.requested).max(b.requested);
        let head = b
            .offset
            .checked_sub(known.header)
            .ok_or_else(|| format!("a block at offset {} has no room for its header", b.offset))?;
        let stop = b
            .offset
            .checked_add(held)
            .filter(|&s| s <= len)
            .ok_or_else(|| {
                format!(
                    "a block at offset {} ({held} bytes) ends outside the arena",
                    b.offset
                )
            })?;
        if head < end {
            return Err(format!(
                "the block at offset {} overlaps the one before it",
                b.offset
            ));
        }
        if head > end {
            used.push(Run {
                start: end,
                len: head - end,
                class: ByteClass::FreeUnusable,
            });
        }
        push(&mut used, head, known.header, ByteClass::Metadata);
        push(&mut used, b.offset, b.requested, ByteClass::Requested);
        push(
            &mut used,
            b.offset + b.requested,
            held - b.requested,
            ByteClass::Rounding,
        );
        end = stop;
    }
    if end < len {
        used.push(Run {
            start: end,
            len: len - end,
            class: ByteClass::FreeUnusable,
        });
    }
    if let Some(m) = known.metadata {
        place_metadata(&mut used, m);
    }
    judge_holes(&mut used, next_request, known.largest_free);
    Ok(ArenaMap {
        len,
        runs: merged(used),
        next_request,
        held_measured: blocks.iter().all(|b| b.held.is_some()),
        metadata_measured: known.metadata.is_some(),
        known: *known,
    })
}

fn push(runs: &mut Vec<Run>, start: usize, len: usize, class: ByteClass) {
    if len > 0 {
        runs.push(Run { start, len, class });
    }
}

/// Marks `amount` gap bytes as metadata: from the arena's start, then back
/// from its end, then the remaining gaps in address order. Headers already
/// counted as metadata are part of the amount.
fn place_metadata(runs: &mut Vec<Run>, amount: usize) {
    let headers: usize = runs
        .iter()
        .filter(|r| r.class == ByteClass::Metadata)
        .map(|r| r.len)
        .sum();
    let mut left = amount.saturating_sub(headers);
    let is_gap = |r: &Run| r.class == ByteClass::FreeUnusable;
    let mut order: Vec<usize> = Vec::new();
    if runs.first().is_some_and(is_gap) {
        order.push(0);
    }
    if runs.len() > 1 && runs.last().is_some_and(is_gap) {
        order.push(runs.len() - 1);
    }
    let rest: Vec<usize> = (0..runs.len())
        .filter(|&i| is_gap(&runs[i]) && !order.contains(&i))
        .collect();
    order.extend(rest);
    let mut splits = Vec::new();
    for i in order {
        if left == 0 {
            break;
        }
        let take = left.min(runs[i].len);
        left -= take;
        let at_end = i == runs.len() - 1 && i != 0;
        splits.push((i, take, at_end));
    }
    // Split from the back so earlier indices stay valid.
    splits.sort_unstable_by_key(|s| std::cmp::Reverse(s.0));
    for (i, take, at_end) in splits {
        let r = runs[i];
        let (meta, rest) = if at_end {
            (
                Run {
                    start: r.start + r.len - take,
                    len: take,
                    class: ByteClass::Metadata,
                },
                Run {
                    start: r.start,
                    len: r.len - take,
                    class: r.class,
                },
            )
        } else {
            (
                Run {
                    start: r.start,
                    len: take,
                    class: ByteClass::Metadata,
                },
                Run {
                    start: r.start + take,
                    len: r.len - take,
                    class: r.class,
                },
            )
        };
        let pieces: Vec<Run> = if at_end {
            vec![rest, meta]
        } else {
            vec![meta, rest]
        };
        runs.splice(i..=i, pieces.into_iter().filter(|p| p.len > 0));
    }
}

/// Free runs (all `FreeUnusable` so far) become `FreeUsable` when the next
/// request fits in their hole.
fn judge_holes(runs: &mut [Run], request: usize, largest_free: Option<usize>) {
    if largest_free.is_some_and(|l| l < request.max(1)) {
        return;
    }
    let mut i = 0;
    while i < runs.len() {
        if runs[i].class != ByteClass::FreeUnusable {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < runs.len() && runs[j].class == ByteClass::FreeUnusable {
            j += 1;
        }
        let (start, end) = (runs[i].start, runs[j - 1].start + runs[j - 1].len);
        let aligned = start.next_multiple_of(16);
        if aligned.saturating_add(request.max(1)) <= end {
            for r in &mut runs[i..j] {
                r.class = ByteClass::FreeUsable;
            }
        }
        i = j;
    }
}

/// Neighbouring runs of one class joined.
fn merged(runs: Vec<Run>) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::with_capacity(runs.len());
    for r in runs {
        match out.last_mut() {
            Some(last) if last.class == r.class && last.start + last.len == r.start => {
                last.len += r.len;
            }
            _ => out.push(r),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covers(map: &ArenaMap) {
        let mut at = 0;
        for r in &map.runs {
            assert_eq!(r.start, at, "runs leave a gap or overlap at {at}");
            assert!(r.len > 0);
            at += r.len;
        }
        assert_eq!(at, map.len);
    }

    #[test]
    fn every_byte_is_in_exactly_one_class() {
        let blocks = [
            Block {
                offset: 64,
                requested: 10,
                held: Some(16),
            },
            Block {
                offset: 128,
                requested: 100,
                held: Some(128),
            },
            Block {
                offset: 512,
                requested: 32,
                held: Some(32),
            },
        ];
        let known = Known {
            metadata: Some(80),
            reserved: Some(176),
            free: Some(768),
            largest_free: Some(256),
            header: 0,
        };
        let map = classify(1024, &blocks, &known, 200).unwrap();
        covers(&map);
        let t = map.totals();
        assert_eq!(t[ByteClass::Requested.index()], 142);
        assert_eq!(t[ByteClass::Rounding.index()], 34);
        assert_eq!(t[ByteClass::Metadata.index()], 80);
        assert_eq!(
            t[ByteClass::FreeUsable.index()] + t[ByteClass::FreeUnusable.index()],
            768
        );
        // 64 bytes at the start, the other 16 at the end of the arena.
        assert_eq!(
            map.runs[0],
            Run {
                start: 0,
                len: 64,
                class: ByteClass::Metadata
            }
        );
        assert_eq!(
            *map.runs.last().unwrap(),
            Run {
                start: 1008,
                len: 16,
                class: ByteClass::Metadata
            }
        );
        // The hole 544..1008 fits 200 bytes; 80..128 and 256..512 do not
        // (256 bytes, but the allocator's largest free block is 256 >= 200:
        // so it fits).
        assert_eq!(map.mix(544, 1008)[ByteClass::FreeUsable.index()], 464);
        assert_eq!(map.mix(80, 128)[ByteClass::FreeUnusable.index()], 48);
        assert_eq!(map.mix(256, 512)[ByteClass::FreeUsable.index()], 256);
        assert_eq!(map.largest_hole(), 464);
    }

    #[test]
    fn nothing_is_usable_when_the_allocator_says_it_cannot_serve() {
        let blocks = [Block {
            offset: 0,
            requested: 8,
            held: None,
        }];
        let known = Known {
            largest_free: Some(100),
            ..Known::default()
        };
        let map = classify(4096, &blocks, &known, 200).unwrap();
        covers(&map);
        assert_eq!(map.totals()[ByteClass::FreeUsable.index()], 0);
        assert_eq!(map.totals()[ByteClass::FreeUnusable.index()], 4088);
        assert!(!map.held_measured && !map.metadata_measured);
    }

    #[test]
    fn headers_are_metadata_and_count_in_its_amount() {
        let blocks = [Block {
            offset: 32,
            requested: 16,
            held: None,
        }];
        let known = Known {
            metadata: Some(32),
            header: 16,
            ..Known::default()
        };
        let map = classify(64, &blocks, &known, 8).unwrap();
        covers(&map);
        assert_eq!(map.totals()[ByteClass::Metadata.index()], 32);
        // The header and the 16 bytes of state before it, in one run.
        assert_eq!(
            map.runs[0],
            Run {
                start: 0,
                len: 32,
                class: ByteClass::Metadata
            }
        );
    }

    #[test]
    fn overlapping_or_outside_blocks_are_refused() {
        let k = Known::default();
        let a = Block {
            offset: 0,
            requested: 64,
            held: None,
        };
        let b = Block {
            offset: 32,
            requested: 64,
            held: None,
        };
        assert!(classify(256, &[a, b], &k, 1).is_err());
        let c = Block {
            offset: 224,
            requested: 64,
            held: None,
        };
        assert!(classify(256, &[c], &k, 1).is_err());
    }
}
